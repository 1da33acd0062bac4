"""One exercise defined once: id (= nbgrader grade_id), points, French hints and a checker.

The same ``check`` gives a student instant feedback in the released notebook, grades the
locked test cell under nbgrader, and is called again by hidden tests with another seed and
more trials, so numbers copied from an output cannot pass.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import warnings
from typing import Any, ClassVar

import torch

from autograder import mode, observe, verdict_box
from autograder.grading import tamper_guard
from autograder.typography import french_spacing
from autograder.verdict import CheckFailed, NotAttempted
from autograder.verdict_box import VerdictBox

_REGISTRY: dict[str, Exercise] = {}


class Exercise:
    """Base class: subclasses set the class attributes and implement ``run``."""

    id: ClassVar[str]
    points: ClassVar[int] = 0
    title: ClassVar[str] = ""
    assignment: ClassVar[str | None] = None  # nbgrader assignment id, None for lesson practice
    names: ClassVar[tuple[str, ...]] = ()  # what the checker reads from the notebook namespace
    hints: ClassVar[tuple[str, ...]] = ()
    default_trials: ClassVar[int] = 3
    # Typical mistakes: stable code -> short French name (« oubli de `zero_()` »). Every ``WrongAnswer(..., code=)``
    # raised by ``run`` uses one of these codes; the class report groups the verdicts by them.
    mistakes: ClassVar[dict[str, str]] = {}
    # The lesson section to reread: (notebook path from the course root, section title), e.g.
    # ("notebooks/01_calcul_de_gradients.ipynb", "Le produit vecteur-jacobienne"). Shown by the last hint, the verdict
    # and the class report.
    section: ClassVar[tuple[str, str] | None] = None

    def __init__(self) -> None:
        self.hints_shown = 0

    # -- to implement -------------------------------------------------------------------
    def run(self, answers: dict[str, Any], rng: torch.Generator, trials: int) -> str:
        """Check the answers; return a short French success detail or raise ``WrongAnswer``."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------
    def check(self, namespace: dict[str, Any], *, seed: int = 0, trials: int | None = None) -> None:
        """Show a French verdict; raise a ``CheckFailed`` (an AssertionError) when not correct under grading.

        In a student's kernel (``mode.interactive()``) and for lesson practice (``assignment is None``), a
        failure is only shown, as a box, so that running a whole lesson or TP never stops on a question;
        under grading (nbgrader, ``autograder grade``) it raises and its test cell scores 0.
        """
        __tracebackhide__ = True
        # Decided before this check calls any student code (and after undoing tampering, under our grader):
        # a student function cannot turn a graded failure into a mere display.
        tamper_guard.restore()
        show_only = self.assignment is None or mode.interactive()
        try:
            self._check(namespace, seed=seed, trials=trials)
        except CheckFailed as failure:
            if show_only:
                verdict_box.show(VerdictBox.from_failure(failure))
                return
            raise

    def _check(self, namespace: dict[str, Any], *, seed: int, trials: int | None) -> None:
        __tracebackhide__ = True
        verdict_box.show(self.evaluate(namespace, seed=seed, trials=trials))

    def evaluate(self, namespace: dict[str, Any], *, seed: int = 0, trials: int | None = None) -> VerdictBox:
        """The success verdict, or a ``CheckFailed`` raised with this exercise's id, hint and section.

        ``namespace`` maps the exercise's ``names`` to the student's values: the notebook's globals in the
        student's kernel, or remote references built by the trusted checker (``autograder.grading.checker``).
        """
        __tracebackhide__ = True
        try:
            missing = [name for name in self.names if name not in namespace]
            if missing:
                raise NotAttempted(
                    f"`{missing[0]}` n'est pas défini : écrivez votre réponse dans la cellule prévue "
                    "et exécutez-la avant cette vérification."
                )
            answers = {name: namespace[name] for name in self.names}
            rng = torch.Generator().manual_seed(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detail = self.run(answers, rng, trials or self.default_trials)
        except CheckFailed as failure:
            raise self._describe(failure) from None
        except NotImplementedError:
            raise self._describe(
                NotAttempted(
                    "le squelette `raise NotImplementedError()` est toujours là : remplacez-le par votre code.",
                    self.id,
                )
            ) from None
        points = self.points if self.assignment else None
        return VerdictBox("correct", self.id, detail, self.title or None, points=points)

    def _describe(self, failure: CheckFailed) -> CheckFailed:
        """Complete a failure with what the student needs next: question, hint command, section to reread."""
        failure.exercise_id = failure.exercise_id or self.id
        if self.hints and failure.hint is None:
            failure.hint = f'tapez `hint("{self.id}")` pour un indice.'
        failure.title = failure.title or self.title or None
        failure.section = failure.section or self.section
        return failure

    def next_hint(self) -> str:
        if not self.hints:
            return f"Pas d'indice pour {self.id}."
        index = min(self.hints_shown, len(self.hints) - 1)
        self.hints_shown += 1
        return french_spacing(f"💡 Indice {index + 1}/{len(self.hints)} ({self.id}) : {self.hints[index]}")


# The old name of ``observe.call`` (checkers reach student code through observe, in both grading modes).
call = observe.call


def register(cls: type[Exercise]) -> type[Exercise]:
    """Class decorator adding an exercise to the catalogue."""
    if cls.id in _REGISTRY:
        raise ValueError(f"duplicate exercise id {cls.id!r}")
    _REGISTRY[cls.id] = cls()
    return cls


def _load_all() -> None:
    import autograder.exercises as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    # Exercises defined outside the package (a course's own module, a test fixture): comma-separated modules.
    for name in filter(None, os.environ.get("AUTOGRADER_EXERCISE_MODULES", "").split(",")):
        importlib.import_module(name.strip())


def all_exercises() -> list[Exercise]:
    _load_all()
    return list(_REGISTRY.values())


def catalogue() -> dict[str, dict[str, Any]]:
    """Every exercise as plain data (JSON-ready): id -> assignment, title, mistakes, section. The trusted checker
    sends it to the host, which does not import torch, for the class report."""
    return {
        e.id: {
            "assignment": e.assignment,
            "title": e.title,
            "mistakes": dict(e.mistakes),
            "section": list(e.section) if e.section else None,
        }
        for e in all_exercises()
    }


def get_exercise(exercise_id: str) -> Exercise:
    _load_all()
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"Exercice inconnu : {exercise_id!r}. Exercices connus : {known}.") from None


def check(exercise_id: str, namespace: dict[str, Any], *, seed: int = 0, trials: int | None = None) -> None:
    """Check an exercise against the names defined in ``namespace`` (usually ``globals()``)."""
    __tracebackhide__ = True
    get_exercise(exercise_id).check(namespace, seed=seed, trials=trials)


def hint(exercise_id: str) -> None:
    """Print the next hint of an exercise (they are revealed one by one)."""
    print(get_exercise(exercise_id).next_hint())
