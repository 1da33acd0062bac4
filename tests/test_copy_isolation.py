"""Each copy alone: attacks a determined student would try, graded by the real `autograder grade`.

One batch, one worker (`--processus 1`): the attackers are graded first, then two victims on the same
worker. Each attack has its own copy (the student id names it) and its exact score; the victims keep
theirs, and nothing of a victim appears in any other copy's files.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from autograder import get_exercise
from autograder.grading import cgroups
from autograder.grading.sandbox import isolation_status
from tests.fixtures.tp1_gradients_wrong_answers import NBGRADER_CASES, WRONG_ANSWERS
from tests.notebook_tools import ROOT, kernel_env, student_copy

pytestmark = pytest.mark.grading

ASSIGNMENT = "tp1_gradients"
AUTOGRADER = str(Path(sys.executable).parent / "autograder")
SCRATCH = "tp1_graph_scratch"  # an ungraded cell before every test cell
LAST_ANSWER = "tp1_bug_answer"  # the last answer cell, just before the last test cell
POINTS = {grade_id: get_exercise(grade_id).points for grade_id in NBGRADER_CASES}
ABOVE_LAST = 20 - POINTS["tp1_bug"]
SECRETS = {"victime_1": f"secret-{uuid.uuid4().hex}", "victime_2": f"secret-{uuid.uuid4().hex}"}
CELL_LIMIT = 20  # s: generous, the machine may be loaded
MEMORY_MB = 512  # --memoire: the whole copy (every process, memfd, tmpfs) gets this plus a small margin

READ_THE_WORKER = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(label, action):
    try:
        action()
        print(label, 'OK')
    except OSError as error:
        print(label, errno.errorcode[error.errno])
def read_fds(pid):
    for fd in os.listdir(f'/proc/{pid}/fd'):
        with open(f'/proc/{pid}/fd/{fd}', 'rb') as handle:
            handle.read(0)
def ptrace(pid):
    if libc.ptrace(16, pid, 0, 0) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), 'ptrace')
me = os.getpid()
visible = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print('processus visibles', visible, 'moi', me)
for pid in visible:
    if pid != me:
        attempt(f'{pid} mem', lambda: open(f'/proc/{pid}/mem', 'r+b').close())
        attempt(f'{pid} fd', lambda: read_fds(pid))
        attempt(f'{pid} ptrace', lambda: ptrace(pid))
def link(fd):
    try:
        return os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        return ''  # the descriptor listdir itself used
print('tubes hérités', sum(link(fd).startswith('pipe:') for fd in os.listdir('/proc/self/fd') if int(fd) > 2))
"""

MEMFD_HOG = """
import os
chunk = b'x' * (48 << 20)
held = []
while True:
    fd = os.memfd_create('retenue')
    os.write(fd, chunk)
    held.append(fd)
"""

PROCESSES_HOG = """
import os, select, time
ready_r, ready_w = os.pipe()
alive = set()
for i in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(300 << 20)
        block[::4096] = b'x' * len(block[::4096])
        os.write(ready_w, b'x')
        time.sleep(60)
        os._exit(0)
    alive.add(pid)
ready = 0
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    alive = {pid for pid in alive if os.waitpid(pid, os.WNOHANG) == (0, 0)}
    if ready >= len(alive):
        break
    if select.select([ready_r], [], [], 0.2)[0]:
        ready += len(os.read(ready_r, 64))
held = len(alive)
for pid in alive:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print('300 Mio tenus ensemble par', held, 'processus sur 4 :', held * 300 < MEMORY)
""".replace("MEMORY", str(MEMORY_MB + 256))

THREADS = """
import threading, time
started = 0
try:
    for i in range(3000):
        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()
        started += 1
except RuntimeError as error:
    print(started < 3000, error)
"""

FORK_BOMB = """
import errno, os, time
started = 0
try:
    for i in range(3000):
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
        started += 1
except OSError as error:
    print(started < 3000, errno.errorcode[error.errno])
"""

MANY_FILES = """
import errno, os
os.makedirs('/tmp/f', exist_ok=True)
made = 0
try:
    for i in range(2_000_000):
        open(f'/tmp/f/{i}', 'w').close()
        made += 1
except OSError as error:
    print(made < 2_000_000, errno.errorcode[error.errno])
"""

DEEP_FOLDER = """
import os
for top in ('/tmp', '/dev/shm', '.'):
    path = os.path.join(top, 'profond')
    os.makedirs(path)
    fd = os.open(path, os.O_RDONLY)
    for i in range(5000):
        os.mkdir('d', dir_fd=fd)
        new = os.open('d', os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    os.close(fd)
    os.chmod(path, 0)
print('5000 niveaux')
"""

HUGE_FRAME = """
import autograder.grading.shell as shell
shell.send_event({'t': 'out', 'o': {'output_type': 'display_data', 'data': {'text/plain': 'z' * 50_000_000}}})
"""

FORGED_END = """
import autograder.grading.shell as shell
shell.send_event({'t': 'end', 'i': shell.STATE.current, 'interrupted': False, 'dropped': 0})
shell.STATE.in_cell = False  # and no interrupt is meant for this cell any more
while True:
    pass
"""


def wrong(grade_id: str) -> dict[str, str]:
    answer = next(w for w in WRONG_ANSWERS if w.behaviour == NBGRADER_CASES[grade_id])
    return {answer.cell_id: answer.source}


def copies() -> dict[str, tuple[nbformat.NotebookNode, float]]:
    """student id (attackers first, in grading order) -> (notebook, exact expected score)."""
    blank = lambda cell, source: student_copy(ASSIGNMENT, {cell: source}, answered=False)  # noqa: E731
    full = lambda cell, source: student_copy(ASSIGNMENT, {cell: source})  # noqa: E731
    return {
        "a1_lit_le_correcteur": (blank(SCRATCH, READ_THE_WORKER), 0),
        "a2_memfd": (full(LAST_ANSWER, MEMFD_HOG), ABOVE_LAST),
        "a3_memoire_en_processus": (full(SCRATCH, PROCESSES_HOG), 20),
        "a4_trois_mille_fils": (full(SCRATCH, THREADS), 20),
        "a5_bombe_fork": (full(SCRATCH, FORK_BOMB), 20),
        "a6_deux_millions_de_fichiers": (blank(SCRATCH, MANY_FILES), 0),
        "a7_dossier_profond": (blank(SCRATCH, DEEP_FOLDER), 0),
        "a8_trame_geante": (blank(SCRATCH, HUGE_FRAME), 0),
        "a9_fausse_fin_de_cellule": (full(LAST_ANSWER, FORGED_END), ABOVE_LAST),
        "victime_1": (student_copy(ASSIGNMENT, {SCRATCH: f"# {SECRETS['victime_1']}\n"}), 20),
        "victime_2": (
            student_copy(ASSIGNMENT, {**wrong("tp1_vjp"), SCRATCH: f"# {SECRETS['victime_2']}\n"}),
            20 - POINTS["tp1_vjp"],
        ),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    available, reason = isolation_status()
    if not available:
        pytest.skip(f"bubblewrap indisponible : {reason}")
    hierarchy, reason = cgroups.available()
    if hierarchy is None:
        pytest.skip(f"cgroups indisponibles : {reason}")
    course = tmp_path_factory.mktemp("cours")
    for name in ("nbgrader_config.py",):
        (course / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "source"), str(ROOT / "release"), str(course)], check=True)
    folder = tmp_path_factory.mktemp("copies")
    expected = {}
    for student, (nb, score) in copies().items():
        nbformat.write(nb, folder / f"{student}.ipynb")
        expected[student] = score
    args = [AUTOGRADER, "grade", ASSIGNMENT, str(folder), "--processus", "1", "--limite-cellule", str(CELL_LIMIT)]
    args += ["--memoire", str(MEMORY_MB)]
    run = subprocess.run(args, cwd=course, env=kernel_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades" / f"{ASSIGNMENT}.csv").open())}
    return {"course": course, "rows": rows, "expected": expected}


def stdout_of(graded, student: str, cell_id: str) -> str:
    """What the cell printed; its errors too (« ename: evalue »), so that a failure shows what happened."""
    path = graded["course"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    cell = next(c for c in nbformat.read(path, as_version=4).cells if c.id == cell_id)
    texts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            texts.append(output.text)
        elif output.output_type == "error":
            texts.append(f"{output.ename}: {output.evalue}\n")
    return "".join(texts)


@pytest.mark.parametrize("student", list(copies()))
def test_each_attack_gets_its_exact_score_and_the_victims_keep_theirs(graded, student):
    row = graded["rows"][student]
    assert row["status"].startswith("corrigé"), row
    assert float(row["score"]) == graded["expected"][student], row


def test_the_worker_cannot_be_seen_written_read_or_traced(graded):
    lines = stdout_of(graded, "a1_lit_le_correcteur", SCRATCH).splitlines()
    # Its own PID namespace: only the copy's init (1) and the copy itself; no process of the grading.
    assert lines[0] == "processus visibles [1, 2] moi 2"
    # Inherited: only its own channel to its worker (events, the worker's « next cell », the checker's requests).
    assert lines[1:] == ["1 mem EACCES", "1 fd EACCES", "1 ptrace EPERM", "tubes hérités 3"]


def test_nothing_of_a_victim_appears_in_any_other_copys_files(graded):
    course = graded["course"]
    for victim, secret in SECRETS.items():
        for folder in ("autograded", "feedback", "submitted"):
            for path in (course / folder).rglob("*"):
                if path.is_file() and victim not in path.parts:
                    assert secret not in path.read_text(encoding="utf-8", errors="replace"), path


def test_a_copy_memory_in_memfd_is_capped_by_the_kernel(graded):
    row = graded["rows"]["a2_memfd"]
    assert row["status"] == "corrigé (exécution interrompue)"
    assert "tué par le signal SIGKILL, probablement faute de mémoire" in row["raison"]


def test_memory_spread_over_processes_is_capped_as_a_whole(graded):
    assert stdout_of(graded, "a3_memoire_en_processus", SCRATCH).endswith(": True\n")


def test_threads_and_processes_beyond_the_cap_fail_with_eagain_inside_the_copy(graded):
    assert stdout_of(graded, "a4_trois_mille_fils", SCRATCH) == "True can't start new thread\n"
    assert stdout_of(graded, "a5_bombe_fork", SCRATCH) == "True EAGAIN\n"
    assert graded["rows"]["a4_trois_mille_fils"]["status"] == "corrigé"


def test_files_and_folders_are_capped_and_gone_for_the_next_copy(graded):
    assert stdout_of(graded, "a6_deux_millions_de_fichiers", SCRATCH) == "True ENOSPC\n"
    assert stdout_of(graded, "a7_dossier_profond", SCRATCH) == "5000 niveaux\n"


def test_a_huge_forged_frame_fails_its_cell_and_nothing_more(graded):
    path = graded["course"] / "autograded" / "a8_trame_geante" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    cell = next(c for c in nbformat.read(path, as_version=4).cells if c.id == SCRATCH)
    assert [(o.ename, o.evalue) for o in cell.outputs] == [
        ("OutputTooLargeError", "Une sortie illisible, car trop volumineuse, a été supprimée.")
    ]


def test_a_forged_end_of_cell_cannot_escape_the_cell_time_limit(graded):
    row = graded["rows"]["a9_fausse_fin_de_cellule"]
    assert row["status"] == "corrigé (exécution interrompue)"
    # The forged end only started the next cell's clock: the copy is stopped at that cell's limit, long before
    # the notebook's (180 s).
    expected = f"cellule 33 (tp1_bug) : limite de {CELL_LIMIT} s dépassée et interruption ignorée, noyau arrêté"
    assert row["raison"] == expected, row
