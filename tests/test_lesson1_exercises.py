"""Lesson 1 practice questions, what is particular to them: the reference is autograd's, and the notebook's
statements match the checked scenarios. The generic checks of every lesson live in test_practice_exercises.py."""

from __future__ import annotations

import nbformat
import pytest
import torch

from autograder.exercises.lesson1 import backward_shapes_scenario, predict_grad_scenario
from tests.fixtures.lesson1_practice import CODES, MISTAKES, NOTEBOOK
from tests.practice import statement_namespace


@pytest.fixture(scope="module")
def lesson():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_predict_reference_is_computed_by_autograd():
    x, z = predict_grad_scenario()
    z.backward()
    assert float(x.grad) == pytest.approx(13.0)


# -- the notebook and the checkers agree -----------------------------------------------------------
def test_notebook_statements_match_the_checked_scenarios(lesson):
    shown = statement_namespace(lesson, "l1_predict_grad")
    x, z = predict_grad_scenario()
    z.backward()
    assert torch.equal(shown["x"].grad, x.grad)

    shown = statement_namespace(lesson, "l1_backward_shapes", block=-1)
    x, z = backward_shapes_scenario()
    assert shown["x"].shape == x.shape and shown["z"].shape == z.shape


# -- the checker contract: codes and sections ------------------------------------------------------
LESSON1_IDS = ("l1_predict_grad", "l1_product_rule", "l1_backward_shapes", "l1_second_derivative")


def _failure(exercise_id, answers):
    from autograder import get_exercise
    from autograder.verdict import CheckFailed

    try:
        get_exercise(exercise_id)._check(dict(answers), seed=0, trials=None)
    except CheckFailed as failure:
        return failure
    return None


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.exercise_id}-{m.behaviour}")
def test_lesson1_mistake_carries_its_code(mistake, capsys):
    from autograder import get_exercise

    failure = _failure(mistake.exercise_id, mistake.answers)
    assert failure is not None
    expected = CODES.get(mistake.behaviour, "reponse_incorrecte")
    assert failure.code == expected, failure.render()
    assert failure.code in get_exercise(mistake.exercise_id).mistakes or failure.code == "reponse_incorrecte"


@pytest.mark.parametrize("exercise_id", LESSON1_IDS)
def test_lesson1_exercise_points_to_an_existing_section(lesson, exercise_id):
    from autograder import get_exercise

    path, title = get_exercise(exercise_id).section
    assert path == "notebooks/01_calcul_de_gradients.ipynb"
    headings = [
        line.lstrip("#").strip()
        for cell in lesson.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("#")
    ]
    assert title in headings
