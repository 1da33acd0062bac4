"""Replay PyTorch's real backward pass, node by node, on an expression typed by the student.

``record_backward`` evaluates the expression, remembers the forward value of every node of the graph (a
``TorchFunctionMode`` sees each operation's result), registers a pre-hook and a hook on every ``grad_fn`` node,
then calls ``backward()``: the hooks record the order in which the autograd engine really executes the nodes,
the gradient each one receives (from the output side) and the gradients it sends to its inputs. The local
derivatives of a scalar node are obtained by calling the node itself with a gradient of 1.

``backward_replay()`` is the widget: an expression, a slider and « Précédent » / « Suivant » buttons step through
the recording; the graph drawn by ``autograder.graph.draw_graph`` shows forward values (green) and gradients
(red), the current node highlighted. Like the other widgets, it keeps what it shows in plain attributes
(``position``, ``current``, ``text``, ``png``, ``error``), so tests drive it without a browser.
"""

from __future__ import annotations

import ast
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import torch
from torch.overrides import TorchFunctionMode

from autograder.graph import ComputationGraph, GraphNode, draw_graph, walk_graph
from autograder.pytorch_errors import describe
from autograder.typography import french_spacing
from autograder.widgets import FUNCTIONS, ExpressionError, _code_spans, evaluate_expression

__all__ = ["BackwardRecording", "BackwardReplay", "ReplayStep", "backward_replay", "record_backward"]

VALUE_COLOUR = "#2e7d32"  # forward values, green as in cs231n's circuits
GRAD_COLOUR = "#c62828"  # gradients, red
PENDING_COLOUR = "#8a6d00"  # a gradient still being summed at a fork
MAX_SHOWN = 4  # elements of a tensor shown in a label


def fmt(t: torch.Tensor | None) -> str:
    """A short French display of a value: ``-2``, ``0,5`` style is for prose; here code-like ``-2.0``."""
    if t is None:
        return "None"
    t = t.detach()
    if t.numel() == 1:
        return f"{float(t):.4g}"
    flat = [f"{float(v):.3g}" for v in t.reshape(-1)[:MAX_SHOWN]]
    more = ", …" if t.numel() > MAX_SHOWN else ""
    return "[" + ", ".join(flat) + more + "]"


@dataclass
class ReplayStep:
    """One node executed by the engine: what it received, its local derivatives and what it sent."""

    node: GraphNode
    received: torch.Tensor | None  # gradient of the loss with respect to the node's output
    sent: list[torch.Tensor | None]  # one per input (``next_functions`` order); for a leaf: the new ``.grad``
    targets: list[GraphNode | None]  # the input nodes the gradients go to (None: an input without gradient)
    local: list[torch.Tensor | None]  # local derivative per input (scalar nodes only; None otherwise)

    @property
    def label(self) -> str:
        return f"{self.node.name} ({self.node.op})" if self.node.name else self.node.op


@dataclass
class BackwardRecording:
    """The graph, the forward value of each node and the steps in the engine's execution order."""

    output: torch.Tensor
    graph: ComputationGraph
    values: dict[int, torch.Tensor]  # id(node) -> forward value of its output (leaf: the tensor itself)
    steps: list[ReplayStep] = field(default_factory=list)
    names: dict[str, torch.Tensor] = field(default_factory=dict)  # "sortie", the variables, each sub-expression

    def order(self) -> list[str]:
        return [step.node.op for step in self.steps]


MAX_LABEL = 16  # characters of a sub-expression shown as a node's name


class _Labeller(ast.NodeTransformer):
    """Wrap every operation of the expression in ``__label__(result, "its source text")``."""

    def _wrap(self, node: ast.expr) -> ast.expr:
        text = ast.unparse(node)
        self.generic_visit(node)
        call = ast.Call(func=ast.Name("__label__", ast.Load()), args=[node, ast.Constant(text)], keywords=[])
        return ast.copy_location(call, node)

    visit_BinOp = visit_UnaryOp = visit_Call = _wrap


def _evaluate_with_labels(expression: str, leaves: dict[str, torch.Tensor]) -> tuple[Any, dict[str, torch.Tensor]]:
    """Evaluate an expression already validated by ``evaluate_expression``, naming each intermediate result by
    its source text (``"x + y"``), so that the graph's boxes read like the expression."""
    labels: dict[str, torch.Tensor] = {}

    def label(result: Any, text: str) -> Any:
        if isinstance(result, torch.Tensor) and result.grad_fn is not None:
            short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
            labels.setdefault(short, result)
        return result

    tree = ast.fix_missing_locations(_Labeller().visit(ast.parse(expression.strip(), mode="eval")))
    namespace = {"__builtins__": {}, **FUNCTIONS, **leaves, "__label__": label}
    result = eval(compile(tree, "<expression>", "eval"), namespace)  # noqa: S307 - validated, restricted namespace
    return result, labels


class _ForwardValues(TorchFunctionMode):
    """Remember the result of every operation, keyed by its ``grad_fn`` node."""

    def __init__(self) -> None:
        super().__init__()
        self.by_node: dict[Any, torch.Tensor] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor) and result.grad_fn is not None:
            self.by_node[result.grad_fn] = result.detach().clone()
        return result


def record_backward(
    expression: str,
    variables: Mapping[str, float],
    requires_grad: tuple[str, ...] | None = None,
) -> BackwardRecording:
    """Evaluate ``expression`` (names from ``variables``, all requiring a gradient unless ``requires_grad`` says
    which do), call ``backward()`` and record the engine's steps. Raise ``ExpressionError`` (French)."""
    wanted = tuple(variables) if requires_grad is None else requires_grad
    leaves = {
        name: torch.tensor(float(value), requires_grad=name in wanted, dtype=torch.float64)
        for name, value in variables.items()
    }
    evaluate_expression(expression, None, leaves)  # validation, with the explorer's French messages
    values = _ForwardValues()
    with values:
        output, labels = _evaluate_with_labels(expression, leaves)
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        raise ExpressionError(
            "L'expression ne dépend d'aucune variable qui demande un gradient : il n'y a pas de graphe de calcul, "
            "donc rien à rétropropager."
        )
    if output.numel() != 1:
        output = output.sum()
    names: dict[str, Any] = {"sortie": output, **leaves, **labels}
    graph = walk_graph(output, names)
    by_fn = {node.fn: node for node in graph.nodes}
    recording = BackwardRecording(output=output, graph=graph, values={}, names=names)
    for node in graph.nodes:
        variable = getattr(node.fn, "variable", None)
        value = variable if variable is not None else values.by_node.get(node.fn)
        if node.fn is output.grad_fn:
            value = output
        if value is not None:
            recording.values[id(node)] = value.detach()

    received: dict[Any, torch.Tensor | None] = {}
    handles = []

    def prehook(node_fn: Any):
        def hook(grad_outputs):
            received[node_fn] = None if grad_outputs[0] is None else grad_outputs[0].detach().clone()

        return hook

    def posthook(node_fn: Any):
        def hook(grad_inputs, grad_outputs):
            node = by_fn[node_fn]
            if hasattr(node_fn, "variable"):  # AccumulateGrad: what it stores is the gradient it received
                sent = [received[node_fn]]
                targets: list[GraphNode | None] = [None]
            else:
                sent = [None if g is None else g.detach().clone() for g in grad_inputs]
                targets = [None if child is None else by_fn.get(child) for child, _ in node_fn.next_functions]
            recording.steps.append(ReplayStep(node, received[node_fn], sent, targets, [None] * len(sent)))

        return hook

    for node in graph.nodes:
        handles.append(node.fn.register_prehook(prehook(node.fn)))
        handles.append(node.fn.register_hook(posthook(node.fn)))
    try:
        output.backward(retain_graph=True)
    except RuntimeError as exc:
        raise ExpressionError(describe(exc)) from None
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for step in recording.steps:
            fn = step.node.fn
            if hasattr(fn, "variable"):
                step.local = [torch.ones((), dtype=torch.float64)]
            elif step.received is not None and step.received.numel() == 1:
                try:
                    local = fn(torch.ones_like(step.received))
                except RuntimeError:
                    continue
                local = local if isinstance(local, tuple) else (local,)
                step.local = [None if g is None or g.numel() != 1 else g.detach().clone() for g in local]
    return recording


def _input_names(step: ReplayStep) -> list[str]:
    names = []
    for target in step.targets:
        if target is None:
            names.append("une constante")
        else:
            names.append(target.name or target.op)
    return names


def describe_step(recording: BackwardRecording, index: int) -> str:
    """French text of step ``index`` (1-based; 0 = after the forward pass, before ``backward()``)."""
    total = len(recording.steps)
    if index == 0:
        first = recording.steps[0].label if recording.steps else "?"
        return french_spacing(
            f"Étape 0/{total} : propagation avant terminée, sortie = {fmt(recording.output)}. "
            f"`backward()` va commencer par la sortie, {first}, avec le gradient ∂sortie/∂sortie = 1.\n"
            "Prédisez ce que chaque nœud va recevoir, puis avancez d'une étape."
        )
    step = recording.steps[index - 1]
    lines = [f"Étape {index}/{total} : le moteur exécute {step.label}"]
    value = recording.values.get(id(step.node))
    if value is not None:
        lines.append(f"  valeur (propagation avant) : {fmt(value)}")
    lines.append(f"  gradient reçu (∂sortie/∂ce nœud) : {fmt(step.received)}")
    if hasattr(step.node.fn, "variable"):
        lines.append(
            f"  feuille : ce gradient s'ajoute à `{step.node.name or 'feuille'}.grad`, qui vaut {fmt(step.sent[0])}"
        )
    else:
        for name, local, sent in zip(_input_names(step), step.local, step.sent, strict=True):
            if sent is None:
                lines.append(f"  vers {name} : rien (pas de gradient demandé)")
            elif local is not None and step.received is not None and step.received.numel() == 1:
                lines.append(f"  vers {name} : {fmt(step.received)} × dérivée locale {fmt(local)} = {fmt(sent)}")
            else:
                lines.append(f"  vers {name} : {fmt(sent)}")
    if index < total:
        lines.append(f"Prochain nœud : {recording.steps[index].label}. Que va-t-il recevoir ?")
    else:
        lines.append("Rétropropagation terminée : chaque feuille a reçu son gradient.")
    return french_spacing("\n".join(lines))


def notes_at(recording: BackwardRecording, index: int) -> dict[Any, list[tuple[str, str]]]:
    """The lines drawn in each box after ``index`` steps: value, then the gradient (final, or partial at a fork)."""
    done: dict[int, torch.Tensor | None] = {}
    partial: dict[int, torch.Tensor] = {}
    root = recording.graph.root
    partial[id(root)] = torch.ones_like(recording.output.detach())
    for step in recording.steps[:index]:
        done[id(step.node)] = step.received
        if hasattr(step.node.fn, "variable"):
            continue
        for target, sent in zip(step.targets, step.sent, strict=True):
            if target is not None and sent is not None:
                partial[id(target)] = partial[id(target)] + sent if id(target) in partial else sent
    notes: dict[Any, list[tuple[str, str]]] = {}
    for node in recording.graph.nodes:
        lines: list[tuple[str, str]] = []
        value = recording.values.get(id(node))
        if value is not None:
            lines.append((f"valeur {fmt(value)}", VALUE_COLOUR))
        if id(node) in done:
            lines.append((f"grad {fmt(done[id(node)])}", GRAD_COLOUR))
        elif id(node) in partial and index > 0:
            lines.append((f"reçu {fmt(partial[id(node)])}…", PENDING_COLOUR))
        else:
            lines.append(("grad ?", GRAD_COLOUR))
        notes[node.fn] = lines
    return notes


class BackwardReplay(widgets.VBox):
    """Step through the recorded backward pass: slider and buttons, graph and French text.

    After each change: ``position`` (0 = before ``backward()``), ``current`` (label of the highlighted node or
    None), ``text``, ``png``, ``error`` and ``recording``.
    """

    def __init__(
        self,
        expression: str = "(x + y) * z",
        variables: Mapping[str, float] | None = None,
        requires_grad: tuple[str, ...] | None = None,
    ) -> None:
        self.variables = dict(variables or {"x": -2.0, "y": 5.0, "z": -4.0})
        self.requires_grad = requires_grad
        self.recording: BackwardRecording | None = None
        self.position = 0
        self.current: str | None = None
        self.text = ""
        self.png = b""
        self.error: str | None = None
        self.verdict = ""  # French feedback on the last prediction ("" when none was typed)
        values = ", ".join(f"{k} = {v:g}" for k, v in self.variables.items())
        help_text = widgets.HTML(
            _code_spans(
                f"Écrivez une expression de {', '.join(self.variables)} ({values}), validez avec Entrée, puis "
                "avancez pas à pas. Avant chaque clic sur « Suivant », tapez dans « Prédiction » le gradient que "
                "le prochain nœud va recevoir : la réponse s'affiche quand vous avancez."
            )
        )
        self.expression = widgets.Text(
            value=expression,
            description="sortie =",
            continuous_update=False,
            layout=widgets.Layout(width="420px"),
        )
        self.slider = widgets.IntSlider(value=0, min=0, max=1, description="Étape", continuous_update=False)
        self.previous = widgets.Button(description="◀ Précédent", layout=widgets.Layout(width="120px"))
        self.next = widgets.Button(description="Suivant ▶", layout=widgets.Layout(width="120px"))
        self.prediction = widgets.Text(
            description="Prédiction :",
            placeholder="le gradient que recevra le prochain nœud, par exemple -4",
            layout=widgets.Layout(width="420px"),
        )
        self.feedback = widgets.HTML()
        self.info = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.previous.on_click(lambda _: self.step(-1))
        self.next.on_click(lambda _: self.step(+1))
        self.slider.observe(self._show, names="value")
        self.expression.observe(self._record, names="value")
        controls = widgets.HBox([self.previous, self.slider, self.next])
        super().__init__([help_text, self.expression, controls, self.prediction, self.feedback, self.info, self.image])
        self._record()

    def _record(self, change: dict[str, Any] | None = None) -> None:
        self.error = None
        try:
            self.recording = record_backward(self.expression.value, self.variables, self.requires_grad)
        except ExpressionError as exc:
            self.recording = None
            self.error = french_spacing(str(exc))
        steps = len(self.recording.steps) if self.recording else 0
        self.slider.max = max(steps, 1)
        self.slider.disabled = self.recording is None
        if self.slider.value != 0:
            self.slider.value = 0  # calls _show
        else:
            self._show()

    def step(self, delta: int) -> None:
        """Move by ``delta`` steps (the buttons), within the recording."""
        if self.recording is None:
            return
        self.slider.value = min(max(self.slider.value + delta, 0), len(self.recording.steps))

    def _judge(self, change: dict[str, Any] | None) -> None:
        """When the replay moves one step forward, compare the typed prediction with what the node received."""
        self.verdict = ""
        typed = self.prediction.value.strip()
        recording = self.recording
        if not typed or recording is None or change is None or change["new"] != change["old"] + 1:
            return
        step = recording.steps[change["new"] - 1]
        self.prediction.value = ""
        try:
            guess = float(typed.replace(",", ".").replace("−", "-"))
        except ValueError:
            self.verdict = french_spacing(f"❌ « {typed} » n'est pas un nombre : tapez par exemple -4 ou 0,5.")
            return
        received = step.received
        if received is None or received.numel() != 1:
            return
        value = float(received)
        if abs(guess - value) <= 1e-3 * max(1.0, abs(value)):
            self.verdict = french_spacing(f"✅ Bien prédit : {step.label} reçoit {fmt(received)}.")
        else:
            self.verdict = french_spacing(
                f"❌ Vous aviez prédit {guess:g} ; {step.label} reçoit {fmt(received)}. Relisez le calcul de l'étape "
                "précédente : gradient reçu × dérivée locale, additionné sur toutes les flèches qui arrivent au nœud."
            )

    def _show(self, change: dict[str, Any] | None = None) -> None:
        self._judge(change)
        colour = "#1b5e20" if self.verdict.startswith("✅") else "#b00020"
        self.feedback.value = f"<div style='color:{colour}'>{_code_spans(self.verdict)}</div>" if self.verdict else ""
        recording = self.recording
        if recording is None:
            self.position, self.current, self.png = 0, None, b""
            self.text = self.error or ""
            self.info.value = f"<div style='color:#b00020'>❌ {_code_spans(self.text)}</div>"
            self.image.layout.display = "none"
            return
        self.position = min(self.slider.value, len(recording.steps))
        step = recording.steps[self.position - 1] if self.position else None
        self.current = step.label if step else None
        self.text = describe_step(recording, self.position)
        self.previous.disabled = self.position == 0
        self.next.disabled = self.position == len(recording.steps)
        fig = draw_graph(
            recording.output,
            recording.names,
            notes=notes_at(recording, self.position),
            highlight=step.node.fn if step else None,
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        self.png = buffer.getvalue()
        self.info.value = f"<pre style='margin:4px 0'>{html.escape(self.text)}</pre>"
        self.image.value = self.png
        self.image.layout.display = None


def backward_replay(
    expression: str = "(x + y) * z",
    variables: Mapping[str, float] | None = None,
    requires_grad: tuple[str, ...] | None = None,
) -> BackwardReplay:
    """The replay widget: type an expression, then step through PyTorch's backward pass node by node."""
    return BackwardReplay(expression, variables, requires_grad)
