"""Execution engine for grading: a pool of warm, sandboxed workers that run notebooks like a kernel.

It replaces nbgrader's ``Execute`` preprocessor. The caller hands over a sanitized notebook (locked
and test cells already restored from the gradebook) and gets back an executed copy in nbformat v4,
with the outputs and execution counts a Jupyter kernel would have produced, ready for nbgrader's
LimitOutput / IgnorePattern / SaveAutoGrades.

Each worker (see ``autograder.grading.worker``) preloads torch, numpy, matplotlib, IPython and the
autograder package once, then forks a child per notebook: a submission starts in about a
millisecond instead of the ~2.3 s of a fresh kernel plus ``import torch``. Each job is isolated from
the others (own process tree, own scratch folder, killed entirely afterwards) and limited in time,
memory, CPU, processes and output size; whatever it does, the other jobs go on.
"""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder.grading import cgroups as cgroup_limits
from autograder.grading import check_cells, messages, protocol, sandbox
from autograder.grading.worker import BOOT
from autograder.verdict import NOT_A_CHECK

if TYPE_CHECKING:  # nbformat (1,3 s to import) is imported when a result is built: the workers start first
    import nbformat

STATUSES = ("ok", "cell_timeout", "notebook_timeout", "crashed", "killed")
START_TIMEOUT = 180.0  # s for a worker to preload (torch, matplotlib...) and say it is ready
START_FRAME_ALLOWANCE = 1 << 16  # the "ready" message


@dataclass(frozen=True)
class ExecutionLimits:
    cell_timeout: float = 30.0  # s per cell: SIGINT, error in that cell, next cells run (nbgrader semantics)
    notebook_timeout: float = 180.0  # s per notebook (wall clock); the remaining cells are not run
    memory_mb: int = 4096  # memory of a copy: per process on top of the preloaded libraries, and in all (cgroup)
    cpu_seconds: int = 300  # CPU time per process of a submission
    max_processes: int = 32  # processes and threads of a copy at once (more: EAGAIN; killed without cgroups)
    max_output_chars: int = 200_000  # stream text per cell, truncated beyond with a French marker
    max_output_bytes: int = 5_000_000  # rich outputs (images...) per cell, dropped beyond with a French marker
    interrupt_grace: float = 2.0  # CPU s a copy may use after SIGINT before SIGKILL, when a cell overruns
    tmp_mb: int = 512  # size of a copy's /tmp (its own tmpfs, counted in its memory)
    max_files: int = 50_000  # files and folders a copy may create in /tmp and in /dev/shm


def host_frame_cap(limits: ExecutionLimits) -> int:
    """Largest frame the host reads from a worker: one cell's outputs, bounded by the worker."""
    return 8 * (limits.max_output_bytes + limits.max_output_chars) + (1 << 20)


def host_copy_cap(limits: ExecutionLimits) -> int:
    """Most bytes the host reads from a worker for one copy; beyond, the worker is not believed."""
    return 4 * host_frame_cap(limits)


@dataclass
class ExecutionResult:
    notebook: nbformat.NotebookNode  # executed copy: outputs and execution_count filled like a kernel would
    status: str  # "ok" | "cell_timeout" | "notebook_timeout" | "crashed" | "killed"
    message: str  # French, for the instructor's report ("" when ok)
    duration: float
    # grade_id -> the trusted checker's verdict (autograder.verdict.Verdict as a dict), for decided test cells
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # French remarks for the report


class WorkerStartError(RuntimeError):
    pass


class _WorkerGone(RuntimeError):
    """The worker died between two jobs: the job was not sent, it can go to a fresh worker."""


class _WorkerFailed(RuntimeError):
    """The worker died, stopped answering or broke the protocol during a job: the copy is run again once."""

    def __init__(self, result: ExecutionResult):
        super().__init__(result.message)
        self.result = result


class _Untrusted(ValueError):
    """A message of a worker that does not follow the protocol (French detail)."""


@dataclass
class _Job:
    notebook: nbformat.NotebookNode
    name: str
    files: Mapping[str, bytes]
    future: concurrent.futures.Future


def _from_dict(data: dict[str, Any]) -> nbformat.NotebookNode:
    from nbformat import from_dict

    return from_dict(data)


def executable_cells(nb: nbformat.NotebookNode, *, trusted: bool = False) -> list[dict[str, Any]]:
    """The cells a kernel would execute, as nbclient picks them (code, non-empty, not skip-execution).

    ``trusted``: a test cell made of ``check(...)`` calls is sent as ``serve`` with no source (the trusted
    checker decides it; its source and hidden parameters never reach the student's process), whatever its tags.
    """
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or not str(cell.get("source", "")).strip():
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if trusted and meta.get("grade") and check_cells.parse_checks(cell.source):
            cells.append({"i": index, "source": "", "serve": True, "grade": True, "grade_id": grade_id})
            continue
        if "skip-execution" in cell.get("metadata", {}).get("tags", []):
            continue
        cells.append({"i": index, "source": cell.source, "grade": bool(meta.get("grade")), "grade_id": grade_id})
    return cells


class _WorkerProcess:
    """Host-side handle of one worker process."""

    def __init__(self, pool: WorkerPool, number: int):
        self.pool = pool
        self.number = number
        self.log = tempfile.TemporaryFile(prefix=f"worker{number}-", dir=pool.tmpdir)
        config = {
            "limits": asdict(pool.limits),
            "isolated": pool.isolated,
            "scratch_root": None if pool.isolated else str(pool.scratch_root),
            "cgroups": pool.cgroups is not None,
            "copy_space": {
                "tmp_bytes": pool.limits.tmp_mb << 20,
                "shm_bytes": sandbox.SHM_SIZE,
                "inodes": pool.limits.max_files,
            },
        }
        command = [sys.executable, "-c", BOOT, json.dumps(config)]
        if pool.isolated:
            argv = sandbox.sandbox_argv(command, env=pool.env, as_pid_1=True, confines_copies=True)
            env = None
            cwd = None
        else:
            argv = command
            env = {**os.environ, **sandbox.minimal_env({"HOME": str(pool.home), **pool.env})}
            env["PATH"] = sandbox.minimal_env()["PATH"] + ":" + os.environ.get("PATH", "")
            cwd = str(pool.scratch_root)
        started = time.monotonic()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.stdin = self.process.stdin.fileno()
        self.stdout = self.process.stdout.fileno()
        self.parser = protocol.FrameParser(host_frame_cap(pool.limits))
        self.frames: list[Any] = []
        self.received = 0  # bytes read for the current job
        self.copy_cap = host_copy_cap(pool.limits) + START_FRAME_ALLOWANCE
        self.job_pid: int | None = None  # the current job's child (its session id), for --sans-isolation
        self._host_pid: int | None = None
        ready = self.receive(started + START_TIMEOUT)
        if ready is None or ready.get("t") != "ready":
            self.kill()
            raise WorkerStartError(self.log_tail())
        self.ready = ready
        self.startup = time.monotonic() - started

    def send(self, message: dict[str, Any]) -> None:
        protocol.write_frame(self.stdin, json.dumps(message).encode())

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """Next message, or None at end of file or when the deadline passes."""
        while not self.frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.stdout], [], [], remaining)
            if not readable:
                return None
            data = os.read(self.stdout, 1 << 16)  # below malloc's mmap threshold: one small read stays cheap
            if not data:
                return None
            self.received += len(data)
            if self.received > self.copy_cap:
                raise _Untrusted(f"plus de {self.copy_cap} octets envoyés pour une seule copie")
            self.frames.extend(self.parser.feed(data))
        frame = self.frames.pop(0)
        if frame is protocol.OVERSIZED:
            raise _Untrusted(f"message de plus de {self.parser.max_frame} octets")
        try:
            message = json.loads(frame)
        except ValueError as error:
            raise _Untrusted("message illisible") from error
        if not isinstance(message, dict):
            raise _Untrusted("message illisible")
        return message

    def alive(self) -> bool:
        return self.process.poll() is None

    def host_pid(self) -> int:
        """The worker's pid on the host (inside bubblewrap it is the sandbox's PID 1, a child of bwrap)."""
        if self._host_pid is None:
            self._host_pid = self.process.pid
            if self.pool.isolated:
                for pid in _descendants(self.process.pid):
                    pids = _namespace_pids(pid)
                    if len(pids) >= 2 and pids[-1] == self.ready.get("pid"):
                        self._host_pid = pid
                        break
        return self._host_pid

    def log_tail(self, size: int = 2000) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            length = self.log.tell()
            self.log.seek(max(0, length - size))
            return self.log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        """Kill the worker and everything it started, wait for it, release its pipes."""
        self.send_kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._close()

    def send_kill(self) -> None:
        """SIGKILL the worker and its job (bwrap takes its PID namespace down with it); thread-safe."""
        victims = [self.process.pid] if self.process.poll() is None else []
        if not self.pool.isolated:
            # No PID namespace: find the job's processes through the worker's tree and the job's session.
            victims += _descendants(self.process.pid)
            if self.job_pid is not None:
                victims += _session_members(self.job_pid)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self) -> None:
        try:
            self.process.stdin.close()  # EOF: the worker kills what is left and exits
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close()

    def _close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.log):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def _proc_stats() -> dict[int, list[str]]:
    """Fields after the command name of /proc/<pid>/stat, for every process."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stats[int(entry)] = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
    return stats


def _session_members(sid: int) -> list[int]:
    return [pid for pid, fields in _proc_stats().items() if len(fields) > 3 and fields[3] == str(sid)]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, fields in _proc_stats().items():
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(pid)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _as_pid(value: Any) -> int:
    if type(value) is not int or value < 1:
        raise _Untrusted("numéro de processus invalide")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Untrusted("texte attendu")
    return value


def _cell_message(message: dict[str, Any], indices: set[int]) -> tuple[int, list[Any], int | None]:
    """A worker's report of one cell, checked field by field: index, execution count, nbformat outputs."""
    index, count, outputs = message.get("i"), message.get("ec"), message.get("outputs")
    if type(index) is not int or index not in indices:
        raise _Untrusted("cellule inconnue")
    if count is not None and type(count) is not int:
        raise _Untrusted("compteur d'exécution invalide")
    if not isinstance(outputs, list):
        raise _Untrusted("sorties invalides")
    if not all(_valid_output(output) for output in outputs):
        raise _Untrusted("sortie non conforme au format `nbformat`")
    return index, [_from_dict(output) for output in outputs], count


def _valid_output(output: Any) -> bool:
    """The shape nbformat v4 requires of an output (what nbgrader and the feedback pages read)."""
    if not isinstance(output, dict):
        return False
    kind = output.get("output_type")
    strings = lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value)  # noqa: E731
    if kind == "stream":
        return (
            set(output) == {"output_type", "name", "text"}
            and output["name"] in ("stdout", "stderr")
            and (isinstance(output["text"], str))
        )
    if kind == "error":
        return (
            set(output) == {"output_type", "ename", "evalue", "traceback"}
            and isinstance(output["ename"], str)
            and isinstance(output["evalue"], str)
            and strings(output["traceback"])
        )
    if kind in ("display_data", "execute_result"):
        keys = {"output_type", "data", "metadata"} | ({"execution_count"} if kind == "execute_result" else set())
        data = output.get("data")
        return (
            set(output) == keys
            and isinstance(data, dict)
            and all(isinstance(k, str) for k in data)
            and isinstance(output.get("metadata"), dict)
            and (kind == "display_data" or output["execution_count"] is None or type(output["execution_count"]) is int)
        )
    return False


def _namespace_pids(pid: int) -> list[int]:
    """The pid of a process in each PID namespace it belongs to, outermost first (NSpid)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.extend(int(c) for c in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _host_pid(worker_pid: int, pid_in_worker: int) -> int | None:
    """Host pid of the worker's child whose pid, seen from the worker, is ``pid_in_worker``."""
    level = len(_namespace_pids(worker_pid)) - 1
    for child in _children(worker_pid):
        pids = _namespace_pids(child)
        if len(pids) > level and pids[level] == pid_in_worker:
            return child
    return None


class WorkerPool:
    """``size`` warm workers executing notebooks concurrently; thread-safe."""

    def __init__(
        self,
        size: int,
        limits: ExecutionLimits = ExecutionLimits(),  # noqa: B008 - frozen dataclass
        *,
        isolated: bool = True,
        env: dict[str, str] | None = None,
        trusted: bool = False,
        cgroups: bool = True,
    ):
        if size < 1:
            raise ValueError("size must be at least 1")
        hierarchy, self.cgroup_reason = cgroup_limits.available() if cgroups else (None, "désactivés")
        self.cgroups = cgroup_limits.PoolCgroups(hierarchy) if hierarchy is not None else None
        self._dying: list[cgroup_limits.CopyCgroup] = []  # copies whose last processes are still exiting
        self.size = size
        self.limits = limits
        self.isolated = isolated
        self.trusted = trusted  # test cells of check(...) calls are decided by a trusted checker process
        self.env = dict(env or {})
        self.tmpdir = Path(tempfile.mkdtemp(prefix="autograder-pool-"))
        self.home = self.tmpdir / "home"
        self.scratch_root = self.tmpdir / "copies"
        self.home.mkdir()
        self.scratch_root.mkdir()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._workers: dict[int, _WorkerProcess] = {}
        self._checkers: dict[int, check_cells.CheckerProcess] = {}
        self._zygote: check_cells.CheckerZygote | None = None
        self._zygote_lock = threading.Lock()
        if trusted:  # warms up (torch, the exercises) while the workers do
            self._zygote = self._new_zygote()
        # Every exercise as plain data, from the first checker ready (the class report's catalogue).
        self.catalogue: dict[str, Any] | None = None
        self.stats: list[dict[str, Any]] = []  # per-worker start-up measures (for benchmarks)
        self._threads = [
            threading.Thread(target=self._serve, args=(number,), name=f"autograder-worker-{number}", daemon=True)
            for number in range(size)
        ]
        for thread in self._threads:
            thread.start()

    # -- public API -----------------------------------------------------------------------------
    def submit(
        self, nb: nbformat.NotebookNode, *, name: str, files: Mapping[str, bytes] | None = None
    ) -> concurrent.futures.Future[ExecutionResult]:
        """Queue a notebook; ``files`` (relative path -> content) are put next to it in its scratch folder."""
        future: concurrent.futures.Future[ExecutionResult] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("WorkerPool is closed")
            self._jobs.put(_Job(nb, name, dict(files or {}), future))
        return future

    def execute(
        self, nb: nbformat.NotebookNode, *, name: str, files: Mapping[str, bytes] | None = None
    ) -> ExecutionResult:
        return self.submit(nb, name=name, files=files).result()

    def close(self, *, cancel: bool = False) -> None:
        """Finish the queued jobs and stop the workers; ``cancel``: drop the queued jobs, kill running ones."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if cancel:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job.future.cancel()
            for _ in self._threads:
                self._jobs.put(None)
            if cancel:
                for worker in list(self._workers.values()):
                    worker.send_kill()
        for thread in self._threads:
            thread.join()
        if self._zygote is not None:
            self._zygote.close()
        if self.cgroups is not None:
            for group in self._dying:
                group.kill()
                group.remove(wait=5.0)
            self.cgroups.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(cancel=exc_type is not None)

    # -- one thread per worker ----------------------------------------------------------------
    def _serve(self, number: int) -> None:
        # The thread that spawns a worker must outlive it: bwrap's --die-with-parent follows the spawning thread.
        worker: _WorkerProcess | None = None
        start_error: str | None = None
        try:
            if self.trusted:
                self._checkers[number] = self._start_checker()
            worker, start_error = self._start(number)
            while True:
                job = self._jobs.get()
                if job is None:
                    break
                if not job.future.set_running_or_notify_cancel():
                    continue
                try:
                    worker, start_error = self._serve_one(number, job, worker, start_error)
                except Exception as error:  # noqa: BLE001 - never leave a future unresolved
                    if not job.future.done():
                        job.future.set_exception(error)
        finally:
            if worker is not None:
                worker.stop()
            checker = self._checkers.pop(number, None)
            if checker is not None:
                checker.close()

    def _serve_one(
        self, number: int, job: _Job, worker: _WorkerProcess | None, start_error: str | None
    ) -> tuple[_WorkerProcess | None, str | None]:
        """Run one job (on a fresh worker if needed). A worker that dies, hangs or breaks the protocol costs
        only this copy, which is run once more on a fresh worker before its failure is reported."""
        result = None
        failures = 0
        for _attempt in range(3):
            if worker is None or not worker.alive():
                if worker is not None:
                    worker.kill()
                worker, start_error = self._start(number)
            try:
                result = self._run(worker, job, start_error, number)
                break
            except _WorkerGone:
                worker.kill()
                worker = None
            except _WorkerFailed as failure:
                worker.kill()
                worker = None
                failures += 1
                result = failure.result
                if failures == 2:
                    break
            except Exception as error:  # noqa: BLE001 - a grader bug must not lose the copy
                result = self._failed(job, "crashed", f"erreur interne du correcteur : {error!r}", 0.0)
                if worker is not None:
                    worker.kill()
                    worker = None
                break
        if result is None:
            result = self._failed(job, "crashed", "le processus de correction s'est arrêté avant la copie", 0.0)
        job.future.set_result(result)
        if worker is not None and not worker.alive():
            worker.kill()
            worker = None
        return worker, start_error

    def _start(self, number: int) -> tuple[_WorkerProcess | None, str | None]:
        try:
            worker = _WorkerProcess(self, number)
        except Exception as error:  # noqa: BLE001 - reported in the copies' results
            return None, str(error) or f"le processus s'est arrêté sans message ({type(error).__name__})"
        with self._lock:
            self.stats.append({"worker": number, "startup": worker.startup, "preload": worker.ready.get("preload")})
            self._workers[number] = worker
        return worker, None

    def _start_checker(self) -> check_cells.CheckerProcess:
        with self._zygote_lock:
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = self._new_zygote()
            zygote = self._zygote
        return zygote.spawn()

    def _new_zygote(self) -> check_cells.CheckerZygote:
        return check_cells.CheckerZygote(tempfile.TemporaryFile(prefix="checker-", dir=self.tmpdir))

    def _checker(self, number: int) -> check_cells.CheckerProcess:
        checker = self._checkers.get(number)
        if checker is None or not checker.alive():
            if checker is not None:
                checker.close()
            checker = self._checkers[number] = self._start_checker()
        return checker

    def _run(
        self, worker: _WorkerProcess | None, job: _Job, start_error: str | None, number: int = 0
    ) -> ExecutionResult:
        started = time.monotonic()
        if worker is None:
            return self._failed(
                job, "crashed", f"impossible de démarrer l'environnement d'exécution : {start_error}", 0.0
            )
        nb = copy.deepcopy(job.notebook)
        cells = executable_cells(nb, trusted=self.trusted)
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                cell.outputs = []
                cell.execution_count = None
        files = {path: base64.b64encode(bytes(data)).decode("ascii") for path, data in job.files.items()}
        if any(cell.get("serve") for cell in cells):
            try:  # before the copy starts: a check cell's time limit must not pay the checker's start-up
                checker = self._checker(number)
                checker.wait_ready(started + START_TIMEOUT)
                self.catalogue = self.catalogue or checker.catalogue
            except check_cells.CheckerError:
                self._checkers.pop(number).close()
        worker.received = 0
        try:
            worker.send({"name": job.name, "cells": cells, "files": files})
        except OSError as error:
            raise _WorkerGone from error
        limits = self.limits
        deadline = started + limits.notebook_timeout + limits.interrupt_grace + 30.0
        indices = {cell["i"] for cell in cells}
        received: set[int] = set()
        trusted = _TrustedCells(self, number, nb, cells, worker, deadline)
        done: dict[str, Any] | None = None
        group: cgroup_limits.CopyCgroup | None = None
        problem = ""

        def take(message: dict[str, Any]) -> None:
            """One message of the worker, read as untrusted data."""
            nonlocal done, group
            kind = message.get("t")
            if kind == "job" and group is None and worker.job_pid is None:
                worker.job_pid = _as_pid(message.get("pid"))
                group = self._confine(worker)
            elif kind == "cell":
                index, outputs, count = _cell_message(message, indices)
                nb.cells[index].outputs = outputs
                nb.cells[index].execution_count = count
                received.add(index)
            elif kind == "done" and message.get("status") in STATUSES:
                _text(message.get("message"))
                done = message
            elif kind != "reply":  # a late reply to a check already decided: nothing to do
                raise _Untrusted(f"message inattendu ({str(kind)[:20]})")

        try:
            while done is None:
                message = worker.receive(deadline)
                if message is None:
                    break
                if message.get("t") == "serve":
                    trusted.decide(message.get("i"), take, lambda: done)
                else:
                    take(message)
        except _Untrusted as error:
            problem = str(error)
        except OSError as error:  # the worker's pipes broke
            problem = str(error)
        finally:
            worker.job_pid = None
            if group is not None:
                group.kill()
                if not group.remove():
                    with self._lock:
                        self._dying.append(group)
        if done is not None:
            result = ExecutionResult(nb, done["status"], done.get("message", ""), time.monotonic() - started)
            trusted.finish(result)
            return result
        # The worker died, stopped answering or broke the protocol: kill it, mark what it did not report.
        if problem and number in self._checkers:  # it may have been interrupted in the middle of a check
            self._checkers.pop(number).close()
        timed_out = time.monotonic() >= deadline
        worker.kill()
        missing = [cell["i"] for cell in cells if cell["i"] not in received]
        if problem:
            status = "crashed"
            detail = f"le processus de correction a enfreint le protocole ({problem}) et a été arrêté"
        elif timed_out:
            status, detail = "killed", "le processus de correction ne répondait plus et a été arrêté"
        else:
            status, detail = "crashed", "le processus de correction s'est arrêté de façon inattendue"
        if missing:
            first, rest = missing[0], missing[1:]
            evalue = f"{detail[0].upper()}{detail[1:]} pendant cette cellule."
            nb.cells[first].outputs = [_from_dict(messages.error_output("DeadKernelError", evalue))]
            for index in rest:
                nb.cells[index].outputs = [
                    _from_dict(messages.not_executed_output("le processus de correction s'est arrêté."))
                ]
        result = ExecutionResult(nb, status, detail, time.monotonic() - started)
        trusted.finish(result)
        raise _WorkerFailed(result)

    def _confine(self, worker: _WorkerProcess) -> cgroup_limits.CopyCgroup | None:
        """Put the new copy into its own cgroup (before it runs anything), then let it start."""
        group = None
        if self.cgroups is not None:
            with self._lock:
                for dying in list(self._dying):
                    if dying.remove():
                        self._dying.remove(dying)
            host_pid = _host_pid(worker.host_pid(), worker.job_pid or -1)
            if host_pid is None:
                raise _Untrusted("copie introuvable")
            group = self.cgroups.copy(
                (self.limits.memory_mb << 20) + cgroup_limits.MEMORY_MARGIN, self.limits.max_processes
            )
            group.add(host_pid)
            worker.send({"t": "go"})
        return group

    def _failed(self, job: _Job, status: str, message: str, duration: float) -> ExecutionResult:
        nb = copy.deepcopy(job.notebook)
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                cell.outputs = []
                cell.execution_count = None
        for cell in executable_cells(nb):
            nb.cells[cell["i"]].outputs = [_from_dict(messages.not_executed_output(message))]
        return ExecutionResult(nb, status, message, duration)


class _TrustedCells:
    """The test cells of one job that the trusted checker decides, and their verdicts."""

    def __init__(
        self,
        pool: WorkerPool,
        number: int,
        nb: nbformat.NotebookNode,
        cells: list[dict[str, Any]],
        worker: _WorkerProcess,
        deadline: float,
    ):
        self.pool = pool
        self.number = number
        self.nb = nb
        self.worker = worker
        self.deadline = deadline
        self.checks = {
            cell["i"]: check_cells.parse_checks(nb.cells[cell["i"]].source) for cell in cells if cell.get("serve")
        }
        self.results: dict[int, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.plain: dict[int, str] = {}  # test cells that are not check(...) calls: index -> grade_id
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if pool.trusted and cell.get("cell_type") == "code" and meta.get("grade") and index not in self.checks:
                self.plain[index] = str(meta.get("grade_id"))
                self.notes.append(
                    f"cellule de test « {meta.get('grade_id')} » hors `check(...)` : exécutée dans le noyau de la "
                    "copie, avec la sémantique de nbgrader (son résultat n'est pas garanti)"
                )

    def _points(self, index: int) -> float:
        return float(self.nb.cells[index].metadata.get("nbgrader", {}).get("points") or 0)

    def decide(self, index: Any, take, finished) -> None:
        """The child serves test cell ``index``: have the checker judge it, relaying its requests."""
        if index not in self.checks or index in self.results:
            return
        checks = self.checks[index]
        worker = self.worker

        def relay(request: bytes) -> bytes:
            if finished() is not None:
                raise check_cells.KernelGone(*self._gone(finished()))
            try:
                worker.send({"t": "req", "body": request.decode("utf-8")})
            except OSError:
                raise check_cells.KernelGone("crashed") from None
            while True:
                message = worker.receive(self.deadline)
                if message is None:
                    raise check_cells.KernelGone("crashed")
                kind = message.get("t")
                if kind == "reply":
                    body = message.get("body")
                    return body.encode("utf-8") if isinstance(body, str) else b""
                take(message)
                if finished() is not None:
                    raise check_cells.KernelGone(*self._gone(finished()))
                if kind == "cell" and message.get("i") == index:  # the child left the cell without answering
                    raise check_cells.KernelGone("timeout" if _timed_out(message) else "crashed")

        try:
            result = self.pool._checker(self.number).judge(checks, self._points(index), relay, self.deadline)
        except check_cells.CheckerError as error:
            checker = self.pool._checkers.pop(self.number, None)
            if checker is not None:
                checker.close()
            self.notes.append(f"erreur interne du vérificateur sur « {checks[0].exercise_id} » : {error}")
            result = check_cells.undecided_result(
                checks[0].exercise_id,
                self._points(index),
                "plantage",
                "Le vérificateur n'a pas pu juger cette cellule (erreur interne du correcteur).",
            )
        self.results[index] = result
        if finished() is None:
            try:
                worker.send({"t": "req", "body": '{"op": "end"}', "end": True})
            except OSError:
                pass

    @staticmethod
    def _gone(done: dict[str, Any]) -> tuple[str, str]:
        status = done.get("status")
        return ("timeout" if status in ("cell_timeout", "notebook_timeout") else "crashed", done.get("message", ""))

    def finish(self, result: ExecutionResult) -> None:
        """Write every decided cell's outputs from its verdict; a cell never decided gets a failing verdict."""
        for index, checks in self.checks.items():
            cell = self.nb.cells[index]
            decided = self.results.get(index)
            if decided is None:
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                timed_out = any("Timeout" in str(o.get("ename", "")) for o in errors)
                code = "delai_depasse" if timed_out else "plantage"
                message = "; ".join(str(o.get("evalue", "")) for o in errors) or (
                    "La vérification n'a pas eu lieu : le noyau n'a pas atteint cette cellule."
                )
                decided = check_cells.undecided_result(checks[0].exercise_id, self._points(index), code, message)
                if errors:
                    decided["outputs"] = [dict(o) for o in errors]
            cell.outputs = [_from_dict(o) for o in check_cells.verdict_outputs(decided)]
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id") or checks[0].exercise_id
            result.verdicts[grade_id] = decided["verdict"]
        for index, grade_id in self.plain.items():  # scored by nbgrader from the kernel's outputs
            points = self._points(index)
            result.verdicts[grade_id] = {
                "exercise_id": grade_id, "code": NOT_A_CHECK, "points": 0.0, "max_points": points, "message": "",
            }  # fmt: skip
        result.notes.extend(self.notes)


def _timed_out(message: dict[str, Any]) -> bool:
    return any("Timeout" in str(o.get("ename", "")) for o in message.get("outputs") or [])
