"""End to end with nbgrader itself: reference 20/20, blank 0/20, each typical mistake loses exactly its points.

Runs the real `nbgrader generate_assignment` / `autograde` / `generate_feedback` in a temporary copy of the course.
"""

from __future__ import annotations

import html
import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import get_exercise
from tests.conftest import nbgrader
from tests.fixtures.tp1_wrong_answers import NBGRADER_CASES, WRONG_ANSWERS
from tests.notebook_tools import ROOT, nbgrader_meta, outputs_text, student_copy

pytestmark = pytest.mark.grading

ASSIGNMENT = "tp1_gradients"
WRONG = {w.behaviour: w for w in WRONG_ANSWERS}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("cours")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")

    submissions = {"reference": student_copy(ASSIGNMENT), "blank": student_copy(ASSIGNMENT, answered=False)}
    for behaviour in NBGRADER_CASES.values():
        wrong = WRONG[behaviour]
        submissions[behaviour] = student_copy(ASSIGNMENT, {wrong.cell_id: wrong.source})
    submissions.update(tampered_submissions())
    for student, nb in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")

    result = nbgrader(course, "autograde", ASSIGNMENT, check=False)
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(ASSIGNMENT, s).score for s in submissions}
        max_score = gb.find_assignment(ASSIGNMENT).max_score
        per_cell = {
            s: {g.name: g.score for g in gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, s).grades}
            for s in submissions
        }
    return {"course": course, "result": result, "scores": scores, "max": max_score, "per_cell": per_cell}


def tampered_submissions() -> dict[str, nbformat.NotebookNode]:
    """Submissions that edit what they should not; nbgrader must restore it, then grade."""
    deleted = student_copy(ASSIGNMENT)
    deleted.cells = [c for c in deleted.cells if nbgrader_meta(c).get("grade_id") != "tp1_vjp"]
    wrong = WRONG[NBGRADER_CASES["tp1_hand_grad"]]
    edited = student_copy(
        ASSIGNMENT, {wrong.cell_id: wrong.source, "tp1_hand_grad": 'print("✅ tp1_hand_grad — Correct")'}
    )
    noisy = student_copy(
        ASSIGNMENT,
        {
            "tp1_chain_rule_answer": (
                "import warnings\n\n"
                "def grad_g(x):\n"
                "    warnings.simplefilter('always')\n"
                "    warnings.warn('un avertissement de PyTorch', UserWarning)\n"
                "    return 2 * x * torch.cos(x**2)\n"
            )
        },
    )
    return {"test_cell_deleted": deleted, "test_cell_edited": edited, "warning_on_stderr": noisy}


def autograded_cell(course, student, grade_id):
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id)


def test_autograde_succeeds(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr


def test_reference_gets_20_of_20(graded):
    assert graded["max"] == 20
    assert graded["scores"]["reference"] == 20, graded["per_cell"]["reference"]


def test_blank_release_gets_0(graded):
    assert graded["scores"]["blank"] == 0
    for grade_id in NBGRADER_CASES:
        text = outputs_text(autograded_cell(graded["course"], "blank", grade_id)).replace("\u00a0", " ")
        assert "Question non tentée" in text


@pytest.mark.parametrize("grade_id", sorted(NBGRADER_CASES))
def test_typical_mistake_loses_exactly_its_points(graded, grade_id):
    behaviour = NBGRADER_CASES[grade_id]
    points = get_exercise(grade_id).points
    assert graded["scores"][behaviour] == 20 - points, graded["per_cell"][behaviour]
    assert graded["per_cell"][behaviour][grade_id] == 0
    text = outputs_text(autograded_cell(graded["course"], behaviour, grade_id)).replace("\u00a0", " ")
    assert WRONG[behaviour].expected in text


@pytest.mark.parametrize("grade_id", sorted(NBGRADER_CASES))
def test_feedback_carries_the_french_explanation(graded, grade_id):
    behaviour = NBGRADER_CASES[grade_id]
    page = graded["course"] / "feedback" / behaviour / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = html.unescape(page.read_text(encoding="utf-8")).replace("\u00a0", " ")
    assert WRONG[behaviour].expected in text


def test_deleted_test_cell_is_restored_and_graded(graded):
    assert graded["scores"]["test_cell_deleted"] == 20
    assert graded["per_cell"]["test_cell_deleted"]["tp1_vjp"] == get_exercise("tp1_vjp").points


def test_edited_test_cell_is_restored_and_graded(graded):
    assert graded["scores"]["test_cell_edited"] == 20 - get_exercise("tp1_hand_grad").points
    text = outputs_text(autograded_cell(graded["course"], "test_cell_edited", "tp1_hand_grad"))
    assert "Vous divisez par 3" in text.replace("\u00a0", " ")


def test_warning_on_stderr_costs_no_point(graded):
    cell = autograded_cell(graded["course"], "warning_on_stderr", "tp1_chain_rule")
    assert graded["scores"]["warning_on_stderr"] == 20
    assert not any(o.get("name") == "stderr" for o in cell.outputs)
