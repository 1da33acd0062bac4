"""The environments and the nbgrader configuration say what the README promises."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.notebook_tools import ROOT

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
AUTOGRADER = str(Path(sys.executable).parent / "autograder")  # the console script installed by pip


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement} n'est pas épinglé (==)"
        pins[name.lower()] = version
    return pins


def conda_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s+- ([A-Za-z0-9_.-]+)=([^=\s]+)(=\S+)?\s*$", line)
        if match and match.group(1) != "python":
            pins[CONDA_NAMES.get(match.group(1), match.group(1)).lower()] = match.group(2)
    return pins


def test_conda_and_pip_pin_the_same_versions():
    assert conda_pins() == pyproject_pins()


def test_torch_is_the_cpu_build_pinned_by_the_guide():
    assert pyproject_pins()["torch"] == "2.13.0"
    assert "pytorch=2.13.0=cpu_*" in (ROOT / "environment.yml").read_text()


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in pyproject_pins().items():
        assert version(name).split("+")[0] == pinned, name


def test_nbgrader_config_is_french_and_safe():
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.ClearSolutions.code_stub == {"python": "# VOTRE CODE ICI\nraise NotImplementedError()"}
    assert config.ClearSolutions.text_stub == "VOTRE RÉPONSE ICI"
    assert config.Execute.timeout > 0
    assert config.IgnorePattern.enabled and re.search(config.IgnorePattern.pattern, "UserWarning: x")
    assert config.OverwriteCells.add_missing_cells is True
    assert config.CourseDirectory.db_url.endswith("gradebook.db?timeout=60")
    assert "ÉCHEC" in config.Validator.failed_warning


def test_gitignore_covers_grading_outputs():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("submitted/", "autograded/", "feedback/", "gradebook.db", ".venv/"):
        assert entry in ignored


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_help_is_french():
    out = subprocess.run([AUTOGRADER, "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("utilisation : autograder")
    assert "affiche cette aide" in out and "commandes" in out


def test_cli_lists_tp1_exercises_with_points():
    out = subprocess.run(
        [AUTOGRADER, "exercices", "--tp", "tp1_gradients"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[0] == "tp1_gradients — 20 points"
    assert "tp1_vjp" in out


def test_cli_unknown_exercise_is_a_french_error():
    done = subprocess.run([AUTOGRADER, "indices", "tp9_inconnu"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Exercice inconnu" in done.stderr
