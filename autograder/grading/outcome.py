"""The result of grading one submission: a score, or a French reason — never nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from autograder.grading.intake import Submission

# Statuses shown in the reports (French and stable: the CSV's `status` column).
GRADED = "corrigé"
GRADED_PARTIAL = "corrigé (exécution interrompue)"
NOT_GRADED = "non corrigé"
ABSENT = "absent"


@dataclass
class Outcome:
    submission: Submission
    status: str
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # grade_id -> points earned
    score: float = 0.0
    max_score: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def graded(self) -> bool:
        return self.status in (GRADED, GRADED_PARTIAL)
