"""How a checker runs student code and what it may learn about the values that come back.

This is the contract between exercise checkers and the two places a checker can run:

- **in the student's own kernel** (instant feedback in JupyterLab, lesson practice): the functions below
  call the student's objects directly and read live tensors;
- **in a trusted checker process** (``autograder grade``): the checker holds no student object. Each
  ``answers[name]`` is then a reference to a name in the student's kernel, ``run``/``call`` send the
  arguments there as plain data, the student's kernel evaluates the call and sends back plain data (values,
  dtype, shape, ``requires_grad``, ``grad``, and the autograd facts gathered below), and the checker rebuilds
  ordinary tensors from it. The student's process can only lie about its own answer.

So a checker must:

1. reach student code only through ``run``/``call`` (and values through ``answers[name]``), passing
   tensors, numbers, strings, ``None``, lists/tuples/dicts of those, ``StudentName`` references, or the
   result of an earlier call — never a lambda, a module, an ``nn.Module``, an optimizer or a generator;
2. read autograd facts of a student tensor (result or argument after the call) only through
   ``grad_fn_name``, ``is_leaf``, ``graph`` and ``input_grads`` — never ``t.grad_fn`` or ``t.is_leaf``
   directly (a rebuilt tensor is always a leaf with no ``grad_fn``). ``t.grad``, ``t.requires_grad``,
   values, dtype and shape are read directly;
3. read what happened *during* the call (backward passes, their ``gradient`` argument, optimizer steps)
   from the ``CallReport`` that ``run`` returns, not by patching torch around the call;
4. run helper code inside the student's process only through package functions decorated with
   ``student_side`` (they receive the same kinds of arguments and return plain data).

Facts gathered in the student's process (``is_leaf``, the graph, backward calls...) are the student's word:
checkers confirm them against values wherever the values allow.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.autograd.graph
from torch.optim.optimizer import register_optimizer_step_pre_hook

MAX_GRAPH_NODES = 200


@dataclass(frozen=True)
class StudentName:
    """A reference to a name of the student's namespace, passed as an argument (e.g. a class to build with)."""

    name: str


@dataclass
class Graph:
    """The autograd graph under a tensor, as data: node 0 is ``grad_fn`` of the tensor.

    ``names[i]`` is the node's class name (``'MulBackward0'``, ``'AccumulateGrad'``...), ``children[i]`` the
    indices of the nodes in its ``next_functions`` (``None`` entries skipped, order kept), and ``leaf_arg[i]``,
    for an ``AccumulateGrad`` node, the position of the call's tensor argument it accumulates into (or ``None``
    for a leaf that is not an argument). At most ``MAX_GRAPH_NODES`` nodes; ``truncated`` says if more existed.
    """

    names: list[str] = field(default_factory=list)
    children: list[list[int]] = field(default_factory=list)
    leaf_arg: list[int | None] = field(default_factory=list)
    truncated: bool = False


@dataclass
class CallReport:
    """What one call into student code gave back."""

    result: Any
    args: tuple[Any, ...]  # the arguments after the call (tensors may have been changed in place, .grad set)
    backward_gradients: list[Any] = field(default_factory=list)  # ``gradient`` of each backward pass (None: scalar)
    backward_passes: int = 0  # every backward pass (backward(), autograd.grad, functional, torch.func...)
    optimizer_steps: int = 0
    # For each argument: how many times its version counter moved during the call (in-place changes autograd was
    # told about; a change through ``.data`` does not count), ``None`` for an argument that is not a tensor.
    version_changes: tuple[int | None, ...] = ()


# -- facts about student tensors (in-process implementation; the trusted checker rebuilds them) ----------------

# id(tensor) -> (weak reference to it, facts). Keyed by identity: a tensor's ``==`` is elementwise, so tensors
# cannot be keys of a WeakKeyDictionary.
_FACTS: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def _facts(t: torch.Tensor) -> dict[str, Any] | None:
    entry = _FACTS.get(id(t))
    if entry is None or entry[0]() is not t:
        return None
    return entry[1]


def remember(t: torch.Tensor, facts: dict[str, Any]) -> None:
    """Attach facts reported by the student's process to a rebuilt tensor (trusted mode only)."""
    key = id(t)

    def forget(_: object, key: int = key) -> None:
        _FACTS.pop(key, None)

    _FACTS[key] = (weakref.ref(t, forget), facts)


def grad_fn_name(t: torch.Tensor) -> str | None:
    """Class name of ``t.grad_fn`` (``None`` for a leaf or a tensor outside any graph)."""
    facts = _facts(t)
    if facts is not None:
        return facts.get("grad_fn")
    return None if t.grad_fn is None else type(t.grad_fn).__name__


def is_leaf(t: torch.Tensor) -> bool:
    facts = _facts(t)
    if facts is not None:
        return bool(facts.get("is_leaf", True))
    return bool(t.is_leaf)


def graph(t: torch.Tensor) -> Graph:
    """The graph under ``t`` as data (empty when ``t`` has no ``grad_fn``)."""
    facts = _facts(t)
    if facts is not None:
        return facts.get("graph") or Graph()
    origin = _ORIGIN.get(id(t))
    args = origin[1] if origin is not None and origin[0]() is t else ()
    return graph_of(t, args)


def graph_of(t: torch.Tensor, args: tuple[Any, ...] = ()) -> Graph:
    """Walk ``t.grad_fn`` breadth-first into a ``Graph`` (used on the student's side)."""
    out = Graph()
    root = t.grad_fn
    if root is None:
        return out
    arg_ids = {id(a): i for i, a in enumerate(args) if isinstance(a, torch.Tensor)}
    index: dict[Any, int] = {root: 0}
    order = [root]
    out.names.append(type(root).__name__)
    out.children.append([])
    out.leaf_arg.append(None)
    position = 0
    while position < len(order):
        node = order[position]
        for child, _ in getattr(node, "next_functions", ()):
            if child is None:
                continue
            if child not in index:
                if len(order) >= MAX_GRAPH_NODES:
                    out.truncated = True
                    continue
                index[child] = len(order)
                order.append(child)
                out.names.append(type(child).__name__)
                out.children.append([])
                variable = getattr(child, "variable", None)
                out.leaf_arg.append(arg_ids.get(id(variable)) if variable is not None else None)
            out.children[index[node]].append(index[child])
        position += 1
    return out


def input_grads(result: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """Gradient of ``result`` (of ``result.sum()`` when not a scalar) with respect to each argument of the call
    that produced it: ``None`` for an argument that is not a tensor requiring grad or that ``result`` does not
    depend on. Computed without touching the arguments' ``.grad``.
    """
    facts = _facts(result)
    if facts is not None:
        return tuple(facts.get("input_grads", ()))
    origin = _ORIGIN.get(id(result))
    if origin is None or origin[0]() is not result:
        raise ValueError("input_grads: this tensor was not returned by run()/call()")
    return input_grads_of(result, origin[1])


def input_grads_of(result: torch.Tensor, args: tuple[Any, ...]) -> tuple[torch.Tensor | None, ...]:
    wanted = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    grads: list[torch.Tensor | None] = [None] * len(args)
    if not wanted or not isinstance(result, torch.Tensor) or result.grad_fn is None:
        return tuple(grads)
    try:
        found = torch.autograd.grad(
            result.sum() if result.dim() else result,
            [args[i] for i in wanted],
            allow_unused=True,
            retain_graph=True,
        )
    except RuntimeError:
        return tuple(grads)
    for i, g in zip(wanted, found, strict=True):
        grads[i] = None if g is None else g.detach().clone()
    return tuple(grads)


# Results of in-process calls -> (weak reference to the result, its arguments), for graph()/input_grads().
_ORIGIN: dict[int, tuple[weakref.ref, tuple[Any, ...]]] = {}


def _remember_origin(result: Any, args: tuple[Any, ...]) -> None:
    if isinstance(result, torch.Tensor):
        try:
            _ORIGIN[id(result)] = (weakref.ref(result), args)
        except TypeError:
            pass
    if len(_ORIGIN) > 4096:
        for key in [k for k, (ref, _) in _ORIGIN.items() if ref() is None]:
            del _ORIGIN[key]


# -- running student code ---------------------------------------------------------------------------------------

STUDENT_SIDE: dict[str, Callable[..., Any]] = {}


def student_side(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a package function that runs in the student's process (it only exchanges plain data)."""
    STUDENT_SIDE[f"{func.__module__}.{func.__qualname__}"] = func
    return func


# The trusted checker replaces this hook with a function sending the call to the student's process.
_remote_runner: Callable[..., CallReport] | None = None


def run(func: Any, *args: Any, what: str) -> CallReport:
    """Call student code (or a ``student_side`` helper) and report what happened.

    Errors raised by student code are turned into a French ``WrongAnswer`` naming ``what`` (e.g.
    ``"grad_z(x) avec x de forme (5,)"``); ``NotImplementedError`` (an untouched stub) propagates.
    """
    __tracebackhide__ = True
    if _remote_runner is not None:
        return _remote_runner(func, args, what)
    return run_here(func, args, what)


def run_here(func: Any, args: tuple[Any, ...], what: str, namespace: dict[str, Any] | None = None) -> CallReport:
    """In-process implementation of ``run`` (also used by the student's side under trusted grading)."""
    __tracebackhide__ = True
    from autograder.pytorch_errors import describe
    from autograder.verdict import CheckFailed, WrongAnswer

    if not callable(func):
        raise WrongAnswer(
            f"{what.split('(')[0]} doit être une fonction (définie avec `def`), pas {type(func).__name__}."
        )
    if namespace is not None:
        args = tuple(namespace.get(a.name) if isinstance(a, StudentName) else a for a in args)
    report = CallReport(result=None, args=args)
    versions = [a._version if isinstance(a, torch.Tensor) else None for a in args]
    original = (torch.autograd._engine_run_backward, torch.autograd.graph._engine_run_backward)
    backward = torch.autograd.backward

    def counting(*a: Any, **k: Any) -> Any:
        report.backward_passes += 1
        return original[0](*a, **k)

    def recording(tensors: Any, grad_tensors: Any = None, *a: Any, **k: Any) -> Any:
        report.backward_gradients.append(grad_tensors)
        return backward(tensors, grad_tensors, *a, **k)

    def step_hook(*_: Any) -> None:
        report.optimizer_steps += 1

    torch.autograd._engine_run_backward = counting
    torch.autograd.graph._engine_run_backward = counting
    torch.autograd.backward = recording
    handle = register_optimizer_step_pre_hook(step_hook)
    try:
        report.result = func(*args)
    except CheckFailed:
        raise
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - any student error becomes a verdict
        raise WrongAnswer(f"En appelant {what} : {describe(exc)}") from None
    finally:
        handle.remove()
        torch.autograd.backward = backward
        torch.autograd._engine_run_backward, torch.autograd.graph._engine_run_backward = original
    report.version_changes = tuple(None if v is None else a._version - v for a, v in zip(args, versions, strict=True))
    _remember_origin(report.result, args)
    return report


def call(func: Any, *args: Any, what: str) -> Any:
    """``run(...).result``: call student code when only its return value matters."""
    __tracebackhide__ = True
    return run(func, *args, what=what).result
