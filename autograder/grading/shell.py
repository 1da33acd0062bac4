"""Child side: the IPython shell that runs a copy's cells, in a process forked from a warm worker.

``Runtime.create`` runs once in the worker (preload: torch, numpy, matplotlib, IPython, the
autograder package); ``Runtime.run_child`` runs in each forked child, which is the only process
where student code runs. Everything the child sends to the worker (streams, rich outputs,
cell events) goes through ``send_event`` as frames on its event pipe, and is untrusted there.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from typing import Any

from autograder.grading import limits as resource_limits
from autograder.grading.messages import dropped_output_marker
from autograder.grading.outputs import bounded_error, output_size
from autograder.grading.processes import PR_SET_PDEATHSIG, prctl
from autograder.grading.protocol import HEADER, dumps
from autograder.grading.tamper_guard import Guard, protect, restore_namespace


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
        output = bounded_error(output, STATE.stream_limit)  # a huge message must not make the frame unreadable
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


def _wait_turn(go_r: int, index: int) -> bool:
    """Block until the worker allows the next cell (its timer starts then, in the worker)."""
    data = b""
    while len(data) < 8:
        try:
            chunk = os.read(go_r, 8 - len(data))
        except InterruptedError:
            continue
        if not chunk:
            return False
        data += chunk
    return struct.unpack("q", data)[0] == index


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

        exercise.all_exercises()  # import every exercise module so that all checkers are registered
        builtins.input = _no_input
        getpass.getpass = _no_getpass
        # Keep IPython's builtins (get_ipython, exit, quit) in place for good: the tamper guard's snapshot
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
        runtime.builtins = dict(vars(builtins))
        runtime.guard = protect(Guard(shell, exercise))
        import gc

        gc.collect()
        gc.freeze()  # children do not copy these pages when the collector runs
        return runtime

    # -- child --------------------------------------------------------------------------------
    def run_child(self, job, fds, shared, limits, nproc, marker, die_with_parent) -> None:
        """Run the job's cells, each when the worker allows it (a cell index on ``go_r``), then exit."""
        out_w, err_w, ev_w, go_r, req_r = fds
        os.setsid()
        if die_with_parent:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        try:  # when a copy exhausts its memory, the kernel stops its own processes first
            with open("/proc/self/oom_score_adj", "w") as handle:
                handle.write("1000")
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_w, err_w):
            os.close(fd)
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too big file is an OSError, not a death
        signal.signal(signal.SIGINT, _on_sigint)
        resource_limits.apply(limits, nproc)
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
        self.guard.retake_streams(_on_sigint)
        shell = self.shell
        for cell in job["cells"]:
            if _os_getpid() != STATE.owner:
                _os_exit(0)  # a fork made by the submission came back here: it does not run the next cells
            if not _wait_turn(go_r, cell["i"]):
                break
            execution_count = shell.execution_count
            STATE.current = cell["i"]
            STATE.stream_sent = STATE.dropped = STATE.errors = 0
            STATE.interrupted = STATE.pending_interrupt = False
            if cell.get("serve"):  # a test cell decided by the trusted checker: answer its requests
                self._serve_cell(cell, req_r, execution_count, marker)
                continue
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

    def _serve_cell(self, cell: dict[str, Any], req_r: int, execution_count: int, marker: bytes) -> None:
        """Answer the trusted checker's requests for one test cell (its source never reaches this process)."""
        from autograder.grading import student_agent
        from autograder.grading.protocol import read_frame

        def send_reply(body: bytes) -> None:
            _enter()
            try:
                _flush_stream()
                _send(b"r" + body)
            finally:
                _leave()

        STATE.in_cell = True
        send_event({"t": "serve", "i": cell["i"]})
        try:
            student_agent.serve(lambda: read_frame(req_r), send_reply, self.shell.user_ns, lambda: STATE.interrupted)
        except BaseException:  # noqa: BLE001 - the cell ends whatever the student's code did
            pass
        STATE.in_cell = False
        flush_streams()
        self.shell.execution_count = execution_count + 1
        for fd in (1, 2):
            try:
                _os_write(fd, marker)
            except OSError:
                pass
        send_event({"t": "end", "i": cell["i"], "interrupted": STATE.interrupted, "dropped": STATE.dropped})

    def _restore_builtins(self) -> None:
        """The grader's own code needs genuine builtins: undo a cell's changes to them (rare, never legit)."""
        import builtins

        current = vars(builtins)
        if len(current) == len(self.builtins) and all(current.get(k) is v for k, v in self.builtins.items()):
            return
        restore_namespace(builtins, self.builtins)

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
