"""The grading execution engine: kernel-faithful outputs, every failure mode contained, tamper-proof tests.

A pool of warm workers (torch already imported) executes notebooks; each test states the exact
outputs expected, cell by cell. Limits are small so that the whole file stays fast.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import threading
import time

import nbformat
import pytest

from autograder import check
from autograder.grading.executor import ExecutionLimits, WorkerPool
from autograder.grading.messages import truncation_marker
from autograder.grading.sandbox import isolation_status
from autograder.verdict import CheckFailed

ISOLATED = isolation_status()[0]
LIMITS = ExecutionLimits(
    cell_timeout=1.5,
    notebook_timeout=60,
    memory_mb=512,
    max_processes=16,
    max_output_chars=10_000,
    max_output_bytes=100_000,
    interrupt_grace=0.5,
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def notebook(*cells: str | nbformat.NotebookNode) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


def grade_cell(source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": True, "grade_id": "test_cell", "locked": True, "points": 1,
        "schema_version": 3, "solution": False, "task": False,
    }  # fmt: skip
    return cell


def error(ename: str, evalue: str) -> dict:
    traceback = [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback}


def stdout(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def plain(cell) -> list[dict]:
    return [json.loads(json.dumps(o)) for o in cell.outputs]


def summary(cell) -> list[tuple]:
    """Outputs reduced to what matters for grading: type, stream name/text, ename/evalue."""
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(("stream", o.name, o.text))
        elif o.output_type == "error":
            out.append(("error", o.ename, o.evalue))
        else:
            out.append((o.output_type, o.data.get("text/plain")))
    return out


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(2, LIMITS, isolated=ISOLATED) as workers:
        yield workers


@pytest.fixture(scope="module")
def bare_pool():
    """One worker without sandbox and a short notebook limit (a job may kill its worker there)."""
    limits = ExecutionLimits(cell_timeout=10, notebook_timeout=2, interrupt_grace=0.5, max_processes=16)
    with WorkerPool(1, limits, isolated=False) as workers:
        yield workers


# -- fidelity ----------------------------------------------------------------------------------

FIDELITY_CELLS = [
    "print('a')\nimport sys\nprint('b', file=sys.stderr)\nprint('c')",
    "import warnings\nwarnings.warn('attention')",
    "import torch\ntorch.tensor([1., 2.])",
    "from IPython.display import Markdown, display\ndisplay(Markdown('**x**'))\nprint('après')\n42",
    "1/0",
    "from autograder.verdict import WrongAnswer\nraise WrongAnswer('faux', 'tp1_x', 'indice')",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nprint('p')",
    "import os, subprocess\nos.write(1, b'brut\\n')\nsubprocess.run(['echo', 'sous-processus'])\nprint('z')",
    "input('nom ?')",
    "import sys\nsys.exit(3)",
    "!echo bang",
    "x = 1 +",
    "h = display('v1', display_id=True)\nh.update('v2')\nprint('u')",
    "from IPython.display import clear_output\nprint('effacé')\nclear_output()\nprint('gardé')",
    "x = torch.ones(2, requires_grad=True)\n(x * x).sum().backward()\nx.grad",
    "def f(x):\n    return g(x)\ndef g(x):\n    raise ValueError(f'mauvais {x}')\nf(3)",
    "_",
]
RAW_FD_CELL = 7  # ipykernel captures fds 1/2 only when its own stdout is not captured already (pytest does)
INPUT_CELL = 8  # ipykernel's traceback goes through its own raw_input frame


def _normalised(cell, keep_frames: bool = True) -> tuple:
    streams: dict[str, str] = {}
    others = []
    for o in cell.outputs:
        if o.output_type == "stream":
            # ipykernel's cell file names contain its pid (and $TMPDIR); ours are stable: /tmp/ipykernel/<hash>.py
            streams[o.name] = streams.get(o.name, "") + re.sub(r"\S*/ipykernel(_\d+)?/", "ipykernel/", o.text)
        elif o.output_type == "error":
            frames = [ANSI.sub("", line) for line in o.traceback] if keep_frames else []
            others.append(("error", o.ename, o.evalue, frames))
        else:
            png = o.data.get("image/png")
            size = struct.unpack(">II", base64.b64decode(png)[16:24]) if png else None
            others.append((o.output_type, sorted(o.data), o.data.get("text/plain"), o.get("execution_count"), size))
    return cell.execution_count, streams, others


@pytest.fixture(scope="module")
def fidelity(pool):
    from nbclient import NotebookClient

    reference = notebook(*FIDELITY_CELLS)
    future = pool.submit(notebook(*FIDELITY_CELLS), name="fidelite")
    NotebookClient(reference, kernel_name="python3", allow_errors=True, timeout=60).execute()
    return reference, future.result()


@pytest.mark.parametrize("index", range(len(FIDELITY_CELLS)), ids=lambda i: FIDELITY_CELLS[i].split("\n")[-1][:30])
def test_outputs_match_a_jupyter_kernel(fidelity, index):
    reference, result = fidelity
    assert result.status == "ok"
    keep = index != INPUT_CELL
    ours, kernel = _normalised(result.notebook.cells[index], keep), _normalised(reference.cells[index], keep)
    if index == RAW_FD_CELL:
        assert ours[1] == {"stdout": "brut\nsous-processus\nz\n"}
        assert kernel[1]["stdout"] in ("z\n", "brut\nsous-processus\nz\n")
        ours, kernel = ours[::2], kernel[::2]
    assert ours == kernel


def test_executed_notebook_is_valid_nbformat_v4(fidelity):
    _, result = fidelity
    nbformat.validate(result.notebook)
    assert result.notebook.nbformat == 4


def test_verdict_exception_is_rendered_with_its_render_traceback(fidelity):
    _, result = fidelity
    assert plain(result.notebook.cells[5]) == [
        {
            "output_type": "error",
            "ename": "WrongAnswer",
            "evalue": "❌ tp1_x — Réponse incorrecte\n   faux\n   💡 Indice\u00a0: indice",
            "traceback": ["❌ tp1_x — Réponse incorrecte", "   faux", "   💡 Indice\u00a0: indice"],
        }
    ]


def test_rerunning_a_notebook_gives_identical_outputs(pool):
    nb = notebook(
        "import torch\ntorch.manual_seed(0)\nprint(torch.rand(3))",
        "import random, numpy\nprint(torch.rand(2), random.random(), numpy.random.rand(), {'un', 'deux', 'trois'})",
        "import warnings\nwarnings.warn('deux fois')",
        "{}['absent']",
        "import os\nsorted(os.listdir('.'))",
    )
    # Unseeded randomness and set order too, whichever of the two workers runs each copy.
    first, second = (future.result() for future in [pool.submit(nb, name="a"), pool.submit(nb, name="a")])
    assert first.status == second.status == "ok"
    assert [plain(c) for c in first.notebook.cells] == [plain(c) for c in second.notebook.cells]
    assert plain(first.notebook.cells[4])[0]["data"] == {"text/plain": "[]"}  # fresh, empty scratch folder


def test_empty_and_skipped_cells_are_not_executed(pool):
    skipped = nbformat.v4.new_code_cell("print('non')")
    skipped.metadata["tags"] = ["skip-execution"]
    markdown = nbformat.v4.new_markdown_cell("*texte*")
    nb = notebook("print(1)", "   ", skipped, "print(2)")
    nb.cells.insert(1, markdown)
    result = pool.execute(nb, name="vides")
    assert [(c.get("execution_count"), c.get("outputs")) for c in result.notebook.cells] == [
        (1, [stdout("1\n")]),
        (None, None),
        (None, []),
        (None, []),
        (2, [stdout("2\n")]),
    ]


def test_files_given_with_a_notebook_are_in_its_working_folder(pool):
    files = {"aide.py": b"VALEUR = 42\n", "donnees/x.txt": b"bonjour", "../evade.txt": b"non"}
    source = "import aide, os\nprint(aide.VALEUR, open('donnees/x.txt').read(), sorted(os.listdir('.')))"
    result = pool.execute(notebook(source), name="fichiers", files=files)
    assert plain(result.notebook.cells[0]) == [stdout("42 bonjour ['aide.py', 'donnees']\n")]


def test_jobs_run_in_parallel_from_several_threads(pool):
    futures = {}
    lock = threading.Lock()

    def submit(names):
        for name in names:
            future = pool.submit(notebook(f"print({name!r})"), name=name)
            with lock:
                futures[name] = future

    threads = [threading.Thread(target=submit, args=([f"e{t}{k}" for k in range(3)],)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {name: plain(f.result().notebook.cells[0]) for name, f in futures.items()} == {
        name: [stdout(f"{name}\n")] for name in futures
    }


# -- failure modes -----------------------------------------------------------------------------


def test_infinite_loop_is_interrupted_and_the_next_cells_run(pool):
    result = pool.execute(notebook("print('avant')", "while True:\n    pass", "print('après')"), name="boucle")
    cells = result.notebook.cells
    assert (result.status, result.message) == (
        "cell_timeout",
        "limite de 1,5 s par cellule dépassée, cellule interrompue : cellule 2",
    )
    assert plain(cells[0]) == [stdout("avant\n")]
    assert [o["ename"] for o in plain(cells[1])] == ["KeyboardInterrupt", "CellTimeoutError"]
    timeout = error("CellTimeoutError", "La cellule a dépassé la limite de 1,5 s : elle a été interrompue.")
    assert plain(cells[1])[1] == timeout
    assert plain(cells[2]) == [stdout("après\n")]
    assert [c.execution_count for c in cells] == [1, 2, 3]


def test_loop_ignoring_sigint_is_killed_and_the_remaining_cells_are_not_executed(pool):
    result = pool.execute(
        notebook(
            "print('avant')",
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
            "print('après')",
            "print('encore')",
        ),
        name="sourde",
    )
    cells = result.notebook.cells
    assert (result.status, result.message) == (
        "cell_timeout",
        "cellule 2 : limite de 1,5 s dépassée et interruption ignorée, noyau arrêté ; 2 cellules non exécutées",
    )
    assert plain(cells[0]) == [stdout("avant\n")]
    assert plain(cells[1]) == [
        error(
            "CellTimeoutError",
            "La cellule a dépassé la limite de 1,5 s et n'a pas pu être interrompue (signal d'interruption ignoré) : "
            "le noyau a été arrêté.",
        )
    ]
    not_run = error(
        "CellNotExecutedError", "Cellule non exécutée : une cellule précédente a dépassé la limite de temps."
    )
    assert plain(cells[2]) == plain(cells[3]) == [not_run]
    assert [c.execution_count for c in cells] == [1, 2, None, None]


def test_catching_the_interrupt_still_marks_the_cell(pool):
    source = "import time\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    print('attrapé')"
    result = pool.execute(notebook(source, "print('après')"), name="attrape")
    assert summary(result.notebook.cells[0]) == [
        ("stream", "stdout", "attrapé\n"),
        ("error", "CellTimeoutError", "La cellule a dépassé la limite de 1,5 s : elle a été interrompue."),
    ]
    assert summary(result.notebook.cells[1]) == [("stream", "stdout", "après\n")]


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("import os\nos._exit(1)", "sortie avec le code 1"),
        ("import ctypes\nctypes.string_at(0)", "tué par le signal SIGSEGV"),
    ],
    ids=["os._exit", "segfault"],
)
def test_kernel_death_keeps_the_outputs_of_earlier_cells(pool, source, cause):
    result = pool.execute(notebook("print('avant')", source, "print('après')"), name="mort")
    cells = result.notebook.cells
    assert (result.status, result.message) == (
        "crashed",
        f"le noyau s'est arrêté ({cause}) pendant la cellule 2 ; 1 cellule non exécutée",
    )
    assert plain(cells[0]) == [stdout("avant\n")]
    died = f"Le noyau s'est arrêté pendant cette cellule (os._exit, mémoire épuisée ?) : {cause}."
    assert plain(cells[1]) == [error("DeadKernelError", died)]
    assert plain(cells[2]) == [
        error("CellNotExecutedError", "Cellule non exécutée : le noyau s'est arrêté pendant une cellule précédente.")
    ]
    assert [c.execution_count for c in cells] == [1, 2, None]


def test_memory_blow_up_is_a_memory_error_in_its_cell(pool):
    result = pool.execute(
        notebook("x = []\nwhile True:\n    x.append(bytearray(10**9))", "del x\nprint('après')"), name="memoire"
    )
    assert result.status == "ok"
    assert summary(result.notebook.cells[0]) == [("error", "MemoryError", "")]
    assert plain(result.notebook.cells[1]) == [stdout("après\n")]


def test_huge_outputs_are_cut_with_a_french_marker(pool):
    limit = LIMITS.max_output_chars
    lines = "".join(f"{i}\n" for i in range(50_000))
    result = pool.execute(
        notebook(
            "for i in range(50_000):\n    print(i)",
            "print('x' * 10**6)",
            "import os\nos.write(1, b'y' * 10**6)\npass",
            "from IPython.display import display\ndisplay({'image/png': 'A' * 200_000}, raw=True)\nprint('fin')",
            "for i in range(3):\n    display({'text/plain': 'B' * 40_000}, raw=True)",
        ),
        name="deluge",
    )
    cells = result.notebook.cells
    assert result.status == "ok"
    assert plain(cells[0]) == [stdout(lines[:limit] + truncation_marker(len(lines) - limit, limit))]
    assert plain(cells[1]) == [stdout("x" * limit + truncation_marker(10**6 + 1 - limit, limit))]
    assert plain(cells[2]) == [stdout("y" * limit + truncation_marker(10**6 - limit, limit))]
    dropped_image = "[Sortie supprimée : 1 sortie (image/png) au-delà de la limite de 100\u202f000 octets par cellule.]"
    assert plain(cells[3]) == [
        {"output_type": "display_data", "data": {"text/plain": dropped_image}, "metadata": {}},
        stdout("fin\n"),
    ]
    dropped_text = "[Sortie supprimée : 1 sortie (text/plain) au-delà de la limite de 100\u202f000 octets par cellule.]"
    assert summary(cells[4]) == [("display_data", "B" * 40_000)] * 2 + [("display_data", dropped_text)]
    assert truncation_marker(990_001, 10_000) == (
        "\n[… sortie tronquée : 990\u202f001 caractères supprimés, limite de 10\u202f000 caractères par cellule]\n"
    )
    assert len(nbformat.writes(result.notebook)) < 500_000  # bounded, whatever the notebook printed


def test_input_raises_instead_of_waiting(pool):
    started = time.monotonic()
    nb = notebook("nom = input('Votre nom ? ')", "import sys\nprint(repr(sys.stdin.read()))")
    result = pool.execute(nb, name="entree")
    assert time.monotonic() - started < 5
    assert summary(result.notebook.cells[0]) == [
        (
            "error",
            "StdinNotImplementedError",
            "raw_input was called, but this frontend does not support input requests.",
        )
    ]
    assert plain(result.notebook.cells[1]) == [stdout("''\n")]


def test_notebook_time_limit_stops_the_notebook_at_the_cell_in_progress(bare_pool):
    result = bare_pool.execute(
        notebook("print('avant')", "import time\ntime.sleep(30)", "print('après')"), name="longue"
    )
    cells = result.notebook.cells
    assert (result.status, result.message) == (
        "notebook_timeout",
        "limite de 2 s par notebook dépassée (cellule 2) ; 1 cellule non exécutée",
    )
    assert 2 <= result.duration < 5
    assert plain(cells[0]) == [stdout("avant\n")]
    assert plain(cells[1]) == [
        error(
            "NotebookTimeoutError",
            "Le notebook a dépassé la limite de 2 s : son exécution a été arrêtée pendant cette cellule.",
        )
    ]
    assert plain(cells[2]) == [
        error("CellNotExecutedError", "Cellule non exécutée : le notebook a dépassé la limite de 2 s.")
    ]


def test_a_job_killing_its_worker_is_reported_and_the_worker_replaced(bare_pool):
    # (The short pause lets the worker forward the first cell before it is killed, even on a loaded machine.)
    kill_worker = "import os, signal, time\ntime.sleep(0.5)\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(5)"
    result = bare_pool.execute(notebook("print('avant')", kill_worker, "print('après')"), name="assassin")
    cells = result.notebook.cells
    assert (result.status, result.message) == (
        "crashed",
        "le processus de correction s'est arrêté de façon inattendue",
    )
    assert plain(cells[0]) == [stdout("avant\n")]
    assert plain(cells[1]) == [
        error("DeadKernelError", "Le processus de correction s'est arrêté de façon inattendue pendant cette cellule.")
    ]
    assert plain(cells[2]) == [
        error("CellNotExecutedError", "Cellule non exécutée : le processus de correction s'est arrêté.")
    ]
    after = bare_pool.execute(notebook("print('toujours là')"), name="suivant")
    assert (after.status, plain(after.notebook.cells[0])) == ("ok", [stdout("toujours là\n")])


def test_a_worker_killed_during_a_copy_costs_nothing_the_copy_is_run_again():
    """Whatever kills a worker mid-copy (here: the host), the copy is run once more on a fresh worker."""
    with WorkerPool(1, ExecutionLimits(cell_timeout=30), isolated=ISOLATED) as workers:
        future = workers.submit(notebook("print('début')", "import time\ntime.sleep(3)\nprint('fin')"), name="rejouee")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and getattr(workers._workers.get(0), "job_pid", None) is None:
            time.sleep(0.05)
        first = workers._workers[0]
        time.sleep(0.5)
        first.send_kill()
        result = future.result()
        assert (result.status, [plain(c) for c in result.notebook.cells]) == (
            "ok",
            [[stdout("début\n")], [stdout("fin\n")]],
        )
        assert workers._workers[0] is not first and len(workers.stats) == 2


LIES = {
    "trame_geante": "os.write(1, struct.pack('>I', 300_000_000) + b'x' * 4096)",
    "cellule_inconnue": "frame({'t': 'cell', 'i': 999, 'ec': 1, 'outputs': []})",
    "sortie_invalide": "frame({'t': 'cell', 'i': 0, 'ec': 1, 'outputs': [{'output_type': 'stream', 'text': 1}]})",
    "fin_inconnue": "frame({'t': 'done', 'status': 'réussi', 'message': ''})",
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_worker_is_not_believed_and_its_copy_is_run_once_more(monkeypatch, lie):
    """The host reads a worker as untrusted data: a frame too big or a message out of protocol ends it."""
    from autograder.grading import executor

    fake = (
        "import json, os, struct, sys, time\n"
        "def frame(message):\n"
        "    data = json.dumps(message).encode()\n"
        "    os.write(1, struct.pack('>I', len(data)) + data)\n"
        "frame({'t': 'ready', 'pid': os.getpid()})\n"
        "os.read(0, 1 << 20)\n"
        f"{LIES[lie]}\n"
        "time.sleep(60)\n"
    )
    monkeypatch.setattr(executor, "BOOT", fake)
    started = time.monotonic()
    with WorkerPool(1, LIMITS, isolated=False, cgroups=False) as workers:
        result = workers.execute(notebook("print('jamais')"), name="menteur")
        assert len(workers.stats) == 2  # the first worker, then a fresh one for the second try
    assert time.monotonic() - started < 60
    assert result.status == "crashed"
    assert result.message.startswith("le processus de correction a enfreint le protocole (")
    assert result.message.endswith(") et a été arrêté")
    assert [o["ename"] for o in plain(result.notebook.cells[0])] == ["DeadKernelError"]


def test_closed_pool_refuses_jobs():
    workers = WorkerPool(1, LIMITS, isolated=False)
    workers.close()
    with pytest.raises(RuntimeError):
        workers.submit(notebook("1"), name="trop tard")


# -- tampering ---------------------------------------------------------------------------------


def test_patched_torch_comparison_is_restored_before_a_test_cell(pool):
    result = pool.execute(
        notebook(
            "import torch\ntorch.allclose = lambda *a, **k: True",
            grade_cell("assert not torch.allclose(torch.ones(1), torch.zeros(1))"),
            grade_cell("torch.allclose = lambda *a, **k: True\ntorch.allclose(torch.ones(1), torch.zeros(1))"),
            grade_cell("torch.allclose(torch.ones(1), torch.zeros(1))"),
        ),
        name="allclose",
    )
    cells = result.notebook.cells
    assert result.status == "ok"
    assert [plain(c) for c in cells[:2]] == [[], []]
    assert summary(cells[2]) == [("execute_result", "True")]  # patched during the test cell: its own business
    assert summary(cells[3]) == [("execute_result", "False")]


def test_rebound_check_is_replaced_by_the_genuine_checker_in_a_test_cell(pool):
    result = pool.execute(
        notebook(
            "from autograder import check, hint\ncheck = lambda *a, **k: None",
            grade_cell('check("tp1_hand_grad", globals())'),
        ),
        name="check",
    )
    with pytest.raises(CheckFailed) as genuine:
        check("tp1_hand_grad", {})
    assert "grad_z" in str(genuine.value)
    assert summary(result.notebook.cells[1]) == [("error", type(genuine.value).__name__, str(genuine.value))]


@pytest.mark.parametrize(
    "tampering",
    [
        "get_ipython().showtraceback = lambda *a, **k: None\nget_ipython()._showtraceback = lambda *a, **k: None",
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
        "import sys\nsys.excepthook = lambda *a: None\nsys.settrace(lambda *a: None)",
        "import ast\nclass Erase(ast.NodeTransformer):\n    def visit_Assert(self, node):\n        return ast.Pass()\n"
        "get_ipython().ast_transformers.append(Erase())",
        "type(get_ipython()).run_cell = lambda *a, **k: None",
        "import builtins\nbuiltins.AssertionError = type('Rien', (Exception,), {})",
        "import threading, time, torch\ndef again():\n    while True:\n        torch.allclose = lambda *a, **k: True\n"
        "        time.sleep(0.0001)\nthreading.Thread(target=again, daemon=True).start()",
    ],
    ids=["showtraceback", "custom_exc", "hooks", "ast_transformer", "run_cell", "builtins", "thread"],
)
def test_an_error_in_a_test_cell_cannot_be_hidden(pool, tampering):
    result = pool.execute(
        notebook(tampering, grade_cell("import torch\nassert torch.allclose(torch.ones(1), torch.zeros(1)), 'faux'")),
        name="cache",
    )
    assert summary(result.notebook.cells[1]) == [("error", "AssertionError", "faux")]


def test_a_huge_error_message_still_fails_the_test_cell(pool):
    limit = LIMITS.max_output_chars
    result = pool.execute(notebook(grade_cell("raise AssertionError('v' * 10**6)")), name="message")
    (output,) = plain(result.notebook.cells[0])
    assert (output["ename"], output["evalue"]) == ("AssertionError", "v" * limit + "…")
    assert output["traceback"][0] == "…" and sum(map(len, output["traceback"])) <= limit + 2


def test_a_forged_oversized_message_fails_the_cell_instead_of_vanishing(pool):
    forge = "import autograder.grading.shell as w\nw.send_event({'t': 'out', 'o': {'x': 'z' * 10**7}})"
    result = pool.execute(notebook(forge, "print('après')"), name="forge")
    assert plain(result.notebook.cells[0]) == [
        error("OutputTooLargeError", "Une sortie illisible, car trop volumineuse, a été supprimée.")
    ]
    assert plain(result.notebook.cells[1]) == [stdout("après\n")]


# -- speed -------------------------------------------------------------------------------------


def test_warm_workers_start_a_submission_in_milliseconds(pool, capsys):
    timings = {}
    for label, source in (("trivial", "1 + 1"), ("import torch", "import torch\ntorch.ones(2) * 2")):
        nb = notebook(source)
        pool.execute(nb, name="warm")
        durations = []
        for _ in range(5):
            started = time.perf_counter()
            result = pool.execute(nb, name="chrono")
            durations.append(time.perf_counter() - started)
            assert result.status == "ok"
        timings[label] = sorted(durations)[len(durations) // 2]
    with capsys.disabled():
        print("\nsurcoût par copie (médiane, aller-retour complet) : "
              + ", ".join(f"{label} {value * 1000:.0f} ms" for label, value in timings.items()))  # fmt: skip
