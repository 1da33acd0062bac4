"""Verdict exceptions: a failed check renders as a short French message, not a traceback.

IPython calls ``_render_traceback_`` when an exception defines it, so a student sees only
the verdict. nbgrader still sees an ``error`` output and gives the cell 0 points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from autograder.typography import french_spacing


class CheckFailed(AssertionError):
    """Base class of every verdict that is not a success."""

    icon = "❌"
    label = "Réponse incorrecte"
    default_code = "reponse_incorrecte"

    def __init__(
        self, message: str, exercise_id: str | None = None, hint: str | None = None, *, code: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.exercise_id = exercise_id
        self.hint = hint
        # Stable mistake code (snake_case French, e.g. "oubli_zero_grad"): declared in the exercise's
        # ``mistakes`` catalogue, recorded per student and question by the grading, counted by the class report.
        self.code = code or self.default_code
        # Set by the exercise: the question's title and the lesson section to reread (path, section title).
        self.title: str | None = None
        self.section: tuple[str, str] | None = None

    def render(self) -> str:
        return plain_text(
            self.icon,
            self.label,
            self.exercise_id,
            self.message,
            title=self.title,
            hint=self.hint,
            section=self.section,
        )

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
    default_code = "non_tentee"


class TimedOut(CheckFailed):
    """A call into the student's code overran its time limit and was interrupted (trusted grading)."""

    label = "Délai dépassé"
    default_code = "delai_depasse"


class Crashed(CheckFailed):
    """The student's kernel died during the check, or the check itself could not run (trusted grading)."""

    label = "Vérification impossible"
    default_code = "plantage"


def success(exercise_id: str, message: str, points: int | None = None, *, title: str | None = None) -> str:
    """Format a French success verdict."""
    return plain_text("✅", "Correct", exercise_id, message, title=title, points=points)


def points_text(points: int | None) -> str:
    return f"{points} point{'s' if points and points > 1 else ''}" if points is not None else ""


def section_text(section: tuple[str, str]) -> str:
    """Where to reread, in words: « Le produit vecteur-jacobienne » (notebooks/01_calcul_de_gradients.ipynb)."""
    path, title = section
    return f"« {title} » ({path})"


def plain_text(
    icon: str,
    label: str,
    exercise_id: str | None,
    message: str,
    *,
    title: str | None = None,
    hint: str | None = None,
    section: tuple[str, str] | None = None,
    points: int | None = None,
) -> str:
    """A verdict as plain text (terminal, nbgrader's error outputs and feedback, screen readers).

    ``✅ tp1_vjp — Correct (3 points) · title``, then the explanation, the hint and the section to reread.
    """
    head = f"{icon} {exercise_id} — {label}" if exercise_id else f"{icon} {label}"
    if points is not None:
        head += f" ({points_text(points)})"
    if title:
        head += f" · {title}"
    lines = [head, f"   {message}"]
    if hint:
        lines.append(f"   💡 Indice : {hint}")
    if section:
        lines.append(f"   📖 À relire dans la leçon : {section_text(section)}")
    return french_spacing("\n".join(lines))


# Codes that do not come from an exercise's catalogue: the grading itself decides them.
CORRECT = "correcte"
NOT_ATTEMPTED = NotAttempted.default_code
WRONG = WrongAnswer.default_code
CRASHED = Crashed.default_code  # the kernel died or the check could not run
TIMED_OUT = TimedOut.default_code
NOT_A_CHECK = "test_hors_check"  # an instructor's plain test cell, scored with nbgrader's semantics


@dataclass
class Verdict:
    """One question of one copy, as decided by a checker: what the grading records and the report counts."""

    exercise_id: str
    code: str  # CORRECT, or a mistake code
    points: float  # points earned
    max_points: float
    message: str = ""

    @property
    def correct(self) -> bool:
        return self.code == CORRECT

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
