"""Lesson 1 practice questions, what is particular to them: the reference is autograd's, and the notebook's
statements match the checked scenarios. The generic checks of every lesson live in test_practice_exercises.py."""

from __future__ import annotations

import nbformat
import pytest
import torch

from autograder.exercises.lesson1 import backward_shapes_scenario, predict_grad_scenario
from tests.fixtures.lesson1_practice import NOTEBOOK
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
