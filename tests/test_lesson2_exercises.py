"""Lesson 2 practice questions: the right answer passes, each typical mistake gets its own message,
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
from autograder.exercises.lesson2 import CANDIDATE_RATES, diverging_scenario, predict_grad_scenario

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_regression_lineaire.ipynb"
LESSON_IDS = sorted(e.id for e in all_exercises() if e.id.startswith("l2_"))


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def verdict(exercise_id: str, namespace: dict[str, Any], capsys, seed: int = 0) -> str:
    check(exercise_id, namespace, seed=seed)  # practice: never raises
    return plain(capsys.readouterr().out)


# -- answers to l2_gradient_step ------------------------------------------------------------------
def step_right(w, lr):
    with torch.no_grad():
        w -= lr * w.grad
    w.grad.zero_()


def step_right_none(w, lr):
    with torch.no_grad():
        w.sub_(lr * w.grad)
    w.grad = None


def step_with_data(w, lr):
    w.data -= lr * w.grad
    w.grad.zero_()


def step_without_zeroing(w, lr):
    with torch.no_grad():
        w -= lr * w.grad


def step_without_rate(w, lr):
    with torch.no_grad():
        w -= w.grad
    w.grad.zero_()


def step_uphill(w, lr):
    with torch.no_grad():
        w += lr * w.grad
    w.grad.zero_()


def step_rebinding(w, lr):
    with torch.no_grad():
        w = w - lr * w.grad
    w.grad.zero_()


def step_rebinding_tracked(w, lr):
    w = w - lr * w.grad


def step_tracked_in_place(w, lr):
    w -= lr * w.grad
    w.grad.zero_()


def step_zero_first(w, lr):
    w.grad.zero_()
    with torch.no_grad():
        w -= lr * w.grad


def step_frozen(w, lr):
    with torch.no_grad():
        w -= lr * w.grad
    w.grad.zero_()
    w.requires_grad_(False)


def step_half(w, lr):
    with torch.no_grad():
        w -= lr * w.grad / 2
    w.grad.zero_()


def stub(*args):
    return ...


RIGHT = {
    "l2_predict_grad": [
        {"predicted_grad": [6.0, 2.0]},
        {"predicted_grad": (6, 2)},
        {"predicted_grad": torch.tensor([6.0, 2.0])},
    ],
    "l2_gradient_step": [{"gradient_step": step_right}, {"gradient_step": step_right_none}],
    "l2_diverging_rates": [{"diverging": [0.2, 0.3]}, {"diverging": (0.3, 0.2)}, {"diverging": {0.2, 0.3}}],
}

UNTOUCHED = {
    "l2_predict_grad": {"predicted_grad": None},
    "l2_gradient_step": {"gradient_step": stub},
    "l2_diverging_rates": {"diverging": None},
}


@dataclass
class Mistake:
    exercise_id: str
    behaviour: str
    answers: dict[str, Any] = field(repr=False)
    expected: str


MISTAKES = [
    Mistake("l2_predict_grad", "forgot 2/n", {"predicted_grad": [9, 3]}, "sans le facteur 2/n"),
    Mistake("l2_predict_grad", "sum instead of mean", {"predicted_grad": [18, 6]}, "**somme** des carrés"),
    Mistake("l2_predict_grad", "forgot the 2", {"predicted_grad": [3, 1]}, "n'oubliez pas le facteur 2"),
    Mistake("l2_predict_grad", "backward twice", {"predicted_grad": [12, 4]}, "`loss.backward()` deux fois"),
    Mistake("l2_predict_grad", "residual y - Xw", {"predicted_grad": [-6, -2]}, "Erreur de signe"),
    Mistake("l2_predict_grad", "the loss itself", {"predicted_grad": 6.0}, "la valeur de la perte elle-même"),
    Mistake("l2_predict_grad", "one number", {"predicted_grad": 8}, "et non un seul nombre"),
    Mistake("l2_predict_grad", "the residuals", {"predicted_grad": [3, 3, 0]}, "Ce sont les résidus"),
    Mistake("l2_predict_grad", "too many numbers", {"predicted_grad": [1, 2, 3, 4]}, "Votre réponse a 4 nombres"),
    Mistake("l2_predict_grad", "other values", {"predicted_grad": [1, 5]}, "[1, 5] n'est pas `w.grad`"),
    Mistake("l2_predict_grad", "not numbers", {"predicted_grad": "6, 2"}, "doit être une liste de nombres"),
    Mistake("l2_gradient_step", "through .data", {"gradient_step": step_with_data}, "vous êtes passé par `.data`"),
    Mistake("l2_gradient_step", "no zeroing", {"gradient_step": step_without_zeroing}, "n'est pas remis à zéro"),
    Mistake("l2_gradient_step", "implicit rate 1", {"gradient_step": step_without_rate}, "un taux implicite de 1"),
    Mistake("l2_gradient_step", "uphill", {"gradient_step": step_uphill}, "vous **montez** le gradient"),
    Mistake("l2_gradient_step", "rebinding", {"gradient_step": step_rebinding_tracked}, "crée un **nouveau** tenseur"),
    Mistake(
        "l2_gradient_step",
        "update tracked by autograd",
        {"gradient_step": step_tracked_in_place},
        "Modification en place d'une feuille",
    ),
    Mistake("l2_gradient_step", "zeroed before the update", {"gradient_step": step_zero_first}, "**avant** la mise"),
    Mistake("l2_gradient_step", "gradient switched off", {"gradient_step": step_frozen}, "n'est plus une feuille"),
    Mistake("l2_gradient_step", "wrong values", {"gradient_step": step_half}, "on attendait w − lr·w.grad"),
    Mistake("l2_gradient_step", "not a function", {"gradient_step": 0.1}, "doit être une fonction"),
    Mistake("l2_diverging_rates", "forgot the 2", {"diverging": [0.3]}, "Il manque un facteur 2"),
    Mistake("l2_diverging_rates", "sum instead of mean", {"diverging": [0.05, 0.1, 0.2, 0.3]}, "**somme** des carrés"),
    Mistake("l2_diverging_rates", "1/λ threshold", {"diverging": [0.1, 0.2, 0.3]}, "seuil d'**oscillation**"),
    Mistake("l2_diverging_rates", "not upward closed", {"diverging": [0.2]}, "tout taux plus grand"),
    Mistake("l2_diverging_rates", "none", {"diverging": []}, "Ce ne sont pas les bons taux"),
    Mistake("l2_diverging_rates", "not a candidate", {"diverging": [0.25]}, "n'est pas l'un des taux proposés"),
    Mistake("l2_diverging_rates", "not a list", {"diverging": 0.2}, "doit être une liste de taux"),
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


def test_rebinding_then_zeroing_is_named_rebinding_not_a_none_gradient(capsys):
    out = verdict("l2_gradient_step", {"gradient_step": step_rebinding}, capsys)
    assert "crée un **nouveau** tenseur" in out and "variable locale" in out, out
    assert "aucun `backward()`" not in out


def test_hints_are_revealed_one_by_one():
    exercise = get_exercise("l2_gradient_step")
    exercise.hints_shown = 0
    first, second = exercise.next_hint(), exercise.next_hint()
    assert "Indice 1/2" in first and "Indice 2/2" in second and first != second
    exercise.hints_shown = 0


def test_predict_reference_is_the_mse_gradient_formula():
    w, loss = predict_grad_scenario()
    loss.backward()
    X = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0.0, 1.0, 1.0])
    assert torch.allclose(w.grad, 2 / 3 * X.T @ (X @ w.detach() - y))


def test_diverging_rates_are_those_above_two_over_the_second_derivative():
    x, _ = diverging_scenario()
    second_derivative = 2 * float((x**2).mean())  # L(w) = mean((w x − y)²)  ⇒  L'' = 2 mean(x²)
    expected = [r for r in CANDIDATE_RATES if r > 2 / second_derivative]
    assert expected == [0.2, 0.3]
    assert all(abs(r - 2 / second_derivative) > 0.01 for r in CANDIDATE_RATES)  # no borderline candidate


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
    predict, _, _ = _cells_of(lesson, "l2_predict_grad")
    namespace: dict[str, Any] = {"torch": torch}
    exec(_code_blocks(predict.source)[0], namespace)
    w, loss = predict_grad_scenario()
    loss.backward()
    assert torch.equal(namespace["w"].grad, w.grad)

    rates, _, _ = _cells_of(lesson, "l2_diverging_rates")
    namespace = {"torch": torch}
    exec(_code_blocks(rates.source)[0], namespace)
    x, y = diverging_scenario()
    assert torch.equal(namespace["x_small"], x) and torch.equal(namespace["y_small"], y)
    listed = plain(rates.source)
    assert all(f"{r:g}".replace(".", ",") in listed for r in CANDIDATE_RATES)
