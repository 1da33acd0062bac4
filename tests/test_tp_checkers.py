"""Unit tests of the TP checkers: the reference passes, each typical mistake is named, stubs read « non tentée ».

The generic tests run for every assignment in ``source/``; each has its fixture module of typical mistakes.
"""

from __future__ import annotations

import pytest

from autograder import check, get_exercise
from autograder.exercise import all_exercises
from autograder.verdict import NotAttempted, WrongAnswer
from tests.fixtures import mistakes
from tests.notebook_tools import ASSIGNMENTS, answer_namespace, student_copy


def question_ids(assignment: str) -> list[str]:
    return [e.id for e in all_exercises() if e.assignment == assignment]


QUESTIONS = [(a, q) for a in ASSIGNMENTS for q in question_ids(a)]
WRONG = [(a, w) for a in ASSIGNMENTS for w in mistakes(a).WRONG_ANSWERS]


@pytest.fixture(scope="module")
def references():
    return {a: answer_namespace(a) for a in ASSIGNMENTS}


@pytest.fixture(scope="module")
def reference(references):
    return references["tp1_gradients"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_assignment_is_worth_20_points(assignment):
    ids = question_ids(assignment)
    assert sum(get_exercise(i).points for i in ids) == 20
    assert len(ids) >= 6


@pytest.mark.parametrize(("assignment", "exercise_id"), QUESTIONS, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("seed", [0, 1, 2026])
def test_reference_solution_passes(references, assignment, exercise_id, seed, capsys):
    check(exercise_id, references[assignment], seed=seed, trials=8)
    out = capsys.readouterr().out
    assert out.startswith(f"✅ {exercise_id} — Correct")


@pytest.mark.parametrize(("assignment", "wrong"), WRONG, ids=[w.behaviour for _, w in WRONG])
def test_typical_mistake_gets_its_explanation(assignment, wrong):
    namespace = answer_namespace(assignment, {wrong.cell_id: wrong.source})
    with pytest.raises(WrongAnswer) as failure:
        check(wrong.exercise_id, namespace)
    rendered = failure.value.render().replace("\u00a0", " ")
    assert wrong.expected in rendered, rendered
    assert rendered.startswith(f"❌ {wrong.exercise_id} — Réponse incorrecte")
    if wrong.code:
        assert failure.value.code == wrong.code, rendered
        assert wrong.code in get_exercise(wrong.exercise_id).mistakes or wrong.code == "reponse_incorrecte"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_question_has_typical_mistakes(assignment):
    fixtures = mistakes(assignment)
    assert {w.exercise_id for w in fixtures.WRONG_ANSWERS} == set(question_ids(assignment))
    assert set(fixtures.NBGRADER_CASES) == set(question_ids(assignment))
    behaviours = {w.behaviour for w in fixtures.WRONG_ANSWERS}
    assert set(fixtures.NBGRADER_CASES.values()) <= behaviours


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mistake_messages_are_distinct_within_a_question(assignment):
    by_question: dict[str, list[str]] = {}
    for wrong in mistakes(assignment).WRONG_ANSWERS:
        by_question.setdefault(wrong.exercise_id, []).append(wrong.expected)
    for expected in by_question.values():
        assert len(expected) == len(set(expected))


@pytest.mark.parametrize(("assignment", "exercise_id"), QUESTIONS, ids=lambda v: v if isinstance(v, str) else None)
def test_untouched_stub_is_not_attempted(assignment, exercise_id):
    nb = student_copy(assignment, answered=False)
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


# -- TP1 specifics ------------------------------------------------------------------------


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
    n = len(exercise.hints)
    assert out[0].startswith(f"💡 Indice 1/{n}") and out[1].startswith(f"💡 Indice 2/{n}")


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
        "    return 4 * (x + 2) / x.numel()\n"
        "check('tp1_hand_grad', {'grad_z': noisy})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "UserWarning: un avertissement de PyTorch" in done.stderr
    assert done.stdout.startswith("✅ tp1_hand_grad")
