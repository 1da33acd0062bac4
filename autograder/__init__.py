"""Autograd course toolkit: exercise checkers with French verdicts, lesson helpers, grading CLI."""

from autograder import stubs
from autograder.exercise import check, get_exercise, hint

stubs.install()  # in a student's kernel only: an unanswered stub reads as one French line

__version__ = "0.1.0"
__all__ = ["check", "hint", "get_exercise", "__version__"]
