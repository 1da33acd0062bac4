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
from typing import Any

import nbformat

from autograder.grading import check_cells, messages, protocol, sandbox
from autograder.grading.worker import BOOT
from autograder.verdict import NOT_A_CHECK

STATUSES = ("ok", "cell_timeout", "notebook_timeout", "crashed", "killed")
START_TIMEOUT = 180.0  # s for a worker to preload (torch, matplotlib...) and say it is ready


@dataclass(frozen=True)
class ExecutionLimits:
    cell_timeout: float = 30.0  # s per cell: SIGINT, error in that cell, next cells run (nbgrader semantics)
    notebook_timeout: float = 180.0  # s per notebook (wall clock); the remaining cells are not run
    memory_mb: int = 4096  # address space a submission may map on top of the preloaded libraries
    cpu_seconds: int = 300  # CPU time per process of a submission
    max_processes: int = 32  # processes a submission may have at once (fork bombs are killed)
    max_output_chars: int = 200_000  # stream text per cell, truncated beyond with a French marker
    max_output_bytes: int = 5_000_000  # rich outputs (images...) per cell, dropped beyond with a French marker
    interrupt_grace: float = 2.0  # s between SIGINT and SIGKILL when a cell overruns


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


@dataclass
class _Job:
    notebook: nbformat.NotebookNode
    name: str
    files: Mapping[str, bytes]
    future: concurrent.futures.Future


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
        }
        command = [sys.executable, "-c", BOOT, json.dumps(config)]
        if pool.isolated:
            argv = sandbox.sandbox_argv(command, env=pool.env, as_pid_1=True)
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
        self.parser = protocol.FrameParser(1 << 30)
        self.frames: list[Any] = []
        self.job_pid: int | None = None  # the current job's child (its session id), for --sans-isolation
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
            data = os.read(self.stdout, 1 << 20)
            if not data:
                return None
            self.frames.extend(self.parser.feed(data))
        frame = self.frames.pop(0)
        return json.loads(frame) if isinstance(frame, bytes) else {}

    def alive(self) -> bool:
        return self.process.poll() is None

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
    ):
        if size < 1:
            raise ValueError("size must be at least 1")
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
        """Run one job (on a fresh worker if needed, again on another one if it died before the job)."""
        result = None
        for _attempt in range(2):
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
        log = tempfile.TemporaryFile(prefix="checker-", dir=self.tmpdir)
        return check_cells.CheckerProcess(log)

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
                self._checker(number).wait_ready(started + START_TIMEOUT)
            except check_cells.CheckerError:
                self._checkers.pop(number).close()
        try:
            worker.send({"name": job.name, "cells": cells, "files": files})
        except OSError as error:
            raise _WorkerGone from error
        limits = self.limits
        deadline = started + limits.notebook_timeout + limits.interrupt_grace + 30.0
        received: set[int] = set()
        trusted = _TrustedCells(self, number, nb, cells, worker, deadline)
        done: dict[str, Any] | None = None

        def take(message: dict[str, Any]) -> None:
            nonlocal done
            kind = message.get("t")
            if kind == "job":
                worker.job_pid = message.get("pid")
            elif kind == "cell":
                index = message["i"]
                nb.cells[index].outputs = [nbformat.from_dict(o) for o in message["outputs"]]
                nb.cells[index].execution_count = message["ec"]
                received.add(index)
            elif kind == "done":
                done = message

        while done is None:
            message = worker.receive(deadline)
            if message is None:
                break
            if message.get("t") == "serve":
                trusted.decide(message.get("i"), take, lambda: done)
            else:
                take(message)
        if done is not None:
            status = done.get("status", "crashed")
            result = ExecutionResult(nb, status, done.get("message", ""), time.monotonic() - started)
            trusted.finish(result)
            return result
        # The worker died or stopped answering: kill it, mark the cells it did not report.
        timed_out = time.monotonic() >= deadline
        worker.kill()
        missing = [cell["i"] for cell in cells if cell["i"] not in received]
        if timed_out:
            status, detail = "killed", "le processus de correction ne répondait plus et a été arrêté"
        else:
            status, detail = "crashed", "le processus de correction s'est arrêté de façon inattendue"
        if missing:
            first, rest = missing[0], missing[1:]
            evalue = f"{detail[0].upper()}{detail[1:]} pendant cette cellule."
            nb.cells[first].outputs = [nbformat.from_dict(messages.error_output("DeadKernelError", evalue))]
            for index in rest:
                nb.cells[index].outputs = [
                    nbformat.from_dict(messages.not_executed_output("le processus de correction s'est arrêté."))
                ]
        result = ExecutionResult(nb, status, detail, time.monotonic() - started)
        trusted.finish(result)
        return result

    def _failed(self, job: _Job, status: str, message: str, duration: float) -> ExecutionResult:
        nb = copy.deepcopy(job.notebook)
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                cell.outputs = []
                cell.execution_count = None
        for cell in executable_cells(nb):
            nb.cells[cell["i"]].outputs = [nbformat.from_dict(messages.not_executed_output(message))]
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
                worker.send({"t": "req", "body": '{"op": "end"}'})
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
            cell.outputs = [nbformat.from_dict(o) for o in check_cells.verdict_outputs(decided)]
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
