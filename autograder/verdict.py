"""Verdict exceptions: a failed check renders as a short French message, not a traceback.

IPython calls ``_render_traceback_`` when an exception defines it, so a student sees only
the verdict. nbgrader still sees an ``error`` output and gives the cell 0 points.
"""

from __future__ import annotations

from autograder.typography import french_spacing


class CheckFailed(AssertionError):
    """Base class of every verdict that is not a success."""

    icon = "❌"
    label = "Réponse incorrecte"

    def __init__(self, message: str, exercise_id: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.exercise_id = exercise_id
        self.hint = hint

    def render(self) -> str:
        head = f"{self.icon} {self.exercise_id} — {self.label}" if self.exercise_id else f"{self.icon} {self.label}"
        lines = [head, f"   {self.message}"]
        if self.hint:
            lines.append(f"   💡 Indice : {self.hint}")
        return french_spacing("\n".join(lines))

    def __str__(self) -> str:
        return self.render()

    def _render_traceback_(self) -> list[str]:
        return self.render().splitlines()


class WrongAnswer(CheckFailed):
    """The answer was tried and is wrong; the message names the likely mistake."""


class NotAttempted(CheckFailed):
    """The stub is untouched or the expected name is missing."""

    icon = "⬜"
    label = "Question non tentée"


def success(exercise_id: str, message: str, points: int | None = None) -> str:
    """Format a French success verdict."""
    tail = f" ({points} point{'s' if points and points > 1 else ''})" if points is not None else ""
    return french_spacing(f"✅ {exercise_id} — Correct{tail}\n   {message}")
