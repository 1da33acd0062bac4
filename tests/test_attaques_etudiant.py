"""A determined student attacks ``autograder grade`` (sandboxed, trusted checker): every attack here is defeated.

One grading run of TP 1 on a temporary copy of the course, two workers (``--processus 2``): the copies are
queued in order of their ids, so the attackers (``a_…``) are graded first on both workers and their trusted
checkers, then a solved copy and a blank one (``z_…``) that must keep their exact scores.

Attacks (each on a blank or wrong copy, each must earn nothing):

- the notebook file itself: test cells handed in with forged outputs (an ``execute_result`` of 3, an
  execution count), their points raised to 100, their type changed to Markdown, a new graded cell of 50 points
  invented on an answer cell;
- the wire between the student's kernel and the trusted checker: the student's agent replaced in the kernel
  so that it answers every request with forged or malformed data (a « ✅ Correct » string, a tensor whose
  shape does not match its bytes, NaN where JSON forbids it, 9 MB of JSON, deep nesting, every name claimed);
- answer functions returning hostile values: a tensor subclass whose comparisons always say « equal »,
  NaN and infinities, a complex or boolean tensor, a huge shape, an object whose ``__eq__``/``__bool__``/
  ``__float__`` lie;
- HTML in the copy: a grade id made of markup, a cell that displays a script and a Markdown cell holding one
  never reach the class report or the feedback page (which the instructor opens too) as live markup.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.grading.sandbox import isolation_status
from tests.notebook_tools import ROOT, kernel_env, nbgrader_meta, read, source_notebook, student_copy

pytestmark = pytest.mark.grading

AUTOGRADER = str(Path(sys.executable).parent / "autograder")
TP1 = "tp1_gradients"
MAX = 20.0
SCRIPT = "<script>alert('copie')</script>"
MARKUP_ID = "<img src=x onerror=alert(1)>"


def _tp1_answer_names() -> list[str]:
    from autograder import get_exercise

    names = []
    for cell in read(source_notebook(TP1)).cells:
        if nbgrader_meta(cell).get("grade"):
            names += [n for n in get_exercise(nbgrader_meta(cell)["grade_id"]).names if n not in names]
    return names


def _blank_with(source: str, *, edit=None) -> nbformat.NotebookNode:
    """A blank TP 1 copy with one extra code cell after the setup cell, then ``edit(nb)`` applied."""
    nb = student_copy(TP1, answered=False)
    setup = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "tp1_setup")
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(source))
    if edit is not None:
        edit(nb)
    return nb


def _test_cells(nb):
    return [c for c in nb.cells if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]


def _forged_outputs(nb) -> None:
    for cell in _test_cells(nb):
        cell.execution_count = 7
        cell.outputs = [
            nbformat.v4.new_output("execute_result", data={"text/plain": "3"}, execution_count=7),
            nbformat.v4.new_output("stream", name="stdout", text="✅ Correct\n"),
        ]
        cell.metadata["nbgrader"]["points"] = 100


def _script_everywhere(nb) -> None:
    _forged_outputs(nb)
    nb.cells.append(nbformat.v4.new_markdown_cell(f"Ma réponse {SCRIPT} <img src=x onerror=alert(2)>"))


def _test_cells_turned_markdown(nb) -> None:
    for index, cell in enumerate(nb.cells):
        if cell in _test_cells(nb):
            nb.cells[index] = nbformat.v4.new_markdown_cell("✅ Correct", metadata=dict(cell.metadata))


def _invented_graded_cell(nb) -> None:
    answer = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "tp1_graph_answer")
    answer.source = "build_graph = None\n"
    answer.metadata["nbgrader"].update({"grade": True, "solution": False, "locked": False, "points": 50,
                                         "grade_id": "bonus_invente"})  # fmt: skip


def _tests_downgraded_to_plain_cells(nb) -> None:
    for cell in _test_cells(nb):
        cell.metadata["nbgrader"]["grade"] = False


LEAK_EVERY_CELL = (
    "def _montre(result):\n"
    "    print('CELLULE EXECUTEE :', result.info.raw_cell)\n"
    "get_ipython().events.register('post_run_cell', _montre)\n"
)


def _markup_grade_ids(nb) -> None:
    for source in ("pass", "pass  # bis"):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {"grade_id": MARKUP_ID, "grade": False, "solution": False, "locked": False}
        nb.cells.append(cell)


def _functions_returning(expression: str) -> str:
    """Every name TP 1 reads bound to a function returning ``expression`` (``path`` and ``IDENTIFIANT`` too)."""
    lines = []
    for name in _tp1_answer_names():
        lines.append(f"def {name}(*args, **kwargs):\n    return {expression}\n")
    return "\n".join(lines)


# The student's agent replaced in the kernel: every request gets the same forged reply.
FORGED_REPLIES = [
    # a verdict written as an answer, every name claimed as a function
    '{"ok": true, "names": {}, "result": "✅ Correct (3 points)", "args": []}',
    # a tensor whose shape claims far more than its bytes
    '{"ok": true, "result": {"$": "T", "id": 0, "dtype": "float32", "shape": [1000000, 1000000], "b64": ""}}',
    # NaN and Infinity, which JSON forbids
    '{"ok": true, "result": NaN, "backward_passes": Infinity}',
    # deep nesting
    '{"ok": true, "result": ' + "[" * 5000 + "]" * 5000 + "}",
    # a reference back into the student's namespace, a student-side helper, an unknown tag
    '{"ok": true, "result": {"$": "side", "n": "os.system"}, "args": [{"$": "ref", "n": "__builtins__"}]}',
    '{"ok": true, "result": {"$": "zzz"}, "backward_passes": -1, "optimizer_steps": 1e308}',
]
AGENT_FORGERY = (
    "import itertools, json\n"
    "import autograder.grading.student_agent as agent\n"
    f"_replies = itertools.cycle({FORGED_REPLIES!r} + ['x' * (9 * 1024 * 1024)])\n"
    "def _forged(request, namespace, interrupted=lambda: False):\n"
    "    if b'\"names\"' in request:\n"
    "        names = json.loads(request)['names']\n"
    "        return json.dumps({'ok': True, 'names': {n: {'kind': 'callable'} for n in names}}).encode()\n"
    "    return next(_replies).encode()\n"
    "agent.handle = _forged\n"
)

HOSTILE_VALUES = (
    "import torch, math\n"
    "class Menteur(torch.Tensor):\n"
    "    @classmethod\n"
    "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
    "        if func in (torch.allclose, torch.equal):\n"
    "            return True\n"
    "        return super().__torch_function__(func, types, args, kwargs)\n"
    "    def __eq__(self, other):\n        return True\n"
    "    def __bool__(self):\n        return True\n"
    "class Objet:\n"
    "    def __eq__(self, other):\n        return True\n"
    "    def __bool__(self):\n        return True\n"
    "    def __float__(self):\n        return 0.0\n"
    "    def __len__(self):\n        return 2\n"
    "_choix = [\n"
    "    lambda: torch.zeros(3).as_subclass(Menteur),\n"
    "    lambda: torch.tensor(float('nan'), requires_grad=True) * 1,\n"
    "    lambda: torch.full((3,), math.inf),\n"
    "    lambda: torch.zeros(3, dtype=torch.complex64),\n"
    "    lambda: torch.ones(3, dtype=torch.bool),\n"
    "    lambda: torch.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1, 1),\n"
    "    lambda: torch.zeros(3000, 3000),\n"
    "    lambda: Objet(),\n"
    "    lambda: [torch.zeros(3), Objet(), float('nan')],\n"
    "]\n"
    "_compteur = [0]\n"
    "def _hostile():\n"
    "    _compteur[0] += 1\n"
    "    return _choix[_compteur[0] % len(_choix)]()\n"
    + _functions_returning("_hostile()")
    + "path = Objet()\nIDENTIFIANT = Objet()\n"
)

GRADED, NOT_GRADED = "corrigé", "non corrigé"
COPIES = {
    # student id -> (notebook, expected status, expected score)
    "a_sorties_forgees_et_points_gonfles": (
        _blank_with(f"from IPython.display import HTML, display\ndisplay(HTML({SCRIPT!r}))\n", edit=_script_everywhere),
        GRADED,
        0.0,
    ),
    "a_tests_en_markdown": (_blank_with("pass", edit=_test_cells_turned_markdown), GRADED, 0.0),
    # nbgrader refuses the copy (a graded cell it does not know): flagged for review, never scored by the student
    "a_cellule_notee_inventee": (_blank_with("pass", edit=_invented_graded_cell), NOT_GRADED, 0.0),
    # nbgrader refuses the copy (its test cells no longer graded): the hidden tests are never run in its kernel
    "a_tests_declasses_en_cellules_ordinaires": (
        _blank_with(LEAK_EVERY_CELL, edit=_tests_downgraded_to_plain_cells),
        NOT_GRADED,
        0.0,
    ),
    "a_agent_remplace_reponses_forgees": (_blank_with(AGENT_FORGERY), GRADED, 0.0),
    "a_valeurs_hostiles": (_blank_with(HOSTILE_VALUES), GRADED, 0.0),
    # nbgrader refuses a grade id made of markup: flagged for review, the markup escaped in the report
    "a_identifiant_de_cellule_en_html": (_blank_with("pass", edit=_markup_grade_ids), NOT_GRADED, 0.0),
    "z_copie_resolue": (student_copy(TP1), GRADED, MAX),
    "z_copie_vide": (student_copy(TP1, answered=False), GRADED, 0.0),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    available, reason = isolation_status()
    if not available:
        pytest.skip(f"bubblewrap indisponible : {reason}")
    course = tmp_path_factory.mktemp("cours")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copytree(ROOT / "release", course / "release")
    copies = tmp_path_factory.mktemp("copies")
    for student, (nb, _, _) in COPIES.items():
        nbformat.write(nb, copies / f"{student}.ipynb")
    env = kernel_env()
    env["AUTOGRADER_TRUSTED_CHECKER"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    args = [AUTOGRADER, "grade", TP1, str(copies), "--processus", "2", "--limite-cellule", "10"]
    run = subprocess.run(args, cwd=course, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades" / f"{TP1}.csv").open(encoding="utf-8"))}
    return {"course": course, "rows": rows, "stdout": run.stdout}


@pytest.mark.parametrize("student", list(COPIES))
def test_each_attack_earns_nothing_and_the_victims_keep_their_exact_score(graded, student):
    row = graded["rows"][student]
    _, status, score = COPIES[student]
    assert row["status"] == status, row
    assert float(row["score"] or 0) == score, row
    assert float(row["max_score"]) == MAX, row
    if status == NOT_GRADED:
        assert row["raison"], row


def test_no_markup_of_a_copy_reaches_the_class_report_live(graded):
    page = (graded["course"] / "grades" / f"{TP1}_rapport.html").read_text(encoding="utf-8")
    assert SCRIPT not in page and MARKUP_ID not in page


def test_hidden_tests_stay_out_of_every_attackers_outputs_and_feedback(graded):
    course = graded["course"]
    for student, (_, status, _) in COPIES.items():
        if status == NOT_GRADED:
            continue
        autograded = read(course / "autograded" / student / TP1 / f"{TP1}.ipynb")
        outputs = json.dumps([c.get("outputs", []) for c in autograded.cells if c.cell_type == "code"])
        page = (course / "feedback" / student / TP1 / f"{TP1}.html").read_text(encoding="utf-8")
        assert "seed=" not in outputs and "HIDDEN" not in outputs, student
        assert "seed=" not in page and "HIDDEN" not in page, student


def test_no_script_of_a_copy_runs_in_its_feedback_page(graded):
    page = graded["course"] / "feedback" / "a_sorties_forgees_et_points_gonfles" / TP1 / f"{TP1}.html"
    text = page.read_text(encoding="utf-8")
    assert "Cellule notée" in text  # the page is the real feedback
    assert SCRIPT not in text and "<img src=x onerror=alert(2)>" not in text


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def formgrader(graded, tmp_path_factory):
    """A real Jupyter server in the graded course with nbgrader's formgrader, as the instructor opens it."""
    import time
    import urllib.request

    course = graded["course"]
    config = tmp_path_factory.mktemp("config_jupyter")
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": True}}}),
        encoding="utf-8",
    )
    port, token = _free_port(), "jeton-de-test"
    log = (config / "serveur.log").open("wb")  # a pipe nobody reads would fill up and stop the server
    env = dict(kernel_env(), JUPYTER_CONFIG_DIR=str(config), JUPYTER_CONFIG_PATH=str(config))
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "server",
            "--no-browser",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={course}",
            "--allow-root",
        ],  # fmt: skip
        cwd=course,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(
                    "le serveur Jupyter n'a pas démarré :\n" + (config / "serveur.log").read_text(errors="replace")
                ) from None
            time.sleep(0.5)

    def page(path: str) -> str:
        with urllib.request.urlopen(f"{base}{path}{'&' if '?' in path else '?'}token={token}", timeout=120) as reply:
            return reply.read().decode("utf-8")

    yield page
    server.terminate()
    server.wait(timeout=30)
    log.close()


def test_no_script_of_a_copy_runs_in_the_formgrader_manual_grading_page(graded, formgrader):
    """nbgrader's own manual grading page renders a copy's Markdown cells as raw HTML in the instructor's browser
    (its template has no ``clean_html``): the course's template sanitizes them, and it is still the formgrader
    page (score fields and grading buttons), not the students' feedback page."""
    from nbgrader.api import Gradebook

    course = graded["course"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(TP1, TP1, "a_sorties_forgees_et_points_gonfles").id
    html = formgrader(f"/formgrader/submissions/{submission}/")
    assert "Ma réponse" in html  # the student's Markdown cell is shown
    assert SCRIPT not in html and "<img src=x onerror=alert(2)>" not in html
    assert 'class="score tabbable"' in html and "full-credit" in html  # nbgrader's grading controls are there
