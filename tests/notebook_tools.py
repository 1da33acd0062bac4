"""Helpers shared by the tests: read course notebooks, build student copies, execute notebooks."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "source").iterdir() if p.is_dir())
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.MULTILINE)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def source_notebook(assignment: str) -> Path:
    return ROOT / "source" / assignment / f"{assignment}.ipynb"


def release_notebook(assignment: str) -> Path:
    return ROOT / "release" / assignment / f"{assignment}.ipynb"


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def solutions(assignment: str) -> dict[str, str]:
    """Cell id -> source of the reference notebook, solution markers removed (as a student would type it)."""
    return {c.id: _SOLUTION_MARKERS.sub("", c.source) for c in read(source_notebook(assignment)).cells}


def student_copy(assignment: str, replacements: dict[str, str] | None = None, *, answered: bool = True):
    """The release notebook as a student would hand it in.

    ``answered``: answer cells hold the reference solution (markers removed); otherwise the stubs stay.
    ``replacements``: cell id -> source, applied last (a wrong answer, an edited test cell...).
    """
    nb = read(release_notebook(assignment))
    reference = solutions(assignment)
    for cell in nb.cells:
        if answered and nbgrader_meta(cell).get("solution"):
            cell.source = reference[cell.id]
        if replacements and cell.id in replacements:
            cell.source = replacements[cell.id]
    return nb


def answer_namespace(assignment: str, replacements: dict[str, str] | None = None) -> dict:
    """Run the locked setup and the answer cells of a student copy in a fresh namespace (no kernel)."""
    nb = student_copy(assignment, replacements)
    namespace: dict = {"__name__": "__student__"}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and (meta.get("solution") or (meta.get("locked") and not meta.get("grade"))):
            exec(compile(cell.source, f"<{cell.id}>", "exec"), namespace)
    return namespace


def kernel_env() -> dict[str, str]:
    """Environment for nbgrader/jupyter subprocesses: this interpreter's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 120) -> nbformat.NotebookNode:
    """Execute a notebook with nbclient; cells tagged ``raises-exception`` may fail, no other."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    return "\n".join(parts)
