"""The trusted checker: decides the verdict of a test cell outside the student's process.

Under ``autograder grade`` each pool worker has one checker process beside it, started by the host
outside any sandbox the student's code runs in; the student's code cannot read, write, signal or trace
it. For a test cell made of ``check("<id>", globals()[, seed=…, trials=…])`` calls, the host sends
the calls here (the hidden ones included: they never reach the student's process). The checker runs the
exercise's own ``run`` — the same definition that gives instant feedback in JupyterLab — with
``observe._remote_runner`` set, so that every ``observe.run`` becomes a request to the student's kernel
(``student_agent``) relayed by the host; values come back as plain data (``wire``). The checker draws
the inputs, computes the references with autograd in its own process and decides: the student's process
can only send back its answers.

The host starts one zygote per pool (``main``), which forks the checkers (``_serve``). Channel of a checker
with the host: ``multiprocessing.connection`` messages on two pipes, each starting with one byte: ``J`` a
JSON control message, ``Q`` (checker -> host) a request to relay to the student's kernel, ``R`` (host ->
checker) the kernel's raw reply.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch

from autograder import observe
from autograder.exercise import get_exercise
from autograder.grading import wire
from autograder.typography import french_spacing
from autograder.verdict import (
    CORRECT,
    CheckFailed,
    Crashed,
    NotAttempted,
    TimedOut,
    Verdict,
    WrongAnswer,
)


class KernelGone(Exception):
    """The student's kernel stopped answering (killed after a timeout, or dead)."""

    def __init__(self, why: str, detail: str = ""):
        super().__init__(why)
        self.why = why
        self.detail = detail


Ask = Callable[[bytes], bytes]  # a request to the student's kernel -> its raw reply (raises KernelGone)


class RemoteRunner:
    """``observe._remote_runner``: a call into student code becomes a request answered with data."""

    def __init__(self, ask: Ask):
        self.ask = ask

    def request(self, message: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            raw = self.ask(wire.dumps(message))
        except KernelGone as gone:
            if gone.why == "timeout":
                raise TimedOut(_timeout_message(what)) from None
            raise Crashed(f"Le noyau s'est arrêté pendant l'appel {what}{_detail(gone.detail)}.") from None
        try:
            reply = wire.loads(raw)
            if not isinstance(reply, dict):
                raise wire.WireError("reply must be an object")
        except wire.WireError:
            raise WrongAnswer(f"En appelant {what} : la réponse renvoyée est illisible.") from None
        if reply.get("ok") is True:
            return reply
        error = reply.get("error")
        if error == "not_implemented":
            raise NotImplementedError
        if error == "interrupted":
            raise TimedOut(_timeout_message(what))
        if error == "wrong":
            message = reply.get("message")
            text = message if isinstance(message, str) and message else f"En appelant {what} : erreur."
            raise WrongAnswer(text[:2000])
        raise WrongAnswer(
            f"En appelant {what} : la réponse ne peut pas être transmise au correcteur (valeur trop volumineuse "
            "ou d'un type non pris en charge : renvoyez des tenseurs, des nombres ou des listes)."
        )

    def __call__(self, func: Any, args: tuple[Any, ...], what: str) -> observe.CallReport:
        __tracebackhide__ = True
        encoder = wire.Encoder(strict=True)
        message = {
            "op": "call",
            "f": encoder.encode(_reference(func)),
            "args": [encoder.encode(a) for a in args],
            "what": what,
        }
        reply = self.request(message, what)
        decoder = wire.Decoder()
        try:
            result = decoder.decode(reply.get("result"))
            after = tuple(decoder.decode(a) for a in _items(reply.get("args")))
            gradients = [decoder.decode(g) for g in _items(reply.get("backward_gradients"))]
            grads = tuple(decoder.decode(g) for g in _items(reply.get("input_grads")))
            passes = _count(reply.get("backward_passes"))
            steps = _count(reply.get("optimizer_steps"))
            versions = tuple(None if v is None else _count(v) for v in _items(reply.get("version_changes")))
            if len(versions) not in (0, len(args)):
                raise wire.WireError("one version change per argument")
        except wire.WireError:
            raise WrongAnswer(f"En appelant {what} : la réponse renvoyée est illisible.") from None
        if isinstance(result, torch.Tensor):
            facts = observe._facts(result)
            if facts is not None:
                facts["input_grads"] = tuple(g if isinstance(g, torch.Tensor) else None for g in grads)
        return observe.CallReport(
            result=result,
            args=after,
            backward_gradients=gradients,
            backward_passes=passes,
            optimizer_steps=steps,
            version_changes=versions or (None,) * len(args),
        )

    def names(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The student's namespace as the exercise sees it: remote references for callables, data otherwise."""
        reply = self.request({"op": "names", "names": list(names)}, "la lecture de vos réponses")
        found = reply.get("names")
        if not isinstance(found, dict):
            raise WrongAnswer("Vos réponses n'ont pas pu être lues.")
        namespace: dict[str, Any] = {}
        for name in names:
            entry = found.get(name)
            if not isinstance(entry, dict) or entry.get("kind") == "missing":
                continue
            if entry.get("kind") == "callable":
                namespace[name] = wire.Remote(name)
            elif entry.get("kind") == "value":
                try:
                    namespace[name] = wire.Decoder().decode(entry.get("v"))
                except wire.WireError:
                    namespace[name] = wire.Opaque("valeur illisible")
        return namespace


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise wire.WireError("list expected")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 31:
        raise wire.WireError("bad count")
    return value


def _reference(func: Any) -> Any:
    """What names a function in the student's process: a student name or a ``student_side`` helper."""
    if isinstance(func, wire.Remote):
        return func
    for name, helper in observe.STUDENT_SIDE.items():
        if helper is func:
            return wire.StudentSide(name)
    if isinstance(func, wire.Opaque) or not callable(func):
        return wire.Remote("")  # not a function: the student's side answers as for any non-callable
    raise TypeError(
        f"checker contract: {func!r} is neither a student name nor an observe.student_side helper; "
        "code never crosses into the student's process"
    )


def _timeout_message(what: str) -> str:
    return f"L'appel {what} a dépassé la limite de temps : il a été interrompu (boucle infinie ?)."


def _detail(detail: str) -> str:
    return f" ({detail})" if detail else ""


# -- one test cell --------------------------------------------------------------------------------------------


def error_output(failure: BaseException) -> dict[str, Any]:
    """The error output IPython shows for a verdict (nbgrader gives the cell 0 points)."""
    text = failure.render() if isinstance(failure, CheckFailed) else french_spacing(str(failure))
    return {"output_type": "error", "ename": type(failure).__name__, "evalue": text, "traceback": text.splitlines()}


def stream_output(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text + "\n"}


def judge(checks: list[dict[str, Any]], max_points: float, ask: Ask) -> dict[str, Any]:
    """Run the cell's ``check`` calls in order (the first failure ends the cell, as in the kernel).

    Returns ``{"verdict": Verdict as a dict, "outputs": the cell's nbformat outputs}``.
    """
    runner = RemoteRunner(ask)
    outputs: list[dict[str, Any]] = []
    exercise_id = str(checks[0]["id"]) if checks else ""
    previous = observe._remote_runner
    observe._remote_runner = runner
    failure: BaseException | None = None
    try:
        for call in checks:
            exercise_id = str(call["id"])
            torch.manual_seed(0)
            try:
                exercise = get_exercise(exercise_id)
                namespace = runner.names(exercise.names)
                box = exercise.evaluate(namespace, seed=int(call.get("seed", 0)), trials=call.get("trials"))
            except CheckFailed as failed:
                failed.exercise_id = failed.exercise_id or exercise_id
                failure = failed
                break
            except Exception as error:  # noqa: BLE001 - a checker that cannot run costs the cell, never the batch
                failure = Crashed(
                    "Le vérificateur n'a pas pu juger cette réponse (erreur interne : "
                    f"{type(error).__name__}). Signalez-le à l'enseignant·e.",
                    exercise_id,
                )
                print(traceback.format_exc(), file=sys.stderr)
                break
            outputs.append(stream_output(box.text()))  # what the check prints under grading in a kernel
    finally:
        observe._remote_runner = previous
    if failure is None:
        verdict = Verdict(exercise_id, CORRECT, float(max_points), float(max_points), "")
    else:
        code = getattr(failure, "code", Crashed.default_code)
        message = getattr(failure, "message", str(failure))
        verdict = Verdict(exercise_id, code, 0.0, float(max_points), message)
        outputs.append(error_output(failure))
    return {"verdict": verdict.to_dict(), "outputs": outputs}


# -- the process ----------------------------------------------------------------------------------------------


def _warm_up() -> None:
    """Pay the first-use costs of torch (autograd, torch.func, optimizers) before the first copy, not during it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = torch.ones(3, requires_grad=True)
        optimizer = torch.optim.SGD([w], lr=0.1)
        (w * w).sum().backward()
        optimizer.step()
        torch.autograd.grad((w.sin() * 2).sum(), w)
        torch.func.grad(lambda t: (t**3).sum())(torch.ones(2))
        torch.autograd.functional.jacobian(lambda x: x.sin(), torch.ones(2))
        torch.linalg.eigvalsh(torch.eye(2))


def main() -> None:
    """The checkers' zygote: import the exercises and warm torch up once, then fork one checker per request.

    fd 0 is a Unix socket to the host. Each request carries the two ends of a new checker's channel (its
    inbox and outbox pipes, ``SCM_RIGHTS``); the zygote forks, the child serves the host on them until end
    of file. A checker then starts in a millisecond instead of 2 to 3 s of CPU (torch, the exercises, the
    warm-up): on 2 cores that was a tenth of the time of grading 40 copies."""
    import signal
    import socket

    control = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # a print of a checker goes to the log, never into a channel
    os.close(null)
    torch.set_num_threads(1)
    from autograder.exercise import catalogue

    exercises = catalogue()  # imports every exercise; the host's class report describes them with it
    _warm_up()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the checkers that end
    while True:
        try:
            _message, fds, _flags, _address = socket.recv_fds(control, 16, 2)
        except OSError:
            os._exit(0)
        if len(fds) != 2:  # end of file: the host is gone
            os._exit(0)
        if os.fork() == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _serve(fds[0], fds[1], exercises)
        for fd in fds:
            os.close(fd)


def _serve(inbox_fd: int, outbox_fd: int, exercises: dict[str, Any]) -> None:
    """One checker (a fork of the zygote): announce readiness, then decide cells until end of file."""
    from multiprocessing.connection import Connection

    inbox, outbox = Connection(inbox_fd, writable=False), Connection(outbox_fd, readable=False)
    ready = {"t": "ready", "pid": os.getpid(), "catalogue": exercises}
    try:
        outbox.send_bytes(b"J" + json.dumps(ready, ensure_ascii=False).encode())
    except OSError:
        os._exit(0)  # the host closed this checker before the zygote forked it

    def ask(request: bytes) -> bytes:
        outbox.send_bytes(b"Q" + request)
        answer = inbox.recv_bytes(wire.MAX_MESSAGE_BYTES + 1024)
        if answer[:1] == b"R":
            return answer[1:]
        gone = json.loads(answer[1:])
        raise KernelGone(str(gone.get("dead", "crashed")), str(gone.get("detail", "")))

    while True:
        try:
            message = inbox.recv_bytes(1 << 20)
        except (EOFError, OSError):
            os._exit(0)  # nothing to flush or save: skip tearing torch down (about 1 s)
        job = json.loads(message[1:])
        if job.get("op") == "judge":
            result = judge(list(job.get("checks") or []), float(job.get("points") or 0), ask)
            outbox.send_bytes(b"J" + json.dumps({"t": "verdict", **result}, ensure_ascii=False).encode())


__all__ = ["judge", "main", "RemoteRunner", "KernelGone", "NotAttempted"]

if __name__ == "__main__":
    main()
