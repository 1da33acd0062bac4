"""« Run All » without dead ends in a student's kernel; the same notebook still fails its test cells under grading.

A student's kernel (nbclient here, JupyterLab in ``test_browser.py``) runs a blank TP with ``allow_errors=False``:
nbclient stops at the first cell whose reply has ``status: error``, exactly like JupyterLab's « Exécuter toutes les
cellules ». Under grading (``NBGRADER_EXECUTION`` in the kernel's environment, as nbgrader and our grader set it)
every test cell of the same blank copy holds an error output, and nbgrader gives it 0.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import nbgrader
from tests.fixtures import mistakes
from tests.notebook_tools import ASSIGNMENTS, ROOT, nbgrader_meta, outputs_text, release_notebook, student_copy

pytestmark = pytest.mark.notebooks

HTML = "text/html"


def run(nb: nbformat.NotebookNode, cwd, *, allow_errors: bool = False) -> nbformat.NotebookNode:
    NotebookClient(
        nb, timeout=180, kernel_name="python3", allow_errors=allow_errors, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def grade_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


def errors(cell) -> list:
    return [o for o in cell.outputs if o.output_type == "error"]


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


@pytest.fixture(autouse=True)
def students_kernel(monkeypatch):
    """The kernels these tests start are students' kernels unless a test says otherwise."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_tp_runs_to_its_last_cell_in_a_students_kernel(assignment):
    nb = run(student_copy(assignment, answered=False), release_notebook(assignment).parent)

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "l'exécution s'est arrêtée avant la dernière cellule"
    assert not [c.id for c in code if errors(c)]
    for cell in grade_cells(nb):
        (box,) = [o for o in cell.outputs if HTML in o.get("data", {})]
        assert 'class="autograder-verdict autograder-verdict-not_attempted"' in box.data[HTML]
        assert plain(box.data["text/plain"]).startswith(f"⬜ {nbgrader_meta(cell)['grade_id']} — Question non tentée")
    # Scratch cells that call an unanswered function say so in one French line, without a traceback.
    scratch = [plain(outputs_text(c)) for c in code if not nbgrader_meta(c).get("grade")]
    stubbed = [text for text in scratch if "NotImplementedError" in text]
    assert stubbed
    for text in stubbed:
        (notice,) = [line for line in text.splitlines() if "NotImplementedError" in line]
        assert notice.startswith("⬜ ") and text.rstrip("\n").endswith(notice), text
        assert "Traceback" not in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_wrong_answer_shows_a_red_box_and_the_run_goes_on(assignment):
    fixtures = mistakes(assignment)
    grade_id, behaviour = next(iter(fixtures.NBGRADER_CASES.items()))
    wrong = next(w for w in fixtures.WRONG_ANSWERS if w.behaviour == behaviour)
    nb = run(student_copy(assignment, {wrong.cell_id: wrong.source}), release_notebook(assignment).parent)

    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    for cell in grade_cells(nb):
        (box,) = [o for o in cell.outputs if HTML in o.get("data", {})]
        text = plain(box.data["text/plain"])
        if nbgrader_meta(cell)["grade_id"] == grade_id:
            assert "autograder-verdict-incorrect" in box.data[HTML]
            assert text.startswith(f"❌ {grade_id} — Réponse incorrecte") and wrong.expected in text, text
        else:
            assert "autograder-verdict-correct" in box.data[HTML] and text.startswith("✅"), text


def test_other_not_implemented_errors_keep_their_traceback_and_stop_the_run(tmp_path):
    """Only a stub written in the notebook is forgiven: library code and explicit messages still fail."""
    cells = [
        "import autograder",
        "namespace = {}\nexec('def helper():\\n    raise NotImplementedError()', namespace)\nnamespace['helper']()",
        "print('après')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    with pytest.raises(CellExecutionError, match="NotImplementedError"):
        run(nb, tmp_path)
    assert nb.cells[2].execution_count is None

    nb.cells[1].source = "def f():\n    raise NotImplementedError('pas encore')\nf()"
    with pytest.raises(CellExecutionError, match="pas encore"):
        run(nb, tmp_path)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_under_grading_the_blank_tp_fails_every_test_cell(assignment, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    nb = student_copy(assignment, answered=False)
    # A student cannot leave grading by removing the variable before the course is imported.
    nb.cells.insert(0, nbformat.v4.new_code_cell("import os\nos.environ.pop('NBGRADER_EXECUTION', None)"))
    run(nb, release_notebook(assignment).parent, allow_errors=True)

    for cell in grade_cells(nb):
        (error,) = errors(cell)
        assert plain(error.evalue).startswith(f"⬜ {nbgrader_meta(cell)['grade_id']} — Question non tentée")
        assert not any(HTML in o.get("data", {}) for o in cell.outputs)
    scratch = [c for c in nb.cells if c.cell_type == "code" and not nbgrader_meta(c) and c.outputs]
    assert any(e.ename == "NotImplementedError" for c in scratch for e in errors(c))


def test_nbgrader_gives_the_blank_tp_0_and_validate_reports_each_question(tmp_path):
    assignment = ASSIGNMENTS[0]
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "source" / assignment, tmp_path / "source" / assignment)
    nbgrader(tmp_path, "generate_assignment", assignment, "--force")
    folder = tmp_path / "submitted" / "vide" / assignment
    folder.mkdir(parents=True)
    nbformat.write(student_copy(assignment, answered=False), folder / f"{assignment}.ipynb")
    nbgrader(tmp_path, "autograde", assignment)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        assert gb.find_submission(assignment, "vide").score == 0
        assert gb.find_assignment(assignment).max_score == 20

    # The « Validate » button of JupyterLab runs nbgrader's validator: every question is reported as failing.
    result = nbgrader(tmp_path, "validate", str(folder / f"{assignment}.ipynb"))
    report = plain(result.stdout)
    assert "ÉCHEC DE LA VALIDATION" in report, report
    for cell in grade_cells(nbformat.read(release_notebook(assignment), as_version=4)):
        assert f"⬜ {nbgrader_meta(cell)['grade_id']} — Question non tentée" in report


def test_under_our_grader_a_student_function_patching_the_mode_does_not_turn_a_failure_into_a_display():
    from autograder.grading.executor import ExecutionLimits, WorkerPool
    from autograder.grading.sandbox import isolation_status

    """The grader restores the package before each test cell; a student function called *by the check* patches it
    again, too late: the check decided to fail its cell before calling student code."""
    cells = [
        "from autograder import check",
        "def build_graph(x):\n    import os\n    import autograder.mode as mode\n"
        "    mode.interactive = lambda: True\n    mode.grading = lambda: False\n"
        "    os.environ.pop('NBGRADER_EXECUTION', None)\n    return x.sum()",
        "check('tp1_graph', globals())",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    nb.cells[2].metadata["nbgrader"] = {
        "grade": True, "grade_id": "tp1_graph", "locked": True, "points": 1,
        "schema_version": 3, "solution": False, "task": False,
    }  # fmt: skip
    limits = ExecutionLimits(cell_timeout=60, notebook_timeout=180)
    with WorkerPool(1, limits, isolated=isolation_status()[0]) as pool:
        result = pool.execute(nb, name="mode")
    (error,) = errors(result.notebook.cells[2])
    assert plain(error["evalue"]).startswith("❌ tp1_graph — Réponse incorrecte"), error
