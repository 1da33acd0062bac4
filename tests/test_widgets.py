"""The lesson widgets, driven headless: set the controls' values and read what they show."""

from __future__ import annotations

import math

import ipywidgets as widgets
import pytest
import torch

from autograder.widgets import EXAMPLES, ExpressionError, Quiz, evaluate_expression, graph_explorer, quiz


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def finite_difference(expression: str, x0: float, h: float = 1e-6) -> float:
    """Reference derivative independent of backward(): central difference in float64."""

    def f(value: float) -> float:
        return float(evaluate_expression(expression, torch.tensor(value, dtype=torch.float64)))

    return (f(x0 + h) - f(x0 - h)) / (2 * h)


def test_explorer_is_a_vbox_with_the_controls():
    explorer = graph_explorer()
    assert isinstance(explorer, widgets.VBox)
    assert explorer.expression.value == EXAMPLES[0] and explorer.slider.value == 1.0
    assert {explorer.examples, explorer.expression, explorer.slider, explorer.values, explorer.image} <= set(
        explorer.children
    )


def test_initial_output_shows_value_grad_and_graph():
    explorer = graph_explorer()
    expected_grad = 2 * math.sin(1.0) + math.cos(1.0)  # d/dx x² sin x at x = 1
    assert explorer.error is None
    assert explorer.value == pytest.approx(math.sin(1.0), rel=1e-5)
    assert explorer.grad == pytest.approx(expected_grad, rel=1e-5)
    assert f"x.grad = {expected_grad:.4f}" in explorer.text
    assert "f.grad_fn = <MulBackward0>" in explorer.text
    assert explorer.png.startswith(b"\x89PNG") and bytes(explorer.image.value) == explorer.png
    assert "PowBackward0" in explorer.summary and "SinBackward0" in explorer.summary
    assert "x.grad" in explorer.values.value


def test_moving_the_slider_updates_the_gradient():
    explorer = graph_explorer()
    first_text, first_grad = explorer.text, explorer.grad
    explorer.slider.value = 2.0
    assert explorer.text != first_text and explorer.grad != first_grad
    assert explorer.grad == pytest.approx(finite_difference(EXAMPLES[0], 2.0), rel=1e-4)
    assert "x = 2.0" in explorer.text


def test_typing_an_expression_updates_value_grad_and_graph():
    explorer = graph_explorer(x=0.5)
    old_png = explorer.png
    explorer.expression.value = "(x + 2) * (x + 2) * 2"
    assert explorer.value == pytest.approx(2 * 2.5**2)
    assert explorer.grad == pytest.approx(4 * 2.5)
    assert explorer.summary.count("AddBackward0") == 2
    assert explorer.png != old_png


def test_picking_an_example_fills_the_expression():
    explorer = graph_explorer()
    explorer.examples.value = "x * x * x"
    assert explorer.expression.value == "x * x * x"
    assert explorer.grad == pytest.approx(3.0)


@pytest.mark.parametrize("expression", EXAMPLES)
@pytest.mark.parametrize("x0", [0.7, 2.3])
def test_every_example_gives_the_derivative(expression, x0):
    explorer = graph_explorer(expression, x=x0)
    assert explorer.error is None, explorer.error
    assert explorer.grad == pytest.approx(finite_difference(expression, x0), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("x**", "Expression invalide : erreur de syntaxe"),
        ("", "Expression invalide : l'expression est vide"),
        ("y + 1", "Expression invalide : le nom « y » n'est pas connu"),
        ("__import__('os')", "Expression invalide : les noms qui commencent par « _ »"),
        ("x.__class__", "Expression invalide : les noms qui commencent par « _ »"),
        ("9**9**9 * x", "Expression invalide : un exposant constant"),
        ("[t for t in x]", "Expression invalide : la construction « ListComp »"),
        ("x + 'a'", "Expression invalide : seuls des nombres"),
        ("torch.sinn(x)", "Expression invalide : « sinn » n'existe pas"),
        ("3", "un nombre Python et non un tenseur"),
        ("torch.stack([x, x])", "`backward()` sans argument n'est possible que sur un scalaire"),
        ("x.detach() * 2", "f ne dépend pas de x"),
    ],
)
def test_errors_are_explained_in_french(expression, expected):
    explorer = graph_explorer()
    explorer.expression.value = expression
    assert explorer.error is not None and expected in plain(explorer.error)
    assert explorer.grad is None
    assert "❌" in explorer.values.value


def test_error_then_valid_expression_recovers():
    explorer = graph_explorer()
    explorer.expression.value = "x +* 2"
    assert explorer.error is not None and explorer.png == b""
    assert explorer.image.layout.display == "none"
    explorer.expression.value = "x * 3"
    assert explorer.error is None and explorer.grad == pytest.approx(3.0)
    assert explorer.image.layout.display is None


def test_undefined_value_is_pointed_out():
    explorer = graph_explorer("log(x)", x=-1.0)
    assert math.isnan(explorer.value)
    assert "n'est pas définie" in explorer.text


def test_evaluate_expression_has_no_builtins():
    x = torch.tensor(1.0, requires_grad=True)
    for expression in ("open('f')", "print(x)", "len([x])"):
        with pytest.raises(ExpressionError):
            evaluate_expression(expression, x)
    assert float(evaluate_expression("sqrt(x) + pi", x).detach()) == pytest.approx(1 + math.pi)


def test_quiz_gives_instant_feedback():
    q = quiz(
        "Que vaut `x.grad` avant `backward()` ?",
        ["tensor([0.])", "None", "tensor([1.])"],
        correct_index=1,
        explanation="Rien n'a encore été calculé.",
        wrong={0: "Le gradient n'est pas initialisé à zéro."},
    )
    assert isinstance(q, Quiz) and q.correct is None and q.feedback.value == ""
    assert "<code>x.grad</code>" in q.question.value
    q.choices.value = "tensor([0.])"
    assert q.correct is False
    assert plain(q.feedback_text) == "❌ Le gradient n'est pas initialisé à zéro. Essayez une autre réponse."
    q.choices.value = "tensor([1.])"
    assert q.correct is False and "Ce n'est pas la bonne réponse." in q.feedback_text
    q.choices.value = "None"
    assert q.correct is True
    assert plain(q.feedback_text) == "✅ Exact ! Rien n'a encore été calculé."
    assert "✅" in q.feedback.value


def test_quiz_refuses_an_impossible_answer_index():
    with pytest.raises(ValueError):
        quiz("?", ["a", "b"], correct_index=2, explanation="")
