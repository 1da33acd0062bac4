"""The grading's processes skip jsonschema's « iri » grammar (0,9 s each); notebooks still validate the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from autograder.grading.lean_imports import skip_unused_imports
skip_unused_imports()
import nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nbformat.validate(nb)
broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
broken.cells[0].source = 3
try:
    nbformat.validate(broken)
except (nbformat.ValidationError, nbformat.validator.NotebookValidationError):
    print("invalide refusé")
print("grammaire chargée" if sys.modules.get("rfc3987_syntax") is not None else "grammaire évitée")
"""


def test_a_grading_process_validates_notebooks_without_loading_the_iri_grammar():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["invalide refusé", "grammaire évitée"]


def test_the_skip_changes_nothing_once_jsonschema_is_imported():
    pytest.importorskip("rfc3987_syntax")
    script = "import jsonschema, sys\nfrom autograder.grading.lean_imports import skip_unused_imports\n"
    script += "skip_unused_imports()\nprint(sys.modules.get('rfc3987_syntax') is not None)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr
