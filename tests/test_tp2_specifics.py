"""TP2 « Régression linéaire par descente de gradient »: what the generic TP tests do not cover.

Other correct answers pass the hidden tests, the hidden tests re-run the answers on other data, each typical mistake
carries its code, the hints give no answer away, the package holds no answer, the « trouvez le bug » variants are
drawn per student and each is recognised and fixable, and a student who only re-types lesson 2 scores at most 5/20
under nbgrader.
"""

from __future__ import annotations

import re
import time

import pytest
import torch

from autograder import bug_hunt, check, get_exercise
from autograder.exercise import all_exercises
from autograder.exercises.tp2_regression import BugFix, curvatures, loss_hessian, regression_data, ridge
from autograder.verdict import CheckFailed, WrongAnswer
from tests.fixtures.tp2_regression_wrong_answers import LESSON_COPY, WRONG_ANSWERS
from tests.notebook_tools import ROOT, answer_namespace, nbgrader_meta, read, solutions, source_notebook, student_copy

ASSIGNMENT = "tp2_regression"
QUESTIONS = [
    "tp2_loss",
    "tp2_grad_w",
    "tp2_grad_b",
    "tp2_max_lr",
    "tp2_fastest_lr",
    "tp2_minibatch",
    "tp2_bug_fix",
    "tp2_bug_name",
]
# The bug of each variant, written here (the package holds no such table: it recognises the bug by running it).
VARIANT_BUGS = {
    1: "oubli_zero_grad",
    2: "data_coupe_le_graphe",
    3: "reaffectation_au_lieu_de_en_place",
    4: "cible_diffusee",
    5: "optimiseur_sur_copie",
    6: "eval_au_lieu_de_no_grad",
    7: "somme_au_lieu_de_moyenne",
}
# The one-line fix of each variant: (buggy text, fixed text).
VARIANT_FIXES = {
    1: ("        loss = ((model(X)", "        optimizer.zero_grad()\n        loss = ((model(X)"),
    2: ("model.weight.data.reshape(-1)", "model.weight.reshape(-1)"),
    3: ("w = w - lr * w.grad\n            b = b - lr * b.grad", "w -= lr * w.grad\n            b -= lr * b.grad"),
    4: ("((model(X) - y) ** 2)", "((model(X).squeeze(1) - y) ** 2)"),
    5: ("SGD(start.parameters()", "SGD(model.parameters()"),
    6: (
        "        for p in model.parameters():\n            p -= lr * p.grad",
        "        with torch.no_grad():\n            for p in model.parameters():\n                p -= lr * p.grad",
    ),
    7: (".sum()", ".mean()"),
}


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


def passes(exercise_id: str, namespace: dict, seed: int = 0, trials: int | None = None) -> bool:
    try:
        check(exercise_id, namespace, seed=seed, trials=trials)
    except CheckFailed:
        return False
    return True


# -- the question list ----------------------------------------------------------------------------


def test_questions_points_and_split_parts():
    exercises = {e.id: e for e in all_exercises() if e.assignment == ASSIGNMENT}
    assert list(exercises) == QUESTIONS
    points = {i: e.points for i, e in exercises.items()}
    assert points == {
        "tp2_loss": 2,
        "tp2_grad_w": 3,
        "tp2_grad_b": 1,
        "tp2_max_lr": 3,
        "tp2_fastest_lr": 2,
        "tp2_minibatch": 5,
        "tp2_bug_fix": 3,
        "tp2_bug_name": 1,
    }
    graded = [nbgrader_meta(c) for c in read(source_notebook(ASSIGNMENT)).cells if nbgrader_meta(c).get("grade")]
    assert [(m["grade_id"], m["points"]) for m in graded] == list(points.items())


def test_every_question_names_its_mistakes_and_its_lesson_section():
    lesson = read(ROOT / "notebooks" / "02_regression_lineaire.ipynb")
    headings = {
        line.lstrip("# ").strip()
        for c in lesson.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    }
    for exercise_id in QUESTIONS:
        exercise = get_exercise(exercise_id)
        path, title = exercise.section
        assert (ROOT / path).exists() and title in headings, exercise.section
        assert exercise.mistakes and all(re.fullmatch(r"[a-z0-9_]+", code) for code in exercise.mistakes)
        assert title.partition(". ")[2] in exercise.hints[-1] and path in exercise.hints[-1]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=[w.behaviour for w in WRONG_ANSWERS])
def test_typical_mistake_carries_its_code(wrong):
    namespace = answer_namespace(ASSIGNMENT, {wrong.cell_id: wrong.source})
    with pytest.raises(WrongAnswer) as failure:
        check(wrong.exercise_id, namespace)
    assert failure.value.code == wrong.code
    assert wrong.code in get_exercise(wrong.exercise_id).mistakes or wrong.code == "reponse_incorrecte"


def test_every_typical_mistake_of_the_catalogues_is_exercised():
    """Each mistake code a question declares is produced by at least one wrong answer of the fixtures."""
    produced = {(w.exercise_id, w.code) for w in WRONG_ANSWERS}
    for exercise_id in QUESTIONS:
        declared = set(get_exercise(exercise_id).mistakes)
        missing = {c for c in declared if (exercise_id, c) not in produced}
        assert not missing, (exercise_id, missing)


def _code_fragments(text: str) -> set[str]:
    """Code spans, and code-looking words (an identifier with `_`, `.` or a call) of a hint."""
    fragments = set(re.findall(r"`([^`]+)`", text))
    fragments |= set(re.findall(r"[A-Za-z_][\w.]*(?:\(\)|_[\w.]*|\.[A-Za-z_]\w*)", text.replace("`", " ")))
    return {f.strip() for f in fragments if len(f.strip()) >= 2}


@pytest.mark.parametrize("exercise_id", QUESTIONS)
def test_no_hint_shares_code_or_a_line_with_the_solution(exercise_id):
    solution = solutions(ASSIGNMENT)[f"{exercise_id}_answer"]
    lines = {line.strip() for line in solution.splitlines() if len(line.strip()) > 3}
    for hint in get_exercise(exercise_id).hints:
        for fragment in _code_fragments(hint):
            assert fragment not in solution, (hint, fragment)
        for line in lines:
            assert line not in hint, (hint, line)
        assert "2/(λmin + λmax)" not in hint  # the answer of tp2_fastest_lr, as a formula


def test_at_most_five_points_apply_a_lesson_cell_as_it_stands():
    applied = {"tp2_loss", "tp2_bug_fix"}  # the lesson's MSE plus a penalty; the lesson's loop, once the bug is found
    assert sum(get_exercise(i).points for i in applied) <= 5


# -- other correct answers ------------------------------------------------------------------------

OTHER_CORRECT_ANSWERS = {
    "loss_functional": (
        "tp2_loss",
        "def ridge_loss(X, y, w, b, alpha):\n"
        "    return torch.nn.functional.mse_loss(X @ w + b, y) + alpha * w.dot(w)\n",
    ),
    "grad_w_residual_times_X": (
        "tp2_grad_w",
        "def ridge_grad_w(X, y, w, b, alpha):\n"
        "    r = X @ w + b - y\n    return 2 * (r @ X) / len(y) + 2 * alpha * w\n",
    ),
    "grad_b_mean": ("tp2_grad_b", "def ridge_grad_b(X, y, w, b, alpha):\n    return 2 * (X @ w + b - y).mean()\n"),
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
    "fastest_autograd_hessian": (
        "tp2_fastest_lr",
        "def fastest_lr(X, alpha):\n"
        "    d = X.shape[1]\n"
        "    def loss(theta):\n"
        "        return ((X @ theta[:d] + theta[d]) ** 2).mean() + alpha * (theta[:d] ** 2).sum()\n"
        "    lam = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, torch.zeros(d + 1)))\n"
        "    return float(2 / (lam.min() + lam.max()))\n",
    ),
    "minibatch_with_an_optimizer": (
        "tp2_minibatch",
        "def fit_minibatch(X, y, lr, n_epochs, batch_size, seed):\n"
        "    generator = torch.Generator().manual_seed(seed)\n"
        "    w = torch.zeros(X.shape[1], requires_grad=True)\n"
        "    b = torch.zeros((), requires_grad=True)\n"
        "    optimizer = torch.optim.SGD([w, b], lr=lr)\n"
        "    for _ in range(n_epochs):\n"
        "        for batch in torch.randperm(len(y), generator=generator).split(batch_size):\n"
        "            optimizer.zero_grad()\n"
        "            torch.nn.functional.mse_loss(X[batch] @ w + b, y[batch]).backward()\n"
        "            optimizer.step()\n"
        "    return w.detach(), b.detach()\n",
    ),
    "train_with_nn_linear": ("tp2_bug_fix", bug_hunt.variant_source(1).replace(*VARIANT_FIXES[1])),
}


@pytest.mark.parametrize("behaviour", list(OTHER_CORRECT_ANSWERS))
def test_other_correct_answer_passes_the_hidden_tests(behaviour):
    exercise_id, source = OTHER_CORRECT_ANSWERS[behaviour]
    namespace = answer_namespace(ASSIGNMENT, {f"{exercise_id}_answer": source})
    seed, trials = hidden_calls()[exercise_id]
    assert passes(exercise_id, namespace, seed, trials)


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
        value = reference["fastest_lr"](X, alpha)
        seen[X.numpy().tobytes() + bytes(str(alpha), "ascii")] = value
        return value

    check("tp2_fastest_lr", {"fastest_lr": recording})
    replay = {"fastest_lr": lambda X, alpha: seen.get(X.numpy().tobytes() + bytes(str(alpha), "ascii"), 0.1)}
    assert passes("tp2_fastest_lr", replay)  # the same data: passes
    assert not passes("tp2_fastest_lr", replay, *hidden_calls()["tp2_fastest_lr"])


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


def descend(X, y, alpha, lr, epochs):
    """Full-batch gradient descent on the penalised loss, from zero; returns (w, b) and the last loss."""
    w, b = (
        torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True),
        torch.zeros((), dtype=torch.float64, requires_grad=True),
    )
    for _ in range(epochs):
        loss = ridge(X, y, w, b, alpha)
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad = b.grad = None
    return torch.cat([w.detach(), b.detach().reshape(1)]), float(loss.detach())


def test_threshold_separates_convergence_from_divergence(reference):
    X, y = regression_data(torch.Generator().manual_seed(11), 30, 2, scale=0.5, offset=0.8)
    X, y = X.double(), y.double()
    threshold = reference["max_stable_lr"](X.float(), 1.0)
    assert descend(X, y, 1.0, 0.95 * threshold, 400)[1] < 10
    assert descend(X, y, 1.0, 1.05 * threshold, 400)[1] > 1e6


def test_fastest_rate_of_the_statement_is_the_fastest(reference):
    """On a penalised problem, 2/(λmin + λmax) gets closer to the optimum in 30 steps than nearby rates."""
    X, y = regression_data(torch.Generator().manual_seed(5), 40, 3, scale=1.5, offset=0.6)
    X, y = X.double(), y.double()
    fastest = reference["fastest_lr"](X.float(), 0.5)
    optimum, _ = descend(X, y, 0.5, fastest, 3000)
    gap = {f: float((descend(X, y, 0.5, f * fastest, 30)[0] - optimum).norm()) for f in (0.7, 0.9, 1.0, 1.1, 1.2)}
    assert gap[1.0] == min(gap.values())
    lam_min, lam_max = curvatures(X, 0.5)
    assert fastest == pytest.approx(2 / (lam_min + lam_max), rel=1e-3)


def test_package_does_not_contain_the_derived_answers():
    """The answers whose formula is not in the statement (gradients, Hessians) appear nowhere in the package."""
    reference = solutions(ASSIGNMENT)
    lines = {
        re.sub(r"\s+", "", line)
        for cell_id in ("tp2_grad_w_answer", "tp2_grad_b_answer", "tp2_max_lr_answer", "tp2_fastest_lr_answer")
        for line in reference[cell_id].splitlines()
        if line.strip() and not line.strip().startswith(("n =", "n, d =", "def ", '"""'))
    }
    assert len(lines) >= 8
    package = "".join(re.sub(r"\s+", "", p.read_text(encoding="utf-8")) for p in (ROOT / "autograder").rglob("*.py"))
    for line in lines:
        assert line not in package, line


def test_hand_gradient_computed_by_autograd_is_refused_and_autograd_still_works():
    def uses_autograd(X, y, w, b, alpha):
        w = w.clone().requires_grad_()
        return torch.autograd.grad(ridge(X, y, w, b, alpha), w)[0]

    with pytest.raises(WrongAnswer, match="dérivé à la main") as failure:
        check("tp2_grad_w", {"ridge_grad_w": uses_autograd})
    assert "opérations sur `X`, `y`, `w`, `b` et `alpha`" in failure.value.message
    x = torch.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


# -- « trouvez le bug » --------------------------------------------------------------------------------


def test_variant_is_drawn_from_the_jupyterhub_user_then_the_system_user(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "camille.martin")
    assert bug_hunt.session_key() == "camille.martin"
    monkeypatch.delenv("JUPYTERHUB_USER")
    monkeypatch.setattr(bug_hunt.getpass, "getuser", lambda: "dupont")
    assert bug_hunt.session_key() == "dupont"
    assert bug_hunt.variant_of("dupont") == bug_hunt.variant_of("dupont")


def test_variants_are_spread_over_a_class():
    drawn = [bug_hunt.variant_of(f"etudiant{k:03d}") for k in range(200)]
    counts = {v: drawn.count(v) for v in range(1, len(bug_hunt.VARIANTS) + 1)}
    assert set(drawn) == set(counts) and min(counts.values()) >= 10


def test_mon_bug_shows_the_student_s_own_variant(monkeypatch, capsys):
    monkeypatch.setenv("JUPYTERHUB_USER", "camille.martin")
    bug_hunt.mon_bug()
    out = capsys.readouterr().out
    number = bug_hunt.variant_of("camille.martin")
    assert f"Variante n° {number}" in out.replace("\u00a0", " ") and "« camille.martin »" in out.replace("\u00a0", " ")
    assert bug_hunt.variant_source(number) in out and "```" not in out


def test_each_variant_is_recognised_by_the_checker_with_its_own_code():
    assert set(VARIANT_BUGS.values()) == set(BugFix.mistakes)
    for variant, bug in VARIANT_BUGS.items():
        with pytest.raises(WrongAnswer) as failure:
            check("tp2_bug_fix", {"train": bug_hunt.buggy_train(variant)}, seed=hidden_calls()["tp2_bug_fix"][0])
        assert failure.value.code == bug, variant


@pytest.mark.parametrize("variant", sorted(VARIANT_FIXES))
def test_each_variant_fixed_in_one_place_passes_the_hidden_test(variant):
    buggy, fixed = VARIANT_FIXES[variant]
    source = bug_hunt.variant_source(variant)
    assert source.count(buggy) == 1
    namespace = answer_namespace(ASSIGNMENT, {"tp2_bug_fix_answer": source.replace(buggy, fixed)})
    assert passes("tp2_bug_fix", namespace, *hidden_calls()["tp2_bug_fix"])


@pytest.mark.parametrize("variant", sorted(VARIANT_BUGS))
def test_naming_the_bug_passes_only_with_its_own_code(variant):
    seed, trials = hidden_calls()["tp2_bug_name"]
    assert passes("tp2_bug_name", {"variante": variant, "erreur": VARIANT_BUGS[variant]}, seed, trials)
    other = next(code for code in BugFix.mistakes if code != VARIANT_BUGS[variant])
    assert not passes("tp2_bug_name", {"variante": variant, "erreur": other}, seed, trials)


def test_lesson_copy_fills_every_answer_cell_and_only_the_loop_is_right():
    """The « recopie des cellules de la leçon » copy (graded with nbgrader by test_nbgrader_grading) gets 3/20."""
    answers = {c.id for c in read(source_notebook(ASSIGNMENT)).cells if nbgrader_meta(c).get("solution")}
    assert set(LESSON_COPY) == answers
    namespace: dict = {}
    for cell in student_copy(ASSIGNMENT, LESSON_COPY).cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and (meta.get("solution") or (meta.get("locked") and not meta.get("grade"))):
            try:
                exec(cell.source, namespace)
            except NotImplementedError:
                pass  # a stub left at top level
    earned = {q: get_exercise(q).points for q in QUESTIONS if passes(q, namespace, *hidden_calls()[q])}
    assert earned == {"tp2_bug_fix": 3}


def test_statement_lists_every_bug_code_and_names_the_real_menu_item():
    cells = {c.id: c.source.replace("\u00a0", " ") for c in read(source_notebook(ASSIGNMENT)).cells}
    for code in BugFix.mistakes:
        assert f'`"{code}"`' in cells["tp2_bug_statement"]
    menu = "« Redémarrer le noyau et Exécuter toutes les cellules… »"  # the label JupyterLab (fr-FR) shows
    assert menu in cells["tp2_intro"] and menu in cells["tp2_end"]
    assert "Redémarrer et tout exécuter" not in "".join(cells.values())
