"""Check a student's scalar autograd engine (a micrograd-style ``Valeur`` class) against torch.

An expression is plain data: ``leaves`` (floats) and ``ops``, each ``("add", i, j)``, ``("mul", i, j)``,
``("pow", i, k)``, ``("tanh", i)`` or ``("exp", i)`` where ``i``, ``j`` index the nodes built so far (leaves
first); the last node is the output. ``build_with_class`` runs in the student's process
(``@observe.student_side``): it builds the expression with the student's class and returns the data and the
gradient of every node, as floats. The references are computed here with torch, in float64.

Two ways of running the student's gradients:

- ``"manual"``: the output's ``grad`` is set to a given upstream gradient and each node's ``_backward()`` is
  called in reverse creation order (a valid order), so only the local rules (the ``_backward`` closures) are
  tested, not the student's ``backward()``;
- ``"backward"``: the student's own ``output.backward()``.

``diagnose_*`` functions compare with torch and raise ``WrongAnswer`` with the code of the classic engine bug
they recognise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from autograder import observe
from autograder.verdict import WrongAnswer

__all__ = [
    "ENGINE_MISTAKES",
    "build_with_class",
    "check_backward",
    "check_local_rules",
    "random_expression",
    "torch_reference",
]

ENGINE_MISTAKES = {
    "oubli_gradient_amont": "oubli du gradient reçu (`out.grad`) dans `_backward`",
    "egal_au_lieu_de_plus_egal": "`=` au lieu de `+=` : les gradients ne s'additionnent pas aux embranchements",
    "meme_entree_deux_fois": "`b = a + a` : la même valeur aux deux entrées d'une opération",
    "facteur_non_echange": "la multiplication n'échange pas les facteurs",
    "derivee_locale_fausse": "dérivée locale fausse",
    "oubli_graine": "oubli de `grad = 1` sur la sortie avant la rétropropagation",
    "ordre_non_topologique": "`_backward` appelés dans le mauvais ordre (pas l'ordre topologique inverse)",
    "reponse_incorrecte": "gradients différents de ceux de PyTorch",
}

SYMBOLS = {"add": "+", "mul": "*"}
Expression = tuple[list[float], list[tuple[Any, ...]]]


@observe.student_side
def build_with_class(cls: Any, leaves: list[float], ops: list[list[Any]], mode: str, seed_grad: float) -> dict:
    """Build the expression with the student's class, run its gradients, return data and grads as floats."""
    nodes = [cls(float(v)) for v in leaves]
    for op in ops:
        kind = op[0]
        if kind == "add":
            out = nodes[op[1]] + nodes[op[2]]
        elif kind == "mul":
            out = nodes[op[1]] * nodes[op[2]]
        elif kind == "pow":
            out = nodes[op[1]] ** op[2]
        elif kind == "tanh":
            out = nodes[op[1]].tanh()
        elif kind == "exp":
            out = nodes[op[1]].exp()
        else:  # pragma: no cover - the checker only sends the kinds above
            raise ValueError(kind)
        nodes.append(out)
    root = nodes[-1]
    if mode == "backward":
        root.backward()
    else:
        root.grad = seed_grad
        for node in reversed(nodes[len(leaves) :]):
            node._backward()
    return {"data": [float(n.data) for n in nodes], "grad": [float(n.grad) for n in nodes]}


def torch_reference(leaves: Sequence[float], ops: Sequence[Sequence[Any]], seed_grad: float = 1.0) -> dict:
    """Data and gradient of every node, computed by PyTorch (float64)."""
    nodes = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in leaves]
    for op in ops:
        kind, a = op[0], nodes[op[1]]
        if kind == "add":
            out = a + nodes[op[2]]
        elif kind == "mul":
            out = a * nodes[op[2]]
        elif kind == "pow":
            out = a ** op[2]
        elif kind == "tanh":
            out = torch.tanh(a)
        else:
            out = torch.exp(a)
        out.retain_grad()
        nodes.append(out)
    nodes[-1].backward(torch.tensor(seed_grad, dtype=torch.float64))
    return {
        "data": [float(n.detach()) for n in nodes],
        "grad": [0.0 if n.grad is None else float(n.grad) for n in nodes],
    }


def describe_expression(leaves: Sequence[float], ops: Sequence[Sequence[Any]]) -> str:
    """The expression in Python, e.g. ``a = Valeur(0.5) ; b = Valeur(-1.2) ; c = a * b ; d = c + a``."""
    names = [chr(ord("a") + i) if i < 26 else f"n{i}" for i in range(len(leaves) + len(ops))]
    parts = [f"{names[i]} = Valeur({v:.2f})" for i, v in enumerate(leaves)]
    for k, op in enumerate(ops):
        target, kind = names[len(leaves) + k], op[0]
        if kind in SYMBOLS:
            parts.append(f"{target} = {names[op[1]]} {SYMBOLS[kind]} {names[op[2]]}")
        elif kind == "pow":
            parts.append(f"{target} = {names[op[1]]} ** {op[2]}")
        else:
            parts.append(f"{target} = {names[op[1]]}.{kind}()")
    return " ; ".join(parts)


def random_expression(rng: torch.Generator, kinds: Sequence[str], size: int = 6) -> Expression:
    """A small random expression with forks: 2 or 3 leaves, ``size`` operations of the given kinds."""

    def uniform(low: float, high: float) -> float:
        return float(torch.empty(()).uniform_(low, high, generator=rng))

    def pick(n: int) -> int:
        return int(torch.randint(n, (), generator=rng))

    n_leaves = 2 + pick(2)
    leaves = [round(uniform(-1.5, 1.5), 2) or 0.5 for _ in range(n_leaves)]
    values = list(leaves)
    ops: list[tuple[Any, ...]] = []
    for k in range(size):
        count = n_leaves + k
        kind = kinds[pick(len(kinds))]
        i = count - 1 if pick(2) else pick(count)  # often the last result: chains; sometimes an older node: forks
        j = pick(count)
        if abs(values[i]) > 2 and "tanh" in kinds and kind in ("pow", "exp", "mul"):
            kind = "tanh"  # keep the values small: no overflow, gradients of a readable size
        if kind in SYMBOLS:
            op: tuple[Any, ...] = (kind, i, j)
        elif kind == "pow":
            op = (kind, i, 2 + pick(2))
        else:
            op = (kind, i)
        a = values[i]
        b = values[j] if kind in SYMBOLS else op[-1]
        values.append({"add": a + b, "mul": a * b}.get(kind) if kind in SYMBOLS else _unary(kind, a, b))
        ops.append(op)
    return leaves, ops


def _unary(kind: str, a: float, k: Any) -> float:
    if kind == "pow":
        return a**k
    return math.tanh(a) if kind == "tanh" else math.exp(a)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _all_close(got: Sequence[float], expected: Sequence[float]) -> bool:
    return len(got) == len(expected) and all(_close(g, e) for g, e in zip(got, expected, strict=True))


def student_run(cls: Any, leaves: list[float], ops: list[tuple[Any, ...]], mode: str, seed_grad: float) -> dict:
    what = describe_expression(leaves, ops)
    how = "`sortie.backward()`" if mode == "backward" else f"les `_backward()` (gradient de la sortie : {seed_grad:g})"
    result = observe.call(
        build_with_class, cls, list(leaves), [list(op) for op in ops], mode, seed_grad, what=f"{what}, puis {how}"
    )
    if not isinstance(result, dict) or not {"data", "grad"} <= set(result):
        raise WrongAnswer("Votre classe n'a pas pu être utilisée : vérifiez `data` et `grad`.")
    return result


def _check_data(got: dict, ref: dict, leaves: list[float], ops: list[tuple[Any, ...]]) -> None:
    for k, (g, e) in enumerate(zip(got["data"], ref["data"], strict=True)):
        if not _close(g, e):
            raise WrongAnswer(
                f"Propagation avant fausse : avec {describe_expression(leaves, ops)}, le nœud n° {k + 1} vaut "
                f"{g:.6g} au lieu de {e:.6g}. Vérifiez le calcul de `data` dans vos opérations.",
                code="reponse_incorrecte",
            )


# -- local rules (the ``_backward`` closures), tested in "manual" mode -----------------------------------------
LOCAL = {
    "add": lambda a, b: (1.0, 1.0),
    "mul": lambda a, b: (b, a),
    "pow": lambda a, k: (k * a ** (k - 1),),
    "tanh": lambda a, _: (1 - math.tanh(a) ** 2,),
    "exp": lambda a, _: (math.exp(a),),
}

WRONG_LOCAL = {  # kind -> [(wrong local derivative, French explanation)]
    "pow": [
        (lambda a, k: k * a**k, "la dérivée de xⁿ est n·xⁿ⁻¹ : l'exposant diminue de 1."),
        (lambda a, k: a ** (k - 1), "la dérivée de xⁿ est n·xⁿ⁻¹ : il manque le facteur n."),
    ],
    "tanh": [
        (lambda a, _: 1 - math.tanh(a), "la dérivée de tanh est 1 − tanh², au carré."),
        (lambda a, _: 1 - a**2, "la dérivée de tanh(x) est 1 − tanh(x)², pas 1 − x² : utilisez la sortie `t`."),
    ],
    "exp": [
        (lambda a, _: 1.0, "la dérivée de l'exponentielle est l'exponentielle elle-même, pas 1."),
        (lambda a, _: a * math.exp(a), "la dérivée de exp(x) est exp(x), sans facteur x."),
    ],
}

NAMES = {"add": "`__add__`", "mul": "`__mul__`", "pow": "`__pow__`", "tanh": "`tanh`", "exp": "`exp`"}


def _single(kind: str, a: float, b: float | int) -> tuple[list[float], list[tuple[Any, ...]]]:
    if kind in SYMBOLS:
        return [a, float(b)], [(kind, 0, 1)]
    if kind == "pow":
        return [a], [(kind, 0, int(b))]
    return [a], [(kind, 0)]


def check_local_rules(cls: Any, kinds: Sequence[str], rng: torch.Generator) -> None:
    """Probe each operation's ``_backward`` on its own, then at a fork; raise the classic bug's verdict."""

    def uniform(low: float, high: float) -> float:
        return round(float(torch.empty(()).uniform_(low, high, generator=rng)), 2)

    g = uniform(1.5, 3.0)  # an upstream gradient different from 1, to see if it is used
    for kind in kinds:
        a = uniform(0.3, 1.4) * (1 if kind != "tanh" else -1)
        second = 2 + int(torch.randint(2, (), generator=rng)) if kind == "pow" else uniform(-1.6, -0.4)
        leaves, ops = _single(kind, a, second)
        got = student_run(cls, leaves, ops, "manual", g)
        ref = torch_reference(leaves, ops, g)
        _check_data(got, ref, leaves, ops)
        n_in = 2 if kind in SYMBOLS else 1
        got_in, ref_in = got["grad"][:n_in], ref["grad"][:n_in]
        if _all_close(got_in, ref_in):
            continue
        local = LOCAL[kind](a, second)
        what = f"{describe_expression(leaves, ops)}, gradient de la sortie {g:g}"
        shown = ", ".join(f"{v:.4g}" for v in got_in)
        expected = ", ".join(f"{v:.4g}" for v in ref_in)
        if _all_close(got_in, list(local)):
            raise WrongAnswer(
                f"{what} : vous obtenez {shown} au lieu de {expected}. Ce sont les dérivées locales seules : dans "
                f"le `_backward` de {NAMES[kind]}, multipliez-les par le gradient reçu `out.grad` (règle de "
                "dérivation en chaîne).",
                code="oubli_gradient_amont",
            )
        if kind == "mul" and _all_close(got_in, [a * g, second * g]):
            raise WrongAnswer(
                f"{what} : vous obtenez {shown} au lieu de {expected}. Pour c = a·b, ∂c/∂a = b et ∂c/∂b = a : "
                "la multiplication **échange** les facteurs (`self.grad += other.data * out.grad`).",
                code="facteur_non_echange",
            )
        for wrong, why in WRONG_LOCAL.get(kind, ()):
            if _all_close(got_in, [wrong(a, second) * g]) or _all_close(got_in, [wrong(a, second)]):
                raise WrongAnswer(
                    f"{what} : vous obtenez {shown} au lieu de {expected} ; {why}",
                    code="derivee_locale_fausse",
                )
        raise WrongAnswer(
            f"{what} : le `_backward` de {NAMES[kind]} donne {shown} au lieu de {expected} (gradient reçu × "
            "dérivée locale).",
            code="derivee_locale_fausse",
        )
    # A fork: the leaf a feeds two operations, p = op(a) and q = a * b; then r = p + q.
    for kind in kinds:
        a, b = uniform(0.3, 1.2), uniform(-1.5, -0.4)
        if kind in SYMBOLS:
            ops = [(kind, 0, 1), ("mul", 0, 2), ("add", 3, 4)]
            leaves = [a, b, uniform(0.4, 1.5)]
        else:
            extra = 2 if kind == "pow" else None
            first = (kind, 0, extra) if kind == "pow" else (kind, 0)
            ops, leaves = [first, ("mul", 0, 1), ("add", 2, 3)], [a, b]
        got = student_run(cls, leaves, ops, "manual", g)
        ref = torch_reference(leaves, ops, g)
        if _close(got["grad"][0], ref["grad"][0]):
            continue
        raise WrongAnswer(
            f"{describe_expression(leaves, ops)} : `a` sert deux fois (embranchement) et reçoit "
            f"{got['grad'][0]:.4g} au lieu de {ref['grad'][0]:.4g}, la somme des deux contributions. Dans le "
            f"`_backward` de {NAMES[kind]}, écrivez `+=` et non `=` : sinon la seconde contribution écrase la "
            "première.",
            code="egal_au_lieu_de_plus_egal",
        )
    # The same object twice in one operation: b = a + a (or a * a).
    for kind in [k for k in kinds if k in SYMBOLS]:
        a = uniform(0.3, 1.4)
        leaves, ops = [a], [(kind, 0, 0)]
        got = student_run(cls, leaves, ops, "manual", g)
        ref = torch_reference(leaves, ops, g)
        if not _close(got["grad"][0], ref["grad"][0]):
            raise WrongAnswer(
                f"{describe_expression(leaves, ops)} : `a` est les **deux** entrées de l'opération ; son gradient "
                f"doit recevoir les deux contributions ({ref['grad'][0]:.4g}), vous obtenez {got['grad'][0]:.4g}. "
                "Ajoutez-les l'une après l'autre avec `+=` (une affectation multiple, un dictionnaire ou un "
                "ensemble indexé par le nœud n'en gardent qu'une).",
                code="meme_entree_deux_fois",
            )


def compare_random(cls: Any, kinds: Sequence[str], rng: torch.Generator, trials: int, mode: str) -> None:
    """Random expressions: every node's gradient must match PyTorch's."""
    for _ in range(trials):
        leaves, ops = random_expression(rng, kinds)
        g = 1.0 if mode == "backward" else 1.7
        got = student_run(cls, leaves, ops, mode, g)
        ref = torch_reference(leaves, ops, g)
        _check_data(got, ref, leaves, ops)
        wrong = [k for k, (a, b) in enumerate(zip(got["grad"], ref["grad"], strict=True)) if not _close(a, b)]
        if wrong:
            k = wrong[0]
            raise WrongAnswer(
                f"{describe_expression(leaves, ops)} : le nœud n° {k + 1} reçoit le gradient {got['grad'][k]:.6g}, "
                f"PyTorch donne {ref['grad'][k]:.6g}.",
                code="reponse_incorrecte",
            )


# -- the student's backward(): seed and order ---------------------------------------------------------------------
ORDER_BUGS = {
    "not_reversed": (
        "mais vous appelez les `_backward()` des feuilles vers la sortie : quand un nœud propage, il n'a encore "
        "rien reçu. Parcourez l'ordre topologique à l'envers, `reversed(topo)`."
    ),
    "no_visited": (
        "mais un nœud partagé est traité plusieurs fois (il figure plusieurs fois dans votre liste `topo`, ou votre "
        "parcours le visite une fois par chemin) : son `_backward()` est appelé plusieurs fois et ses contributions "
        "sont comptées en double. Gardez un ensemble des nœuds déjà vus."
    ),
    "preorder": (
        "mais vous propagez en profondeur, dès qu'un nœud est atteint : à un embranchement, il propage avant "
        "d'avoir reçu **toutes** ses contributions. Construisez d'abord l'ordre topologique, puis parcourez-le à "
        "l'envers."
    ),
}


def simulate(leaves: Sequence[float], ops: Sequence[Sequence[Any]], variant: str) -> list[float]:
    """Gradients that a micrograd-style engine with correct local rules gets with a wrong traversal."""
    data = [float(v) for v in leaves]
    inputs: list[list[int]] = [[] for _ in leaves]
    local: list[list[float]] = [[] for _ in leaves]
    for op in ops:
        kind, a = op[0], op[1]
        second = op[2] if len(op) > 2 else None
        b = data[second] if kind in SYMBOLS else second
        x = data[a]
        data.append({"add": x + b, "mul": x * b}[kind] if kind in SYMBOLS else _unary(kind, x, b))
        inputs.append([a, second] if kind in SYMBOLS else [a])
        local.append(list(LOCAL[kind](data[a], b)))
    grad = [0.0] * len(data)
    root = len(data) - 1

    def run(v: int) -> None:
        for i, d in zip(inputs[v], local[v], strict=True):
            grad[i] += d * grad[v]

    def topo(v: int, seen: set[int] | None, out: list[int]) -> list[int]:
        if seen is not None:
            if v in seen:
                return out
            seen.add(v)
        for i in inputs[v]:
            topo(i, seen, out)
        out.append(v)
        return out

    grad[root] = 1.0
    if variant == "not_reversed":
        for v in topo(root, set(), []):
            run(v)
    elif variant == "no_visited":
        for v in reversed(topo(root, None, [])):
            run(v)
    else:  # "preorder": depth first, each node propagated when first reached
        seen: set[int] = set()

        def propagate(v: int) -> None:
            seen.add(v)
            run(v)
            for i in inputs[v]:
                if i not in seen:
                    propagate(i)

        propagate(root)
    return grad


# -- the student's backward(): checks --------------------------------------------------------------------------
def check_backward(cls: Any, kinds: Sequence[str], rng: torch.Generator, trials: int) -> None:
    """The student's ``backward()`` on a chain with a fork, then on random expressions."""
    # a, b ; c = a * b ; d = c + a ; e = c * d ; f = e * e: forks at a, at c (used by d and by e, which is reached
    # first from the output) and at e (twice in one operation).
    leaves = [round(float(torch.empty(()).uniform_(0.3, 1.2, generator=rng)), 2), -0.8]
    ops: list[tuple[Any, ...]] = [("mul", 0, 1), ("add", 2, 0), ("mul", 2, 3), ("mul", 4, 4)]
    if "tanh" in kinds:
        ops.append(("tanh", 5))
    got = student_run(cls, leaves, ops, "backward", 1.0)
    ref = torch_reference(leaves, ops, 1.0)
    _check_data(got, ref, leaves, ops)
    what = describe_expression(leaves, ops)
    if not _all_close(got["grad"], ref["grad"]):
        if all(v == 0 for v in got["grad"]):
            raise WrongAnswer(
                f"{what}, puis `sortie.backward()` : tous les gradients valent 0. La rétropropagation part de "
                "∂sortie/∂sortie = 1 : posez `self.grad = 1.0` **avant** d'appeler les `_backward()` (sinon chaque "
                "nœud multiplie 0 par sa dérivée locale).",
                code="oubli_graine",
            )
        if _close(got["grad"][-1], 1.0) and all(v == 0 for v in got["grad"][:-1]):
            raise WrongAnswer(
                f"{what}, puis `sortie.backward()` : la sortie a bien `grad = 1`, mais aucun autre nœud n'a reçu de "
                "gradient : la graine `self.grad = 1.0` doit être posée **avant** la boucle sur les `_backward()`.",
                code="oubli_graine",
            )
        if _close(got["grad"][-1], 0.0):
            raise WrongAnswer(
                f"{what} : la sortie a `grad = 0` après `backward()`. Commencez par `self.grad = 1.0`.",
                code="oubli_graine",
            )
        k = next(i for i, (a, b) in enumerate(zip(got["grad"], ref["grad"], strict=True)) if not _close(a, b))
        head = (
            f"{what}, puis `sortie.backward()` : le nœud n° {k + 1} reçoit {got['grad'][k]:.4g} au lieu de "
            f"{ref['grad'][k]:.4g}. Vos règles locales sont justes"
        )
        for variant, why in ORDER_BUGS.items():
            if _all_close(got["grad"], simulate(leaves, ops, variant)):
                raise WrongAnswer(f"{head} ; {why}", code="ordre_non_topologique")
        raise WrongAnswer(
            f"{head} : c'est l'**ordre** des appels à `_backward()` qui ne l'est pas. Construisez l'ordre "
            "topologique (chaque nœud après ses entrées, une seule fois chacun), puis parcourez-le à l'envers.",
            code="ordre_non_topologique",
        )
    compare_random(cls, kinds, rng, trials, "backward")
