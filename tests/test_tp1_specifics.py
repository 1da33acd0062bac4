"""TP1, what is particular to it: mistake codes, lesson sections, hints that do not answer, the per-student bug,
and a copy of lesson cells that cannot pass. The generic proofs (reference passes, each typical mistake named,
stubs « non tentée », nbgrader 20/0/loses its points) are in test_tp_checkers.py and test_nbgrader_grading.py.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from autograder import get_exercise
from autograder.exercises import tp1_gradients as tp1
from autograder.verdict import CheckFailed, NotAttempted, WrongAnswer
from tests.fixtures.tp1_gradients_wrong_answers import (
    FIXED_BUGS,
    LESSON_COPY,
    LESSON_COPY_MAX,
    REFERENCE_KEY,
    WRONG_ANSWERS,
)
from tests.notebook_tools import ROOT, answer_namespace, solutions

ASSIGNMENT = "tp1_gradients"
LESSON = ROOT / "notebooks" / "01_calcul_de_gradients.ipynb"


def tp1_exercises():
    from autograder.exercise import all_exercises

    return [e for e in all_exercises() if e.assignment == ASSIGNMENT]


def failure_of(exercise_id: str, namespace: dict, seed: int = 0) -> CheckFailed | None:
    try:
        get_exercise(exercise_id)._check(namespace, seed=seed, trials=None)
    except CheckFailed as failure:
        return failure
    return None


@pytest.fixture(scope="module")
def reference():
    return answer_namespace(ASSIGNMENT)


# -- mistake codes and sections --------------------------------------------------------------------------------
@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=lambda w: w.behaviour)
def test_typical_mistake_carries_its_code(wrong):
    failure = failure_of(wrong.exercise_id, answer_namespace(ASSIGNMENT, {wrong.cell_id: wrong.source}))
    assert isinstance(failure, WrongAnswer)
    assert failure.code == wrong.code, failure.render()
    assert failure.code in get_exercise(wrong.exercise_id).mistakes or failure.code == "reponse_incorrecte"


def test_every_declared_mistake_is_proven_by_a_fixture():
    proven = {(w.exercise_id, w.code) for w in WRONG_ANSWERS}
    proven |= {("tp1_bug", bug["code"]) for bug in tp1.BUGS}  # the catalogue test below
    for exercise in tp1_exercises():
        for code in exercise.mistakes:
            assert (exercise.id, code) in proven, (exercise.id, code)


def _headings() -> list[str]:
    lesson = nbformat.read(LESSON, as_version=4)
    return [
        line.lstrip("#").strip()
        for cell in lesson.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("#")
    ]


@pytest.mark.parametrize("exercise", tp1_exercises(), ids=lambda e: e.id)
def test_question_points_to_an_existing_lesson_section_in_its_last_hint(exercise):
    path, title = exercise.section
    assert (ROOT / path).exists() and title in _headings()
    assert exercise.mistakes
    assert exercise.hints[-1] == tp1.reread(exercise.section)
    assert path in exercise.hints[-1]


def test_at_most_five_points_apply_a_lesson_cell_as_it_stands():
    applied = {"tp1_graph", "tp1_hand_grad"}  # the only questions that reuse a lesson cell as it stands
    assert sum(get_exercise(i).points for i in applied) <= 5
    assert sum(e.points for e in tp1_exercises()) == 20


# -- hints that teach without answering -------------------------------------------------------------------------
def _code_fragments(text: str) -> set[str]:
    """Code spans, and code-looking words (an identifier with `_`, `.` or a call) of a hint."""
    fragments = set(re.findall(r"`([^`]+)`", text))
    fragments |= set(re.findall(r"[A-Za-z_][\w.]*(?:\(\)|_[\w.]*|\.[A-Za-z_]\w*)", text.replace("`", " ")))
    return {f.strip() for f in fragments if len(f.strip()) >= 2}


def _solution_of(exercise_id: str) -> str:
    answers = {
        "tp1_graph": ["tp1_graph_answer"],
        "tp1_path": ["tp1_graph_path"],
        "tp1_hand_grad": ["tp1_hand_grad_answer"],
        "tp1_predict": ["tp1_predict_answer"],
        "tp1_vjp": ["tp1_vjp_answer"],
        "tp1_leaf": ["tp1_leaf_answer"],
        "tp1_retain_graph": ["tp1_retain_graph_answer"],
        "tp1_hvp": ["tp1_hvp_answer"],
        "tp1_bug": ["tp1_bug_key", "tp1_bug_answer"],
    }[exercise_id]
    found = solutions(ASSIGNMENT)
    return "\n".join(found[cell] for cell in answers)


@pytest.mark.parametrize("exercise", tp1_exercises(), ids=lambda e: e.id)
def test_no_hint_shares_code_or_a_line_with_the_solution(exercise):
    solution = _solution_of(exercise.id)
    lines = {line.strip() for line in solution.splitlines() if len(line.strip()) > 3}
    for hint in exercise.hints:
        for fragment in _code_fragments(hint):
            assert fragment not in solution, (hint, fragment)
        for line in lines:
            assert line not in hint, (hint, line)


def test_hint_checker_catches_a_hint_that_gives_the_answer():
    solution = _solution_of("tp1_leaf")
    assert any(f in solution for f in _code_fragments("Appelez `h.retain_grad()` avant la rétropropagation."))
    assert any(f in solution for f in _code_fragments("Il faut appeler h.retain_grad() avant."))


# -- the per-student bug -------------------------------------------------------------------------------------
def key_for(variant: int) -> str:
    return next(k for k in (f"etudiant{i}" for i in range(1000)) if tp1.bug_variant(k) == variant)


def test_the_variant_depends_only_on_the_identifier():
    assert tp1.bug_variant(REFERENCE_KEY) == 0
    assert tp1.bug_variant(" E1234567 ") == tp1.bug_variant(REFERENCE_KEY)
    drawn = {tp1.bug_variant(f"etudiant{i}") for i in range(200)}
    assert drawn == set(range(len(tp1.BUGS)))  # every bug of the catalogue is drawn for someone


@pytest.mark.parametrize("variant", range(len(tp1.BUGS)), ids=[b["code"] for b in tp1.BUGS])
def test_each_shown_bug_fails_with_its_own_code_and_its_fix_passes(variant, capsys):
    key, bug = key_for(variant), tp1.BUGS[variant]
    tp1.montrer_le_bug(key)
    shown = capsys.readouterr().out
    assert bug["source"] in shown and key in shown

    buggy: dict = {"torch": __import__("torch")}
    exec(bug["source"], buggy)
    failure = failure_of("tp1_bug", {"IDENTIFIANT": key, "train": buggy["train"]})
    assert isinstance(failure, WrongAnswer) and failure.code == bug["code"], failure and failure.render()

    fixed: dict = {"torch": __import__("torch")}
    exec(FIXED_BUGS[bug["code"]], fixed)
    for seed in (0, 1187):
        assert failure_of("tp1_bug", {"IDENTIFIANT": key, "train": fixed["train"]}, seed=seed) is None


@pytest.mark.parametrize("variant", range(len(tp1.BUGS)), ids=[b["code"] for b in tp1.BUGS])
def test_a_neighbours_fix_of_another_loss_does_not_pass(variant):
    key = key_for(variant)
    other = tp1.BUGS[(variant + 1) % len(tp1.BUGS)]
    namespace: dict = {"torch": __import__("torch")}
    exec(FIXED_BUGS[other["code"]], namespace)
    failure = failure_of("tp1_bug", {"IDENTIFIANT": key, "train": namespace["train"]})
    assert isinstance(failure, WrongAnswer)
    assert failure.code == "perte_changee", failure.render()


def test_the_identifier_must_be_filled(capsys):
    for key in (None, "", "  ", "votre identifiant"):
        with pytest.raises(NotAttempted, match="IDENTIFIANT"):
            get_exercise("tp1_bug")._check({"IDENTIFIANT": key, "train": lambda *a: []}, seed=0, trials=None)
        tp1.montrer_le_bug(key)
        assert "⬜" in capsys.readouterr().out


def test_the_reference_notebook_fixes_the_bug_its_identifier_draws(reference):
    assert tp1.bug_variant(reference["IDENTIFIANT"]) == 0
    assert failure_of("tp1_bug", reference) is None


# -- a copy of lesson cells ----------------------------------------------------------------------------------
def test_a_copy_of_lesson_cells_earns_at_most_five_points_in_process():
    namespace = answer_namespace(ASSIGNMENT, LESSON_COPY)
    earned = sum(e.points for e in tp1_exercises() if failure_of(e.id, namespace) is None)
    assert earned <= LESSON_COPY_MAX, earned


def test_a_forged_graph_reported_by_the_copy_earns_no_path_point(monkeypatch):
    """Under grading the graph of the copy's `f` is the copy's word: a path valid only in a forged graph fails."""
    from autograder import observe

    forged = observe.Graph(names=["ExpBackward0", "AccumulateGrad"], children=[[1], []], leaf_arg=[None, 0])
    monkeypatch.setattr(observe, "graph", lambda t: forged)
    namespace = answer_namespace("tp1_gradients")
    namespace["path"] = ["ExpBackward0", "AccumulateGrad"]
    with pytest.raises(WrongAnswer):
        get_exercise("tp1_path").check(namespace)
    namespace["path"] = list(answer_namespace("tp1_gradients")["path"])
    get_exercise("tp1_path").check(namespace)  # the true path still passes with the forged report
