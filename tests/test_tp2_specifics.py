"""TP2 « Régression linéaire par descente de gradient »: what the generic TP tests do not cover.

Other correct answers pass, the hidden tests really re-run the answers on other data, the package does not
contain the answers of the questions whose formula is not in the statement, and the checks stay fast.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

from autograder import check, get_exercise
from autograder.exercises.tp2_regression import loss_hessian, regression_data
from autograder.verdict import WrongAnswer
from tests.notebook_tools import ROOT, answer_namespace, nbgrader_meta, read, source_notebook

ASSIGNMENT = "tp2_regression"
QUESTIONS = ["tp2_predict", "tp2_mse", "tp2_hand_grad", "tp2_step", "tp2_fit", "tp2_max_lr", "tp2_sgd"]


@pytest.fixture(scope="module")
def reference():
    return answer_namespace(ASSIGNMENT)


def hidden_calls() -> dict[str, tuple[int, int]]:
    """grade_id -> (seed, trials) of the hidden test of each graded cell of the source notebook."""
    calls = {}
    for cell in read(source_notebook(ASSIGNMENT)).cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade"):
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1]
            seed, trials = re.search(r"seed=(\d+), trials=(\d+)", hidden).groups()
            calls[meta["grade_id"]] = (int(seed), int(trials))
    return calls


# -- other correct answers ------------------------------------------------------------------------

OTHER_CORRECT_ANSWERS = {
    "predict_matmul": ("tp2_predict", "def predict(X, w, b):\n    return torch.matmul(X, w) + b\n"),
    "predict_row_sums": ("tp2_predict", "def predict(X, w, b):\n    return (X * w).sum(dim=1) + b\n"),
    "mse_functional": (
        "tp2_mse",
        "def mse(y_pred, y):\n    return torch.nn.functional.mse_loss(y_pred, y)\n",
    ),
    "hand_grad_residual_times_X": (
        "tp2_hand_grad",
        "def mse_grad(X, y, w, b):\n    r = X @ w + b - y\n    return 2 * (r @ X) / len(y), 2 * r.mean()\n",
    ),
    "step_grad_set_to_none": (
        "tp2_step",
        "def descent_step(X, y, w, b, lr):\n"
        "    torch.nn.functional.mse_loss(X @ w + b, y).backward()\n"
        "    with torch.no_grad():\n"
        "        for p in (w, b):\n"
        "            p.sub_(lr * p.grad)\n"
        "            p.grad = None\n"
        "    return w, b\n",
    ),
    "max_lr_autograd_hessian": (
        "tp2_max_lr",
        "def max_stable_lr(X, alpha):\n"
        "    d = X.shape[1]\n"
        "    def loss(theta):\n"
        "        w, b = theta[:d], theta[d]\n"
        "        return ((X @ w + b) ** 2).mean() + alpha * (w ** 2).sum()\n"
        "    H = torch.autograd.functional.hessian(loss, torch.zeros(d + 1))\n"
        "    return float(2 / torch.linalg.eigvalsh(H)[-1])\n",
    ),
    "sgd_mse_loss_module": (
        "tp2_sgd",
        "def fit_sgd(X, y, lr, n_epochs):\n"
        "    model = torch.nn.Linear(X.shape[1], 1)\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=lr)\n"
        "    loss_fn = torch.nn.MSELoss()\n"
        "    losses = []\n"
        "    for _ in range(n_epochs):\n"
        "        optimizer.zero_grad()\n"
        "        loss = loss_fn(model(X), y.unsqueeze(1))\n"
        "        loss.backward()\n"
        "        optimizer.step()\n"
        "        losses.append(float(loss))\n"
        "    return model, losses\n",
    ),
}


@pytest.mark.parametrize("behaviour", list(OTHER_CORRECT_ANSWERS))
def test_other_correct_answer_passes_the_hidden_tests(behaviour, capsys):
    exercise_id, source = OTHER_CORRECT_ANSWERS[behaviour]
    namespace = answer_namespace(ASSIGNMENT, {f"{exercise_id}_answer": source})
    seed, trials = hidden_calls()[exercise_id]
    capsys.readouterr()  # what the notebook's data cell printed
    check(exercise_id, namespace, seed=seed, trials=trials)
    assert capsys.readouterr().out.startswith(f"✅ {exercise_id} — Correct")


# -- hidden tests -----------------------------------------------------------------------------------


def test_hidden_tests_use_another_seed_and_more_trials():
    calls = hidden_calls()
    assert set(calls) == set(QUESTIONS)
    for grade_id, (seed, trials) in calls.items():
        assert seed != 0
        assert trials > get_exercise(grade_id).default_trials


def test_values_replayed_from_the_visible_check_fail_the_hidden_test(reference):
    """A function that answers the visible check from a table of seen values fails on the hidden data."""
    seen: dict[bytes, float] = {}

    def recording(X, alpha):
        value = reference["max_stable_lr"](X, alpha)
        seen[X.numpy().tobytes() + bytes(str(alpha), "ascii")] = value
        return value

    check("tp2_max_lr", {"max_stable_lr": recording})
    replay = {"max_stable_lr": lambda X, alpha: seen.get(X.numpy().tobytes() + bytes(str(alpha), "ascii"), 0.1)}
    check("tp2_max_lr", replay)  # the same data: passes
    seed, trials = hidden_calls()["tp2_max_lr"]
    with pytest.raises(WrongAnswer, match="au lieu de"):
        check("tp2_max_lr", replay, seed=seed, trials=trials)


def test_sizes_written_in_the_answer_fail(reference):
    """The data change size and scale between trials: an answer written for the demo's 3 features fails."""
    fixed = {"mse_grad": lambda X, y, w, b: reference["mse_grad"](X[:, :3], y, w[:3], b)}
    with pytest.raises(WrongAnswer):
        check("tp2_hand_grad", fixed, trials=12)


@pytest.mark.parametrize("exercise_id", QUESTIONS)
def test_hidden_test_runs_well_under_five_seconds(reference, exercise_id):
    seed, trials = hidden_calls()[exercise_id]
    start = time.perf_counter()
    check(exercise_id, reference, seed=seed, trials=trials)
    elapsed = time.perf_counter() - start
    print(f"{exercise_id} : {elapsed:.2f} s")
    assert elapsed < 5


# -- references -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_loss_hessian_is_the_closed_form(alpha):
    """The checker's Hessian (autograd) equals (2/n)·X̃ᵀX̃ + 2α·diag(1, …, 1, 0), written here only."""
    X, _ = regression_data(torch.Generator().manual_seed(3), 20, 3, offset=1.0)
    X1 = torch.cat([X, torch.ones(20, 1)], dim=1).double()
    closed_form = 2 / 20 * X1.T @ X1 + 2 * alpha * torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(loss_hessian(X, alpha), closed_form)


def test_threshold_separates_convergence_from_divergence(reference):
    """Gradient descent on the penalised loss converges just under 2/λmax and diverges just above it."""
    X, y = regression_data(torch.Generator().manual_seed(11), 30, 2, scale=0.5, offset=0.8)
    alpha = 1.0
    threshold = reference["max_stable_lr"](X, alpha)

    def final_loss(lr: float) -> float:
        w, b = torch.zeros(2, requires_grad=True), torch.zeros((), requires_grad=True)
        for _ in range(400):
            loss = ((X @ w + b - y) ** 2).mean() + alpha * (w**2).sum()
            w.grad = b.grad = None
            loss.backward()
            with torch.no_grad():
                w -= lr * w.grad
                b -= lr * b.grad
        return float(loss)

    assert final_loss(0.95 * threshold) < 10
    assert final_loss(1.05 * threshold) > 1e6


def test_package_does_not_contain_the_derived_answers():
    """The answers whose formula is not in the statement (gradient, Hessian) appear nowhere in the package."""
    answers = {
        c.id: c.source
        for c in read(source_notebook(ASSIGNMENT)).cells
        if c.id in ("tp2_hand_grad_answer", "tp2_max_lr_answer")
    }
    lines = {
        re.sub(r"\s+", "", line)
        for source in answers.values()
        for line in source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0].splitlines()
        if line.strip() and not line.strip().startswith(("n =", "n, d ="))
    }
    assert len(lines) >= 5
    package = "".join(
        re.sub(r"\s+", "", p.read_text(encoding="utf-8")) for p in Path(ROOT / "autograder").rglob("*.py")
    )
    for line in lines:
        assert line not in package, line


def test_checker_restores_autograd_after_a_hand_gradient_that_uses_it():
    def uses_autograd(X, y, w, b):
        w = w.clone().requires_grad_()
        torch.autograd.grad(((X @ w + b - y) ** 2).mean(), w)
        raise ValueError("never reached")

    with pytest.raises(WrongAnswer, match="dérivé à la main") as failure:
        check("tp2_hand_grad", {"mse_grad": uses_autograd})
    assert "opérations sur `X`, `y`, `w` et `b`" in failure.value.message  # the TP's names, not lesson 1's `x`
    assert "`w.grad` et `b.grad`" in failure.value.message
    x = torch.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
