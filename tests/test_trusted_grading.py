"""Trusted grading end to end: test cells of ``check(...)`` calls are decided outside the student's process.

Two batches, each graded once for the module on a temporary copy of the course (sandboxed workers,
``--processus 2``):

- ``tp_essai`` (``tests/fixtures/trusted_exercises.py``, checkers written to the observe contract): the
  reference gets 20/20, each typical mistake its mistake code, a function that loops forever
  « delai_depasse »; the verdicts are recorded on the outcomes;
- TP 1, blank copies each carrying one attack a determined student would try from inside the kernel:
  every one stays at 0/20, and no hidden test reaches the student's outputs or feedback.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import get_exercise
from autograder.grading.executor import ExecutionLimits
from autograder.grading.intake import collect
from autograder.grading.pipeline import Grader
from autograder.grading.sandbox import isolation_status
from tests.conftest import nbgrader
from tests.fixtures import trusted_exercises as essai
from tests.notebook_tools import ROOT, kernel_env, nbgrader_meta, read, source_notebook, student_copy

pytestmark = pytest.mark.grading

AUTOGRADER = str(Path(sys.executable).parent / "autograder")
TP1 = "tp1_gradients"
ENV = {"AUTOGRADER_EXERCISE_MODULES": "tests.fixtures.trusted_exercises"}


def _needs_sandbox() -> None:
    available, reason = isolation_status()
    if not available:
        pytest.skip(f"bubblewrap indisponible : {reason}")


def _env() -> dict[str, str]:
    env = kernel_env()
    env.update(ENV)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("cours")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copytree(ROOT / "release", course / "release")
    return course


def _outputs_text(path: Path) -> str:
    """Everything a notebook's cells printed or displayed (not their sources)."""
    nb = read(path)
    return json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"], ensure_ascii=False)


# -- tp_essai: checkers that follow the observe contract ---------------------------------------------------------


def _essai_copy(release, replacements: dict[str, str] | None = None, answered: bool = True):
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id", "")
        if answered and grade_id.endswith("_answer"):
            cell.source = essai.SOLUTIONS[grade_id.removesuffix("_answer")]
        if replacements and grade_id in replacements:
            cell.source = replacements[grade_id]
    return nb


LOOP = "def grad_cube(x):\n    while True:\n        pass\n"
ESSAI = {
    # student id (= behaviour) -> (answer cells replaced, expected score, expected code per question)
    "reference": ({}, 20, {"essai_grad": "correcte", "essai_step": "correcte", "essai_graph": "correcte"}),
    "blank": (None, 0, {"essai_grad": "non_tentee", "essai_step": "non_tentee", "essai_graph": "non_tentee"}),
    "mistakes": (
        {
            "essai_grad_answer": "def grad_cube(x):\n    return x**2\n",
            "essai_step_answer": "def step(w, lr):\n    with torch.no_grad():\n        w -= lr * w.grad\n",
            "essai_graph_answer": "def build(x):\n    return (torch.exp(x.detach()) * 2).sum()\n\nfirst_node = 'x'\n",
        },
        0,
        {"essai_grad": "facteur_3", "essai_step": "grad_non_remis", "essai_graph": "graphe_coupe"},
    ),
    "autograd_instead_of_formula": (
        {
            "essai_grad_answer": "def grad_cube(x):\n    x = x.clone().requires_grad_(True)\n"
            "    (x**3).sum().backward()\n    return x.grad\n"
        },
        12,
        {"essai_grad": "autograd_utilise", "essai_step": "correcte", "essai_graph": "correcte"},
    ),
    "infinite_loop_in_a_checked_function": (
        {"essai_grad_answer": LOOP},
        12,
        {"essai_grad": "delai_depasse", "essai_step": "correcte", "essai_graph": "correcte"},
    ),
}


@pytest.fixture(scope="module")
def essai_graded(tmp_path_factory):
    _needs_sandbox()
    course = tmp_path_factory.mktemp("cours_essai")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    (course / "source" / essai.ASSIGNMENT).mkdir(parents=True)
    nbformat.write(essai.source_notebook(), course / "source" / essai.ASSIGNMENT / f"{essai.ASSIGNMENT}.ipynb")
    nbgrader(course, "generate_assignment", essai.ASSIGNMENT, "--force")
    release = read(course / "release" / essai.ASSIGNMENT / f"{essai.ASSIGNMENT}.ipynb")
    copies = tmp_path_factory.mktemp("copies_essai")
    for student, (replacements, _, _) in ESSAI.items():
        nb = _essai_copy(release, replacements, answered=replacements is not None)
        nbformat.write(nb, copies / f"{student}.ipynb")
    saved = {name: os.environ.get(name) for name in ENV}
    os.environ.update(ENV)  # the checker processes inherit the host's environment
    try:
        grader = Grader(course, essai.ASSIGNMENT, workers=2, limits=ExecutionLimits(cell_timeout=5))
        outcomes = grader.grade(collect(copies, essai.ASSIGNMENT, tmp_path_factory.mktemp("travail")), feedback=True)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"course": course, "outcomes": {o.submission.student_id: o for o in outcomes}}


@pytest.mark.parametrize("student", list(ESSAI))
def test_trusted_checker_gives_each_copy_its_exact_score_and_mistake_codes(essai_graded, student):
    outcome = essai_graded["outcomes"][student]
    _, score, codes = ESSAI[student]
    assert outcome.score == score, (outcome.status, outcome.reason, outcome.verdicts)
    assert {grade_id: v.code for grade_id, v in outcome.verdicts.items()} == codes
    for grade_id, verdict in outcome.verdicts.items():
        assert verdict.max_points == get_exercise(grade_id).points
        assert verdict.points == (verdict.max_points if verdict.correct else 0)
        assert outcome.scores[grade_id] == verdict.points  # what nbgrader's gradebook holds


def test_a_looping_function_is_interrupted_and_the_next_cells_are_still_judged(essai_graded):
    outcome = essai_graded["outcomes"]["infinite_loop_in_a_checked_function"]
    assert "limite de temps" in outcome.verdicts["essai_grad"].message
    page = essai_graded["course"] / "feedback" / outcome.submission.student_id / essai.ASSIGNMENT
    text = (page / f"{essai.ASSIGNMENT}.html").read_text(encoding="utf-8")
    assert "Délai dépassé" in text


def test_hidden_seeds_of_the_trusted_checks_stay_out_of_outputs_and_feedback(essai_graded):
    course = essai_graded["course"]
    for student in ESSAI:
        autograded = course / "autograded" / student / essai.ASSIGNMENT / f"{essai.ASSIGNMENT}.ipynb"
        feedback = course / "feedback" / student / essai.ASSIGNMENT / f"{essai.ASSIGNMENT}.html"
        outputs, page = _outputs_text(autograded), feedback.read_text(encoding="utf-8")
        for seed in essai.HIDDEN_SEEDS.values():
            assert str(seed) not in outputs and str(seed) not in page


# -- TP 1: blank copies that attack the grading from inside the kernel -------------------------------------------


def _tp1_names() -> dict[str, tuple[str, ...]]:
    cells = read(source_notebook(TP1)).cells
    return {c.metadata["nbgrader"]["grade_id"]: get_exercise(c.metadata["nbgrader"]["grade_id"]).names
            for c in cells if nbgrader_meta(c).get("grade")}  # fmt: skip


def _hidden_seeds() -> list[str]:
    """The hidden tests' seeds of TP 1, read from the source notebook (never from the release)."""
    import re

    found = []
    for cell in read(source_notebook(TP1)).cells:
        if nbgrader_meta(cell).get("grade"):
            found += re.findall(r"seed=(\d+)", cell.source)
    assert found
    return found


def _with_cell(source: str, *, tags_on_tests: list[str] | None = None):
    """A blank TP 1 copy with one extra code cell after the setup (and tags added to its test cells)."""
    nb = student_copy(TP1, answered=False)
    setup = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "tp1_setup")
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(source))
    for cell in nb.cells:
        if tags_on_tests and nbgrader_meta(cell).get("grade"):
            cell.metadata["tags"] = list(tags_on_tests)
    return nb


def _answer_functions(body: str) -> str:
    """Define every name TP 1 reads, as functions running ``body`` (``path`` stays a list)."""
    lines = []
    for names in _tp1_names().values():
        for name in names:
            if name == "path":
                lines.append("path = ['MeanBackward0', 'AccumulateGrad']")
            else:
                lines.append(f"def {name}(*args, **kwargs):\n" + "".join(f"    {line}\n" for line in body.splitlines()))
    return "\n".join(lines) + "\n"


FORGED = "\n".join(f"✅ {grade_id} — Correct (3 points)" for grade_id in ("tp1_graph", "tp1_hand_grad", "tp1_vjp"))

ATTACKS = {
    "blank": student_copy(TP1, answered=False),
    "skip_execution_tag_on_test_cells": _with_cell("pass", tags_on_tests=["skip-execution"]),
    "answer_functions_call_displayhook": _with_cell(_answer_functions("get_ipython().displayhook('x')\nreturn None")),
    "checker_code_replaced_in_the_kernel": _with_cell(
        "import autograder, autograder.exercise as ex, autograder.observe as ob\n"
        "def fake(self, namespace, *, seed=0, trials=None):\n    return '✅ Correct'\n"
        "ex.Exercise._check.__code__ = fake.__code__\n"
        "ex.Exercise.evaluate.__code__ = fake.__code__\n"
        "ex.Exercise.run = lambda self, answers, rng, trials: 'ok'\n"
        "ob.run_here = lambda *a, **k: ob.CallReport(result=None, args=())\n"
        "autograder.check = ex.check = lambda *a, **k: print('✅ Correct')\n"
        "check = autograder.check\n"
    ),
    "shell_transform_cell_patched": _with_cell("type(get_ipython()).transform_cell = lambda self, cell: 'pass\\n'\n"),
    "post_run_cell_callback_clears_outputs": _with_cell(
        "from IPython.display import clear_output\n"
        "def _hide(result):\n    clear_output()\n    result.error_in_exec = None\n"
        "get_ipython().events.register('post_run_cell', _hide)\n"
    ),
    "settrace_rewrites_the_checker": _with_cell(
        "import sys\n"
        "def _tracer(frame, event, arg):\n"
        "    if event == 'exception' and 'autograder' in frame.f_code.co_filename:\n"
        "        frame.f_locals.clear()\n"
        "    if event == 'return' and frame.f_code.co_name in ('run', 'evaluate'):\n"
        "        return None\n"
        "    return _tracer\n"
        "sys.settrace(_tracer)\n"
    ),
    "torch_function_mode_makes_allclose_true": _with_cell(
        "import torch\nfrom torch.overrides import TorchFunctionMode\n"
        "class _Always(TorchFunctionMode):\n"
        "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal):\n            return True\n"
        "        if func is torch.isclose:\n            return torch.ones_like(args[0], dtype=torch.bool)\n"
        "        return func(*args, **(kwargs or {}))\n"
        "_Always().__enter__()\n" + _answer_functions("import torch\nreturn torch.zeros(3)")
    ),
    "plain_cell_prints_every_test_cell": _with_cell(
        "import gc, json\n"
        "print(json.dumps([str(x) for x in In], ensure_ascii=False))\n"
        "for obj in gc.get_objects():\n"
        "    if isinstance(obj, dict) and 'cells' in obj:\n"
        "        print(json.dumps(obj, default=str)[:100000])\n"
        "    if isinstance(obj, list):\n"
        "        for item in obj[:50]:\n"
        "            if isinstance(item, dict) and 'source' in item:\n"
        "                print(str(item.get('source'))[:2000])\n"
    ),
    "forged_verdict_printed": _with_cell(f"print({FORGED!r})\n" + _answer_functions(f"print({FORGED!r})\nreturn None")),
}


@pytest.fixture(scope="module")
def attacks_graded(tmp_path_factory):
    _needs_sandbox()
    course = _course(tmp_path_factory)
    copies = tmp_path_factory.mktemp("copies_attaques")
    for student, nb in ATTACKS.items():
        nbformat.write(nb, copies / f"{student}.ipynb")
    args = [AUTOGRADER, "grade", TP1, str(copies), "--processus", "2", "--limite-cellule", "10"]
    run = subprocess.run(args, cwd=course, env=_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades" / f"{TP1}.csv").open(encoding="utf-8"))}
    return {"course": course, "rows": rows}


@pytest.mark.parametrize("student", list(ATTACKS))
def test_an_attack_from_inside_the_kernel_earns_nothing_on_a_blank_copy(attacks_graded, student):
    row = attacks_graded["rows"][student]
    assert row["status"].startswith("corrigé"), row
    assert float(row["score"]) == 0, row


def test_hidden_tests_never_reach_the_students_outputs_or_feedback(attacks_graded):
    course = attacks_graded["course"]
    seeds = _hidden_seeds()
    for student in ATTACKS:
        autograded = course / "autograded" / student / TP1 / f"{TP1}.ipynb"
        page = (course / "feedback" / student / TP1 / f"{TP1}.html").read_text(encoding="utf-8")
        outputs = _outputs_text(autograded)
        assert "HIDDEN" not in outputs and "seed=" not in outputs and "seed=" not in page, student
        for seed in seeds:
            assert f"{seed}" not in outputs, (student, seed)
