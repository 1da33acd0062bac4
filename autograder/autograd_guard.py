"""Detect autograd used where a gradient must be derived by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.autograd.graph

from autograder.verdict import WrongAnswer


def hand_derivation_required(inputs: str = "`x`", reference: str = "`x.grad`") -> str:
    """The French explanation, naming what the formula is written with and what it is compared to."""
    return (
        "Votre fonction appelle autograd (`backward()`, `torch.autograd.grad`, `torch.func`…). "
        "Ici, le gradient doit être **dérivé à la main** : écrivez la formule de la dérivée avec des "
        f"opérations sur {inputs} ; le vérificateur la compare lui-même à {reference}."
    )


@contextmanager
def forbid_autograd(inputs: str = "`x`", reference: str = "`x.grad`") -> Iterator[None]:
    """Inside the block, any backward pass raises ``WrongAnswer`` with a French explanation.

    ``inputs`` and ``reference`` name, in the explanation, the variables of the formula and the gradients
    the checker compares it to.

    Tensor.backward, torch.autograd.grad/backward, torch.autograd.functional and torch.func
    all reach the engine through ``_engine_run_backward``, which is patched here. The use is
    also remembered, so student code that swallows the exception is still caught.
    """
    used = []
    message = hand_derivation_required(inputs, reference)

    def refuse(*args, **kwargs):
        used.append(True)
        raise WrongAnswer(message)

    saved = (torch.autograd._engine_run_backward, torch.autograd.graph._engine_run_backward)
    torch.autograd._engine_run_backward = refuse
    torch.autograd.graph._engine_run_backward = refuse
    try:
        yield
    finally:
        torch.autograd._engine_run_backward, torch.autograd.graph._engine_run_backward = saved
    if used:
        raise WrongAnswer(message)
