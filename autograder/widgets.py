"""Interactive helpers for the lessons (ipywidgets), all testable without a browser.

- ``graph_explorer()``: type an expression of ``x`` (or pick an example), move a slider for the value
  of ``x``; the widget shows f(x), ``x.grad`` after ``backward()`` and the computation graph.
- ``quiz()``: a multiple-choice question with instant French feedback ("predict before you run").

Each widget keeps what it last rendered in plain attributes (``text``, ``grad``, ``error``…), so a test
can set ``.value`` on the controls and read the result, no kernel needed.
"""

from __future__ import annotations

import ast
import html
import io
import math
import re
import warnings
from typing import Any

import ipywidgets as widgets
import torch

from autograder.graph import draw_graph, graph_summary
from autograder.pytorch_errors import describe
from autograder.typography import french_spacing

__all__ = ["EXAMPLES", "ExpressionError", "GraphExplorer", "Quiz", "evaluate_expression", "graph_explorer", "quiz"]

EXAMPLES = (
    "x**2 * torch.sin(x)",
    "(x + 2) * (x + 2) * 2",
    "x * x * x",
    "torch.exp(-x) * torch.cos(3 * x)",
    "sqrt(x**2 + 1)",
    "relu(x) + tanh(x)",
    "log(x)",
)

# What an expression may use: x, torch and a few usual functions. No builtins.
FUNCTIONS: dict[str, Any] = {
    "torch": torch,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "abs": torch.abs,
    "pi": math.pi,
}
MAX_LENGTH = 200
MAX_CONSTANT_EXPONENT = 100

_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.Attribute,
    ast.keyword, ast.List, ast.Tuple, ast.Subscript, ast.Slice,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.FloorDiv, ast.MatMult, ast.USub, ast.UAdd,
)  # fmt: skip


class ExpressionError(ValueError):
    """The expression cannot be evaluated; the message is in French, ready to show."""


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _constant_number(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    return None


def _validate(tree: ast.Expression) -> None:
    """Refuse what an expression of x does not need (a guard for clear messages, not a sandbox)."""
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(
                f"Expression invalide : la construction « {type(node).__name__} » n'est pas autorisée ici. "
                "Écrivez une seule expression de x, par exemple x**2 * torch.sin(x)."
            )
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool)):
            raise ExpressionError("Expression invalide : seuls des nombres sont autorisés comme constantes.")
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        if name.startswith("_"):
            raise ExpressionError("Expression invalide : les noms qui commencent par « _ » ne sont pas autorisés.")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and "x" not in _names(node.right):
            exponent = _constant_number(node.right)
            if exponent is None or abs(exponent) > MAX_CONSTANT_EXPONENT:
                raise ExpressionError(
                    f"Expression invalide : un exposant constant doit être un nombre entre −{MAX_CONSTANT_EXPONENT} "
                    f"et {MAX_CONSTANT_EXPONENT} (par exemple x**3)."
                )


def evaluate_expression(expression: str, x: torch.Tensor | None, variables: dict[str, Any] | None = None) -> Any:
    """Evaluate ``expression`` with ``x`` and the functions of ``FUNCTIONS``; raise ``ExpressionError``.

    ``variables``: other names the expression may use (``{"w": w, "y": y}``); ``x=None`` when there is no ``x``.
    """
    expression = expression.strip()
    if not expression:
        raise ExpressionError("Expression invalide : l'expression est vide. Écrivez par exemple x**2 * torch.sin(x).")
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"Expression invalide : elle dépasse {MAX_LENGTH} caractères.")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        where = f", colonne {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"Expression invalide : erreur de syntaxe (« {exc.msg} »{where}).") from None
    _validate(tree)
    given = {"x": x} if x is not None else {}
    given.update(variables or {})
    namespace = {"__builtins__": {}, **FUNCTIONS, **given}
    unknown = sorted(_names(tree) - set(namespace))
    if unknown:
        available = ", ".join([*given, *FUNCTIONS])
        raise ExpressionError(
            f"Expression invalide : le nom « {unknown[0]} » n'est pas connu. Noms disponibles : {available}."
        )
    try:
        return eval(compile(tree, "<expression>", "eval"), namespace)  # noqa: S307 - restricted namespace
    except AttributeError as exc:
        raise ExpressionError(
            f"Expression invalide : « {exc.name} » n'existe pas (vérifiez l'orthographe, par exemple torch.sin)."
        ) from None
    except ZeroDivisionError:
        raise ExpressionError("Expression invalide : division par zéro entre deux nombres.") from None
    except Exception as exc:  # noqa: BLE001 - any error of the expression becomes a French message
        raise ExpressionError(describe(exc)) from None


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _code_spans(text: str) -> str:
    """Escape HTML, apply French spacing and turn `code` spans into <code> elements."""
    escaped = html.escape(french_spacing(text), quote=False)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


class GraphExplorer(widgets.VBox):
    """Expression of x + value of x → f(x), ``x.grad`` and the computation graph, updated live.

    After each update: ``text`` (plain text shown), ``value`` and ``grad`` (floats or None),
    ``error`` (French message or None), ``summary`` (graph as text), ``png`` (image bytes).
    """

    def __init__(self, expression: str = EXAMPLES[0], x: float = 1.0) -> None:
        self.examples = widgets.Dropdown(
            options=EXAMPLES,
            value=expression if expression in EXAMPLES else None,
            description="Exemple\u00a0:",
            layout=widgets.Layout(width="420px"),
        )
        self.expression = widgets.Text(
            value=expression,
            description="f(x) =",
            placeholder="une expression de x, par exemple x**2 * torch.sin(x)",
            continuous_update=False,
            layout=widgets.Layout(width="420px"),
        )
        self.slider = widgets.FloatSlider(
            value=x, min=-3.0, max=3.0, step=0.1, description="x =", continuous_update=False, readout_format=".1f"
        )
        self.values = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.text = ""
        self.value: float | None = None
        self.grad: float | None = None
        self.error: str | None = None
        self.summary = ""
        self.png = b""
        help_text = widgets.HTML(
            _code_spans(
                "Choisissez un exemple ou écrivez une expression de `x` (validez avec Entrée), puis déplacez le "
                "curseur. Fonctions disponibles : `torch.…`, `sin`, `cos`, `exp`, `log`, `sqrt`, `tanh`, `relu`…"
            )
        )
        self.examples.observe(self._pick_example, names="value")
        self.expression.observe(self.update, names="value")
        self.slider.observe(self.update, names="value")
        super().__init__([help_text, self.examples, self.expression, self.slider, self.values, self.image])
        self.update()

    def _pick_example(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.expression.value = change["new"]

    def compute(self) -> None:
        """Evaluate the expression at the slider's value, call ``backward()``, set the result attributes."""
        self.value = self.grad = self.error = None
        self.summary, self.png = "", b""
        x = torch.tensor(float(self.slider.value), requires_grad=True)
        lines = [f"x = {self.slider.value:.1f}"]
        notes: list[str] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                f = evaluate_expression(self.expression.value, x)
                if not isinstance(f, torch.Tensor):
                    raise ExpressionError(
                        f"L'expression vaut {f!r}, un nombre Python et non un tenseur : elle ne dépend pas de x, "
                        "il n'y a rien à dériver."
                    )
                if f.numel() == 1:
                    self.value = float(f.detach())
                    lines.append(f"f(x) = {_fmt(self.value)}")
                else:
                    lines.append(f"f(x) = tenseur de forme {tuple(f.shape)}")
                grad_fn = f.grad_fn
                lines.append(f"f.grad_fn = {'None' if grad_fn is None else '<' + type(grad_fn).__name__ + '>'}")
                self.summary = graph_summary(f, {"x": x, "f": f})
                self.png = self._render(f, x)
                if not f.requires_grad:
                    raise ExpressionError(
                        "f ne dépend pas de x dans le graphe de calcul (pas de `grad_fn`) : `backward()` est "
                        "impossible et `x.grad` reste `None`."
                    )
                try:
                    f.backward()
                except Exception as exc:  # noqa: BLE001 - shown to the student in French
                    raise ExpressionError(describe(exc)) from None
                self.grad = None if x.grad is None else float(x.grad)
                lines.append(f"x.grad = {'None' if self.grad is None else _fmt(self.grad)}   (df/dx, par backward())")
                if self.value is not None and math.isnan(self.value):
                    notes.append(
                        "f(x) n'est pas un nombre : la fonction n'est pas définie pour cette valeur de x "
                        "(par exemple le logarithme ou la racine carrée d'un nombre négatif)."
                    )
                notes.extend(f"Avertissement de PyTorch : {w.message}" for w in caught[:1])
        except ExpressionError as exc:
            self.error = french_spacing(str(exc))
        self.text = "\n".join(lines + [french_spacing(n) for n in notes] + ([self.error] if self.error else []))

    @staticmethod
    def _render(f: torch.Tensor, x: torch.Tensor) -> bytes:
        fig = draw_graph(f, {"x": x, "f": f})
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        return buffer.getvalue()

    def update(self, change: dict[str, Any] | None = None) -> None:
        """Recompute and refresh the display (called when a control changes)."""
        self.compute()
        body = html.escape("\n".join(line for line in self.text.splitlines() if line != self.error))
        parts = [f"<pre style='margin:4px 0'>{body}</pre>"]
        if self.error:
            parts.append(f"<div style='color:#b00020'>❌ {_code_spans(self.error)}</div>")
        if self.summary:
            parts.append(
                "<details><summary>Le graphe en texte</summary>"
                f"<pre style='margin:4px 0'>{html.escape(self.summary)}</pre></details>"
            )
        self.values.value = "".join(parts)
        self.image.value = self.png
        self.image.layout.display = None if self.png else "none"


def graph_explorer(expression: str = EXAMPLES[0], x: float = 1.0) -> GraphExplorer:
    """The explorer widget: pick or type an expression of x, move the slider, read f(x), x.grad and the graph."""
    return GraphExplorer(expression, x)


class Quiz(widgets.VBox):
    """A multiple-choice question with instant French feedback.

    ``question``, ``choices`` and messages may contain `code` spans. After an answer: ``correct``
    (bool or None) and ``feedback_text`` (plain text shown).
    """

    def __init__(
        self,
        question: str,
        choices: list[str],
        correct_index: int,
        explanation: str,
        wrong: dict[int, str] | None = None,
    ) -> None:
        if not 0 <= correct_index < len(choices):
            raise ValueError("correct_index doit désigner l'un des choix.")
        self.correct_index = correct_index
        self.explanation = explanation
        self.wrong = wrong or {}
        self.correct: bool | None = None
        self.feedback_text = ""
        self.question = widgets.HTML(f"<b>{_code_spans(question)}</b>")
        self.choices = widgets.RadioButtons(options=list(choices), value=None, layout=widgets.Layout(width="auto"))
        self.feedback = widgets.HTML()
        self.choices.observe(self._answer, names="value")
        super().__init__([self.question, self.choices, self.feedback])

    def _answer(self, change: dict[str, Any] | None = None) -> None:
        index = self.choices.index
        if index is None:
            self.correct, self.feedback_text = None, ""
        elif index == self.correct_index:
            self.correct = True
            self.feedback_text = french_spacing(f"✅ Exact ! {self.explanation}")
        else:
            self.correct = False
            reason = self.wrong.get(index, "Ce n'est pas la bonne réponse.")
            self.feedback_text = french_spacing(f"❌ {reason} Essayez une autre réponse.")
        colour = "#1b5e20" if self.correct else "#b00020"
        shown = f"<div style='color:{colour}'>{_code_spans(self.feedback_text)}</div>"
        self.feedback.value = shown if index is not None else ""


def quiz(
    question: str, choices: list[str], correct_index: int, explanation: str, wrong: dict[int, str] | None = None
) -> Quiz:
    """A "predict before you run" question: radio buttons and instant feedback in French.

    ``wrong`` optionally maps the index of a wrong choice to the misconception it reveals.
    """
    return Quiz(question, choices, correct_index, explanation, wrong)
