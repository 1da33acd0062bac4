"""Tensor comparisons that explain themselves in French."""

from __future__ import annotations

from typing import Any

import torch

from autograder.verdict import WrongAnswer

RTOL = 1e-4
ATOL = 1e-5


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
