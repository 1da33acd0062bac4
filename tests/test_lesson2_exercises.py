"""Lesson 2 practice questions, what is particular to them: the rebinding message, the reference formulas,
and the notebook's statements match the checked scenarios. The generic checks of every lesson live in
test_practice_exercises.py."""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize

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


# -- the lesson's claims about learning rates, computed from the lesson's own data ----------------------------------
def lesson_namespace(lesson, *cell_ids: str) -> dict:
    """Run the setup and the given code cells of the lesson, in order, in a fresh namespace."""
    namespace: dict = {}
    wanted = {"setup", *cell_ids}
    for cell in lesson.cells:
        if cell.cell_type == "code" and cell.id in wanted:
            exec(compile(cell.source, f"<{cell.id}>", "exec"), namespace)
    return namespace


def markdown(lesson, cell_id: str) -> str:
    return plain(next(c.source for c in lesson.cells if c.id == cell_id))


def curvature(X: torch.Tensor) -> tuple[float, float]:
    """(λmin, λmax) of the Hessian of the MSE, computed by autograd (not with the lesson's formula)."""
    X = X.double()
    hessian = torch.autograd.functional.hessian(lambda v: ((X @ v) ** 2).mean(), torch.zeros(X.shape[1]).double())
    eigenvalues = torch.linalg.eigvalsh(hessian)
    return float(eigenvalues.min()), float(eigenvalues.max())


def fr(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


@pytest.fixture(scope="module")
def small_problem(lesson):
    shown = lesson_namespace(lesson, "data", "weights")
    return shown["X"], shown["y_true"]


@pytest.fixture(scope="module")
def real_problem(lesson):
    shown = lesson_namespace(lesson, "real-data")
    x = shown["x_reel"]
    return torch.stack([x, torch.ones_like(x)], dim=1), shown["y_reel"]


def test_fastest_rate_and_conditioning_of_the_small_problem_are_the_ones_stated(lesson, small_problem):
    lam_min, lam_max = curvature(small_problem[0])
    text = markdown(lesson, "threshold-figure")
    text = text.replace("{,}", ",")
    assert f"\\kappa \\approx {lam_max / lam_min:.0f}$" in text
    assert f"\\eta^\\star \\approx {fr(2 / (lam_min + lam_max), 2)}$" in text
    assert f"seuil de {fr(2 / lam_max, 2)}" in text
    assert "juste en dessous** du seuil que si le problème est **mal conditionné**" in text


def test_fastest_rate_of_the_real_problem_is_not_just_below_the_threshold(lesson, real_problem):
    lam_min, lam_max = curvature(real_problem[0])
    kappa, fastest, threshold = lam_max / lam_min, 2 / (lam_min + lam_max), 2 / lam_max
    assert fastest < 0.8 * threshold  # well-conditioned: the best rate is far from the threshold
    gap = markdown(lesson, "gap-figure").replace("{,}", ",")
    assert f"\\kappa \\approx {fr(kappa, 1)}" in gap and f"\\eta^\\star \\approx {fr(fastest, 2)}" in gap
    workshop = markdown(lesson, "explorer-md").replace("{,}", ",")
    assert "0,5$ : la convergence la plus rapide" not in workshop
    assert f"\\eta = {fr(fastest, 2)}$ : avec ${fr(fastest, 2)} \\approx 2/(\\lambda_{{\\min}}" in workshop


def test_fastest_rate_beats_the_half_rate_the_lesson_used_to_call_fastest(real_problem):
    """Gradient descent on the lesson's 100 points: after 10 epochs, 2/(λmin + λmax) is far closer than η = 0,5."""
    A, y = real_problem
    A, y = A.double(), y.double()
    best = torch.linalg.lstsq(A, y.unsqueeze(1)).solution.flatten()
    lam_min, lam_max = curvature(A)

    def gap_after(lr: float, epochs: int = 10) -> float:
        theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        for _ in range(epochs):
            ((A @ theta - y) ** 2).mean().backward()
            with torch.no_grad():
                theta -= lr * theta.grad
            theta.grad = None
        return float((theta.detach() - best).norm())

    fastest = 2 / (lam_min + lam_max)
    assert gap_after(fastest) < gap_after(0.5) / 10
    for other in (0.6, 0.7, 0.8, 0.9):
        assert gap_after(fastest) < gap_after(other)


def test_rate_said_just_above_the_threshold_is_clearly_above_it(lesson, real_problem):
    _, lam_max = curvature(real_problem[0])
    threshold = 2 / lam_max
    assert "\\eta = 1{,}05$ : juste au-dessus du seuil" in markdown(lesson, "explorer-md")
    assert 1.05 > 1.03 * threshold and f"({fr(threshold, 2)} environ)" in markdown(lesson, "explorer-md")


def test_workshop_answer_on_the_number_of_epochs_is_computed_right(lesson, real_problem):
    lam_min, lam_max = curvature(real_problem[0])
    factor = 1 - 0.01 * lam_min
    answer = markdown(lesson, "explorer-md").replace("{,}", ",")
    assert "<details><summary>Réponse : combien d'époques avec η = 0,01 ?</summary>" in answer
    assert f"\\approx {fr(factor, 3)}$ à chaque époque" in answer
    assert f"\\approx {fr(factor**200, 2)}$" in answer
    assert 900 < math.log(1000) / -math.log(factor) < 1100  # « environ 1 000 époques »
    kappa = lam_max / lam_min
    assert f"\\approx {fr((kappa - 1) / (kappa + 1), 2)}$ : 10 époques" in answer
    assert ((kappa - 1) / (kappa + 1)) ** 10 < 1e-3


def test_step_epoch_mini_batch_and_stochastic_are_each_defined_once(lesson):
    glossary = markdown(lesson, "glossary")
    for term in ("| pas, itération :", "| époque :", "| mini-lot :", "| descente de gradient stochastique :"):
        assert glossary.count(term) == 1, term
    loop = markdown(lesson, "real-loop-md")
    assert "**stochastique**" in loop and "**à chaque pas**" in loop and "**mini-lot**" in loop
    assert "à chaque époque" not in markdown(lesson, "summary")


# -- names, stub, language -------------------------------------------------------------------------------------------
def assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_parts_6_and_7_do_not_reuse_the_names_of_parts_2_to_5(lesson):
    ids = [c.id for c in lesson.cells]
    start = ids.index("real-md")
    code = [c for c in lesson.cells if c.cell_type == "code"]
    top_level = {
        c.id: {
            n.id
            for n in ast.parse(c.source).body
            for n in getattr(n, "targets", [getattr(n, "target", None)])
            if isinstance(n, ast.Name)
        }
        for c in code
    }
    before = set().union(*(top_level[c.id] for c in code if ids.index(c.id) < start))
    after = set().union(*(top_level[c.id] for c in code if ids.index(c.id) >= start))
    assert {"X", "y_true", "w", "n", "lr", "eigenvalues"} <= before
    assert not ({"X", "x", "y_true", "w", "n", "lr", "eigenvalues"} & after), after


def test_scrolling_back_to_part_5_after_part_7_still_runs(lesson):
    """The descent of part 5 is re-run after the whole lesson: it uses its own data, not the 100 points."""
    skipped = {"explorer"} | {c.id for c in lesson.cells if "raises-exception" in c.metadata.get("tags", [])}
    cells = [c.id for c in lesson.cells if c.cell_type == "code" and c.id not in skipped]
    namespace = lesson_namespace(lesson, *cells)
    losses = namespace["descend"](0.3)
    assert len(losses) == 30 and losses[-1] < losses[0]


def test_placeholder_of_exercise_2_matches_its_statement_and_code_above_it_counts(lesson, capsys):
    statement, answer, _ = cells_of(lesson, "l2_gradient_step")
    assert "ne renvoie rien" in statement.source and "`return ...`" in statement.source
    lines = answer.source.splitlines()
    placeholder = next(i for i, line in enumerate(lines) if line.strip().startswith("return ..."))
    body = ["    with torch.no_grad():", "        w -= lr * w.grad", "    w.grad.zero_()"]
    written_above = "\n".join(lines[:placeholder] + body + lines[placeholder:])
    namespace = {"torch": torch}
    exec(written_above, namespace)
    assert verdict("l2_gradient_step", namespace, capsys).startswith("✅ l2_gradient_step — Correct")


ENGLISH = re.compile(r"\b(the|of|is|are|to|and|from|with|keeps?|returns?|starting|inputs|targets|shape)\b")


def test_code_comments_of_the_lesson_are_in_french(lesson):
    for cell in lesson.cells:
        if cell.cell_type != "code":
            continue
        for token in tokenize.generate_tokens(io.StringIO(cell.source).readline):
            if token.type == tokenize.COMMENT:
                assert not ENGLISH.search(token.string), f"{cell.id} : {token.string}"


def test_english_terms_in_prose_are_in_italics_not_code_font(lesson):
    prose = "\n".join(c.source for c in lesson.cells if c.cell_type == "markdown")
    for term in (
        "define-by-run",
        "define-and-run",
        "learning rate",
        "backpropagation",
        "broadcasting",
        "mean squared error",
        "matrix-vector",
        "epoch",
        "mini-batch",
    ):
        assert f"`{term}" not in prose, term
    assert "carnet" not in prose.lower()
