"""Autograd course toolkit: exercise checkers with French verdicts, lesson helpers, grading CLI.

``check``, ``hint`` and ``get_exercise`` import the exercises (and torch) on first use only: the CLI and
``nbgrader_config.py`` import this package without paying for torch.
"""

from __future__ import annotations

from typing import Any

from autograder import stubs

stubs.install()  # in a student's kernel only: an unanswered stub reads as one French line

__version__ = "0.1.0"
__all__ = ["check", "hint", "get_exercise", "__version__"]


def check(exercise_id: str, namespace: dict[str, Any], *, seed: int = 0, trials: int | None = None) -> None:
    """Check an exercise against the names defined in ``namespace`` (usually ``globals()``)."""
    __tracebackhide__ = True
    from autograder import exercise

    exercise.check(exercise_id, namespace, seed=seed, trials=trials)


def hint(exercise_id: str) -> None:
    """Print the next hint of an exercise (they are revealed one by one)."""
    from autograder import exercise

    exercise.hint(exercise_id)


def get_exercise(exercise_id: str) -> Any:
    from autograder import exercise

    return exercise.get_exercise(exercise_id)
