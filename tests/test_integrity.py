"""The tamper guard restores what student code replaced, repeatedly, and cannot be switched off."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import builtins, torch
import autograder.exercises
import autograder.exercise as exercise
from autograder.grading import integrity
from autograder import check

integrity.protect()
for round in range(3):
    torch.allclose = lambda *a, **k: True
    builtins.isinstance = lambda *a: True
    exercise.Exercise.check = lambda *a, **k: None
    integrity.restore = lambda: 0          # try to switch the guard off...
    integrity.protect = lambda: None
    assert exercise.call.__kwdefaults__["_restore"]() >= 3  # ...the genuine restore was bound at definition
    assert not torch.allclose(torch.ones(1), torch.zeros(1))
    assert not isinstance(1, str)
    assert exercise.Exercise.check.__name__ == "check"
    assert integrity.restore.__name__ == "restore"

def grad_z(x):
    torch.allclose = lambda *a, **k: True  # tampering during the checker's call
    return x

try:
    check("tp1_hand_grad", {"grad_z": grad_z})
except AssertionError as failure:
    print("REFUSED", type(failure).__name__)
"""


def test_guard_survives_tampering_and_repeated_restores():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "REFUSED WrongAnswer" in done.stdout
