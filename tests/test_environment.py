"""The environments and the nbgrader configuration say what the README promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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
        pip = re.match(r"^\s+- ([A-Za-z0-9_.-]+)==(\S+)\s*$", line)  # the `pip:` section (PyPI only)
        if pip:
            pins[pip.group(1).lower()] = pip.group(2)
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
    assert out.startswith("utilisation\u00a0: autograder")
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


# --- JupyterLab as students meet it (`make install` writes jupyter/ into the environment) ---------------------

LAB_CONFIG = ROOT / "jupyter"
NBGRADER_PLUGINS = ("formgrader", "create-assignment", "course-list", "assignment-list", "menu", "validate-assignment")


def installed_lab_config_files() -> list[Path]:
    return sorted(p.relative_to(LAB_CONFIG) for p in (LAB_CONFIG / "etc").rglob("*.json")) + sorted(
        p.relative_to(LAB_CONFIG) for p in (LAB_CONFIG / "share").rglob("*.json")
    )


def test_make_install_copies_the_lab_configuration_into_the_environment():
    assert installed_lab_config_files()
    for relative in installed_lab_config_files():
        installed = Path(sys.prefix) / relative
        assert installed.is_file(), f"{installed} manque : lancez make install"
        assert json.loads(installed.read_text()) == json.loads((LAB_CONFIG / relative).read_text()), relative


def test_lab_defaults_to_french_with_the_installed_language_pack():
    from importlib.metadata import entry_points

    overrides = json.loads((LAB_CONFIG / "share/jupyter/lab/settings/overrides.d/cours-autograd.json").read_text())
    locale = overrides["@jupyterlab/translation-extension:plugin"]["locale"]
    assert locale == "fr_FR"
    assert locale in {e.name for e in entry_points(group="jupyterlab.languagepack")}


@pytest.fixture
def student_profile(tmp_path, monkeypatch):
    """The course environment's Jupyter configuration alone (no personal ~/.jupyter)."""
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    return tmp_path


def server_extensions() -> dict[str, bool]:
    from jupyter_server.serverapp import ServerApp

    app = ServerApp()
    app.find_server_extensions()
    return {name: enabled for name, enabled in app.jpserver_extensions.items() if name.startswith("nbgrader")}


def disabled_lab_plugins() -> set[str]:
    from jupyterlab_server.config import get_static_page_config

    return {name for name, off in get_static_page_config().get("disabledExtensions", {}).items() if off}


def test_nbgrader_plugin_names_are_those_of_the_installed_extension():
    """A misspelt plugin name would silently disable nothing: the names must exist in nbgrader's lab extension."""
    static = Path(sys.prefix) / "share/jupyter/labextensions/@jupyter/nbgrader/static"
    code = "".join(p.read_text(errors="replace") for p in static.glob("*.js"))
    for plugin in NBGRADER_PLUGINS:
        assert f'"@jupyter/nbgrader:{plugin}"' in code, plugin
    declared = json.loads((Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/nbgrader.json").read_text())
    ours = json.loads((LAB_CONFIG / "etc/jupyter/jupyter_server_config.json").read_text())
    assert set(ours["ServerApp"]["jpserver_extensions"]) == set(declared["ServerApp"]["jpserver_extensions"])


def test_students_get_validate_but_no_instructor_extension(student_profile):
    assert server_extensions() == {
        "nbgrader.server_extensions.formgrader": False,
        "nbgrader.server_extensions.course_list": False,
        "nbgrader.server_extensions.assignment_list": False,
        "nbgrader.server_extensions.validate_assignment": True,
    }
    disabled = disabled_lab_plugins()
    assert {f"@jupyter/nbgrader:{p}" for p in NBGRADER_PLUGINS[:-1]} <= disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled


def test_make_lab_instructor_brings_the_instructor_extensions_back(student_profile, monkeypatch):
    makefile = (ROOT / "Makefile").read_text()
    assert "JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/instructor" in makefile
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(LAB_CONFIG / "instructor"))
    assert all(server_extensions().values())
    assert not {p for p in disabled_lab_plugins() if p.startswith("@jupyter/nbgrader")}


def test_make_lab_opens_the_sommaire():
    dry_run = subprocess.run(
        ["make", "-n", "lab", f"VENV={sys.prefix}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    command = next(line for line in dry_run.splitlines() if "jupyter lab" in line)
    assert command.endswith("./notebooks/00_sommaire.ipynb"), command
    assert (ROOT / "notebooks" / "00_sommaire.ipynb").is_file()


def test_make_test_installs_the_system_packages_the_tests_need():
    dry_run = subprocess.run(
        ["make", "-n", "test", f"VENV={sys.prefix}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for package in ("chromium", "bubblewrap", "hunspell", "hunspell-fr"):
        assert f'missing="$missing {package}"' in dry_run, package
