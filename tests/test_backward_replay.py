"""The backward replay of lesson 3, driven headless: the recorded order is the engine's real order, the
gradients are PyTorch's, and stepping (buttons or slider) moves the highlighted node and the values shown."""

from __future__ import annotations

import pytest
import torch

from autograder.backward_replay import backward_replay, describe_step, notes_at, record_backward
from autograder.widgets import ExpressionError


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def engine_order(expression: str, variables: dict[str, float]) -> list[str]:
    """Independent recording: our own pre-hooks on every node of a fresh graph, in the order the engine calls them."""
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in variables.items()}
    out = eval(expression, {"torch": torch, "tanh": torch.tanh, "exp": torch.exp}, dict(leaves))  # noqa: S307
    seen, stack, nodes = set(), [out.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nodes.append(node)
        stack.extend(child for child, _ in node.next_functions)
    order: list[str] = []
    handles = [n.register_prehook(lambda g, n=n: order.append(type(n).__name__)) for n in nodes]
    out.backward()
    for h in handles:
        h.remove()
    return order


EXPRESSIONS = [
    ("(x + y) * z", {"x": -2.0, "y": 5.0, "z": -4.0}),
    ("x * y + x", {"x": 2.0, "y": 3.0}),
    ("tanh(w * x + b) * exp(w)", {"w": 0.5, "x": -1.0, "b": 0.3}),
    ("(w * x - y) ** 2", {"w": 1.0, "x": 1.0, "y": 2.0}),
]


@pytest.mark.parametrize(("expression", "variables"), EXPRESSIONS)
def test_recorded_order_is_the_engines_and_a_topological_order(expression, variables):
    recording = record_backward(expression, variables)
    assert recording.order() == engine_order(expression, variables)
    assert len(recording.steps) == len(recording.graph.nodes)  # every node runs exactly once
    position = {id(step.node): i for i, step in enumerate(recording.steps)}
    for parent, child in recording.graph.edges:  # a node runs only after every node that sends it a gradient
        assert position[id(parent)] < position[id(child)]


@pytest.mark.parametrize(("expression", "variables"), EXPRESSIONS)
def test_recorded_gradients_are_pytorchs(expression, variables):
    recording = record_backward(expression, variables)
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in variables.items()}
    out = eval(expression, {"tanh": torch.tanh, "exp": torch.exp}, dict(leaves))  # noqa: S307
    out.backward()
    for step in recording.steps:
        if hasattr(step.node.fn, "variable"):
            assert float(step.sent[0]) == pytest.approx(float(leaves[step.node.name].grad))
        else:  # what a node sends is what it received times its local derivative
            for local, sent in zip(step.local, step.sent, strict=True):
                if sent is not None:
                    assert float(sent) == pytest.approx(float(step.received) * float(local))


def test_seed_example_gives_minus_two_for_w():
    recording = record_backward("(w * x - y) ** 2", {"w": 1.0, "x": 1.0, "y": 2.0}, requires_grad=("w",))
    assert recording.order() == ["PowBackward0", "SubBackward0", "MulBackward0", "AccumulateGrad"]
    assert [float(s.received) for s in recording.steps] == [1.0, -2.0, -2.0, -2.0]
    assert "w.grad`, qui vaut -2" in plain(describe_step(recording, 4))


def test_a_fork_shows_the_partial_sum_before_the_leaf_runs():
    recording = record_backward("x * y + x", {"x": 2.0, "y": 3.0})
    first = notes_at(recording, 1)
    x_node = next(n for n in recording.graph.nodes if n.name == "x")
    assert "reçu 1…" in [text for text, _ in first[x_node.fn]]
    final = notes_at(recording, len(recording.steps))
    assert "grad 4" in [text for text, _ in final[x_node.fn]]  # ∂/∂x (x·y + x) = y + 1


def test_stepping_moves_the_highlight_and_changes_what_is_shown():
    replay = backward_replay("x * y + x", {"x": 2.0, "y": 3.0})
    assert replay.position == 0 and replay.current is None and replay.previous.disabled
    seen = [(replay.current, replay.text, replay.png)]
    for _ in range(len(replay.recording.steps)):
        replay.next.click()
        seen.append((replay.current, replay.text, replay.png))
    assert [c for c, _, _ in seen[1:]] == [s.label for s in replay.recording.steps]
    assert len({t for _, t, _ in seen}) == len(seen) and len({p for _, _, p in seen}) == len(seen)
    assert replay.next.disabled and replay.slider.value == len(replay.recording.steps)
    replay.next.click()  # nothing past the end
    assert replay.position == len(replay.recording.steps)
    replay.previous.click()
    assert replay.current == seen[-2][0] and replay.text == seen[-2][1]
    replay.slider.value = 1  # the slider and the buttons are the same control
    assert replay.current == replay.recording.steps[0].label and "Étape 1/" in replay.text


def test_typing_an_expression_records_it_again_and_errors_are_french():
    replay = backward_replay()
    replay.slider.value = 2
    replay.expression.value = "x * x * z"
    assert replay.position == 0 and replay.error is None
    assert replay.recording.order()[0] == "MulBackward0"
    replay.expression.value = "x * ("
    assert replay.recording is None and "erreur de syntaxe" in replay.error and replay.png == b""
    replay.expression.value = "3 * 2"
    assert replay.recording is None and replay.error


def test_an_expression_without_gradient_is_refused():
    with pytest.raises(ExpressionError, match="rien à rétropropager"):
        record_backward("x * 2", {"x": 1.0}, requires_grad=())


def test_a_typed_prediction_is_judged_when_stepping_forward():
    replay = backward_replay()  # (x + y) * z: MulBackward0 receives 1, then z receives 3, then AddBackward0 -4
    replay.prediction.value = "1"
    replay.next.click()
    assert plain(replay.verdict).startswith("✅ Bien prédit : sortie (MulBackward0) reçoit 1")
    assert replay.prediction.value == ""  # ready for the next prediction
    replay.next.click()  # no prediction typed: no verdict
    assert replay.verdict == "" and replay.feedback.value == ""
    replay.prediction.value = "−4,0"  # the typographic minus and a decimal comma are read too
    replay.next.click()
    assert replay.verdict.startswith("✅") and "AddBackward0" in replay.verdict
    replay.prediction.value = "3"
    replay.next.click()
    assert plain(replay.verdict).startswith("❌ Vous aviez prédit 3 ; x (AccumulateGrad) reçoit -4")
    assert "color:#b00020" in replay.feedback.value
    replay.prediction.value = "beaucoup"
    replay.next.click()
    assert "n'est pas un nombre" in replay.verdict
    replay.prediction.value = "1"
    replay.previous.click()  # going back judges nothing
    assert replay.verdict == "" and replay.prediction.value == "1"


def test_operations_are_named_by_the_sub_expression_they_compute():
    recording = record_backward("(x + y) * tanh(z)", {"x": -2.0, "y": 5.0, "z": -4.0})
    names = {step.node.op: step.node.name for step in recording.steps if step.node.op != "AccumulateGrad"}
    assert names == {"MulBackward0": "sortie", "AddBackward0": "x + y", "TanhBackward0": "tanh(z)"}
    assert "vers x + y :" in plain(describe_step(recording, 1))
    long = record_backward("torch.maximum(x * y, y) + x", {"x": 2.0, "y": 3.0})
    assert any(s.node.name == "torch.maximum(x…" for s in long.steps)  # long sub-expressions are shortened
