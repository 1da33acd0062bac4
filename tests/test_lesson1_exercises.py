"""Lesson 1 practice questions: the right answer passes, each typical mistake gets its own message,
an untouched placeholder reads « non tentée », and the notebook matches the checkers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch

from autograder import check, get_exercise
from autograder.exercise import all_exercises
from autograder.exercises.lesson1 import backward_shapes_scenario, predict_grad_scenario

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_calcul_de_gradients.ipynb"
LESSON_IDS = sorted(e.id for e in all_exercises() if e.id.startswith("l1_"))


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def verdict(exercise_id: str, namespace: dict[str, Any], capsys, seed: int = 0) -> str:
    check(exercise_id, namespace, seed=seed)  # practice: never raises
    return plain(capsys.readouterr().out)


# -- answers ---------------------------------------------------------------------------------------
def grad_f_right(x):
    return 2 * x * torch.sin(x) + x**2 * torch.cos(x)


def grad_f_with_autograd(x):
    x = x.clone().requires_grad_(True)
    (x**2 * torch.sin(x)).sum().backward()
    return x.grad


def second_right(f, x):
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (h,) = torch.autograd.grad(g, x)
    return h


def second_without_create_graph(f, x):
    (g,) = torch.autograd.grad(f(x), x)
    (h,) = torch.autograd.grad(g, x)
    return h


def second_first_derivative(f, x):
    return torch.autograd.grad(f(x), x)[0]


def second_tuple(f, x):
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    return torch.autograd.grad(g, x)


def second_backward_twice(f, x):
    f(x).backward(create_graph=True)
    x.grad.backward()
    return x.grad


def second_hard_coded(f, x):
    return 6 * x


def stub(*args):
    return ...


RIGHT = {
    "l1_predict_grad": [{"predicted_grad": 13}, {"predicted_grad": torch.tensor(13.0)}],
    "l1_product_rule": [{"grad_f": grad_f_right}],
    "l1_backward_shapes": [{"v_shape": (3,), "grad_shape": (4,)}, {"v_shape": torch.Size([3]), "grad_shape": [4]}],
    "l1_second_derivative": [{"second_derivative": second_right}],
}

UNTOUCHED = {
    "l1_predict_grad": {"predicted_grad": None},
    "l1_product_rule": {"grad_f": stub},
    "l1_backward_shapes": {"v_shape": None, "grad_shape": None},
    "l1_second_derivative": {"second_derivative": stub},
}


@dataclass
class Mistake:
    exercise_id: str
    behaviour: str
    answers: dict[str, Any] = field(repr=False)
    expected: str


MISTAKES = [
    Mistake("l1_predict_grad", "value of z", {"predicted_grad": 14}, "la valeur de `z` elle-même"),
    Mistake("l1_predict_grad", "forgot the direct path", {"predicted_grad": 12}, "Il manque le chemin direct"),
    Mistake(
        "l1_predict_grad", "only the direct path", {"predicted_grad": 1}, "Vous n'avez compté que le chemin direct"
    ),
    Mistake("l1_predict_grad", "d(x*x) = x", {"predicted_grad": 7}, "est 2x (règle du produit"),
    Mistake("l1_predict_grad", "stopped at dz/dy", {"predicted_grad": 3.0}, "3 est ∂z/∂y"),
    Mistake("l1_predict_grad", "backward twice", {"predicted_grad": 26}, "exécuté `z.backward()` deux fois"),
    Mistake("l1_predict_grad", "other number", {"predicted_grad": 42}, "42 n'est pas la valeur de `x.grad`"),
    Mistake("l1_predict_grad", "not a number", {"predicted_grad": "13"}, "doit être un nombre"),
    Mistake("l1_predict_grad", "vector", {"predicted_grad": torch.ones(3)}, "doit être un seul nombre"),
    Mistake(
        "l1_product_rule",
        "product of derivatives",
        {"grad_f": lambda x: 2 * x * torch.cos(x)},
        "pas u'·v'",
    ),
    Mistake(
        "l1_product_rule",
        "missing x² cos x",
        {"grad_f": lambda x: 2 * x * torch.sin(x)},
        "Il manque le terme x²·cos(x)",
    ),
    Mistake(
        "l1_product_rule", "missing 2x sin x", {"grad_f": lambda x: x**2 * torch.cos(x)}, "Il manque le terme 2x·sin(x)"
    ),
    Mistake(
        "l1_product_rule",
        "sign of the derivative of sin",
        {"grad_f": lambda x: 2 * x * torch.sin(x) - x**2 * torch.cos(x)},
        "Erreur de signe",
    ),
    Mistake("l1_product_rule", "returns f", {"grad_f": lambda x: x**2 * torch.sin(x)}, "Vous renvoyez f(x) elle-même"),
    Mistake("l1_product_rule", "uses autograd", {"grad_f": grad_f_with_autograd}, "dérivé à la main"),
    Mistake("l1_product_rule", "forgot return", {"grad_f": lambda x: None}, "vaut `None`"),
    Mistake(
        "l1_product_rule", "scalar instead of elementwise", {"grad_f": lambda x: grad_f_right(x).sum()}, "a la forme ()"
    ),
    Mistake("l1_product_rule", "other formula", {"grad_f": lambda x: torch.cos(x)}, "autograd donne"),
    Mistake("l1_backward_shapes", "v like the input", {"v_shape": (4,), "grad_shape": (4,)}, "forme de l'entrée `x`"),
    Mistake(
        "l1_backward_shapes", "v like the Jacobian", {"v_shape": (3, 4), "grad_shape": (4,)}, "matrice jacobienne J."
    ),
    Mistake(
        "l1_backward_shapes",
        "v like its transpose",
        {"v_shape": (4, 3), "grad_shape": (4,)},
        "la transposée de la matrice",
    ),
    Mistake("l1_backward_shapes", "v scalar", {"v_shape": (), "grad_shape": (4,)}, "Un scalaire ne suffit pas"),
    Mistake(
        "l1_backward_shapes", "v an integer", {"v_shape": 3, "grad_shape": (4,)}, "une forme s'écrit comme un tuple"
    ),
    Mistake(
        "l1_backward_shapes", "v of another shape", {"v_shape": (5,), "grad_shape": (4,)}, "exactement la forme de `z`"
    ),
    Mistake(
        "l1_backward_shapes", "grad like the output", {"v_shape": (3,), "grad_shape": (3,)}, "est la forme de la sortie"
    ),
    Mistake(
        "l1_backward_shapes",
        "grad like the Jacobian",
        {"v_shape": (3,), "grad_shape": (3, 4)},
        "pas la matrice J",
    ),
    Mistake(
        "l1_backward_shapes",
        "grad of another shape",
        {"v_shape": (3,), "grad_shape": (2,)},
        "n'est pas la forme de `x.grad`",
    ),
    Mistake("l1_backward_shapes", "not a shape", {"v_shape": "(3,)", "grad_shape": (4,)}, "doit être une forme"),
    Mistake(
        "l1_second_derivative",
        "no create_graph",
        {"second_derivative": second_without_create_graph},
        "doit recevoir `create_graph=True`",
    ),
    Mistake(
        "l1_second_derivative",
        "first derivative",
        {"second_derivative": second_first_derivative},
        "vous renvoyez la dérivée première",
    ),
    Mistake("l1_second_derivative", "tuple", {"second_derivative": second_tuple}, "Vous renvoyez un tuple"),
    Mistake(
        "l1_second_derivative",
        "backward twice accumulates",
        {"second_derivative": second_backward_twice},
        "Vous renvoyez f'(x) + f''(x)",
    ),
    Mistake(
        "l1_second_derivative",
        "formula for x³ only",
        {"second_derivative": second_hard_coded},
        "sans formule écrite à la main",
    ),
]


def test_lesson_has_three_to_five_practice_questions():
    assert 3 <= len(LESSON_IDS) <= 5
    assert set(LESSON_IDS) == set(RIGHT) == set(UNTOUCHED)
    for exercise_id in LESSON_IDS:
        exercise = get_exercise(exercise_id)
        assert exercise.assignment is None and exercise.points == 0
        assert exercise.title and len(exercise.hints) >= 2 and exercise.names


@pytest.mark.parametrize("exercise_id", sorted(RIGHT))
@pytest.mark.parametrize("seed", [0, 1, 2026])
def test_right_answer_passes(exercise_id, seed, capsys):
    for answers in RIGHT[exercise_id]:
        out = verdict(exercise_id, dict(answers), capsys, seed)
        assert out.startswith(f"✅ {exercise_id} — Correct"), out
        assert "❌" not in out


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.exercise_id}-{m.behaviour}")
def test_typical_mistake_gets_its_own_message(mistake, capsys):
    out = verdict(mistake.exercise_id, dict(mistake.answers), capsys)
    assert out.startswith(f"❌ {mistake.exercise_id} — Réponse incorrecte"), out
    assert mistake.expected in out, out
    assert f'hint("{mistake.exercise_id}")' in out
    others = [m.expected for m in MISTAKES if m.exercise_id == mistake.exercise_id and m is not mistake]
    assert not any(other in out for other in others), out


def test_every_question_has_typical_mistakes():
    assert {m.exercise_id for m in MISTAKES} == set(LESSON_IDS)


@pytest.mark.parametrize("exercise_id", sorted(UNTOUCHED))
def test_untouched_placeholder_is_not_attempted(exercise_id, capsys):
    out = verdict(exercise_id, dict(UNTOUCHED[exercise_id]), capsys)
    assert out.startswith(f"⬜ {exercise_id} — Question non tentée"), out


@pytest.mark.parametrize("exercise_id", LESSON_IDS)
def test_missing_name_is_not_attempted(exercise_id, capsys):
    assert "non tentée" in verdict(exercise_id, {}, capsys)


def test_hints_are_revealed_one_by_one(capsys):
    exercise = get_exercise("l1_predict_grad")
    exercise.hints_shown = 0
    first, second = exercise.next_hint(), exercise.next_hint()
    assert "Indice 1/2" in first and "Indice 2/2" in second and first != second
    exercise.hints_shown = 0


def test_predict_reference_is_computed_by_autograd():
    x, z = predict_grad_scenario()
    z.backward()
    assert float(x.grad) == pytest.approx(13.0)


# -- the notebook and the checkers agree -----------------------------------------------------------
@pytest.fixture(scope="module")
def lesson():
    return nbformat.read(NOTEBOOK, as_version=4)


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def _cells_of(lesson, exercise_id):
    cells = lesson.cells
    index = next(
        i for i, c in enumerate(cells) if c.cell_type == "code" and c.source == f'check("{exercise_id}", globals())'
    )
    statement = next(c for c in reversed(cells[:index]) if c.cell_type == "markdown")
    solution = cells[index + 1]
    return statement, cells[index - 1], solution


@pytest.mark.parametrize("exercise_id", LESSON_IDS)
def test_notebook_placeholder_reads_not_attempted_and_solution_passes(lesson, exercise_id, capsys):
    statement, answer_cell, solution = _cells_of(lesson, exercise_id)
    assert f'hint("{exercise_id}")' in statement.source
    assert "VOTRE" in answer_cell.source
    namespace: dict[str, Any] = {"torch": torch}
    exec(answer_cell.source, namespace)
    assert "non tentée" in verdict(exercise_id, namespace, capsys)
    assert solution.cell_type == "markdown" and solution.source.startswith("<details><summary>Solution</summary>")
    (code,) = _code_blocks(solution.source)
    namespace = {"torch": torch}
    exec(code, namespace)
    assert verdict(exercise_id, namespace, capsys).startswith(f"✅ {exercise_id} — Correct")


def test_notebook_statements_match_the_checked_scenarios(lesson):
    predict, _, _ = _cells_of(lesson, "l1_predict_grad")
    namespace: dict[str, Any] = {"torch": torch}
    exec(_code_blocks(predict.source)[0], namespace)
    x, z = predict_grad_scenario()
    z.backward()
    assert torch.equal(namespace["x"].grad, x.grad)

    shapes, _, _ = _cells_of(lesson, "l1_backward_shapes")
    namespace = {"torch": torch}
    exec(_code_blocks(shapes.source)[-1], namespace)
    x, z = backward_shapes_scenario()
    assert namespace["x"].shape == x.shape and namespace["z"].shape == z.shape
