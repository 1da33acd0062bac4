"""Lesson 2 practice questions, what is particular to them: the rebinding message, the reference formulas,
and the notebook's statements match the checked scenarios. The generic checks of every lesson live in
test_practice_exercises.py."""

from __future__ import annotations

import nbformat
import pytest
import torch

from autograder.exercises.lesson2 import CANDIDATE_RATES, diverging_scenario, predict_grad_scenario
from tests.fixtures.lesson2_practice import NOTEBOOK, step_rebinding
from tests.practice import cells_of, plain, statement_namespace, verdict


@pytest.fixture(scope="module")
def lesson():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_rebinding_then_zeroing_is_named_rebinding_not_a_none_gradient(capsys):
    out = verdict("l2_gradient_step", {"gradient_step": step_rebinding}, capsys)
    assert "crée un **nouveau** tenseur" in out and "variable locale" in out, out
    assert "aucun `backward()`" not in out


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
def test_notebook_statements_match_the_checked_scenarios(lesson):
    shown = statement_namespace(lesson, "l2_predict_grad")
    w, loss = predict_grad_scenario()
    loss.backward()
    assert torch.equal(shown["w"].grad, w.grad)

    shown = statement_namespace(lesson, "l2_diverging_rates")
    x, y = diverging_scenario()
    assert torch.equal(shown["x_small"], x) and torch.equal(shown["y_small"], y)
    statement, _, _ = cells_of(lesson, "l2_diverging_rates")
    listed = plain(statement.source)
    assert all(f"{r:g}".replace(".", ",") in listed for r in CANDIDATE_RATES)


def test_call_report_counts_version_changes_of_no_grad_updates_not_data_ones():
    """observe.run reports in-place changes autograd was told about (no_grad), not those made through `.data`."""
    from autograder import observe

    def through_no_grad(w, lr):
        with torch.no_grad():
            w -= lr * w.grad

    def through_data(w, lr):
        w.data -= lr * w.grad

    for step, expected in ((through_no_grad, 1), (through_data, 0)):
        w = torch.ones(3, requires_grad=True)
        (w**2).sum().backward()
        report = observe.run(step, w, 0.1, what="step(w, lr)")
        assert report.version_changes == (expected, None)
        assert torch.allclose(w.detach(), torch.full((3,), 0.8))
