"""Tensor comparisons that explain themselves in French."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from autograder.verdict import WrongAnswer

RTOL = 1e-4
ATOL = 1e-5


def untouched(value: Any) -> bool:
    """A practice placeholder left as shipped (``None`` or ``...``)."""
    return value is None or value is Ellipsis


def as_number(value: Any, what: str) -> float:
    """A Python number or a one-element tensor as a float; a French verdict otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        kind = type(value).__name__
        raise WrongAnswer(f"{what} doit être un nombre (par exemple `4.5`), pas un objet de type `{kind}`.")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise WrongAnswer(f"{what} doit être un seul nombre, pas un tenseur de forme {fmt_shape(value.shape)}.")
        return float(value.detach())
    return float(value)


def fmt_shape(shape: torch.Size | tuple[int, ...]) -> str:
    dims = tuple(shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def require_tensor(value: Any, what: str) -> torch.Tensor:
    if value is None:
        raise WrongAnswer(f"{what} vaut `None` : avez-vous oublié le `return` (ou le `backward()`) ?")
    if not isinstance(value, torch.Tensor):
        raise WrongAnswer(f"{what} doit être un tenseur PyTorch, pas un objet de type `{type(value).__name__}`.")
    if type(value) not in (torch.Tensor, torch.nn.Parameter):
        # A subclass can redefine comparisons (__torch_function__): only plain tensors are graded.
        raise WrongAnswer(
            f"{what} doit être un `torch.Tensor` ordinaire, pas une sous-classe (`{type(value).__name__}`)."
        )
    return value


def require_shape(value: torch.Tensor, shape: torch.Size, what: str, hint: str = "") -> None:
    if value.shape != shape:
        raise WrongAnswer(
            f"{what} a la forme {fmt_shape(value.shape)} au lieu de {fmt_shape(shape)}.{(' ' + hint) if hint else ''}"
        )


def close(got: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Shape-exact closeness in float64 (NaN never matches)."""
    if got.shape != expected.shape:
        return False
    return bool(torch.allclose(got.detach().double(), expected.detach().double(), rtol=rtol, atol=atol))


def scale_factor(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    """If ``got`` ≈ k·``expected`` for one constant k, return k; otherwise None."""
    if got.shape != expected.shape:
        return None
    g, e = got.detach().double().flatten(), expected.detach().double().flatten()
    denom = float(e @ e)
    if denom < 1e-12:
        return None
    k = float(g @ e) / denom
    return k if close(g, k * e) else None


def max_gap(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.detach().double() - expected.detach().double()).abs().max())


def fmt_values(t: torch.Tensor) -> str:
    """Short French-friendly display of a tensor's values: ``[1.5, -2]``."""
    values = ", ".join(f"{v:.4g}" for v in t.detach().double().flatten().tolist())
    return f"[{values}]" if t.dim() else values


def autograd_gradient(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Reference gradient of a scalar function, computed by autograd on a fresh leaf copy of ``x``."""
    leaf = x.detach().clone().requires_grad_(True)
    fn(leaf).backward()
    assert leaf.grad is not None  # a scalar function of ``leaf``: backward always fills it
    return leaf.grad


def compare_hand_gradient(
    got: Any,
    expected: torch.Tensor,
    x: torch.Tensor,
    what: str,
    mistakes: Sequence[tuple] = (),
    factors: dict[float, str | tuple[str, str]] | None = None,
    factor_code: str | None = None,
) -> None:
    """Diagnose a hand-derived gradient against autograd's: shape, known wrong formulas, constant factors.

    ``mistakes`` holds ``(formula, message)`` or ``(formula, code, message)``; a ``factors`` value is a message or
    ``(code, message)``; ``factor_code`` is the code of an unlisted constant factor.
    """
    got = require_tensor(got, what)
    require_shape(got, x.shape, what, "Le gradient d'une fonction scalaire a la forme de son entrée `x`.")
    if close(got, expected):
        return
    for formula, *named in mistakes:
        code, message = named if len(named) == 2 else (None, named[0])
        if close(got, formula(x)):
            raise WrongAnswer(message, code=code)
    k = scale_factor(got, expected)
    if k is not None and factors is not None:
        for factor, entry in factors.items():
            code, message = entry if isinstance(entry, tuple) else (None, entry)
            if abs(k - factor) < 1e-3 * max(1.0, abs(factor)):
                raise WrongAnswer(message, code=code)
        raise WrongAnswer(
            f"{what} vaut {k:.4g} fois le bon gradient : un facteur constant est faux dans votre formule.",
            code=factor_code,
        )
    raise WrongAnswer(
        f"{what} est faux pour x = {fmt_values(x)} : vous renvoyez {fmt_values(got)}, autograd donne "
        f"{fmt_values(expected)} (écart maximal {max_gap(got, expected):.3g})."
    )
