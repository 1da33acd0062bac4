"""Contributor habits hold: hooks pinned like the environment, notebook stripping keeps nbgrader's metadata,
codespell sees English typos but not French strings, `make help` documents every target, CI runs the README's
test command."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import yaml

from tests.notebook_tools import ROOT

BIN = Path(sys.executable).parent


def _dev_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for requirement in project["optional-dependencies"]["dev"]:
        name, version = requirement.split("==")
        pins[name.lower()] = version
    return pins


def test_pre_commit_hooks_install_from_pypi_with_the_environments_pins():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    pins = _dev_pins()
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert {repo["repo"] for repo in config["repos"]} == {"local"}, "hooks must come from PyPI, not from git hosts"
    assert {hook["id"] for hook in hooks} >= {"nbstripout", "ruff-check", "ruff-format", "codespell", "actionlint"}
    for hook in hooks:
        assert hook["language"] == "python"
        for dependency in hook["additional_dependencies"]:
            name, version = dependency.split("==")
            assert pins.get(name.lower()) == version, f"{hook['id']}: {dependency} differs from pyproject.toml"


def test_nbstripout_removes_outputs_and_keeps_nbgrader_metadata(tmp_path):
    source = ROOT / "source" / "tp1_gradients" / "tp1_gradients.ipynb"
    original = nbformat.read(source, as_version=4)
    dirty = nbformat.read(source, as_version=4)
    code = next(cell for cell in dirty.cells if cell.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="bruit\n")]
    code.execution_count = 7
    copy = tmp_path / "tp.ipynb"
    nbformat.write(dirty, copy)
    subprocess.run([BIN / "nbstripout", "--keep-id", copy], check=True)
    stripped = nbformat.read(copy, as_version=4)
    assert all(not cell.get("outputs") for cell in stripped.cells)
    assert [cell.get("metadata") for cell in stripped.cells] == [cell.get("metadata") for cell in original.cells]
    assert [cell.get("id") for cell in stripped.cells] == [cell.get("id") for cell in original.cells]
    assert any("nbgrader" in cell.metadata for cell in stripped.cells)


def test_codespell_flags_english_typos_and_leaves_french_strings_alone(tmp_path):
    module = tmp_path / "module.py"
    module.write_text('MESSAGE = "Exemple : une somme invalide"  # French text is checked by hunspell\n')
    clean = subprocess.run([BIN / "codespell", module], cwd=ROOT, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    module.write_text('MESSAGE = "Exemple"  # teh gradient is recieved here\n')
    typo = subprocess.run([BIN / "codespell", module], cwd=ROOT, capture_output=True, text=True)
    assert typo.returncode != 0 and "recieved" in typo.stdout


def test_make_help_lists_every_target_in_french():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[0] for line in shown.splitlines()[1:] if line.strip()}
    assert set(phony) == listed
    assert "Lance" in shown or "lance" in shown


def test_ci_and_github_run_the_readme_test_command_with_lint_first():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8"))
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("make test" in step for step in steps)
    test_rule = re.search(r"^test:(.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M).group(1).split()
    assert test_rule.index("lint") < test_rule.index("system-deps") and "types" in test_rule


def test_licence_matches_the_project_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert project["license"]["text"] == "MIT" and licence.startswith("MIT License")
