"""The sandbox's promises, one test each: a submission cannot read the solutions or the instructor's
files, cannot write the gradebook or the course, has no network, and whatever processes it starts
(fork bomb, daemons) are contained and gone after its job. Without isolation the limits still apply.
"""

from __future__ import annotations

import ast
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder.grading import sandbox
from autograder.grading.executor import ExecutionLimits, WorkerPool
from tests.notebook_tools import ROOT

AVAILABLE, REASON = sandbox.isolation_status()
LIMITS = ExecutionLimits(
    cell_timeout=3, notebook_timeout=30, memory_mb=512, cpu_seconds=20, max_processes=16, interrupt_grace=0.5
)
SOLUTION = ROOT / "source" / "tp1_gradients" / "tp1_gradients.ipynb"

isolated_only = pytest.mark.skipif(not AVAILABLE, reason=f"bubblewrap indisponible : {REASON}")


def test_ci_has_a_working_sandbox():
    """`make test` installs bubblewrap: in CI the sandbox promises are tested, never skipped."""
    if not os.environ.get("CI"):
        pytest.skip("hors CI : l'isolation peut manquer sur une machine de développement")
    assert AVAILABLE, REASON


def notebook(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def stdout_of(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def attempts(*pairs: tuple[str, str]) -> str:
    """A cell that tries each action and prints `label: OK` or `label: <errno name or exception>`."""
    lines = [
        "import errno, os, socket, sys",
        "def attempt(label, action):",
        "    try:",
        "        action()",
        "        print(label + ': OK')",
        "    except OSError as e:",
        "        print(label + ': ' + (errno.errorcode.get(e.errno) or type(e).__name__))",
    ]
    lines += [f"attempt({label!r}, lambda: {action})" for label, action in pairs]
    return "\n".join(lines)


def host_processes_with(marker: str) -> list[int]:
    """Processes of the host whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def unique_sleep() -> str:
    """A `sleep` duration nobody else uses: it marks the processes a test starts."""
    return f"{4000 + random.randrange(1000)}.{random.randrange(10**8):08d}"


@pytest.fixture(scope="module")
def pool():
    if not AVAILABLE:
        pytest.skip(f"bubblewrap indisponible : {REASON}")
    with WorkerPool(2, LIMITS, isolated=True) as workers:
        yield workers


@pytest.fixture(scope="module")
def bare_pool():
    with WorkerPool(1, LIMITS, isolated=False) as workers:
        yield workers


def test_isolation_status_reports_a_working_sandbox_or_a_french_reason():
    assert isinstance(AVAILABLE, bool)
    if AVAILABLE:
        assert REASON == ""
    else:
        assert REASON and REASON.endswith(".")


def test_sandbox_binds_only_the_package_never_the_repository_root():
    argv = sandbox.sandbox_argv(["true"])
    bound = {Path(argv[i + 1]) for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")}
    assert sandbox.package_dir() in bound
    assert ROOT not in bound
    assert not any(path != Path("/dev/null") and ROOT.is_relative_to(path) for path in bound)
    assert not any(path.is_relative_to(ROOT / "source") or path == ROOT / "gradebook.db" for path in bound)
    assert "--unshare-all" in argv and "--clearenv" in argv and argv[argv.index("--cap-drop") + 1] == "ALL"


def test_a_sandbox_that_would_expose_the_course_is_refused():
    if sandbox.package_dir().parent != ROOT:
        pytest.skip("autograder is not installed from this repository (editable install)")
    with pytest.raises(sandbox.SandboxError, match="contient le cours"):
        sandbox.check_course_hidden([ROOT.parent])
    sandbox.check_course_hidden([sandbox.package_dir(), Path("/usr")])  # the normal case passes


@isolated_only
def test_reading_the_solution_fails(pool):
    cell = attempts(
        ("absolu", f"open({str(SOLUTION)!r}).read()"),
        ("relatif", "open('../../../source/tp1_gradients/tp1_gradients.ipynb').read()"),
        ("depuis-copie", "open('../source/tp1_gradients/tp1_gradients.ipynb').read()"),
    )
    listing = f"import os\nprint(sorted(os.listdir({str(ROOT)!r})))"
    result = pool.execute(notebook(cell, listing), name="solution")
    assert SOLUTION.exists()
    assert stdout_of(result.notebook.cells[0]) == "absolu: ENOENT\nrelatif: ENOENT\ndepuis-copie: ENOENT\n"
    visible = sorted({p.relative_to(ROOT).parts[0] for p in sandbox.readonly_paths() if p.is_relative_to(ROOT)})
    assert stdout_of(result.notebook.cells[1]) == f"{visible}\n"
    assert "source" not in visible and "gradebook.db" not in visible


@isolated_only
def test_writing_the_gradebook_or_the_course_fails(pool):
    gradebook = ROOT / "gradebook.db"
    package_file = sandbox.package_dir() / "__init__.py"
    before = {path: path.stat().st_mtime_ns for path in (gradebook, package_file) if path.exists()}
    cell = attempts(
        ("gradebook", f"open({str(gradebook)!r}, 'ab').write(b'x')"),
        ("nouveau", f"open({str(ROOT / 'pirate.txt')!r}, 'w').write('x')"),
        ("paquet", f"open({str(package_file)!r}, 'a').write('x')"),
        ("venv", "open(sys.prefix + '/pirate.pth', 'w').write('x')"),
        ("racine", "open('/pirate', 'w').write('x')"),
        ("copie", "open('copie.txt', 'w').write('x')"),
    )
    result = pool.execute(notebook(cell), name="ecriture")
    # A course under /tmp sits inside the sandbox's private /tmp: a write there lands in that throwaway tmpfs
    # (hence "OK"), never in the real file — which the host-side checks below prove either way.
    course = "OK" if ROOT.is_relative_to("/tmp") else "EROFS"
    assert stdout_of(result.notebook.cells[0]) == (
        f"gradebook: {course}\nnouveau: {course}\npaquet: EROFS\nvenv: EROFS\nracine: EROFS\ncopie: OK\n"
    )
    assert {path: path.stat().st_mtime_ns for path in before} == before
    assert not (ROOT / "pirate.txt").exists() and not Path(sys.prefix, "pirate.pth").exists()


@isolated_only
def test_the_instructors_home_and_files_are_invisible(pool, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("mot de passe")
    home = Path.home()
    probe = (
        "import os\n"
        f"for path in ({str(home)!r}, {str(ROOT)!r}):\n"
        "    try:\n"
        "        print(path, sorted(os.listdir(path)))\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n"
        "print(os.environ['HOME'], sorted(os.environ))"
    )
    result = pool.execute(notebook(attempts(("secret", f"open({str(secret)!r}).read()")), probe), name="maison")
    assert stdout_of(result.notebook.cells[0]) == "secret: ENOENT\n"
    lines = stdout_of(result.notebook.cells[1]).splitlines()
    # Only the folders leading to what is bound (interpreter, venv, package) can appear, nothing else.
    allowed = {part for p in sandbox.readonly_paths() for part in p.parts}
    seen_home = lines[0].removeprefix(f"{home} ")
    if seen_home != "FileNotFoundError":
        assert set(ast.literal_eval(seen_home)) <= allowed
    assert set(ast.literal_eval(lines[1].removeprefix(f"{ROOT} "))) <= allowed
    home_variable, names = lines[2].split(" ", 1)
    # Nothing of the instructor's environment: the minimal one, plus what bwrap (PWD) and torch add.
    assert home_variable == "/tmp/home"
    assert set(ast.literal_eval(names)) - set(sandbox.minimal_env()) <= {"PWD", "TORCHINDUCTOR_CACHE_DIR"}


@isolated_only
def test_a_network_connection_fails_fast(pool):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not accepted:
            try:
                accepted.append(listener.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    cell = attempts(
        ("hote", f"socket.create_connection(('127.0.0.1', {port}), timeout=5)"),
        ("dehors", "socket.create_connection(('1.1.1.1', 80), timeout=5)"),
        ("dns", "socket.getaddrinfo('pypi.org', 443)"),
    )
    timed = f"import time\nstarted = time.monotonic()\n{cell}\nprint(time.monotonic() - started < 1)"
    result = pool.execute(notebook(timed), name="reseau")
    lines = stdout_of(result.notebook.cells[0]).splitlines()
    assert lines[:2] == ["hote: ECONNREFUSED", "dehors: ENETUNREACH"]
    assert lines[2].startswith("dns: ") and lines[2] != "dns: OK"
    assert lines[3] == "True"  # nothing waited for a timeout
    thread.join()
    listener.close()
    assert accepted == []


FORK_BOMB = (
    "import errno, os\n"
    "started = 0\n"
    "try:\n"
    "    for i in range(200):\n"
    "        if os.fork() == 0:\n"
    "            os.execvp('sleep', ['sleep', '{marker}'])\n"
    "        started += 1\n"
    "except OSError as error:\n"
    "    print(0 < started < 200, errno.errorcode[error.errno])"
)


@isolated_only
def test_a_fork_bomb_fails_with_eagain_inside_the_copy_and_the_pool_keeps_working(pool):
    """With cgroups, creating a process beyond the cap fails inside the copy, as on a real system."""
    if pool.cgroups is None:
        pytest.skip(f"cgroups indisponibles : {pool.cgroup_reason}")
    marker = unique_sleep()
    result = pool.execute(notebook("print('avant')", FORK_BOMB.format(marker=marker), "print('après')"), name="bombe")
    assert (result.status, result.message) == ("ok", "")
    assert [stdout_of(c) for c in result.notebook.cells] == ["avant\n", "True EAGAIN\n", "après\n"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and host_processes_with(marker):
        time.sleep(0.05)
    assert host_processes_with(marker) == []
    after = pool.execute(notebook("print('ça marche')"), name="apres")
    assert (after.status, stdout_of(after.notebook.cells[0])) == ("ok", "ça marche\n")


@isolated_only
def test_three_thousand_threads_fail_with_eagain_and_the_copy_goes_on(pool):
    if pool.cgroups is None:
        pytest.skip(f"cgroups indisponibles : {pool.cgroup_reason}")
    threads = (
        "import threading, time\n"
        "started = 0\n"
        "try:\n"
        "    for i in range(3000):\n"
        "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError as error:\n"
        "    print(0 < started < LIMIT, error)"
    ).replace("LIMIT", str(LIMITS.max_processes))
    result = pool.execute(notebook(threads, "print('après')"), name="fils")
    assert (result.status, [stdout_of(c) for c in result.notebook.cells]) == (
        "ok",
        ["True can't start new thread\n", "après\n"],
    )


@isolated_only
def test_without_cgroups_a_fork_bomb_is_killed_and_the_pool_keeps_working():
    """The fallback where the kernel's cgroups are not usable: the worker's watchdog stops the copy."""
    marker = unique_sleep()
    with WorkerPool(1, LIMITS, isolated=True, cgroups=False) as pool:
        started = time.monotonic()
        result = pool.execute(notebook("print('avant')", FORK_BOMB.format(marker=marker), "print('après')"), name="b")
        assert time.monotonic() - started < 30
        assert (result.status, result.message) == (
            "killed",
            f"trop de processus (plus de {LIMITS.max_processes} à la fois) (cellule 2) ; 1 cellule non exécutée",
        )
        assert stdout_of(result.notebook.cells[0]) == "avant\n"
        assert [(o.ename, o.evalue) for o in result.notebook.cells[1].outputs if o.output_type == "error"] == [
            ("ResourceLimitError", f"Exécution arrêtée : trop de processus (plus de {LIMITS.max_processes} à la fois).")
        ]
        assert host_processes_with(marker) == []
        after = pool.execute(notebook("print('ça marche')"), name="apres")
        assert (after.status, stdout_of(after.notebook.cells[0])) == ("ok", "ça marche\n")


@isolated_only
def test_a_memory_bomb_is_contained(pool):
    result = pool.execute(
        notebook(
            "import torch\nt = torch.empty(10**11)",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(10**9))",
            "del chunks\nprint('après')",
        ),
        name="memoire",
    )
    assert result.status == "ok"
    first = result.notebook.cells[0].outputs
    assert [o.ename for o in first] == ["RuntimeError"] and "can't allocate memory" in first[0].evalue
    assert [(o.output_type, o.get("ename")) for o in result.notebook.cells[1].outputs] == [("error", "MemoryError")]
    assert stdout_of(result.notebook.cells[2]) == "après\n"


@isolated_only
def test_processes_started_by_a_submission_do_not_outlive_its_job(pool):
    session, daemon = unique_sleep(), unique_sleep()
    start = (
        "import os, subprocess\n"
        f"subprocess.Popen(['sleep', '{session}'], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execvp('sleep', ['sleep', '{daemon}'])\n"
        "    os._exit(0)\n"
        "import time\n"
        "time.sleep(0.5)\n"
        "running = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    args = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
        "    if args[0] == b'sleep':\n"
        "        running.append(args[1].decode())\n"
        "print(sorted(running))"
    )
    result = pool.execute(notebook(start), name="demons")
    assert stdout_of(result.notebook.cells[0]) == f"{sorted([session, daemon])}\n"  # both were running
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (host_processes_with(session) or host_processes_with(daemon)):
        time.sleep(0.05)
    assert host_processes_with(session) == [] and host_processes_with(daemon) == []


@isolated_only
def test_a_copy_cannot_see_what_a_previous_copy_left(pool):
    leave = (
        "open('trace.txt', 'w').write('1')\nopen('/tmp/trace', 'w').write('1')\n"
        "open('/dev/shm/trace', 'w').write('1')\nimport time\ntime.sleep(0.5)"
    )
    # Two slow jobs at once: each worker runs one, so the next job follows one of them wherever it runs.
    for future in [pool.submit(notebook(leave), name=f"laisse{k}") for k in range(2)]:
        assert future.result().status == "ok"
    look = attempts(("copie", "open('trace.txt')"), ("tmp", "open('/tmp/trace')"), ("shm", "open('/dev/shm/trace')"))
    result = pool.execute(notebook(look), name="cherche")
    assert stdout_of(result.notebook.cells[0]) == "copie: ENOENT\ntmp: ENOENT\nshm: ENOENT\n"


def test_without_isolation_the_limits_still_apply(bare_pool):
    marker = unique_sleep()
    limits = (
        "import resource\n"
        "for name in ('RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_CORE'):\n"
        "    print(name, resource.getrlimit(getattr(resource, name)))\n"
        "print(resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY)"
    )
    bomb = FORK_BOMB.format(marker=marker)
    results = [
        bare_pool.execute(notebook(limits, "x = []\nwhile True:\n    x.append(bytearray(10**9))"), name="limites"),
        bare_pool.execute(notebook(bomb), name="bombe"),
        bare_pool.execute(notebook("while True:\n    pass"), name="boucle"),
    ]
    assert stdout_of(results[0].notebook.cells[0]) == (
        f"RLIMIT_CPU ({LIMITS.cpu_seconds}, {LIMITS.cpu_seconds + 5})\n"
        f"RLIMIT_FSIZE ({50 * 2**20}, {50 * 2**20})\nRLIMIT_CORE (0, 0)\nTrue\n"
    )
    assert [o.ename for o in results[0].notebook.cells[1].outputs] == ["MemoryError"]
    if bare_pool.cgroups is not None:  # the kernel refuses the extra processes, even without the sandbox
        assert (results[1].status, stdout_of(results[1].notebook.cells[0])) == ("ok", "True EAGAIN\n")
    else:
        assert (results[1].status, results[1].message) == (
            "killed",
            f"trop de processus (plus de {LIMITS.max_processes} à la fois) (cellule 1)",
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and host_processes_with(marker):
        time.sleep(0.05)
    assert host_processes_with(marker) == []
    assert results[2].status == "cell_timeout"
    assert [o.ename for o in results[2].notebook.cells[0].outputs] == ["KeyboardInterrupt", "CellTimeoutError"]
