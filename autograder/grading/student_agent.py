"""The student's side of a trusted check: answer the checker's requests with plain data.

Runs inside the student's kernel while a test cell is being judged. It never sees an exercise, a seed, a
reference or a verdict: only requests to look names up and to call the student's functions on given
arguments (``observe.run_here``), and it answers with values and autograd facts encoded by ``wire``.
Everything here runs in the student's process, so everything it sends is the student's word: the trusted
checker judges it as the student's answer.

Requests (JSON): ``{"op": "names", "names": [...]}`` and ``{"op": "call", "f": <ref>, "args": [...],
"what": "..."}``; the serve loop ends at ``{"op": "end"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autograder.grading import wire

MAX_MESSAGE = 2_000


def describe_names(names: list[Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """What each name of the exercise holds: missing, something callable (a reference), or data."""
    out: dict[str, Any] = {}
    for name in names[:64]:
        if not isinstance(name, str) or len(name) > 200:
            continue
        if name not in namespace:
            out[name] = {"kind": "missing"}
            continue
        value = namespace[name]
        if callable(value) and not _is_data(value):
            out[name] = {"kind": "callable"}
            continue
        try:
            out[name] = {"kind": "value", "v": wire.Encoder().encode(value)}
        except wire.WireError:
            out[name] = {"kind": "value", "v": {"$": "o", "type": "valeur trop volumineuse"}}
    return out


def _is_data(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _resolve(ref: Any, namespace: dict[str, Any]) -> Any:
    from autograder import observe

    if isinstance(ref, wire.Remote):
        return namespace.get(ref.name)
    if isinstance(ref, wire.StudentSide):
        return observe.STUDENT_SIDE.get(ref.name)
    return None


def call(request: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    from autograder import observe
    from autograder.verdict import CheckFailed

    decoder = wire.Decoder()
    func = _resolve(decoder.decode(request.get("f")), namespace)
    args = tuple(decoder.decode(a) for a in request.get("args") or [])
    args = tuple(namespace.get(a.name) if isinstance(a, observe.StudentName | wire.Remote) else a for a in args)
    what = str(request.get("what") or "")[:300]
    try:
        report = observe.run_here(func, args, what)
    except NotImplementedError:
        return {"ok": False, "error": "not_implemented"}
    except CheckFailed as failure:
        return {"ok": False, "error": "wrong", "message": str(getattr(failure, "message", failure))[:MAX_MESSAGE]}
    grads: list[Any] = []
    result = report.result
    if isinstance(result, _tensor_type()) and result.grad_fn is not None:
        grads = list(observe.input_grads_of(result, args))
    encoder = wire.Encoder(facts=True, call_args=args)
    return {
        "ok": True,
        "result": encoder.encode(result),
        "args": [encoder.encode(a) for a in report.args],
        "backward_gradients": [encoder.encode(g) for g in report.backward_gradients],
        "backward_passes": int(report.backward_passes),
        "optimizer_steps": int(report.optimizer_steps),
        "version_changes": [None if v is None else int(v) for v in report.version_changes],
        "input_grads": [encoder.encode(g) for g in grads],
    }


def _tensor_type() -> type:
    import torch

    return torch.Tensor


def handle(request_bytes: bytes, namespace: dict[str, Any], interrupted: Callable[[], bool] = lambda: False) -> bytes:
    """One request in, one reply out (both JSON bytes); never raises except ``KeyboardInterrupt``."""
    try:
        if interrupted():  # the check already overran its time: nothing more is run
            return wire.dumps({"ok": False, "error": "interrupted"})
        request = wire.loads(request_bytes)
        if not isinstance(request, dict):
            raise wire.WireError("request must be an object")
        op = request.get("op")
        if op == "names":
            reply: dict[str, Any] = {"ok": True, "names": describe_names(list(request.get("names") or []), namespace)}
        elif op == "call":
            reply = call(request, namespace)
        else:
            reply = {"ok": False, "error": "bad_request"}
    except KeyboardInterrupt:
        if interrupted():
            reply = {"ok": False, "error": "interrupted"}
        else:  # the student's own code raised it
            reply = {"ok": False, "error": "wrong", "message": "`KeyboardInterrupt` levée par votre code."}
    except (wire.WireError, RecursionError, MemoryError) as error:
        reply = {"ok": False, "error": "unreadable", "message": type(error).__name__}
    except BaseException as error:  # noqa: BLE001 - SystemExit, or our side failed on the student's objects
        reply = {"ok": False, "error": "wrong", "message": f"{type(error).__name__} : {error}"[:MAX_MESSAGE]}
    try:
        return wire.dumps(reply)
    except (wire.WireError, ValueError, TypeError):
        return wire.dumps({"ok": False, "error": "too_large"})


def serve(
    read_request: Callable[[], bytes | None],
    send_reply: Callable[[bytes], None],
    namespace: dict[str, Any],
    interrupted: Callable[[], bool] = lambda: False,
) -> None:
    """Answer requests until ``{"op": "end"}`` or the end of the channel; every request gets one reply,
    even when an interruption (the check's time limit) lands between two statements of this loop."""
    while True:
        data: bytes | None = None
        replied = False
        try:
            data = read_request()
            if data is None or _is_end(data):
                return
            reply = handle(data, namespace, interrupted)
            send_reply(reply)
            replied = True
        except KeyboardInterrupt:
            if data is not None and not replied:
                try:
                    send_reply(wire.dumps({"ok": False, "error": "interrupted"}))
                except KeyboardInterrupt:
                    pass


def _is_end(data: bytes) -> bool:
    try:
        request = wire.loads(data)
    except wire.WireError:
        return False
    return isinstance(request, dict) and request.get("op") == "end"
