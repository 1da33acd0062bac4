"""Host side of trusted checks: which test cells the checker decides, and its process.

A test cell whose whole source is ``check("<id>", globals()[, seed=…, trials=…])`` calls (the visible
call and the hidden ones nbgrader restores) is *decided* by the trusted checker (``checker``): the
student's kernel receives neither its source nor its parameters, only the checker's requests, and the
cell's outputs — what nbgrader's ``SaveAutoGrades`` scores — are written from the checker's verdict.
Any other test cell (an instructor's plain ``assert``) is executed in the student's kernel with nbgrader's
semantics, and the outcome says so.

This module only imports the standard library: the host does not import torch.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import IO, Any

MAX_REQUEST = 8 * 1024 * 1024 + 1024  # wire.MAX_MESSAGE_BYTES and a margin
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class CheckCall:
    exercise_id: str
    seed: int = 0
    trials: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.exercise_id, "seed": self.seed, "trials": self.trials}


def parse_checks(source: str) -> list[CheckCall] | None:
    """The ``check`` calls a test cell is made of, or None when it holds anything else."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    calls: list[CheckCall] = []
    for statement in tree.body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "check"):
            return None
        if len(call.args) != 2 or not _is_str(call.args[0]) or not _is_globals(call.args[1]):
            return None
        options: dict[str, int] = {}
        for keyword in call.keywords:
            value = keyword.value
            if keyword.arg not in ("seed", "trials") or keyword.arg in options:
                return None
            if not (isinstance(value, ast.Constant) and type(value.value) is int):
                return None
            options[keyword.arg] = value.value
        calls.append(CheckCall(call.args[0].value, options.get("seed", 0), options.get("trials")))
    return calls or None


def _is_str(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_globals(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "globals"
        and not node.args
        and not node.keywords
    )


class KernelGone(Exception):
    """The student's kernel can no longer answer (``why``: ``timeout`` or ``crashed``)."""

    def __init__(self, why: str, detail: str = ""):
        super().__init__(why)
        self.why = why
        self.detail = detail


class CheckerError(RuntimeError):
    """The trusted checker process failed (a bug of ours): the cell cannot be decided."""


class CheckerZygote:
    """The process the checkers are forked from (``checker.main``), outside every sandbox; one per pool."""

    def __init__(self, log: IO[bytes]):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from autograder.grading.checker import main; main()"],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self._lock = threading.Lock()

    def spawn(self) -> CheckerProcess:
        """A new checker; it is forked once the zygote is warm, and ready when it says so (``wait_ready``)."""
        checker_reads, host_writes = os.pipe()
        host_reads, checker_writes = os.pipe()
        try:
            with self._lock:
                socket.send_fds(self.control, [b"c"], [checker_reads, checker_writes])
        except OSError as error:
            for fd in (checker_reads, host_writes, host_reads, checker_writes):
                os.close(fd)
            raise CheckerError(f"the checkers' zygote is gone ({error})") from None
        os.close(checker_reads)
        os.close(checker_writes)
        return CheckerProcess(self, Connection(host_writes, readable=False), Connection(host_reads, writable=False))

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Stop the zygote; its checkers end with their own channels. It holds nothing to save: a zygote still
        warming up (a short batch) is not waited for."""
        self.control.close()  # end of file: a warm zygote exits at once
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class CheckerProcess:
    """One trusted checker (forked by the zygote), serving one pool worker."""

    def __init__(self, zygote: CheckerZygote, outbox: Connection, inbox: Connection):
        self.zygote = zygote
        self.outbox = outbox
        self.inbox = inbox
        self._ready = False
        self.pid: int | None = None  # once ready (the zygote's child, not ours)
        self._pidfd: int | None = None  # to know when it ends and to stop it
        self.catalogue: dict[str, Any] | None = None  # every exercise as plain data, sent once ready

    def wait_ready(self, deadline: float) -> None:
        if self._ready:
            return
        message = self._receive(deadline)
        ready = json.loads(message[1:]) if message[:1] == b"J" else None
        if not isinstance(ready, dict) or ready.get("t") != "ready":
            raise CheckerError("checker did not start")
        self.catalogue = ready.get("catalogue") if isinstance(ready.get("catalogue"), dict) else None
        pid = ready.get("pid")
        if type(pid) is int and pid > 0:
            self.pid = pid
            try:
                self._pidfd = os.pidfd_open(pid)
            except (OSError, AttributeError):  # already gone (its channel says so), or no pidfd (kernel < 5.3, macOS)
                self._pidfd = None
        self._ready = True

    def _receive(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0 or not self.inbox.poll(remaining):
                raise CheckerError("checker timed out")
            return self.inbox.recv_bytes(MAX_REQUEST)
        except (EOFError, OSError) as error:
            raise CheckerError(f"checker channel closed ({error})") from None

    def judge(self, checks: list[CheckCall], points: float, relay, deadline: float) -> dict[str, Any]:
        """Decide one cell; ``relay(request bytes) -> reply bytes`` reaches the student's kernel (may raise
        ``KernelGone``). Returns the checker's ``{"verdict": ..., "outputs": ...}``."""
        self.wait_ready(deadline)
        job = {"op": "judge", "checks": [c.to_dict() for c in checks], "points": points}
        try:
            self.outbox.send_bytes(b"J" + json.dumps(job).encode())
        except OSError as error:
            raise CheckerError(f"checker channel closed ({error})") from None
        gone: KernelGone | None = None
        while True:
            message = self._receive(deadline)
            kind, body = message[:1], message[1:]
            if kind == b"J":
                result = json.loads(body)
                if result.get("t") == "verdict":
                    return result
                raise CheckerError("unexpected message from the checker")
            if kind != b"Q":
                raise CheckerError("unexpected message from the checker")
            if gone is None:
                try:
                    reply = b"R" + relay(body)
                except KernelGone as error:
                    gone = error
            if gone is not None:
                reply = b"J" + json.dumps({"dead": gone.why, "detail": gone.detail}).encode()
            try:
                self.outbox.send_bytes(reply)
            except OSError as error:
                raise CheckerError(f"checker channel closed ({error})") from None

    def alive(self) -> bool:
        if self._pidfd is not None:
            return not select.select([self._pidfd], [], [], 0)[0]  # a pidfd is readable once its process ends
        return self.zygote.alive()

    def close(self) -> None:
        for connection in (self.outbox, self.inbox):
            try:
                connection.close()
            except OSError:
                pass
        if self._pidfd is not None:  # it ends at end of file; a checker stuck in a computation is stopped
            if select.select([self._pidfd], [], [], 10)[0] == []:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            os.close(self._pidfd)
            self._pidfd = None


# -- outputs the host writes for a decided cell ---------------------------------------------------------------


def verdict_outputs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The checker's outputs, kept to the two kinds it produces (stdout text, one error)."""
    outputs: list[dict[str, Any]] = []
    for output in result.get("outputs") or []:
        if output.get("output_type") == "stream":
            text = str(output.get("text", ""))
            if outputs and outputs[-1]["output_type"] == "stream":
                outputs[-1]["text"] += text  # consecutive prints make one stream output, as in a kernel
            else:
                outputs.append({"output_type": "stream", "name": "stdout", "text": text})
        elif output.get("output_type") == "error":
            outputs.append(
                {
                    "output_type": "error",
                    "ename": str(output.get("ename", "CheckFailed")),
                    "evalue": str(output.get("evalue", "")),
                    "traceback": [str(line) for line in output.get("traceback") or []],
                }
            )
    return outputs


def undecided_result(exercise_id: str, points: float, code: str, message: str) -> dict[str, Any]:
    """A verdict the host writes itself when the checker could not decide (kernel dead, checker failure)."""
    ename = "CheckTimeoutError" if code == "delai_depasse" else "CheckNotRunError"
    return {
        "verdict": {"exercise_id": exercise_id, "code": code, "points": 0.0, "max_points": points, "message": message},
        "outputs": [{"output_type": "error", "ename": ename, "evalue": message, "traceback": [f"{ename}: {message}"]}],
    }
