"""The French explanation given when a gradient that must be derived by hand was computed with autograd.

Checkers detect the backward pass from ``observe.CallReport.backward_passes``; this module only words the verdict.
"""

from __future__ import annotations


def hand_derivation_required(inputs: str = "`x`", reference: str = "`x.grad`") -> str:
    """The French explanation, naming what the formula is written with and what it is compared to."""
    return (
        "Votre fonction appelle autograd (`backward()`, `torch.autograd.grad`, `torch.func`…). "
        "Ici, le gradient doit être **dérivé à la main** : écrivez la formule de la dérivée avec des "
        f"opérations sur {inputs} ; le vérificateur la compare lui-même à {reference}."
    )
