"""End to end with nbgrader itself: reference 20/20, blank 0/20, each typical mistake loses exactly its points.

Runs the real `nbgrader generate_assignment` / `autograde` / `generate_feedback` in a temporary copy of the course,
for every assignment in ``source/``. The tampering scenarios (edited or deleted test cells) are TP1's.
"""

from __future__ import annotations

import html
import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import get_exercise
from tests.conftest import nbgrader
from tests.fixtures import mistakes
from tests.notebook_tools import ASSIGNMENTS, ROOT, nbgrader_meta, outputs_text, student_copy

pytestmark = pytest.mark.grading

TP1 = "tp1_gradients"
# (assignment, grade_id) pairs: one typical mistake per question, graded end to end.
CASES = [(a, g) for a in ASSIGNMENTS for g in sorted(mistakes(a).NBGRADER_CASES)]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("cours")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    return course


@pytest.fixture(scope="module")
def graded_all(course):
    """Grade every assignment once (lazily) in the same course; one gradebook, as an instructor would."""
    cache: dict[str, dict] = {}

    def grade(assignment: str) -> dict:
        if assignment not in cache:
            cache[assignment] = _grade(course, assignment)
        return cache[assignment]

    return grade


@pytest.fixture
def graded(graded_all):
    return graded_all(TP1)


def _grade(course, assignment: str) -> dict:
    fixtures = mistakes(assignment)
    wrong = {w.behaviour: w for w in fixtures.WRONG_ANSWERS}
    nbgrader(course, "generate_assignment", assignment, "--force")

    submissions = {"reference": student_copy(assignment), "blank": student_copy(assignment, answered=False)}
    for behaviour in fixtures.NBGRADER_CASES.values():
        submissions[behaviour] = student_copy(assignment, {wrong[behaviour].cell_id: wrong[behaviour].source})
    if assignment == TP1:
        submissions.update(tampered_submissions())
    if hasattr(fixtures, "LESSON_COPY"):
        submissions["recopie_de_la_lecon"] = student_copy(assignment, fixtures.LESSON_COPY)
    for student, nb in submissions.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")

    result = nbgrader(course, "autograde", assignment, check=False)
    nbgrader(course, "generate_feedback", assignment)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(assignment, s).score for s in submissions}
        max_score = gb.find_assignment(assignment).max_score
        per_cell = {
            s: {g.name: g.score for g in gb.find_submission_notebook(assignment, assignment, s).grades}
            for s in submissions
        }
    return {
        "assignment": assignment,
        "course": course,
        "result": result,
        "scores": scores,
        "max": max_score,
        "per_cell": per_cell,
        "wrong": wrong,
        "cases": fixtures.NBGRADER_CASES,
    }


def tampered_submissions() -> dict[str, nbformat.NotebookNode]:
    """TP1 submissions that edit what they should not; nbgrader must restore it, then grade."""
    fixtures = mistakes(TP1)
    deleted = student_copy(TP1)
    deleted.cells = [c for c in deleted.cells if nbgrader_meta(c).get("grade_id") != "tp1_vjp"]
    wrong = next(w for w in fixtures.WRONG_ANSWERS if w.behaviour == fixtures.NBGRADER_CASES["tp1_hand_grad"])
    edited = student_copy(TP1, {wrong.cell_id: wrong.source, "tp1_hand_grad": 'print("✅ tp1_hand_grad — Correct")'})
    noisy = student_copy(
        TP1,
        {
            "tp1_predict_answer": (
                "import warnings\n\n"
                "def predicted_grad(x, a):\n"
                "    warnings.simplefilter('always')\n"
                "    warnings.warn('un avertissement de PyTorch', UserWarning)\n"
                "    return a * a * x + torch.exp(x) * (1 + x)\n"
            )
        },
    )
    return {"test_cell_deleted": deleted, "test_cell_edited": edited, "warning_on_stderr": noisy}


def autograded_cell(course, student, grade_id, assignment=TP1):
    nb = nbformat.read(course / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograde_succeeds(graded_all, assignment):
    result = graded_all(assignment)["result"]
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_gets_20_of_20(graded_all, assignment):
    graded = graded_all(assignment)
    assert graded["max"] == 20
    assert graded["scores"]["reference"] == 20, graded["per_cell"]["reference"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_release_gets_0(graded_all, assignment):
    graded = graded_all(assignment)
    assert graded["scores"]["blank"] == 0
    for grade_id in graded["cases"]:
        cell = autograded_cell(graded["course"], "blank", grade_id, assignment)
        assert "Question non tentée" in outputs_text(cell).replace("\u00a0", " ")


@pytest.mark.parametrize(("assignment", "grade_id"), CASES)
def test_typical_mistake_loses_exactly_its_points(graded_all, assignment, grade_id):
    graded = graded_all(assignment)
    behaviour = graded["cases"][grade_id]
    points = get_exercise(grade_id).points
    assert graded["scores"][behaviour] == 20 - points, graded["per_cell"][behaviour]
    assert graded["per_cell"][behaviour][grade_id] == 0
    text = outputs_text(autograded_cell(graded["course"], behaviour, grade_id, assignment)).replace("\u00a0", " ")
    assert graded["wrong"][behaviour].expected in text


@pytest.mark.parametrize(("assignment", "grade_id"), CASES)
def test_feedback_carries_the_french_explanation(graded_all, assignment, grade_id):
    graded = graded_all(assignment)
    behaviour = graded["cases"][grade_id]
    page = graded["course"] / "feedback" / behaviour / assignment / f"{assignment}.html"
    text = html.unescape(page.read_text(encoding="utf-8")).replace("\u00a0", " ")
    assert graded["wrong"][behaviour].expected in text
    points = get_exercise(grade_id).points
    assert f"(Note : {20 - points} / 20)" in text  # French numbers: « 17 / 20 », not « 17.0 / 20.0 »
    assert f"Note : 0 / {points} " in text


def test_deleted_test_cell_is_restored_and_graded(graded):
    assert graded["scores"]["test_cell_deleted"] == 20
    assert graded["per_cell"]["test_cell_deleted"]["tp1_vjp"] == get_exercise("tp1_vjp").points


def test_edited_test_cell_is_restored_and_graded(graded):
    assert graded["scores"]["test_cell_edited"] == 20 - get_exercise("tp1_hand_grad").points
    text = outputs_text(autograded_cell(graded["course"], "test_cell_edited", "tp1_hand_grad"))
    assert "Vous divisez par 3" in text.replace("\u00a0", " ")


def test_warning_on_stderr_costs_no_point(graded):
    cell = autograded_cell(graded["course"], "warning_on_stderr", "tp1_predict")
    assert graded["scores"]["warning_on_stderr"] == 20
    assert not any(o.get("name") == "stderr" for o in cell.outputs)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_copy_of_lesson_cells_scores_at_most_five(graded_all, assignment):
    """A student who only re-types lesson cells into the answers (fixture ``LESSON_COPY``) cannot pass the TP."""
    fixtures = mistakes(assignment)
    if not hasattr(fixtures, "LESSON_COPY"):
        pytest.skip(f"{assignment} : pas encore de copie « recopie des cellules de la leçon »")
    graded = graded_all(assignment)
    copy = "recopie_de_la_lecon"
    assert graded["scores"][copy] <= fixtures.LESSON_COPY_MAX, graded["per_cell"][copy]
