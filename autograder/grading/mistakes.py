"""Each copy's mistake code per question, and the mistakes CSV ``grades/<tp>_erreurs.csv`` that keeps them.

A question's code comes from the checker's trusted verdict (``Outcome.verdicts``). A graded cell without one
(plain nbgrader grading, before the trusted checker fills the verdicts) gets a code decided from data only,
never from text: ``correcte`` when the gradebook gives it full points, ``delai_depasse`` / ``plantage`` when the
copy's execution was cut short (``Outcome.execution``), otherwise ``non_reussie`` (a failure whose detail was not
recorded). Copy-level problems (not graded, absent, crash, time limit, collision, locked cell changed) are rows
without a question: the class report lists those copies for a person to look at.

The CSV has one row per (copy, question) — correct answers included, so that the report can be rebuilt from
it — and one row per copy-level problem; every cell is escaped against spreadsheet formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.grading.intake import COLLISION, TAMPERED
from autograder.grading.outcome import ABSENT, Outcome
from autograder.grading.spreadsheet import read_rows, write_rows
from autograder.verdict import CORRECT, CRASHED, NOT_A_CHECK, NOT_ATTEMPTED, TIMED_OUT, WRONG, Verdict

UNDETAILED = "non_reussie"  # lost points, no trusted verdict to say why
NOT_GRADED = "non_corrigee"
ABSENT_CODE = "absente"

# French names of the codes that no exercise catalogue defines.
GENERIC_NAMES = {
    CORRECT: "réponse correcte",
    NOT_ATTEMPTED: "question non tentée",
    WRONG: "réponse incorrecte (erreur non identifiée)",
    CRASHED: "plantage (noyau arrêté ou vérification impossible)",
    TIMED_OUT: "délai dépassé",
    NOT_A_CHECK: "échec d'un test de l'enseignant·e hors `check` (noté comme nbgrader)",
    UNDETAILED: "question non réussie (détail non enregistré)",
}
# Why a copy needs a person's look: category -> French label (shown even in the anonymised report).
REVIEW_NAMES = {
    NOT_GRADED: "copie non corrigée",
    CRASHED: "plantage pendant la correction",
    TIMED_OUT: "délai dépassé",
    TAMPERED: "cellule verrouillée modifiée, supprimée ou dupliquée",
    COLLISION: "identifiants en collision",
}
# Codes that say something about the grading, not about what the student understood.
TECHNICAL = {CORRECT, CRASHED, TIMED_OUT, NOT_A_CHECK}
_EXECUTION_CODES = {"cell_timeout": TIMED_OUT, "notebook_timeout": TIMED_OUT, "crashed": CRASHED, "killed": CRASHED}

HEADER = ["student_id", "question", "code", "erreur", "points_perdus", "points_max", "detail"]


@dataclass
class Question:
    """A graded cell of the TP, with what the exercise catalogue says about it."""

    id: str
    points: float
    title: str = ""
    mistakes: dict[str, str] = field(default_factory=dict)
    section: tuple[str, str] | None = None
    catalogued: bool = True  # an exercise of the catalogue (else an instructor's plain test cell)

    def name(self, code: str) -> str:
        return self.mistakes.get(code) or GENERIC_NAMES.get(code) or code


@dataclass
class CopyRecord:
    """One copy as the class report sees it: its status, its verdicts and what a person should check."""

    student_id: str
    status: str  # "corrigee", NOT_GRADED or ABSENT_CODE
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # question id -> verdict
    review: list[tuple[str, str]] = field(default_factory=list)  # (category, French detail)

    @property
    def graded(self) -> bool:
        return self.status == "corrigee"

    @property
    def score(self) -> float:
        return sum(v.points for v in self.verdicts.values())

    @property
    def max_score(self) -> float:
        return sum(v.max_points for v in self.verdicts.values())


def catalogue_of(assignment: str, every: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """What the class report needs of each exercise of a TP (grade id -> title, mistakes, section), from
    ``every`` exercise as plain data (``autograder.exercise.catalogue()``). ``autograder grade`` has it from its
    trusted checker, which imports the exercises anyway; else it is computed here (importing torch, about 2 s)."""
    if every is None:
        from autograder.exercise import catalogue

        every = catalogue()
    return {
        grade_id: {
            "title": entry["title"],
            "mistakes": dict(entry["mistakes"]),
            "section": tuple(entry["section"]) if entry["section"] else None,
        }
        for grade_id, entry in every.items()
        if entry["assignment"] == assignment
    }


def questions_of(
    assignment: str, points: dict[str, float], catalogue: dict[str, dict[str, Any]] | None = None
) -> list[Question]:
    """The questions of a TP in the order of ``points`` (grade id -> points), described by the catalogue."""
    known = catalogue if catalogue is not None else catalogue_of(assignment)
    questions = []
    for grade_id, value in points.items():
        exercise = known.get(grade_id)
        questions.append(
            Question(
                id=grade_id,
                points=value,
                title=exercise["title"] if exercise else grade_id,
                mistakes=dict(exercise["mistakes"]) if exercise else {},
                section=tuple(exercise["section"]) if exercise and exercise["section"] else None,
                catalogued=exercise is not None,
            )
        )
    return questions


def verdict_for(outcome: Outcome, question: Question) -> Verdict:
    """The question's verdict: the trusted one when recorded, else decided from the gradebook score."""
    earned = outcome.scores.get(question.id, 0.0)
    trusted = outcome.verdicts.get(question.id)
    if trusted is not None and trusted.code == NOT_A_CHECK:
        # An instructor's plain test cell, scored by nbgrader: its points say whether it passed.
        code = CORRECT if earned >= question.points else NOT_A_CHECK
        return Verdict(question.id, code, earned, question.points, trusted.message)
    if trusted is not None and trusted.code in (CRASHED, TIMED_OUT) and earned >= question.points:
        return Verdict(question.id, CORRECT, earned, question.points)  # nbgrader gave every point: it passed
    if trusted is not None:
        return Verdict(question.id, trusted.code, earned, question.points, trusted.message)
    if earned >= question.points:
        code = CORRECT
    else:
        code = _EXECUTION_CODES.get(outcome.execution, UNDETAILED)
    return Verdict(question.id, code, earned, question.points)


def record_of(outcome: Outcome, questions: list[Question]) -> CopyRecord:
    sub = outcome.submission
    if outcome.status == ABSENT:
        return CopyRecord(sub.student_id, ABSENT_CODE)
    if not outcome.graded:
        return CopyRecord(sub.student_id, NOT_GRADED, review=[(NOT_GRADED, outcome.reason)])
    record = CopyRecord(sub.student_id, "corrigee")
    record.verdicts = {q.id: verdict_for(outcome, q) for q in questions}
    if outcome.execution in _EXECUTION_CODES:
        record.review.append((_EXECUTION_CODES[outcome.execution], outcome.reason))
    record.review.extend(sub.review)
    seen = {category for category, _ in record.review}
    for verdict in record.verdicts.values():
        if verdict.code in (CRASHED, TIMED_OUT) and verdict.code not in seen:
            seen.add(verdict.code)
            record.review.append((verdict.code, f"question {verdict.exercise_id}"))
    return record


def records_of(outcomes: list[Outcome], questions: list[Question]) -> list[CopyRecord]:
    """Records of every copy with an id (files that belong to no student are left to the grades CSV)."""
    return [record_of(o, questions) for o in outcomes if o.submission.student_id]


def _number(value: float) -> str:
    return f"{value:g}"


def write_csv(path: Path, records: list[CopyRecord], questions: list[Question]) -> None:
    by_id = {q.id: q for q in questions}
    rows = []
    for record in sorted(records, key=lambda r: r.student_id):
        if record.status == ABSENT_CODE:
            rows.append([record.student_id, "", ABSENT_CODE, "copie absente", "", "", ""])
        for question_id, v in record.verdicts.items():
            question = by_id.get(question_id) or Question(question_id, v.max_points)
            lost = _number(v.max_points - v.points)
            rows.append(
                [record.student_id, question_id, v.code, question.name(v.code), lost, _number(v.max_points), v.message]
            )
        for category, detail in record.review:
            rows.append([record.student_id, "", category, REVIEW_NAMES.get(category, category), "", "", detail])
    write_rows(path, HEADER, rows)


def read_csv(path: Path) -> tuple[list[CopyRecord], dict[str, float]]:
    """Records and the questions' points (in the file's order) read back from a mistakes CSV."""
    records: dict[str, CopyRecord] = {}
    points: dict[str, float] = {}
    for row in read_rows(path):
        student = row["student_id"]
        record = records.setdefault(student, CopyRecord(student, "corrigee"))
        if row["question"]:
            maximum = float(row["points_max"])
            points.setdefault(row["question"], maximum)
            earned = maximum - float(row["points_perdus"])
            record.verdicts[row["question"]] = Verdict(row["question"], row["code"], earned, maximum, row["detail"])
        elif row["code"] == ABSENT_CODE:
            record.status = ABSENT_CODE
        else:
            if row["code"] == NOT_GRADED:
                record.status = NOT_GRADED
            record.review.append((row["code"], row["detail"]))
    return list(records.values()), points
