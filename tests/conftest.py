from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.notebook_tools import ROOT, kernel_env


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A temporary copy of the nbgrader course (config, source, release) with its own gradebook."""
    root = tmp_path / "cours"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "source", root / "source")
    shutil.copytree(ROOT / "release", root / "release")
    return root


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real nbgrader command line in a course folder."""
    result = subprocess.run(
        ["nbgrader", *args], cwd=course, env=kernel_env(), capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"nbgrader {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


# `make test-rapide` leaves out what is slow or needs system packages (markers in pyproject.toml). Modules and tests
# that run nbgrader or the grading pool, or need Debian packages, are marked here, in one place, by what they do.
_MODULE_MARKERS = {
    "test_sandbox": ("system", "grading"),  # bubblewrap, warm workers
    "test_executor": ("grading",),  # warm workers running whole notebooks
}
_TEST_MARKERS = {
    "test_release_equals_fresh_generation": ("grading",),  # nbgrader generate_assignment
    "test_nbgrader_validate_both_sides": ("grading",),  # nbgrader validate
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        names = _MODULE_MARKERS.get(module, ()) + _TEST_MARKERS.get(getattr(item, "originalname", item.name), ())
        if any("hunspell" in str(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif")):
            names += ("system",)
        for name in names:
            item.add_marker(getattr(pytest.mark, name))
