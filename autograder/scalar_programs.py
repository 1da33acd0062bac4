"""Random scalar expressions, run on PyTorch and on a student's mini autograd engine (the `Valeur` class).

An expression is a nested tuple: ``("var", k)`` for the input variable k, ``("add", a, b)``, ``("mul", a, b)``,
``("div", a, b)`` and ``("exp", a)``. ``program`` turns it into plain data (a list of instructions) that crosses into
the student's process, where ``run_on_engine`` (a ``student_side`` helper) builds it with the student's class and
backpropagates. ``torch_gradients`` computes the reference with autograd, in float64, on the checker's side.

With ``shared=False`` every use of a variable becomes its own leaf: an engine that accumulates (``+=``) gives, for a
shared variable, the sum of the gradients of its copies, whatever its local derivatives are.
"""

from __future__ import annotations

from typing import Any

import torch

from autograder import observe

Expr = tuple[Any, ...]

# The names of the engine given in the TP notebook (those of lesson 3's `Valeur`, after micrograd).
DATA, GRAD, BACKWARD, EXP = "data", "grad", "backward", "exp"
SYMBOLS = {"add": "+", "mul": "·", "div": "/"}


def variables(expr: Expr) -> list[int]:
    """The variables of ``expr``, each once, in order of first use."""
    if expr[0] == "var":
        return [expr[1]]
    found: list[int] = []
    for child in expr[1:]:
        found += [v for v in variables(child) if v not in found]
    return found


def uses(expr: Expr) -> dict[int, int]:
    """How many times each variable is used."""
    if expr[0] == "var":
        return {expr[1]: 1}
    counts: dict[int, int] = {}
    for child in expr[1:]:
        for v, n in uses(child).items():
            counts[v] = counts.get(v, 0) + n
    return counts


def program(expr: Expr, values: dict[int, float], shared: bool = True) -> tuple[list[list[Any]], list[int]]:
    """Plain-data instructions for ``expr`` and, for each leaf instruction in order, the variable it holds.

    Instructions: ``["feuille", value]`` or ``[op, i, j]`` / ``["exp", i]`` where i, j index earlier instructions;
    the last instruction is the output.
    """
    instructions: list[list[Any]] = []
    leaf_of: list[int] = []
    slot_of_var: dict[int, int] = {}

    def emit(e: Expr) -> int:
        if e[0] == "var":
            if shared and e[1] in slot_of_var:
                return slot_of_var[e[1]]
            instructions.append(["feuille", float(values[e[1]])])
            leaf_of.append(e[1])
            slot_of_var[e[1]] = len(instructions) - 1
            return len(instructions) - 1
        operands = [emit(child) for child in e[1:]]
        instructions.append([e[0], *operands])
        return len(instructions) - 1

    emit(expr)
    return instructions, leaf_of


def text(expr: Expr, names: str = "abcdefgh") -> str:
    """A readable form of ``expr``, e.g. ``(a / b) · exp(c)``."""
    if expr[0] == "var":
        return names[expr[1]]
    if expr[0] == "exp":
        return f"exp({text(expr[1], names)})"
    left, right = (text(e, names) for e in expr[1:])
    left = left if expr[1][0] in ("var", "exp") else f"({left})"
    right = right if expr[2][0] in ("var", "exp") else f"({right})"
    return f"{left} {SYMBOLS[expr[0]]} {right}"


def evaluate(expr: Expr, leaves: dict[int, torch.Tensor]) -> torch.Tensor:
    if expr[0] == "var":
        return leaves[expr[1]]
    args = [evaluate(e, leaves) for e in expr[1:]]
    if expr[0] == "add":
        return args[0] + args[1]
    if expr[0] == "mul":
        return args[0] * args[1]
    if expr[0] == "div":
        return args[0] / args[1]
    if expr[0] == "exp":
        return torch.exp(args[0])
    raise ValueError(f"unknown operation {expr[0]!r}")


def torch_gradients(expr: Expr, values: dict[int, float]) -> tuple[float, dict[int, float]]:
    """Value of ``expr`` and its gradient with respect to each variable, by autograd in float64."""
    leaves = {v: torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for v, x in values.items()}
    out = evaluate(expr, leaves)
    out.backward()
    return float(out), {v: float(t.grad) if t.grad is not None else 0.0 for v, t in leaves.items()}


def gradients_by_variable(grads: list[float], leaf_of: list[int]) -> dict[int, float]:
    """Sum the gradients of the leaves holding the same variable."""
    total: dict[int, float] = {}
    for g, v in zip(grads, leaf_of, strict=True):
        total[v] = total.get(v, 0.0) + float(g)
    return total


# -- random expressions ------------------------------------------------------------------------------------------


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def random_value(rng: torch.Generator) -> float:
    """A value away from 0 (a safe denominator), of either sign: ±[0.5, 2]."""
    sign = 1.0 if float(torch.rand((), generator=rng)) < 0.5 else -1.0
    return sign * _uniform(rng, 0.5, 2.0)


def random_tree(rng: torch.Generator, depth: int, with_division: bool = True) -> Expr:
    """A random expression where each variable is used once (no fork), with at least one division.

    Denominators are variables or exponentials, so no division comes close to 0.
    """
    counter = iter(range(64))

    def grow(d: int) -> Expr:
        if d == 0:
            return ("var", next(counter))
        op = ("add", "mul", "div", "div", "exp")[int(torch.randint(0, 5, (), generator=rng))]
        if op == "exp":
            return ("exp", grow(d - 1)) if d >= 2 else ("exp", ("var", next(counter)))
        if op == "div":
            numerator = grow(d - 1)
            if d >= 2 and float(torch.rand((), generator=rng)) < 0.3:
                denominator: Expr = ("exp", grow(d - 2))
            else:
                denominator = ("var", next(counter))
            return ("div", numerator, denominator)
        return (op, grow(d - 1), grow(d - 1))

    while True:
        expr = _bounded(grow(depth))
        if not with_division or "div" in repr(expr):
            return _renumber(expr, {v: k for k, v in enumerate(variables(expr))})


def _bounded(expr: Expr) -> Expr:
    """Replace the argument of ``exp`` by a plain variable when nested exponentials could overflow."""
    if expr[0] == "var":
        return expr
    if expr[0] == "exp" and "exp" in repr(expr[1]):
        return ("exp", _first_var(expr[1]))
    return (expr[0], *(_bounded(e) for e in expr[1:]))


def _renumber(expr: Expr, new: dict[int, int]) -> Expr:
    if expr[0] == "var":
        return ("var", new[expr[1]])
    return (expr[0], *(_renumber(e, new) for e in expr[1:]))


def _first_var(expr: Expr) -> Expr:
    return expr if expr[0] == "var" else _first_var(expr[1])


FORK_TEMPLATES: tuple[Expr, ...] = (
    ("div", ("var", 0), ("var", 0)),  # a / a
    ("mul", ("div", ("var", 0), ("var", 1)), ("var", 0)),  # (a / b) · a
    ("div", ("add", ("var", 0), ("var", 1)), ("var", 1)),  # (a + b) / b
    ("div", ("var", 0), ("mul", ("var", 1), ("var", 0))),  # a / (b · a)
    ("add", ("div", ("var", 2), ("var", 0)), ("div", ("var", 0), ("var", 1))),  # c / a + a / b
    ("div", ("div", ("var", 0), ("var", 1)), ("exp", ("var", 0))),  # (a / b) / exp(a)
)


def random_fork(rng: torch.Generator, trial: int) -> Expr:
    """An expression where a variable is used more than once, at least once in a division."""
    base = FORK_TEMPLATES[trial % len(FORK_TEMPLATES)]
    if trial < len(FORK_TEMPLATES):
        return base
    # Later trials: the template multiplied by a fresh variable, or added to one, to vary the upstream gradient.
    extra = ("var", max(variables(base)) + 1)
    return ("mul" if float(torch.rand((), generator=rng)) < 0.5 else "add", base, extra)


def random_values(rng: torch.Generator, expr: Expr) -> dict[int, float]:
    return {v: random_value(rng) for v in variables(expr)}


# -- the student's side --------------------------------------------------------------------------------------------


@observe.student_side
def run_on_engine(valeur_class: Any, instructions: list[list[Any]]) -> dict[str, Any]:
    """Build ``instructions`` with the student's class, backpropagate from the output, return plain numbers."""
    slots: list[Any] = []
    leaves: list[Any] = []
    for op, *operands in instructions:
        if op == "feuille":
            node = valeur_class(operands[0])
            leaves.append(node)
        elif op == "add":
            node = slots[operands[0]] + slots[operands[1]]
        elif op == "mul":
            node = slots[operands[0]] * slots[operands[1]]
        elif op == "div":
            node = slots[operands[0]] / slots[operands[1]]
        elif op == "exp":
            node = getattr(slots[operands[0]], EXP)()
        else:
            raise ValueError(f"unknown operation {op!r}")
        slots.append(node)
    out = slots[-1]
    getattr(out, BACKWARD)()
    return {"valeur": float(getattr(out, DATA)), "grads": [float(getattr(leaf, GRAD)) for leaf in leaves]}
