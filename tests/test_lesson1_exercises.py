"""Lesson 1 practice questions, what is particular to them: the reference is autograd's, and the notebook's
statements match the checked scenarios. The generic checks of every lesson live in test_practice_exercises.py."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
import torch

from autograder.exercises.lesson1 import backward_shapes_scenario, predict_grad_scenario
from tests.fixtures.lesson1_practice import NOTEBOOK
from tests.practice import cells_of, code_blocks


@pytest.fixture(scope="module")
def lesson():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_predict_reference_is_computed_by_autograd():
    x, z = predict_grad_scenario()
    z.backward()
    assert float(x.grad) == pytest.approx(13.0)


# -- the notebook and the checkers agree -----------------------------------------------------------
def test_notebook_statements_match_the_checked_scenarios(lesson):
    predict, _, _ = cells_of(lesson, "l1_predict_grad")
    namespace: dict[str, Any] = {"torch": torch}
    exec(code_blocks(predict.source)[0], namespace)
    x, z = predict_grad_scenario()
    z.backward()
    assert torch.equal(namespace["x"].grad, x.grad)

    shapes, _, _ = cells_of(lesson, "l1_backward_shapes")
    namespace = {"torch": torch}
    exec(code_blocks(shapes.source)[-1], namespace)
    x, z = backward_shapes_scenario()
    assert namespace["x"].shape == x.shape and namespace["z"].shape == z.shape
