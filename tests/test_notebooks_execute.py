"""Every lesson and every source assignment runs top to bottom; only cells tagged `raises-exception` may fail."""

from __future__ import annotations

import time

import pytest

from tests.notebook_tools import ASSIGNMENTS, LESSONS, ROOT, execute, nbgrader_meta, outputs_text, read, source_notebook

pytestmark = pytest.mark.notebooks


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_runs_top_to_bottom(path):
    start = time.perf_counter()
    nb = execute(read(path), cwd=path.parent)
    elapsed = time.perf_counter() - start
    print(f"{path.name} : {elapsed:.1f} s")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        failed = any(o.output_type == "error" for o in cell.outputs)
        tagged = "raises-exception" in cell.metadata.get("tags", [])
        assert failed == tagged, f"{path.name}, cellule {cell.id} : erreur inattendue ou erreur annoncée absente"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_assignment_runs_and_passes_every_check(assignment):
    path = source_notebook(assignment)
    nb = execute(read(path), cwd=path.parent)
    graded = [c for c in nb.cells if nbgrader_meta(c).get("grade") and c.cell_type == "code"]
    assert graded
    for cell in graded:
        text = outputs_text(cell)
        grade_id = nbgrader_meta(cell)["grade_id"]
        assert text.startswith(f"✅ {grade_id} — Correct"), text
        assert "❌" not in text and "⬜" not in text
        assert not any(o.get("name") == "stderr" for o in cell.outputs), f"{grade_id} écrit sur stderr"


def test_lesson_names_are_the_fixed_ones():
    names = {p.name for p in LESSONS}
    assert "01_calcul_de_gradients.ipynb" in names
    assert (ROOT / "source" / "tp1_gradients" / "tp1_gradients.ipynb").exists()
