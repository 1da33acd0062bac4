"""Worker of the grading pool: preload the course stack once, then run each notebook in a forked child.

A worker is one long-lived Python process, inside bubblewrap when isolation is on (it is then PID 1
of its own PID namespace). It imports torch, numpy, matplotlib, IPython and the autograder package,
builds an IPython shell, takes the tamper-guard snapshots, then waits for jobs on fd 0. For each
job it forks a child that executes the code cells in that pristine copy of the process, so a
submission starts in about a millisecond instead of the seconds a fresh kernel plus ``import torch``
take. The worker never runs student code itself: it watches the child (time limits, process count,
output limits), assembles the outputs like a Jupyter kernel would, kills every process the job left
behind and reports each cell to the host on fd 1.

Wire format, host <-> worker and child -> worker: frames made of a 4-byte big-endian length and a
payload. Host -> worker payloads are JSON jobs; worker -> host payloads are JSON messages
(``ready``, ``cell``, ``done``). Child -> worker payloads start with one byte: ``o``/``e`` (UTF-8
text written to sys.stdout/sys.stderr) or ``j`` (a JSON event).

This module only imports the standard library at import time: the host imports it for the framing
helpers and the French messages.
"""

from __future__ import annotations

import base64
import codecs
import ctypes
import json
import mmap
import os
import select
import signal
import struct
import sys
import time
from typing import Any

HEADER = struct.Struct(">I")
SCRATCH = "/tmp/copie"  # cwd of a submission inside the sandbox (a fresh, empty folder per job)
SANDBOX_HOME = "/tmp/home"
MAX_FILE_BYTES = 50 * 1024 * 1024  # RLIMIT_FSIZE of a submission
WATCHDOG_INTERVAL = 0.02  # s between two process counts
MAX_ERRORS_PER_CELL = 20
NICE = 10  # submissions run at a lower priority than their worker (and its watchdog)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# --------------------------------------------------------------------------------------------
# French texts (everything a student or an instructor reads)
# --------------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:g} s".replace(".", ",")


def _thousands(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def error_output(ename: str, evalue: str) -> dict[str, Any]:
    """An nbformat error output for an event the grader itself reports (timeout, crash...)."""
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"],
    }


def not_executed_output(reason: str) -> dict[str, Any]:
    return error_output("CellNotExecutedError", f"Cellule non exécutée : {reason}")


def died_output(detail: str) -> dict[str, Any]:
    return error_output(
        "DeadKernelError",
        f"Le noyau s'est arrêté pendant cette cellule (os._exit, mémoire épuisée ?) : {detail}.",
    )


def describe_exit(status: int | None) -> str:
    """French description of a child's wait status."""
    if status is None:
        return "cause inconnue"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        if number == signal.SIGXCPU:
            return f"limite de temps CPU atteinte (signal {name})"
        if number == signal.SIGKILL:
            return f"tué par le signal {name}, probablement faute de mémoire"
        return f"tué par le signal {name}"
    if os.WIFEXITED(status):
        return f"sortie avec le code {os.WEXITSTATUS(status)}"
    return "cause inconnue"


# --------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame, looping over partial writes."""
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, size: int) -> bytes | None:
    """Blocking read of exactly ``size`` bytes; None at end of file."""
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    return read_exact(fd, HEADER.unpack(head)[0])


OVERSIZED = object()  # yielded by FrameParser in place of a frame that was too big to keep


class FrameParser:
    """Incremental frame parser with bounded memory: a frame larger than ``max_frame`` is skipped."""

    def __init__(self, max_frame: int):
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[Any]:
        frames: list[Any] = []
        view = memoryview(data)
        while view:
            if self._skip:
                taken = min(self._skip, len(view))
                self._skip -= taken
                view = view[taken:]
                continue
            self._buffer += view
            view = memoryview(b"")
            while len(self._buffer) >= HEADER.size:
                size = HEADER.unpack_from(self._buffer)[0]
                if size > self.max_frame:
                    frames.append(OVERSIZED)
                    rest = self._buffer[HEADER.size :]
                    self._buffer = bytearray()
                    self._skip = size
                    view = memoryview(bytes(rest))
                    break
                if len(self._buffer) < HEADER.size + size:
                    break
                frames.append(bytes(self._buffer[HEADER.size : HEADER.size + size]))
                del self._buffer[: HEADER.size + size]
        return frames


def json_default(value: Any) -> Any:
    """Make kernel outputs JSON-able like ipykernel's json_clean (bytes become base64)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default, ensure_ascii=False).encode("utf-8", "replace")


def output_size(output: dict[str, Any]) -> int:
    """Approximate size in bytes of a rich output's data (what the limit is about)."""
    total = 0
    for value in (output.get("data") or {}).values():
        total += len(value) if isinstance(value, str) else len(dumps(value))
    return total


def dropped_output_marker(count: int, mimes: list[str], limit: int) -> dict[str, Any]:
    kinds = ", ".join(sorted(set(mimes))) or "données"
    plural = "s" if count > 1 else ""
    text = (
        f"[Sortie{plural} supprimée{plural} : {count} sortie{plural} ({kinds}) "
        f"au-delà de la limite de {_thousands(limit)} octets par cellule.]"
    )
    return {"output_type": "display_data", "data": {"text/plain": text}, "metadata": {}}


def truncation_marker(dropped: int, limit: int, scope: str = "par cellule") -> str:
    return (
        f"\n[… sortie tronquée : {_thousands(dropped)} caractères supprimés, "
        f"limite de {_thousands(limit)} caractères {scope}]\n"
    )


# --------------------------------------------------------------------------------------------
# Worker entry point
# --------------------------------------------------------------------------------------------

BOOT = "import autograder.grading.worker as w; w.main()"


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main() -> None:
    """Entry point (``python -c BOOT CONFIG``): preload, announce readiness, serve jobs until EOF."""
    config = json.loads(sys.argv[1])
    proto_in, proto_out = os.dup(0), os.dup(1)  # non-inheritable copies: a child closes them
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints of the worker go to its log, never into the protocol
    os.close(null)
    started = time.monotonic()
    worker = Worker(config, proto_in, proto_out)
    worker.preload()
    ready = {"t": "ready", "preload": time.monotonic() - started, "pid": os.getpid(), "uid": os.getuid()}
    write_frame(proto_out, dumps(ready))
    while True:
        payload = read_frame(proto_in)
        if payload is None:
            break
        worker.run_job(json.loads(payload))
    worker.kill_job_processes(wait=True)
    os._exit(0)


class Worker:
    """The in-sandbox side of one pool worker."""

    def __init__(self, config: dict[str, Any], proto_in: int, proto_out: int):
        self.limits: dict[str, Any] = config["limits"]
        self.isolated: bool = config["isolated"]
        self.scratch_root: str | None = config.get("scratch_root")
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.is_init = os.getpid() == 1  # PID 1 of a private PID namespace: kill(-1) is safe
        self.runtime: Runtime | None = None
        self.tmp_baseline: list[tuple[str, int, bytes | None]] = []
        self.root_modes: dict[str, int] = {}
        self.doomed: set[int] = set()  # killed, not yet reaped (not counted as processes of the next job)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self.wake_read, self.wake_write = wake_read, wake_write
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not self.is_init:
            # Orphans of a job are re-parented to us, so we can find and kill them; die with the host.
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    # -- preload ------------------------------------------------------------------------------
    def preload(self) -> None:
        if self.is_init:
            os.makedirs(SANDBOX_HOME, exist_ok=True)
        self.runtime = Runtime.create()
        if self.is_init:
            self.protected = _protected_paths()
            self.tmp_baseline = _snapshot_tree("/tmp", self.protected)
            self.root_modes = {root: os.stat(root).st_mode & 0o7777 for root in ("/tmp", "/dev/shm")}

    # -- one job ------------------------------------------------------------------------------
    def run_job(self, job: dict[str, Any]) -> None:
        started = time.monotonic()
        scratch = self._make_scratch(job.get("files") or {})
        job_state = JobState(job, self.limits, self._send_host)
        shared = mmap.mmap(-1, 8)  # the cell the worker means to interrupt (see Runtime._on_sigint)
        shared[:8] = struct.pack("q", -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ev_r, ev_w = os.pipe()
        nproc = self._nproc_limit()
        marker = b"\x00\x1e" + os.urandom(8).hex().encode() + b"\x1e\x00"
        timing = {"prepare": time.monotonic() - started}
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 70
            try:
                os.close(out_r)
                os.close(err_r)
                os.close(ev_r)
                os.close(self.proto_in)
                os.close(self.proto_out)
                signal.set_wakeup_fd(-1)
                os.close(self.wake_read)
                os.close(self.wake_write)
                assert self.runtime is not None
                self.runtime.run_child(
                    job, scratch, (out_w, err_w, ev_w), shared, self.limits, nproc, self.is_init, marker
                )
                code = 0
            except BaseException:  # noqa: BLE001 - a failure of the grader's own code, shown in the cell
                import traceback

                try:
                    os.write(2, ("\nErreur interne du correcteur :\n" + traceback.format_exc()).encode())
                except Exception:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        timing["fork"] = time.monotonic() - started
        for fd in (out_w, err_w, ev_w):
            os.close(fd)
        self._send_host({"t": "job", "pid": pid})
        monitor = Monitor(self, job_state, pid, (out_r, err_r, ev_r), shared, started, marker)
        reported = False
        try:
            monitor.run()
            timing["run"] = time.monotonic() - started
            if monitor.bye:
                # Every cell ran: report now, the child's exit and the clean-up overlap with the host.
                monitor.drain_raw_now()
                job_state.finish(None, None)
                self._send_host({"t": "done", **job_state.summary(time.monotonic() - started), "timing": timing})
                reported = True
        finally:
            self.kill_job_processes()
            if not reported:
                monitor.drain_until_eof(deadline=time.monotonic() + 1.0)
            for fd in (out_r, err_r, ev_r):
                os.close(fd)
            shared.close()
            self._wipe(scratch)
        if not reported:
            job_state.finish(monitor.outcome, monitor.exit_status)
            self._send_host({"t": "done", **job_state.summary(time.monotonic() - started), "timing": timing})

    def _send_host(self, message: dict[str, Any]) -> None:
        write_frame(self.proto_out, dumps(message))

    def _make_scratch(self, files: dict[str, str]) -> str:
        if self.is_init:
            scratch = SCRATCH
            if os.path.lexists(scratch):
                _force_remove(scratch)
            os.makedirs(scratch)  # fails (and the host starts a fresh worker) if a job left it undeletable
        else:
            import tempfile

            scratch = tempfile.mkdtemp(prefix="copie-", dir=self.scratch_root)
        for relative, encoded in files.items():
            parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
            if not parts or ".." in parts:
                continue
            target = os.path.join(scratch, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(base64.b64decode(encoded))
        return scratch

    def _wipe(self, scratch: str) -> None:
        if self.is_init:
            # /tmp goes back to what the preload left (HOME, caches) and /dev/shm is emptied: a job
            # cannot leave anything behind for the next submission, nor change a cache it would read.
            for root, mode in self.root_modes.items():
                try:
                    os.chmod(root, mode)
                except OSError:
                    pass
                _empty_folder(root, self.protected)
            _restore_tree("/tmp", self.tmp_baseline)
        else:
            _force_remove(scratch)

    def _nproc_limit(self) -> int | None:
        """RLIMIT_NPROC for a job (counts the uid's tasks; inside a user namespace only the sandbox's)."""
        margin = int(self.limits["max_processes"]) + 16
        if self.isolated:
            return _task_count(os.getpid()) + margin
        if os.getuid() == 0:
            return None  # not enforced for root anyway; the watchdog does the job
        uid = os.getuid()
        tasks = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        tasks += _task_count(int(entry))
                except OSError:
                    pass
        return tasks + margin

    # -- processes ----------------------------------------------------------------------------
    def job_processes(self) -> list[int]:
        """Every live process of the current job (all but us in our PID namespace, else our descendants)."""
        me = os.getpid()
        if self.is_init:
            pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        else:
            pids = _descendants(me)
        return [pid for pid in pids if pid != me and pid not in self.doomed]

    def reap(self) -> dict[int, int]:
        statuses = {}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            statuses[pid] = status
            self.doomed.discard(pid)
        return statuses

    def kill_job_processes(self, wait: bool = False) -> None:
        """SIGKILL every process of the job (fork bombs included).

        In our own PID namespace a single kill(-1) is enough: the kernel signals every process under
        the tasklist lock and a fork racing with it fails, so nothing of the job can run any more. The
        dying processes are then left to finish their exit (tearing down a forked copy of the worker
        takes milliseconds) while the next job starts; they are reaped later and not counted as its
        processes. Without a PID namespace, the worker's descendants are killed until none is left.
        """
        if self.is_init:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.reap()
            self.doomed.update(self.job_processes())
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not self.is_init:
                for pid in self.job_processes():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            self.reap()
            if not self.job_processes() and not (wait and self.doomed):
                return
            time.sleep(0.001)


def _protected_paths() -> frozenset[str]:
    """Read-only binds of the sandbox (interpreter, venv, package). When the course lives under /tmp they sit
    inside the job's /tmp: never read, copy or delete them while resetting /tmp between jobs."""
    from autograder.grading.sandbox import readonly_paths

    return frozenset(str(p) for p in readonly_paths())


def _holds_protected(path: str, protected: frozenset[str]) -> bool:
    """``path`` is a protected bind, or a folder on the way to one."""
    prefix = path.rstrip("/") + "/"
    return path in protected or any(p.startswith(prefix) for p in protected)


def _snapshot_tree(root: str, protected: frozenset[str] = frozenset()) -> list[tuple[str, int, bytes | None]]:
    """(relative path, mode, content or None for a folder) of everything under ``root``."""
    entries: list[tuple[str, int, bytes | None]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in protected]
        for name in dirs:
            path = os.path.join(folder, name)
            entries.append((os.path.relpath(path, root), os.stat(path).st_mode & 0o7777, None))
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                entries.append((os.path.relpath(path, root), os.stat(path).st_mode & 0o7777, handle.read()))
    return entries


def _empty_folder(root: str, protected: frozenset[str] = frozenset()) -> None:
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        if path in protected:
            continue
        if _holds_protected(path, protected):
            _empty_folder(path, protected)  # keep the way to the bind, remove what a job added beside it
        else:
            _force_remove(path)


def _force_remove(path: str) -> None:
    """Remove a file or a tree, even one a job made unreadable (chmod 000: no capability overrides it)."""
    import shutil

    if os.path.islink(path) or not os.path.isdir(path):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    stack = [path]
    while stack:  # give every folder back its owner's permissions, iteratively (nesting can be deep)
        folder = stack.pop()
        try:
            os.chmod(folder, 0o700)
            with os.scandir(folder) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def _restore_tree(root: str, entries: list[tuple[str, int, bytes | None]]) -> None:
    for relative, mode, content in entries:
        path = os.path.join(root, relative)
        try:
            if content is None:
                os.makedirs(path, mode=mode, exist_ok=True)
            else:
                with open(path, "wb") as handle:
                    handle.write(content)
                os.chmod(path, mode)
        except OSError:
            pass


def _task_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _descendants(root: int) -> list[int]:
    """Descendants of ``root`` through /proc/<pid>/task/<tid>/children."""
    found: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


# --------------------------------------------------------------------------------------------
# Worker side of a job: watch the child, assemble outputs
# --------------------------------------------------------------------------------------------


class CellRecord:
    def __init__(self, index: int):
        self.index = index
        self.execution_count: int | None = None
        self.outputs: list[dict[str, Any]] = []
        self.stream_chars = 0
        self.dropped_chars = 0
        self.truncated: dict[str, Any] | None = None  # stream output that receives the truncation marker
        self.rich_bytes = 0
        self.dropped_rich: list[str] = []
        self.dropped_marker: dict[str, Any] | None = None
        self.errors = 0
        self.clear_pending = False
        self.extra: list[dict[str, Any]] = []  # grader errors appended after the kernel's outputs
        self.state = "pending"  # pending -> running -> done
        self.sent = False
        self.kept = 0  # characters/bytes of output kept, counted in the job's total
        self.capped = False  # cut by the job-wide cap rather than the per-cell limit


class JobState:
    """Outputs of every cell of one job, with the per-cell limits (and a job-wide cap) applied."""

    def __init__(self, job: dict[str, Any], limits: dict[str, Any], send):
        self.limits = limits
        self.send = send
        # However many cells a notebook has, what the worker and the host keep stays bounded.
        self.cap = 10 * (int(limits["max_output_bytes"]) + int(limits["max_output_chars"]))
        self.total = 0
        self.order = [cell["i"] for cell in job["cells"]]
        self.grade_ids = {cell["i"]: cell.get("grade_id") for cell in job["cells"]}
        self.cells = {i: CellRecord(i) for i in self.order}
        self.current: int | None = None  # started, not ended
        self.last: int | None = None  # last started
        self.timeouts: list[int] = []
        self.status = "ok"
        self.messages: list[str] = []

    # -- helpers ------------------------------------------------------------------------------
    def target(self) -> CellRecord | None:
        index = self.current if self.current is not None else self.last
        return self.cells.get(index) if index is not None else None

    def _prepare(self, cell: CellRecord) -> None:
        if cell.clear_pending:
            self._clear(cell)

    def _clear(self, cell: CellRecord) -> None:
        self.total -= cell.kept
        cell.kept = 0
        cell.outputs = []
        cell.stream_chars = cell.dropped_chars = cell.rich_bytes = 0
        cell.truncated = cell.dropped_marker = None
        cell.dropped_rich = []
        cell.clear_pending = False

    # -- events -------------------------------------------------------------------------------
    def add_stream(self, name: str, text: str, index: int | None = None) -> None:
        cell = self.target() if index is None else self.cells.get(index)
        if cell is None or not text:
            return
        if cell.sent:
            cell.sent = False  # late output (a background process): the cell is sent again
        self._prepare(cell)
        limit = int(self.limits["max_output_chars"])
        budget = min(limit - cell.stream_chars, self.cap - self.total)
        if self.cap - self.total < limit - cell.stream_chars:
            cell.capped = True
        if budget <= 0:
            cell.dropped_chars += len(text)
            if cell.truncated is None:
                cell.truncated = {"output_type": "stream", "name": name, "_chunks": []}
                cell.outputs.append(cell.truncated)
            return
        if len(text) > budget:
            cell.dropped_chars += len(text) - budget
            text = text[:budget]
        cell.stream_chars += len(text)
        cell.kept += len(text)
        self.total += len(text)
        last = cell.outputs[-1] if cell.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name and "_chunks" in last:
            last["_chunks"].append(text)
        else:
            last = {"output_type": "stream", "name": name, "_chunks": [text]}
            cell.outputs.append(last)
        if cell.dropped_chars and cell.truncated is None:
            cell.truncated = last

    def add_child_dropped(self, index: int, dropped: int) -> None:
        cell = self.cells.get(index)
        if cell is None or not dropped:
            return
        cell.dropped_chars += dropped
        if cell.truncated is None:
            streams = [o for o in cell.outputs if o["output_type"] == "stream"]
            if streams:
                cell.truncated = streams[-1]
            else:
                cell.truncated = {"output_type": "stream", "name": "stdout", "_chunks": []}
                cell.outputs.append(cell.truncated)

    def add_output(self, output: dict[str, Any]) -> None:
        cell = self.target()
        if cell is None:
            return
        self._prepare(cell)
        kind = output.get("output_type")
        if kind == "error":
            if cell.errors >= MAX_ERRORS_PER_CELL:
                return
            cell.errors += 1
            limit = int(self.limits["max_output_chars"]) if self.total < self.cap else 1000
            error = _bounded_error(output, limit)
            size = len(error["evalue"]) + sum(map(len, error["traceback"]))
            cell.kept += size
            self.total += size
            cell.outputs.append(error)
            return
        if kind not in ("display_data", "execute_result"):
            return
        limit = int(self.limits["max_output_bytes"])
        size = output_size(output)
        if cell.rich_bytes + size > limit or self.total + size > self.cap:
            cell.dropped_rich.extend((output.get("data") or {}).keys())
            if cell.dropped_marker is None:
                cell.dropped_marker = {"output_type": "display_data", "data": {}, "metadata": {}}
                cell.outputs.append(cell.dropped_marker)
            return
        cell.rich_bytes += size
        cell.kept += size
        self.total += size
        cell.outputs.append(output)

    def oversized(self) -> None:
        """A message too big to read: it may have been an error, so the cell must fail, never pass."""
        cell = self.target()
        if cell is None:
            return
        cell.outputs.append(
            error_output("OutputTooLargeError", "Une sortie illisible, car trop volumineuse, a été supprimée.")
        )

    def update_display(self, display_id: str, output: dict[str, Any]) -> None:
        for cell in self.cells.values():
            for existing in cell.outputs:
                if existing.get("_display_id") == display_id:
                    existing["data"] = output.get("data", {})
                    existing["metadata"] = output.get("metadata", {})
                    cell.sent = False  # sent again with the next batch

    def clear(self, wait: bool) -> None:
        cell = self.target()
        if cell is None:
            return
        if wait:
            cell.clear_pending = True
        else:
            self._clear(cell)

    def send_done_cells(self) -> None:
        for index in self.order:
            cell = self.cells[index]
            if cell.state == "done" and not cell.sent:
                self._send_cell(cell)

    def start(self, index: int, execution_count: int) -> None:
        self.send_done_cells()
        cell = self.cells[index]
        cell.state = "running"
        cell.execution_count = execution_count
        self.current = self.last = index

    def end(self, index: int, interrupted: bool, dropped: int, timed_out: bool, limit: float) -> None:
        self.add_child_dropped(index, dropped)
        cell = self.cells[index]
        cell.state = "done"
        self.current = None
        if timed_out and interrupted:
            self.timeouts.append(index)
            cell.extra.append(
                error_output(
                    "CellTimeoutError",
                    f"La cellule a dépassé la limite de {_seconds(limit)} : elle a été interrompue.",
                )
            )
        # Report the cell at once: if the worker itself dies later, the host still has it. Output that
        # arrives afterwards (a background process) makes it be sent again.
        self.send_done_cells()

    # -- end of job ---------------------------------------------------------------------------
    def finish(self, outcome: tuple[str, str] | None, exit_status: int | None) -> None:
        """Synthesise the grader's errors after an abnormal end, then send every unsent cell."""
        running = self.current
        pending = [i for i in self.order if self.cells[i].state == "pending"]
        if outcome is None and (running is not None or pending):
            outcome = ("crashed", describe_exit(exit_status))
        if outcome is not None:
            kind, detail = outcome
            self.status = kind if kind != "cell_timeout_hard" else "cell_timeout"
            culprit = running if running is not None else (pending[0] if pending else None)
            if culprit is not None:
                cell = self.cells[culprit]
                if cell.state == "pending":
                    pending.remove(culprit)
                cell.state = "done"
                cell.extra.append(self._culprit_error(kind, detail))
            reason = self._not_executed_reason(kind)
            for index in pending:
                self.cells[index].state = "done"
                self.cells[index].extra.append(not_executed_output(reason))
            self.messages.append(self._job_message(kind, detail, culprit, len(pending)))
        if self.timeouts and self.status == "ok":
            self.status = "cell_timeout"
        if self.timeouts:
            where = ", ".join(self._where(i) for i in self.timeouts)
            plural = "s" if len(self.timeouts) > 1 else ""
            self.messages.insert(
                0,
                f"limite de {_seconds(self.limits['cell_timeout'])} par cellule dépassée, "
                f"cellule{plural} interrompue{plural} : {where}",
            )
        self.send_done_cells()

    def _culprit_error(self, kind: str, detail: str) -> dict[str, Any]:
        limits = self.limits
        if kind == "cell_timeout_hard":
            return error_output(
                "CellTimeoutError",
                f"La cellule a dépassé la limite de {_seconds(limits['cell_timeout'])} et n'a pas pu être "
                "interrompue (signal d'interruption ignoré) : le noyau a été arrêté.",
            )
        if kind == "notebook_timeout":
            return error_output(
                "NotebookTimeoutError",
                f"Le notebook a dépassé la limite de {_seconds(limits['notebook_timeout'])} : "
                "son exécution a été arrêtée pendant cette cellule.",
            )
        if kind == "killed":
            return error_output("ResourceLimitError", f"Exécution arrêtée : {detail}.")
        return died_output(detail)

    def _not_executed_reason(self, kind: str) -> str:
        return {
            "cell_timeout_hard": "une cellule précédente a dépassé la limite de temps.",
            "notebook_timeout": (f"le notebook a dépassé la limite de {_seconds(self.limits['notebook_timeout'])}."),
            "killed": "l'exécution a été arrêtée (limite de ressources dépassée).",
        }.get(kind, "le noyau s'est arrêté pendant une cellule précédente.")

    def _where(self, index: int | None) -> str:
        if index is None:
            return "après la dernière cellule"
        grade_id = self.grade_ids.get(index)
        return f"cellule {index + 1}" + (f" ({grade_id})" if grade_id else "")

    def _job_message(self, kind: str, detail: str, culprit: int | None, skipped: int) -> str:
        where = self._where(culprit)
        tail = f" ; {skipped} cellule{'s' if skipped > 1 else ''} non exécutée{'s' if skipped > 1 else ''}"
        tail = tail if skipped else ""
        if kind == "cell_timeout_hard":
            return (
                f"{where} : limite de {_seconds(self.limits['cell_timeout'])} dépassée et interruption "
                f"ignorée, noyau arrêté{tail}"
            )
        if kind == "notebook_timeout":
            return f"limite de {_seconds(self.limits['notebook_timeout'])} par notebook dépassée ({where}){tail}"
        if kind == "killed":
            return f"{detail} ({where}){tail}"
        return f"le noyau s'est arrêté ({detail}) pendant la {where}{tail}"

    def _send_cell(self, cell: CellRecord) -> None:
        cell.sent = True
        self.send({"t": "cell", "i": cell.index, "ec": cell.execution_count, "outputs": self._final_outputs(cell)})

    def _final_outputs(self, cell: CellRecord) -> list[dict[str, Any]]:
        outputs = []
        for output in cell.outputs:
            clean = {k: v for k, v in output.items() if not k.startswith("_")}
            if "_chunks" in output:
                clean["text"] = "".join(output["_chunks"])
                if output is cell.truncated:
                    if cell.capped:
                        clean["text"] += truncation_marker(cell.dropped_chars, self.cap, "pour tout le notebook")
                    else:
                        clean["text"] += truncation_marker(cell.dropped_chars, int(self.limits["max_output_chars"]))
            if output is cell.dropped_marker:
                clean = dropped_output_marker(
                    len(cell.dropped_rich), cell.dropped_rich, int(self.limits["max_output_bytes"])
                )
            if clean.get("output_type") == "stream" and not clean.get("text"):
                continue
            outputs.append(clean)
        return outputs + cell.extra

    def summary(self, duration: float) -> dict[str, Any]:
        return {"status": self.status, "message": " ; ".join(self.messages), "duration": duration}


def _bounded_error(output: dict[str, Any], limit: int) -> dict[str, Any]:
    """An error output of at most about ``limit`` characters; the end of the traceback (the message) is kept."""

    def cut(text: Any, size: int) -> str:
        text = text if isinstance(text, str) else str(text)
        return text if len(text) <= size else text[:size] + "…"

    lines = output.get("traceback") or []
    if not isinstance(lines, list):
        lines = [lines]
    kept: list[str] = []
    budget = limit
    for line in reversed(lines):
        line = cut(line, budget)
        kept.append(line)
        budget -= len(line)
        if budget <= 0:
            if len(kept) < len(lines):
                kept.append("…")
            break
    return {
        "output_type": "error",
        "ename": cut(output.get("ename", "Error"), 200),
        "evalue": cut(output.get("evalue", ""), limit),
        "traceback": kept[::-1],
    }


class Monitor:
    """Event loop of the worker during one job: outputs, deadlines, process watchdog."""

    def __init__(
        self,
        worker: Worker,
        state: JobState,
        pid: int,
        fds: tuple[int, int, int],
        shared: mmap.mmap,
        started: float,
        marker: bytes,
    ):
        out_r, err_r, ev_r = fds
        self.worker = worker
        self.state = state
        self.limits = worker.limits
        self.pid = pid
        self.raw = {out_r: "stdout", err_r: "stderr"}
        self.decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in self.raw}
        self.marker = marker
        self.raw_tail = {fd: b"" for fd in self.raw}
        self.raw_cell = {fd: 0 for fd in self.raw}  # position in state.order of the cell fds 1/2 write to
        self.ev_r = ev_r
        self.shared = shared
        self.started = started
        limit = int(self.limits["max_output_bytes"]) + 4 * int(self.limits["max_output_chars"]) + (1 << 20)
        self.parser = FrameParser(limit)
        self.open_fds = {out_r, err_r, ev_r}
        for fd in self.open_fds:
            os.set_blocking(fd, False)
        self.outcome: tuple[str, str] | None = None
        self.exit_status: int | None = None
        self.child_done = False
        self.bye = False
        self.cell_started_at: float | None = None
        self.interrupt_deadline: float | None = None
        self.interrupted_cell: int | None = None
        self.timed_out_cells: set[int] = set()

    # -- reading ------------------------------------------------------------------------------
    def _read_raw(self, fd: int, budget: int = 1 << 20) -> None:
        while budget > 0 and fd in self.open_fds:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.open_fds.discard(fd)
                return
            budget -= len(data)
            self._raw_data(fd, data)

    def _raw_data(self, fd: int, data: bytes, final: bool = False) -> None:
        """Attribute what the job wrote on fds 1/2 to cells: the child writes a marker after each cell."""
        buffer = self.raw_tail[fd] + data
        marker = self.marker
        while True:
            position = buffer.find(marker)
            if position < 0:
                break
            self._raw_text(fd, buffer[:position])
            buffer = buffer[position + len(marker) :]
            self.raw_cell[fd] += 1
        keep = 0
        if not final:
            for size in range(min(len(marker) - 1, len(buffer)), 0, -1):
                if marker.startswith(buffer[-size:]):
                    keep = size
                    break
        self._raw_text(fd, buffer[: len(buffer) - keep], final)
        self.raw_tail[fd] = buffer[len(buffer) - keep :]

    def _raw_text(self, fd: int, data: bytes, final: bool = False) -> None:
        text = self.decoders[fd].decode(data, final)
        if text and self.state.order:
            index = self.state.order[min(self.raw_cell[fd], len(self.state.order) - 1)]
            self.state.add_stream(self.raw[fd], text, index)

    def _drain_raw(self) -> None:
        for fd in self.raw:
            self._read_raw(fd)

    def drain_raw_now(self) -> None:
        """What is already in the pipes of fds 1/2, up to the last cell's marker."""
        self._drain_raw()
        for fd in self.raw:
            self._raw_data(fd, b"", final=True)

    def _read_events(self, budget: int = 4 << 20) -> None:
        while self.ev_r in self.open_fds and budget > 0:
            try:
                data = os.read(self.ev_r, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.open_fds.discard(self.ev_r)
                return
            budget -= len(data)
            frames = self.parser.feed(data)
            if frames:
                self._drain_raw()  # what was written to fds 1/2 before these events comes first
            for frame in frames:
                self._handle(frame)

    def _handle(self, frame: Any) -> None:
        state = self.state
        if frame is OVERSIZED:
            state.oversized()
            return
        kind, body = frame[:1], frame[1:]
        if kind in (b"o", b"e"):
            state.add_stream("stdout" if kind == b"o" else "stderr", body.decode("utf-8", "replace"))
            return
        try:
            event = json.loads(body)
            tag = event["t"]
        except (ValueError, KeyError, TypeError):
            return
        if tag == "out":
            output = event.get("o")
            if isinstance(output, dict):
                state.add_output(output)
        elif tag == "update":
            state.update_display(str(event.get("id")), event.get("o") or {})
        elif tag == "clear":
            state.clear(bool(event.get("wait")))
        elif tag == "start":
            index = event.get("i")
            if index in state.cells and state.cells[index].state == "pending":
                state.start(index, int(event.get("ec") or 0))
                self.cell_started_at = time.monotonic()
                self.interrupt_deadline = None
        elif tag == "end":
            index = event.get("i")
            if index in state.cells and state.cells[index].state == "running":
                state.end(
                    index,
                    bool(event.get("interrupted")),
                    int(event.get("dropped") or 0),
                    index in self.timed_out_cells,
                    float(self.limits["cell_timeout"]),
                )
                self.cell_started_at = None
                self.interrupt_deadline = None
        elif tag == "bye":
            self.bye = True

    def drain_until_eof(self, deadline: float) -> None:
        """After every job process is dead: read what is left in the pipes."""
        while self.open_fds and time.monotonic() < deadline:
            self._read_events()
            self._drain_raw()
            if self.open_fds:
                select.select(list(self.open_fds), [], [], 0.01)
        for fd in self.raw:
            self._raw_data(fd, b"", final=True)

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> None:
        limits = self.limits
        nb_deadline = self.started + float(limits["notebook_timeout"])
        cell_timeout = float(limits["cell_timeout"])
        grace = float(limits["interrupt_grace"])
        max_processes = int(limits["max_processes"])
        poller = select.poll()
        for fd in (*self.open_fds, self.worker.wake_read):
            poller.register(fd, select.POLLIN)
        registered = set(self.open_fds)
        next_watchdog = time.monotonic()
        while True:
            now = time.monotonic()
            deadlines = [nb_deadline, next_watchdog]
            if self.cell_started_at is not None and self.interrupt_deadline is None:
                deadlines.append(self.cell_started_at + cell_timeout)
            if self.interrupt_deadline is not None:
                deadlines.append(self.interrupt_deadline)
            wait_ms = max(0, int((min(deadlines) - now) * 1000) + 1)
            for fd in registered - self.open_fds:
                poller.unregister(fd)
            registered &= self.open_fds
            events = poller.poll(wait_ms)
            for fd, _ in events:
                if fd == self.worker.wake_read:
                    try:
                        os.read(fd, 512)
                    except BlockingIOError:
                        pass
            self._read_events()
            self._drain_raw()
            if self.bye:
                return
            for pid, status in self.worker.reap().items():
                if pid == self.pid:
                    self.exit_status = status
                    self.child_done = True
            if self.child_done:
                self._read_events()
                return
            now = time.monotonic()
            if now >= next_watchdog:
                next_watchdog = now + WATCHDOG_INTERVAL
                count = len(self.worker.job_processes())
                if count > max_processes:
                    self.outcome = ("killed", f"trop de processus (plus de {max_processes} à la fois)")
                    return
            if now >= nb_deadline:
                self._read_events()
                if self.child_done or self.bye:
                    return
                self.outcome = ("notebook_timeout", "")
                return
            running = self.state.current
            if running is not None and self.cell_started_at is not None:
                if self.interrupt_deadline is None and now >= self.cell_started_at + cell_timeout:
                    self._read_events()  # the cell may have just finished
                    if self.state.current == running:
                        self.timed_out_cells.add(running)
                        self.shared[:8] = struct.pack("q", running)
                        try:
                            os.kill(self.pid, signal.SIGINT)
                        except ProcessLookupError:
                            pass
                        self.interrupt_deadline = now + grace
                elif self.interrupt_deadline is not None and now >= self.interrupt_deadline:
                    self._read_events()
                    if self.state.current == running:
                        self.outcome = ("cell_timeout_hard", "")
                        return


# --------------------------------------------------------------------------------------------
# Child side: run the cells in an IPython shell
# --------------------------------------------------------------------------------------------


class ChildState:
    """Mutable state of the child, shared by the SIGINT handler, the streams and the publisher."""

    def __init__(self):
        self.owner = os.getpid()
        self.fd = -1
        self.current = -1
        self.in_cell = False
        self.critical = 0
        self.pending_interrupt = False
        self.interrupted = False
        self.shared: Any = None
        self.stream_limit = 0
        self.stream_sent = 0
        self.dropped = 0
        self.rich_limit = 0
        self.errors = 0
        self.pending_name = ""  # stream text not yet sent: name, chunks, total length
        self.pending_chunks: list[str] = []
        self.pending_size = 0


STATE = ChildState()
_os_write = os.write
_os_getpid = os.getpid
_os_exit = os._exit


def _enter() -> None:
    STATE.critical += 1


def _leave() -> None:
    STATE.critical -= 1
    if STATE.critical == 0 and STATE.pending_interrupt and STATE.in_cell:
        STATE.pending_interrupt = False
        STATE.interrupted = True
        raise KeyboardInterrupt


def _send(payload: bytes) -> None:
    """Write one frame to the worker; callers hold the critical section."""
    data = memoryview(HEADER.pack(len(payload)) + payload)
    while data:
        data = data[_os_write(STATE.fd, data) :]


def _flush_stream() -> None:
    if not STATE.pending_chunks:
        return
    name, text = STATE.pending_name, "".join(STATE.pending_chunks)
    STATE.pending_chunks = []
    STATE.pending_size = 0
    budget = STATE.stream_limit - STATE.stream_sent
    if budget <= 0:
        STATE.dropped += len(text)
        return
    if len(text) > budget:
        STATE.dropped += len(text) - budget
        text = text[:budget]
    STATE.stream_sent += len(text)
    _send((b"o" if name == "stdout" else b"e") + text.encode("utf-8", "replace"))


def flush_streams() -> None:
    if _os_getpid() != STATE.owner:
        return
    _enter()
    try:
        _flush_stream()
    finally:
        _leave()


def send_event(event: dict[str, Any]) -> None:
    if _os_getpid() != STATE.owner:
        return  # a forked copy of the child (os.fork, multiprocessing) does not talk to the worker
    _enter()
    try:
        _flush_stream()
        _send(b"j" + dumps(event))
    finally:
        _leave()


def emit_output(output: dict[str, Any], display_id: str | None = None, update: bool = False) -> None:
    if output.get("output_type") in ("display_data", "execute_result"):
        size = output_size(output)
        if size > STATE.rich_limit:
            output = dropped_output_marker(1, list((output.get("data") or {}).keys()), STATE.rich_limit)
    elif output.get("output_type") == "error":
        STATE.errors += 1
        output = _bounded_error(output, STATE.stream_limit)  # a huge message must not make the frame unreadable
    if display_id is not None:
        output["_display_id"] = display_id
    if update:
        send_event({"t": "update", "id": display_id, "o": output})
    else:
        send_event({"t": "out", "o": output})


class _EventStream:
    """sys.stdout / sys.stderr of a submission: text goes to the worker in order, line by line."""

    encoding = "UTF-8"
    errors = "replace"
    closed = False

    def __init__(self, name: str, fd: int):
        self.name = name
        self._fd = fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if _os_getpid() != STATE.owner:
            _os_write(self._fd, text.encode("utf-8", "replace"))  # forked copies write raw
            return len(text)
        _enter()
        try:
            if STATE.pending_name != self.name and STATE.pending_chunks:
                _flush_stream()
            STATE.pending_name = self.name
            STATE.pending_chunks.append(text)
            STATE.pending_size += len(text)
            if "\n" in text or STATE.pending_size >= 8192:
                _flush_stream()
        finally:
            _leave()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        flush_streams()

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def _no_input(prompt: str = "") -> str:
    from IPython.core.error import StdinNotImplementedError

    raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")


def _no_getpass(prompt: str = "Password: ", stream: Any = None) -> str:
    from IPython.core.error import StdinNotImplementedError

    raise StdinNotImplementedError("getpass was called, but this frontend does not support input requests.")


def _on_sigint(signum, frame) -> None:
    target = struct.unpack("q", STATE.shared[:8])[0] if STATE.shared is not None else -1
    if not STATE.in_cell or target != STATE.current:
        return  # not meant for the cell running now (a late signal, or one sent by the submission)
    if STATE.critical:
        STATE.pending_interrupt = True
        return
    STATE.interrupted = True
    raise KeyboardInterrupt


_GENUINE_MODULE_NAMES = {"torch": "torch", "np": "numpy", "numpy": "numpy", "math": "math"}


class Runtime:
    """Everything preloaded in the worker and inherited by each forked child."""

    def __init__(self):
        self.shell: Any = None
        self.guard: Guard | None = None
        self.builtins: dict[str, Any] = {}
        self.genuine: dict[str, Any] = {}

    @classmethod
    def create(cls) -> Runtime:
        runtime = cls()
        import builtins
        import getpass

        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        import numpy
        from traitlets.config import Config

        shell_class = _shell_class()
        config = Config()
        config.HistoryManager.enabled = False
        shell = shell_class.instance(config=config, compiler_class=_compiler_class())
        runtime.shell = shell
        import matplotlib
        import matplotlib.pyplot as plt

        plt.switch_backend(os.environ.get("MPLBACKEND") or "module://matplotlib_inline.backend_inline")
        del matplotlib
        import autograder
        import autograder.exercise as exercise
        import autograder.exercises  # noqa: F401
        from autograder.grading import integrity

        exercise.all_exercises()  # import every exercise module so that all checkers are registered
        builtins.input = _no_input
        getpass.getpass = _no_getpass
        # Keep IPython's builtins (get_ipython, exit, quit) in place for good: the integrity snapshot
        # then contains them and a restore() during a cell never fights IPython's BuiltinTrap.
        shell.builtin_trap.__enter__()
        # Warm IPython's code paths (compiler, AST transforms) without touching the user namespace.
        shell.run_cell("pass", store_history=False, silent=True)
        _warm_up_torch(torch)
        # Every submission starts from the same random state, whichever worker runs it: re-grading gives
        # the same outputs even for unseeded code (a kernel would draw fresh seeds; PYTHONHASHSEED=0 too).
        # `random` reseeds itself after a fork: the child seeds it again.
        numpy.random.seed(0)
        torch.manual_seed(0)
        runtime.genuine = {"check": autograder.check, "hint": autograder.hint}
        for name, module in _GENUINE_MODULE_NAMES.items():
            runtime.genuine[name] = sys.modules[module]
        if sys.path and sys.path[0] in ("", os.getcwd(), "-c"):
            sys.path[0] = ""
        else:
            sys.path.insert(0, "")
        sys.argv = [""]
        integrity.protect()
        runtime.builtins = dict(vars(builtins))
        runtime.guard = Guard(shell, exercise)
        import gc

        gc.collect()
        gc.freeze()  # children do not copy these pages when the collector runs
        return runtime

    # -- child --------------------------------------------------------------------------------
    def run_child(self, job, scratch, fds, shared, limits, nproc, is_init, marker) -> None:
        import resource

        out_w, err_w, ev_w = fds
        os.setsid()
        if not is_init:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_w, err_w):
            os.close(fd)
        os.chdir(scratch)
        try:
            os.nice(NICE)
        except OSError:
            pass
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too big file is an OSError, not a death
        signal.signal(signal.SIGINT, _on_sigint)
        vsize = _vsize()
        memory = int(limits["memory_mb"]) * 1024 * 1024
        cpu = int(limits["cpu_seconds"])
        for name, soft, hard in (
            ("RLIMIT_AS", vsize + memory, vsize + memory),
            ("RLIMIT_CPU", cpu, cpu + 5),
            ("RLIMIT_FSIZE", MAX_FILE_BYTES, MAX_FILE_BYTES),
            ("RLIMIT_CORE", 0, 0),
            ("RLIMIT_NPROC", nproc, nproc),
        ):
            if soft is None:
                continue
            try:
                resource.setrlimit(getattr(resource, name), (soft, hard))
            except (ValueError, OSError):
                pass
        import random

        random.seed(0)
        STATE.owner = os.getpid()
        STATE.fd = ev_w
        STATE.shared = shared
        STATE.stream_limit = int(limits["max_output_chars"])
        STATE.rich_limit = int(limits["max_output_bytes"])
        sys.stdout = _EventStream("stdout", 1)
        sys.stderr = _EventStream("stderr", 2)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - /dev/null, never closed
        assert self.guard is not None
        self.guard.retake_streams()
        shell = self.shell
        for cell in job["cells"]:
            if _os_getpid() != STATE.owner:
                _os_exit(0)  # a fork made by the submission came back here: it does not run the next cells
            execution_count = shell.execution_count
            STATE.current = cell["i"]
            STATE.stream_sent = STATE.dropped = STATE.errors = 0
            STATE.interrupted = STATE.pending_interrupt = False
            send_event({"t": "start", "i": cell["i"], "ec": execution_count})
            if cell.get("grade"):
                try:
                    self.guard.before_grade_cell(cell["source"], self.genuine)
                except Exception as failure:  # noqa: BLE001 - never let the guard stop grading
                    self._report_failure(failure)
            self._run_cell(cell["source"])
            self._restore_builtins()
            shell.execution_count = execution_count + 1
            for fd in (1, 2):  # what the cell wrote on fds 1/2 (os.write, subprocesses) ends here
                try:
                    _os_write(fd, marker)
                except OSError:
                    pass
            dropped = STATE.dropped
            STATE.in_cell = False
            send_event({"t": "end", "i": cell["i"], "interrupted": STATE.interrupted, "dropped": dropped})
        send_event({"t": "bye"})
        _os_exit(0)

    def _restore_builtins(self) -> None:
        """The grader's own code needs genuine builtins: undo a cell's changes to them (rare, never legit)."""
        import builtins

        current = vars(builtins)
        if len(current) == len(self.builtins) and all(current.get(k) is v for k, v in self.builtins.items()):
            return
        _restore_namespace(builtins, self.builtins)

    def _run_cell(self, source: str) -> None:
        shell = self.shell
        result = None
        failure: BaseException | None = None
        STATE.in_cell = True
        try:
            try:
                result = _RUN_CELL(shell, source, store_history=True)
            finally:
                STATE.in_cell = False
            flush_streams()
        except BaseException as exc:  # noqa: BLE001 - includes KeyboardInterrupt raised outside exec
            failure = exc
            STATE.in_cell = False
        if failure is None and result is not None:
            failure = result.error_before_exec or result.error_in_exec
        if failure is not None and STATE.errors == 0:
            # The submission hid the error (showtraceback patched, custom_exceptions...): report it anyway.
            self._report_failure(failure)

    def _report_failure(self, failure: BaseException) -> None:
        try:
            assert self.guard is not None
            stb = self.guard.format_traceback(failure)
        except Exception:  # noqa: BLE001
            stb = [f"{type(failure).__name__}: {_safe_str(failure)}"]
        emit_output(
            {"output_type": "error", "ename": type(failure).__name__, "evalue": _safe_str(failure), "traceback": stb}
        )


def _warm_up_torch(torch: Any) -> None:
    """Pay once, in the worker, the lazy first-use costs of torch (the first optimizer step imports
    torch._dynamo and sympy: about 1 s that every forked submission would otherwise pay again)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = torch.ones(3, requires_grad=True)
        for optimizer_class in (torch.optim.SGD, torch.optim.Adam):
            optimizer = optimizer_class([w], lr=0.1)
            optimizer.zero_grad()
            (w * w).sum().backward()
            optimizer.step()
        layer = torch.nn.Linear(3, 2)
        loss = torch.nn.functional.mse_loss(layer(w.detach()), torch.zeros(2))
        (grad,) = torch.autograd.grad(loss, layer.weight, create_graph=True)
        grad.sum().backward()
        torch.autograd.functional.jacobian(lambda x: x.sin(), torch.ones(2))
        torch.testing.assert_close(torch.ones(2), torch.ones(2))
        torch.linalg.eigvalsh(torch.eye(2))
        torch.linalg.lstsq(torch.eye(2), torch.ones(2, 1))


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__} : message illisible>"


def _vsize() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


_RUN_CELL: Any = None


def _compiler_class():
    from ipykernel.compiler import XCachingCompiler, get_tmp_hash_seed, murmur2_x86

    class GraderCompiler(XCachingCompiler):
        """Cell file names like ipykernel's, without the pid: reruns give identical warnings."""

        def get_code_name(self, raw_code, transformed_code, number):
            import tempfile

            digest = murmur2_x86(raw_code, get_tmp_hash_seed())
            return os.path.join(tempfile.gettempdir(), "ipykernel", f"{digest}.py")

    return GraderCompiler


def _shell_class():
    """The IPython shell of a submission: publishes outputs like ipykernel's ZMQInteractiveShell."""
    global _RUN_CELL
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Bool, Type

    class GraderDisplayHook(DisplayHook):
        def start_displayhook(self):
            self._content = None
            self._is_active = True

        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            self._content = (format_dict, md_dict or {})

        def finish_displayhook(self):
            self._is_active = False
            content, self._content = self._content, None
            if content and content[0]:
                emit_output(
                    {
                        "output_type": "execute_result",
                        "execution_count": self.prompt_count,
                        "data": content[0],
                        "metadata": content[1],
                    }
                )

    class GraderDisplayPublisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            self._validate_data(data, metadata)
            display_id = (transient or {}).get("display_id")
            output = {"output_type": "display_data", "data": data, "metadata": metadata or {}}
            emit_output(output, display_id=display_id, update=update and display_id is not None)

        def clear_output(self, wait=False):
            STATE.stream_sent = STATE.dropped = 0
            send_event({"t": "clear", "wait": bool(wait)})

    class GraderShell(InteractiveShell):
        displayhook_class = Type(GraderDisplayHook)
        display_pub_class = Type(GraderDisplayPublisher)
        autoindent = Bool(False)
        readline_use = Bool(False)

        def _showtraceback(self, etype, evalue, stb):
            if not isinstance(stb, list):
                stb = [stb]
            emit_output(
                {
                    "output_type": "error",
                    "ename": str(getattr(etype, "__name__", etype)),
                    "evalue": _safe_str(evalue),
                    "traceback": [line if isinstance(line, str) else _safe_str(line) for line in stb],
                }
            )
            self._last_traceback = stb

        def enable_gui(self, gui=None):
            pass

    _RUN_CELL = InteractiveShell.run_cell
    return GraderShell


# --------------------------------------------------------------------------------------------
# Tamper guard for test cells
# --------------------------------------------------------------------------------------------

_GUARDED_MODULE_PREFIXES = ("IPython", "traitlets", "matplotlib_inline", "ipykernel.compiler")
_GUARDED_MODULES = (
    "os", "posix", "posixpath", "signal", "json", "json.encoder", "json.decoder", "struct", "io", "gc",
    "threading", "ast", "traceback", "linecache", "inspect", "functools", "operator", "copy", "re", "time",
    "numbers", "codecs", "types", "numpy", "resource", "mmap",
)  # fmt: skip
_SHELL_STATE_KEYS = {"_trait_values", "_trait_notifiers", "_trait_validators", "_cross_validation_lock"}
_MACHINERY = {
    "custom_exceptions", "user_ns", "callbacks", "ast_transformers", "input_transformers_cleanup",
    "input_transformers_post", "cleanup_transforms", "line_transforms", "token_transformers",
}  # fmt: skip
_SYS_HOOKS = ("stdout", "stderr", "stdin", "displayhook", "excepthook", "breakpointhook", "unraisablehook")


class Guard:
    """Undo what a submission did to the machinery a test cell relies on.

    ``autograder.grading.integrity`` restores builtins, torch and the autograder package; this adds
    the IPython shell (methods, hooks, AST and input transformers, event callbacks, custom exception
    handlers), the ``sys`` hooks, trace and profile functions, signal handlers and timers, the
    standard modules the grader uses, ``sys.modules`` entries, the registry of exercises, and the
    names a test cell reads (``check``, ``hint``, ``torch``... and shadowed builtins).
    """

    def __init__(self, shell: Any, exercise_module: Any):
        import builtins
        import gc

        self.shell = shell
        self.modules: list[tuple[Any, dict[str, Any]]] = []
        for name, module in sorted(sys.modules.items()):
            if module is None or not (name in _GUARDED_MODULES or name.startswith(_GUARDED_MODULE_PREFIXES)):
                continue
            self.modules.append((module, dict(vars(module))))
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == name:
                    self.modules.append((value, dict(vars(value))))
        self.objects: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
        for obj in self._components():
            traits = dict(getattr(obj, "_trait_values", {}))
            self.objects.append((obj, dict(vars(obj)), traits, _copy_notifiers(obj)))
        self.lists = self._lists()
        self.callbacks = {name: list(funcs) for name, funcs in shell.events.callbacks.items()}
        self.sys_modules = dict(sys.modules)
        self.sys_hooks = {name: getattr(sys, name) for name in _SYS_HOOKS}
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.recursion_limit = sys.getrecursionlimit()
        self.gc_callbacks = list(gc.callbacks)
        self.signals = {}
        for number in signal.valid_signals():
            try:
                self.signals[number] = signal.getsignal(number)
            except (ValueError, OSError):
                pass
        self.exercise_module = exercise_module
        self.registry = dict(exercise_module._REGISTRY)
        self.exercises = {key: dict(vars(value)) for key, value in self.registry.items()}
        self.builtins = builtins
        self.builtin_names = set(vars(builtins))
        self.format_tb = shell.InteractiveTB.structured_traceback

    def _components(self) -> list[Any]:
        shell = self.shell
        names = (
            "displayhook", "display_pub", "display_formatter", "compile", "InteractiveTB", "SyntaxTB",
            "events", "input_transformer_manager", "builtin_trap", "display_trap", "magics_manager",
        )  # fmt: skip
        return [shell] + [getattr(shell, name) for name in names if getattr(shell, name, None) is not None]

    def _lists(self) -> list[tuple[list[Any], list[Any]]]:
        shell = self.shell
        lists = [shell.ast_transformers, shell.input_transformers_cleanup, shell.input_transformers_post]
        manager = shell.input_transformer_manager
        for name in ("cleanup_transforms", "line_transforms", "token_transformers"):
            value = getattr(manager, name, None)
            if isinstance(value, list):
                lists.append(value)
        return [(value, list(value)) for value in lists]

    def retake_streams(self) -> None:
        """The child replaced sys.stdout/stderr/stdin: those are the genuine ones from now on."""
        for name in ("stdout", "stderr", "stdin"):
            self.sys_hooks[name] = getattr(sys, name)
        self.signals[signal.SIGINT] = _on_sigint
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            self.signals[number] = signal.SIG_DFL
        self.signals[signal.SIGXFSZ] = signal.SIG_IGN

    def format_traceback(self, failure: BaseException) -> list[str]:
        return self.format_tb(type(failure), failure, failure.__traceback__)

    def before_grade_cell(self, source: str, genuine: dict[str, Any]) -> None:
        import gc
        import threading

        from autograder.grading import integrity

        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)  # type: ignore[arg-type]
        threading.setprofile(None)  # type: ignore[arg-type]
        _stop_other_threads()
        for number, handler in self.signals.items():
            try:
                if signal.getsignal(number) is not handler and handler is not None:
                    signal.signal(number, handler)
            except (ValueError, OSError, TypeError):
                pass
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(timer, 0)
        signal.alarm(0)
        gc.callbacks[:] = self.gc_callbacks
        gc.collect()  # run pending finalizers of the submission's garbage now, before restoring
        gc.callbacks[:] = self.gc_callbacks
        for name, value in self.sys_hooks.items():
            setattr(sys, name, value)
        sys.meta_path[:] = self.meta_path
        sys.path_hooks[:] = self.path_hooks
        sys.setrecursionlimit(self.recursion_limit)
        for name, module in self.sys_modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
        for target, saved in self.modules:
            _restore_namespace(target, saved)
        for obj, saved, traits, notifiers in self.objects:
            _restore_instance(obj, saved, traits)
            if notifiers is not None:
                obj._trait_notifiers = _copy_notifiers(notifiers)
        for value, saved in self.lists:
            value[:] = saved
        callbacks = self.shell.events.callbacks
        for name in list(callbacks):
            if name not in self.callbacks:
                del callbacks[name]
        for name, funcs in self.callbacks.items():
            callbacks[name] = list(funcs)
        integrity.restore()
        registry = self.exercise_module._REGISTRY
        registry.clear()
        registry.update(self.registry)
        for key, value in self.registry.items():
            saved = self.exercises[key]
            current = vars(value)
            for name in [n for n in current if n not in saved]:
                del current[name]
            for name, attr in saved.items():
                if name != "hints_shown" and current.get(name) is not attr:
                    current[name] = attr
        self._restore_names(source, genuine)

    def _restore_names(self, source: str, genuine: dict[str, Any]) -> None:
        import ast
        import re

        try:
            names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
        except SyntaxError:
            names = set(re.findall(r"[A-Za-z_]\w*", source))
        namespace = self.shell.user_ns
        namespace["__builtins__"] = self.builtins
        for name in names:
            if name in genuine:
                namespace[name] = genuine[name]
            elif name in self.builtin_names and name in namespace and not name.startswith("_"):
                del namespace[name]  # e.g. a submission's own `globals` or `isinstance`


def _stop_other_threads() -> None:
    """Raise SystemExit in every other Python thread (one could keep re-patching torch during a test)."""
    me = _thread_ident()
    others = [ident for ident in sys._current_frames() if ident != me]
    for ident in others:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(SystemExit))
    if others:
        time.sleep(0.02)  # let them reach their next bytecode and die


def _thread_ident() -> int:
    import threading

    return threading.get_ident()


def _restore_namespace(target: Any, saved: dict[str, Any]) -> None:
    current = vars(target)
    for name in [n for n in current if n not in saved]:
        try:
            delattr(target, name)
        except (AttributeError, TypeError):
            pass
    for name, value in saved.items():
        if current.get(name, _MISSING) is not value:
            try:
                setattr(target, name, value)
            except (AttributeError, TypeError):
                pass


def _restore_instance(obj: Any, saved: dict[str, Any], traits: dict[str, Any]) -> None:
    """Remove attributes shadowing methods and put machinery attributes back (plain state is left alone)."""
    current = vars(obj)
    cls = type(obj)
    for name in [n for n in current if n not in saved and n not in _SHELL_STATE_KEYS]:
        if callable(getattr(cls, name, None)) or callable(current[name]):
            del current[name]
    for name, value in saved.items():
        if name not in _SHELL_STATE_KEYS and current.get(name, _MISSING) is not value and _machinery(name, value):
            current[name] = value
    values = current.get("_trait_values")
    if isinstance(values, dict):
        for name, value in traits.items():
            if values.get(name, _MISSING) is not value and _machinery(name, value):
                values[name] = value


def _machinery(name: str, value: Any) -> bool:
    plain = isinstance(value, int | float | str | bool | bytes | type(None) | dict | list | tuple | set)
    return name in _MACHINERY or callable(value) or not plain


def _copy_notifiers(obj: Any) -> dict[str, dict[str, list[Any]]] | None:
    """Structural copy of a HasTraits' observers (a submission may observe a trait to run code)."""
    notifiers = obj if isinstance(obj, dict) else vars(obj).get("_trait_notifiers")
    if not isinstance(notifiers, dict):
        return None
    return {name: {kind: list(handlers) for kind, handlers in kinds.items()} for name, kinds in notifiers.items()}


_MISSING = object()
