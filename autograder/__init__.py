"""Autograd course toolkit: exercise checkers with French verdicts, lesson helpers, grading CLI."""

from autograder.exercise import check, get_exercise, hint

__version__ = "0.1.0"
__all__ = ["check", "hint", "get_exercise", "__version__"]
