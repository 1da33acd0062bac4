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
