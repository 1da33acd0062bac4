"""Undo tampering by student code before an in-kernel test cell (used by ``tamper_guard`` only).

A snapshot of the namespaces the checkers rely on (builtins, torch and its comparison helpers,
the autograder package) is taken before any student code runs; ``restore`` puts every changed,
added or deleted attribute back. ``tamper_guard.Guard`` calls it before each test cell that runs in the
copy's kernel: an instructor's plain test cell under ``autograder grade``, every test cell under
``autograder verifier``. No verdict of ``autograder grade`` depends on it: test cells of ``check(...)``
calls are decided by the trusted checker, outside the copy's process.
"""

from __future__ import annotations

import builtins
import sys
from types import ModuleType
from typing import Any

_MODULE_PREFIXES = ("autograder",)
_TORCH_MODULES = (
    "torch",
    "torch.testing",
    "torch.autograd",
    "torch.autograd.functional",
    "torch.autograd.graph",
    "torch.optim",
    "torch.optim.optimizer",
    "torch.linalg",
    "torch.nn.functional",
    "math",
    "warnings",
    "contextlib",
)


class Guard:
    """Snapshot of module and class dictionaries, restorable in place."""

    def __init__(self) -> None:
        self._targets: list[tuple[Any, dict[str, Any]]] = []
        for target in self._collect():
            self._targets.append((target, dict(vars(target))))

    @staticmethod
    def _collect() -> list[Any]:
        import torch

        targets: list[Any] = [builtins, torch.Tensor]
        names = [n for n in sys.modules if n in _TORCH_MODULES or n.split(".")[0] in _MODULE_PREFIXES]
        for name in sorted(names):
            module = sys.modules.get(name)
            if not isinstance(module, ModuleType):
                continue
            targets.append(module)
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == name and name.startswith(_MODULE_PREFIXES):
                    targets.append(value)
        for optimizer in (torch.optim.Optimizer, torch.optim.SGD):
            targets.append(optimizer)
        return targets

    def restore(self) -> int:
        """Put every snapshot back; return the number of attributes that had been tampered with."""
        changed = 0
        for target, saved in self._targets:
            current = vars(target)
            for name in [n for n in current if n not in saved]:
                if not _safe(delattr, target, name):
                    continue
                changed += 1
            for name, value in saved.items():
                if current.get(name, _MISSING) is not value:
                    if _safe(setattr, target, name, value):
                        changed += 1
        return changed


_MISSING = object()


def _safe(action, *args) -> bool:
    try:
        action(*args)
    except (AttributeError, TypeError):
        return False
    return True


def _guard_functions():
    """``protect`` and ``restore`` keep the guard in a closure, not in a module global that student code
    (or the restore itself, which restores this module's dictionary) could reset."""
    box: list[Guard] = []
    restore_snapshot = Guard.restore

    def protect() -> Guard:
        """Take the snapshot (once per process, before any student code runs)."""
        if not box:
            guard = Guard.__new__(Guard)
            box.append(guard)
            guard.__init__()  # after registration, so the snapshot holds this module as it is now
        return box[0]

    def restore() -> int:
        """Restore the snapshot if one was taken; return how many attributes were put back."""
        return restore_snapshot(box[0]) if box else 0

    return protect, restore


protect, restore = _guard_functions()
