"""The result of grading one submission: a score, or a French reason — never nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from autograder.grading.intake import Submission
from autograder.verdict import Verdict

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
    # grade_id -> the checker's trusted verdict (mistake code, points): what the class report counts.
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    # How the copy's execution ended (ExecutionResult.status: "ok", "cell_timeout", "notebook_timeout", "crashed",
    # "killed"): the class report's plantage / delai_depasse for questions that have no trusted verdict.
    execution: str = "ok"

    @property
    def graded(self) -> bool:
        return self.status in (GRADED, GRADED_PARTIAL)
