"""release/ is nbgrader's output for source/, committed, clean and in sync; stored notebooks carry no outputs."""

from __future__ import annotations

import shutil

import pytest

from autograder.exercise import all_exercises
from tests.conftest import nbgrader
from tests.notebook_tools import ASSIGNMENTS, LESSONS, ROOT, nbgrader_meta, read, release_notebook, source_notebook

STORED = LESSONS + [source_notebook(a) for a in ASSIGNMENTS] + [release_notebook(a) for a in ASSIGNMENTS]


def test_expected_assignments_exist():
    assert "tp1_gradients" in ASSIGNMENTS
    for assignment in ASSIGNMENTS:
        assert source_notebook(assignment).exists()
        assert release_notebook(assignment).exists(), f"release/{assignment} manquant : lancez `make release`"


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_without_outputs(path):
    nb = read(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: la cellule {cell.id} a des sorties"
            assert cell.execution_count is None, f"{path.name}: la cellule {cell.id} a un numéro d'exécution"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_has_no_solution_nor_hidden_test(assignment):
    text = release_notebook(assignment).read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME"):
        assert marker not in text
    source = read(source_notebook(assignment))
    release = read(release_notebook(assignment))
    hidden_seeds = [c.source.split("### BEGIN HIDDEN TESTS")[1] for c in source.cells if "HIDDEN TESTS" in c.source]
    assert hidden_seeds, "the source must contain hidden tests"
    for hidden in hidden_seeds:
        assert hidden.split("### END")[0].strip() not in text
    stubs = [c for c in release.cells if nbgrader_meta(c).get("solution")]
    assert stubs and all("# VOTRE CODE ICI" in c.source for c in stubs)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_equals_fresh_generation(course, assignment):
    shutil.rmtree(course / "release")
    nbgrader(course, "generate_assignment", assignment, "--force")
    fresh = (course / "release" / assignment / f"{assignment}.ipynb").read_bytes()
    assert fresh == release_notebook(assignment).read_bytes(), (
        f"release/{assignment} n'est plus synchronisé avec source/ : lancez `make release` et commitez le résultat."
    )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grade_cells_match_the_exercise_catalogue(assignment):
    """Each test cell's grade_id is an exercise id of the package, with the same points; all locked."""
    exercises = {e.id: e for e in all_exercises() if e.assignment == assignment}
    cells = read(source_notebook(assignment)).cells
    graded = {nbgrader_meta(c)["grade_id"]: c for c in cells if nbgrader_meta(c).get("grade")}
    assert set(graded) == set(exercises)
    for grade_id, cell in graded.items():
        meta = nbgrader_meta(cell)
        assert meta["points"] == exercises[grade_id].points
        assert meta["locked"], f"{grade_id} doit être verrouillée"
        assert f'check("{grade_id}", globals())' in cell.source
        assert "### BEGIN HIDDEN TESTS" in cell.source
    assert sum(nbgrader_meta(c)["points"] for c in graded.values()) == 20
    ids = [nbgrader_meta(c)["grade_id"] for c in cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade_id en double"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_both_sides(course, assignment):
    """nbgrader's own validator: the source passes every test cell, the untouched release passes none."""
    import os

    from nbgrader.validator import Validator

    from tests.notebook_tools import kernel_env

    os.environ["PATH"] = kernel_env()["PATH"]
    source = Validator().validate(str(course / "source" / assignment / f"{assignment}.ipynb"))
    assert not source.get("failed") and not source.get("changed"), source
    release = Validator(invert=True).validate(str(course / "release" / assignment / f"{assignment}.ipynb"))
    assert not release.get("passed"), release
