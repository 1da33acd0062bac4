"""Plain-data codec between the trusted checker and the student's kernel: values cross, code does not.

Everything that crosses is JSON built from ``None``, booleans, numbers, strings, lists and small tagged
objects (``{"$": kind, ...}``). Tensors travel as their raw bytes (base64) with dtype, shape,
``requires_grad``, ``.grad`` and the autograd facts the student's side reports (``is_leaf``, ``grad_fn`` name,
the graph as data). Nothing is ever unpickled or evaluated: ``decode`` parses size-capped JSON and rebuilds
ordinary tensors, numbers and containers, refusing anything malformed with ``WireError``. Objects that
cannot cross (a function, a module, an optimizer...) arrive as an ``Opaque`` placeholder naming their type,
which a checker judges like any other wrong value.

The same object met twice in one message (a function returning its argument) is sent once and rebuilt
as one object, so ``report.result is report.args[0]`` holds on both sides.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from autograder import observe

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one request or reply, encoded
MAX_DEPTH = 24
MAX_ITEMS = 200_000  # containers' elements and tensors, over one message
MAX_TENSOR_BYTES = 4 * 1024 * 1024
MAX_DIMS = 8
MAX_TEXT = 100_000  # one string
MAX_GRAPHS = 64  # tensors of one message whose graph is sent

DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
        torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
    )
}  # fmt: skip
NUMPY_DTYPES = frozenset(
    ("float16", "float32", "float64", "complex64", "complex128", "uint8", "int8", "int16", "int32", "int64", "bool")
)


class WireError(ValueError):
    """A message that is not well-formed plain data (too big, too deep, wrong shape...)."""


@dataclass(frozen=True)
class Opaque:
    """Something of the student's that cannot cross as data (a function, a module...): only its type name."""

    type_name: str

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


@dataclass(frozen=True)
class Remote:
    """A name of the student's namespace holding something callable (a function, a class)."""

    name: str

    def __call__(self, *args: Any) -> Any:
        # A checker should go through observe.run/call; calling the reference directly does the same.
        return observe.call(self, *args, what=f"{self.name}(…)")

    @property
    def __name__(self) -> str:  # what French messages quote
        return self.name


@dataclass(frozen=True)
class StudentSide:
    """A ``observe.student_side`` helper, named by its qualified name."""

    name: str


# -- encoding (both sides) ------------------------------------------------------------------------------------


class Encoder:
    """Encode one message; ``facts``: add the autograd facts of tensors (the student's side does)."""

    def __init__(self, *, facts: bool = False, call_args: tuple[Any, ...] = (), strict: bool = False):
        self.facts = facts
        self.strict = strict  # the checker's side: code never crosses, a non-data argument is a checker bug
        self.call_args = call_args
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # objects in the memo stay alive (their ids stay unique)
        self.items = 0
        self.graphs = 0

    def encode(self, value: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > MAX_ITEMS or depth > MAX_DEPTH:
            raise WireError("message too large or too deep")
        if value is None or isinstance(value, bool | str):
            return value if not isinstance(value, str) else value[:MAX_TEXT]
        if isinstance(value, int):
            return value if abs(value) < 1 << 63 else {"$": "o", "type": "int (trop grand)"}
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$": "f", "v": repr(value)}
        if isinstance(value, torch.Tensor):
            return self._tensor(value, depth)
        if isinstance(value, observe.StudentName):
            return {"$": "name", "n": value.name}
        if isinstance(value, Remote):
            return {"$": "ref", "n": value.name}
        if isinstance(value, StudentSide):
            return {"$": "side", "n": value.name}
        if isinstance(value, torch.Size):
            return {"$": "t", "v": [int(v) for v in value]}
        if isinstance(value, list | tuple):
            encoded = [self.encode(v, depth + 1) for v in value]
            return encoded if isinstance(value, list) else {"$": "t", "v": encoded}
        if isinstance(value, dict):
            keys = list(value.keys())
            return {
                "$": "d",
                "k": [self.encode(k, depth + 1) for k in keys],
                "v": [self.encode(value[k], depth + 1) for k in keys],
            }
        numpy = _numpy_value(value)
        if numpy is not None:
            return numpy
        if isinstance(value, Opaque):
            return {"$": "o", "type": value.type_name}
        if self.strict:
            raise TypeError(f"checker contract: {_type_name(value)} is not plain data and cannot cross")
        return {"$": "o", "type": _type_name(value)}

    def _tensor(self, t: torch.Tensor, depth: int) -> dict[str, Any]:
        key = id(t)
        if key in self.memo:
            return {"$": "@", "id": self.memo[key]}
        self.memo[key] = len(self.memo)
        self.keep.append(t)
        with torch.no_grad():
            plain = t.detach()
            if plain.layout != torch.strided:
                plain = plain.to_dense()
            plain = plain.cpu().contiguous()
            dtype = str(plain.dtype).removeprefix("torch.")
            if dtype not in DTYPES:
                return {"$": "o", "type": f"Tensor ({dtype})"}
            size = plain.numel() * plain.element_size()
            if size > MAX_TENSOR_BYTES:
                raise WireError("tensor too large")
            raw = plain.reshape(-1).view(torch.uint8).numpy().tobytes() if plain.numel() else b""
        out: dict[str, Any] = {
            "$": "T",
            "id": self.memo[key],
            "dtype": dtype,
            "shape": [int(s) for s in plain.shape],
            "b64": base64.b64encode(raw).decode("ascii"),
            "rg": bool(t.requires_grad),
        }
        grad = t.grad if t.is_leaf else None
        if isinstance(grad, torch.Tensor):
            out["grad"] = self._tensor(grad, depth + 1)
        if self.facts:
            out["leaf"] = bool(t.is_leaf)
            out["fn"] = None if t.grad_fn is None else type(t.grad_fn).__name__[:200]
            if t.grad_fn is not None and self.graphs < MAX_GRAPHS:
                self.graphs += 1
                graph = observe.graph_of(t, self.call_args)
                out["graph"] = {
                    "names": graph.names,
                    "children": graph.children,
                    "leaf_arg": graph.leaf_arg,
                    "truncated": graph.truncated,
                }
        return out


def _type_name(value: Any) -> str:
    try:
        return str(type(value).__name__)[:100]
    except Exception:  # noqa: BLE001 - a hostile metaclass
        return "objet"


def _numpy_value(value: Any) -> Any:
    module = type(value).__module__ or ""
    if not module.startswith("numpy"):
        return None
    import numpy

    if isinstance(value, numpy.generic):
        item = value.item()
        return item if isinstance(item, bool | int | float | complex) and not isinstance(item, complex) else None
    if isinstance(value, numpy.ndarray):
        dtype = str(value.dtype)
        if dtype not in NUMPY_DTYPES or value.nbytes > MAX_TENSOR_BYTES or value.ndim > MAX_DIMS:
            return {"$": "o", "type": f"ndarray ({dtype})"}
        plain = numpy.ascontiguousarray(value)
        return {
            "$": "N",
            "dtype": dtype,
            "shape": [int(s) for s in plain.shape],
            "b64": base64.b64encode(plain.tobytes()).decode("ascii"),
        }
    return None


def dumps(message: Any) -> bytes:
    data = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError("message too large")
    return data


def loads(data: bytes | str) -> Any:
    """Parse untrusted JSON (size-capped; NaN, Infinity and huge numbers refused)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError("message too large")

    def refuse(name: str) -> Any:
        raise WireError(f"constant {name} refused")

    try:
        return json.loads(data, parse_constant=refuse)
    except (ValueError, RecursionError) as error:
        raise WireError(f"unreadable message: {type(error).__name__}") from None


# -- decoding (the trusted side) ------------------------------------------------------------------------------


class Decoder:
    """Rebuild values from an untrusted message; tensors get the student's reported facts attached."""

    def __init__(self) -> None:
        self.memo: dict[int, torch.Tensor] = {}
        self.items = 0

    def decode(self, value: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > MAX_ITEMS or depth > MAX_DEPTH:
            raise WireError("message too large or too deep")
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise WireError("string too long")
            return value
        if isinstance(value, list):
            return [self.decode(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            raise WireError("unknown value")
        kind = value.get("$")
        if kind == "t":
            return tuple(self.decode(v, depth + 1) for v in _list(value.get("v")))
        if kind == "d":
            keys, values = _list(value.get("k")), _list(value.get("v"))
            if len(keys) != len(values):
                raise WireError("dict keys and values differ")
            out = {}
            for k, v in zip(keys, values, strict=True):
                key = self.decode(k, depth + 1)
                try:
                    out[key] = self.decode(v, depth + 1)
                except TypeError:  # an unhashable key (a list): not plain data for a dict
                    raise WireError("unhashable dict key") from None
            return out
        if kind == "f":
            text = value.get("v")
            if text not in ("nan", "inf", "-inf"):
                raise WireError("bad float")
            return float(text)
        if kind == "T":
            return self._tensor(value, depth)
        if kind == "@":
            ident = value.get("id")
            if not isinstance(ident, int) or ident not in self.memo:
                raise WireError("unknown reference")
            return self.memo[ident]
        if kind == "N":
            return _ndarray(value)
        if kind == "o":
            return Opaque(_text(value.get("type"), 120))
        if kind == "name":
            return observe.StudentName(_text(value.get("n"), 200))
        if kind == "ref":
            return Remote(_text(value.get("n"), 200))
        if kind == "side":
            return StudentSide(_text(value.get("n"), 300))
        raise WireError("unknown tag")

    def _tensor(self, value: dict[str, Any], depth: int) -> torch.Tensor:
        ident = value.get("id")
        if not isinstance(ident, int) or ident in self.memo:
            raise WireError("bad tensor id")
        dtype = DTYPES.get(value.get("dtype"))  # type: ignore[arg-type]
        shape = _shape(value.get("shape"))
        if dtype is None:
            raise WireError("bad dtype")
        raw = _bytes(value.get("b64"))
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != len(raw):
            raise WireError("tensor size does not match its shape")
        if numel:
            t = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
        else:
            t = torch.empty(shape, dtype=dtype)
        if value.get("rg") is True and (dtype.is_floating_point or dtype.is_complex):
            t.requires_grad_(True)
        self.memo[ident] = t
        if "grad" in value:
            grad = self.decode(value["grad"], depth + 1)
            if isinstance(grad, torch.Tensor) and grad.shape == t.shape and grad.dtype == t.dtype and t.requires_grad:
                t.grad = grad
        if "leaf" in value or "fn" in value:
            facts: dict[str, Any] = {"is_leaf": value.get("leaf") is not False}
            fn = value.get("fn")
            facts["grad_fn"] = _text(fn, 200) if fn is not None else None
            if "graph" in value:
                facts["graph"] = _graph(value["graph"])
            observe.remember(t, facts)
        return t


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise WireError("list expected")
    return value


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WireError("bad text")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    shape = _list(value)
    if len(shape) > MAX_DIMS or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s for s in shape):
        raise WireError("bad shape")
    if math.prod(shape) > MAX_TENSOR_BYTES:
        raise WireError("tensor too large")
    return tuple(shape)


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) > MAX_TENSOR_BYTES * 4 // 3 + 8:
        raise WireError("bad data")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise WireError("bad base64") from None


def _ndarray(value: dict[str, Any]) -> Any:
    import numpy

    dtype = value.get("dtype")
    if dtype not in NUMPY_DTYPES:
        raise WireError("bad dtype")
    shape = _shape(value.get("shape"))
    raw = _bytes(value.get("b64"))
    if math.prod(shape) * numpy.dtype(dtype).itemsize != len(raw):
        raise WireError("array size does not match its shape")
    return numpy.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _graph(value: Any) -> observe.Graph:
    if not isinstance(value, dict):
        raise WireError("bad graph")
    names = _list(value.get("names"))
    children = _list(value.get("children"))
    leaf_arg = _list(value.get("leaf_arg"))
    size = len(names)
    if size > observe.MAX_GRAPH_NODES or len(children) != size or len(leaf_arg) != size:
        raise WireError("bad graph")
    graph = observe.Graph(truncated=value.get("truncated") is True)
    for name, kids, arg in zip(names, children, leaf_arg, strict=True):
        graph.names.append(_text(name, 200))
        kids = _list(kids)
        if len(kids) > 64 or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < size for k in kids):
            raise WireError("bad graph")
        graph.children.append(list(kids))
        if arg is not None and not (isinstance(arg, int) and not isinstance(arg, bool) and 0 <= arg < 64):
            raise WireError("bad graph")
        graph.leaf_arg.append(arg)
    return graph
