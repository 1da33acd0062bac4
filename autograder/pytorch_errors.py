"""Turn the PyTorch errors students meet into French explanations.

Messages are matched on stable prefixes of the texts torch 2.13 prints (the lessons show several of them verbatim).
"""

from __future__ import annotations

import re

# (pattern, French explanation); patterns are searched in "ExcType: message".
_RULES: list[tuple[str, str]] = [
    (
        r"element 0 of tensors does not require grad",
        "Le tenseur sur lequel vous appelez `backward()` n'a pas de `grad_fn` : aucune de ses entrées "
        "n'avait `requires_grad=True`, ou le graphe de calcul a été coupé (`detach()`, `torch.no_grad()`, "
        "`.item()`, passage par NumPy).",
    ),
    (
        r"grad can be implicitly created only for scalar outputs",
        "`backward()` sans argument n'est possible que sur un scalaire. Réduisez la sortie "
        "(`.mean()`, `.sum()`) ou passez un vecteur `v` **de la forme de la sortie** : `z.backward(v)`.",
    ),
    (
        r"Mismatch in shape: grad_output\[0\] has a shape of torch\.Size\(\[([^\]]*)\]\) "
        r"and output\[0\] has a shape of torch\.Size\(\[([^\]]*)\]\)",
        "Le vecteur `v` passé à `backward(v)` a la forme {0}, mais la sortie a la forme {1} : "
        "`v` doit avoir la forme de la **sortie** (le tenseur sur lequel on appelle `backward`), "
        "pas celle de l'entrée.",
    ),
    (
        r"Trying to backward through the graph a second time",
        "Vous rétropropagez deux fois dans le même graphe : les valeurs intermédiaires ont été libérées "
        "après le premier `backward()`. Recalculez la propagation avant, ou passez `retain_graph=True` "
        "au premier appel.",
    ),
    (
        r"a leaf Variable that requires grad is being used in an in-place operation",
        "Modification en place d'une feuille qui a `requires_grad=True` : une mise à jour des poids "
        "(`w -= ...`) doit être faite dans un bloc `with torch.no_grad():`.",
    ),
    (
        r"one of the variables needed for gradient computation has been modified by an inplace operation",
        "Un tenseur sauvegardé pour la rétropropagation a été modifié en place après la propagation avant : "
        "autograd refuse de calculer un gradient faux. Évitez l'opération en place (utilisez une copie).",
    ),
    (
        r"Only Tensors of floating point and complex dtype can require gradients",
        "Seuls les tenseurs à virgule flottante peuvent avoir `requires_grad=True` : écrivez "
        "`torch.tensor([1.0, 2.0])` ou précisez `dtype=torch.float32`.",
    ),
    (
        r"Can't call numpy\(\) on Tensor that requires grad",
        "Un tenseur suivi par autograd ne se convertit pas en NumPy : utilisez `t.detach().numpy()`.",
    ),
    (
        r"params argument given to the optimizer should be an iterable of Tensors",
        "L'optimiseur attend une **liste** de paramètres : `torch.optim.SGD([w], lr=...)`, pas `SGD(w, ...)`.",
    ),
    (
        r"'NoneType' object has no attribute 'zero_'",
        "`.grad` vaut `None` : aucun `backward()` n'a encore rempli ce gradient (ou `optimizer.zero_grad()` "
        "l'a remis à `None`). Remettez le gradient à zéro **après** `backward()`, ou écrivez `w.grad = None`, "
        "qui convient dans tous les cas.",
    ),
    (
        r"you can only change requires_grad flags of leaf variables",
        "`requires_grad_()` ne s'applique qu'aux feuilles du graphe ; pour un tenseur calculé, utilisez `t.detach()`.",
    ),
]

_COMPILED = [(re.compile(p), msg) for p, msg in _RULES]


def _as_shape(dims: str) -> str:
    """'3' -> '(3,)', '2, 3' -> '(2, 3)'."""
    parts = [d.strip() for d in dims.split(",") if d.strip()]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def explain(exc: BaseException) -> str | None:
    """Return a French explanation of a known PyTorch error, or None."""
    text = f"{type(exc).__name__}: {exc}"
    for pattern, message in _COMPILED:
        match = pattern.search(text)
        if match:
            return message.format(*(_as_shape(g) for g in match.groups()))
    return None


def describe(exc: BaseException) -> str:
    """French explanation if known, else the exception type and its first line."""
    known = explain(exc)
    if known:
        return known
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Votre code a levé `{type(exc).__name__}: {first_line}`."
