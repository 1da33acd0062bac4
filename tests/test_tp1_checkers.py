"""Unit tests of the TP1 checkers: the reference passes, each typical mistake is named, stubs read « non tentée »."""

from __future__ import annotations

import pytest

from autograder import check, get_exercise
from autograder.exercise import all_exercises
from autograder.verdict import NotAttempted, WrongAnswer
from tests.fixtures.tp1_wrong_answers import WRONG_ANSWERS
from tests.notebook_tools import answer_namespace, student_copy

TP1_IDS = [e.id for e in all_exercises() if e.assignment == "tp1_gradients"]


@pytest.fixture(scope="module")
def reference():
    return answer_namespace("tp1_gradients")


def test_tp1_is_worth_20_points():
    assert sum(get_exercise(i).points for i in TP1_IDS) == 20
    assert len(TP1_IDS) >= 6


@pytest.mark.parametrize("exercise_id", TP1_IDS)
@pytest.mark.parametrize("seed", [0, 1, 2026])
def test_reference_solution_passes(reference, exercise_id, seed, capsys):
    check(exercise_id, reference, seed=seed, trials=8)
    out = capsys.readouterr().out
    assert out.startswith(f"✅ {exercise_id} — Correct")


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=lambda w: w.behaviour)
def test_typical_mistake_gets_its_explanation(wrong):
    namespace = answer_namespace("tp1_gradients", {wrong.cell_id: wrong.source})
    with pytest.raises(WrongAnswer) as failure:
        check(wrong.exercise_id, namespace)
    rendered = failure.value.render().replace("\u00a0", " ")
    assert wrong.expected in rendered, rendered
    assert rendered.startswith(f"❌ {wrong.exercise_id} — Réponse incorrecte")


def test_every_question_has_typical_mistakes():
    covered = {w.exercise_id for w in WRONG_ANSWERS}
    assert covered == set(TP1_IDS)


def test_mistake_messages_are_distinct_within_a_question():
    by_question: dict[str, list[str]] = {}
    for wrong in WRONG_ANSWERS:
        by_question.setdefault(wrong.exercise_id, []).append(wrong.expected)
    for expected in by_question.values():
        assert len(expected) == len(set(expected))


@pytest.mark.parametrize("exercise_id", TP1_IDS)
def test_untouched_stub_is_not_attempted(exercise_id):
    nb = student_copy("tp1_gradients", answered=False)
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        try:
            exec(cell.source, namespace)
        except NotImplementedError:
            pass  # a stub at top level, as in the released notebook
        except Exception:  # noqa: BLE001 - scratch cells that use unfinished answers
            pass
    with pytest.raises(NotAttempted) as failure:
        check(exercise_id, namespace)
    assert "Question non tentée" in failure.value.render()


def test_missing_name_is_not_attempted():
    with pytest.raises(NotAttempted, match="n'est pas défini"):
        check("tp1_hand_grad", {})


def test_hard_coded_numbers_fail_on_fresh_inputs(reference):
    """A function that replays the values of the visible check fails the hidden seeds."""
    import torch

    seen = {}

    def recording(x):
        value = reference["grad_z"](x)
        seen[tuple(x.tolist())] = value
        return value

    check("tp1_hand_grad", {"grad_z": recording})
    replay = {"grad_z": lambda x: seen.get(tuple(x.tolist()), torch.zeros_like(x))}
    check("tp1_hand_grad", replay)  # same inputs: passes
    with pytest.raises(WrongAnswer):
        check("tp1_hand_grad", replay, seed=5281, trials=12)


def test_hints_are_revealed_one_by_one(capsys):
    from autograder import hint

    exercise = get_exercise("tp1_vjp")
    exercise.hints_shown = 0
    hint("tp1_vjp")
    hint("tp1_vjp")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("💡 Indice 1/3") and out[1].startswith("💡 Indice 2/3")


def test_checker_leaves_autograd_intact(reference):
    """The hand-derivation guard must restore autograd even when the student's code fails."""
    import torch

    namespace = dict(reference, grad_z=lambda x: 1 / 0)
    with pytest.raises(WrongAnswer, match="ZeroDivisionError"):
        check("tp1_hand_grad", namespace)
    x = torch.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_student_warning_reaches_stderr():
    """The scenario of the nbgrader stderr test really writes a warning to stderr (nbgrader must ignore it)."""
    import subprocess
    import sys

    script = (
        "import warnings, torch\n"
        "from autograder import check\n"
        "def noisy(x):\n"
        "    warnings.simplefilter('always')\n"
        "    warnings.warn('un avertissement de PyTorch', UserWarning)\n"
        "    return 2 * x * torch.cos(x**2)\n"
        "check('tp1_chain_rule', {'grad_g': noisy})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "UserWarning: un avertissement de PyTorch" in done.stderr
    assert done.stdout.startswith("✅ tp1_chain_rule")
