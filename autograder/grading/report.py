"""What the instructor gets: the grades CSV, a CSV for Moodle's grade import, and a terminal summary."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autograder.grading.outcome import ABSENT, GRADED_PARTIAL, Outcome
from autograder.grading.spreadsheet import write_rows

SCALE = 20


def write_grades_csv(path: Path, outcomes: list[Outcome], grade_ids: list[str]) -> None:
    """`student_id`, one column per graded cell, `score`, `max_score`, `status` (+ French reason and notes)."""
    header = ["student_id", *grade_ids, "score", "max_score", "status", "raison", "remarques", "origine"]
    rows = []
    for o in outcomes:
        cells = [_number(o.scores.get(g, 0.0)) if o.graded else "" for g in grade_ids]
        rows.append(
            [
                o.submission.student_id,
                *cells,
                _number(o.score),
                _number(o.max_score),
                o.status,
                o.reason,
                " ; ".join(o.notes),
                o.submission.origin,
            ]
        )
    write_rows(path, header, rows)


def write_moodle_csv(path: Path, outcomes: list[Outcome]) -> None:
    """A CSV for Moodle's « Importer des notes » (grade out of 20, decimal point), one row per student.

    `Identifiant` is « Participant N » when the copy came from Moodle's zip (the assignment's grading
    worksheet matches on it); `Adresse de courriel` lets the gradebook's CSV import match by e-mail.
    """
    rows = []
    for o in outcomes:
        sub = o.submission
        if not sub.student_id:
            continue
        grade = round(SCALE * o.score / o.max_score, 2) if o.max_score else 0.0
        identifier = f"Participant {sub.lms_id}" if sub.lms_id else sub.student_id
        comment = o.reason or ("; ".join(o.notes) if o.notes else "")
        rows.append(
            [identifier, f"{sub.first_name} {sub.last_name}".strip(), sub.email, _number(grade), SCALE, comment]
        )
    write_rows(
        path, ["Identifiant", "Nom complet", "Adresse de courriel", "Note", "Note maximale", "Commentaires"], rows
    )


def _number(value: float) -> str:
    return f"{value:g}"


def summary(console: Console, outcomes: list[Outcome], assignment: str) -> None:
    """Closing table: counts, failures and why, mean, distribution."""
    graded = [o for o in outcomes if o.graded]
    absent = [o for o in outcomes if o.status == ABSENT]
    failed = [o for o in outcomes if o not in graded and o not in absent]
    table = Table(title=f"Correction de {assignment}", show_header=False)
    table.add_row("Copies corrigées", str(len(graded)))
    table.add_row("dont exécution interrompue", str(sum(o.status == GRADED_PARTIAL for o in outcomes)))
    table.add_row("Copies non corrigées", str(len(failed)))
    table.add_row("Absent·e·s (liste)", str(len(absent)))
    if graded:
        notes = [SCALE * o.score / o.max_score for o in graded if o.max_score]
        table.add_row("Moyenne /20", f"{statistics.mean(notes):.2f}".replace(".", ","))
        table.add_row("Médiane /20", f"{statistics.median(notes):.2f}".replace(".", ","))
        bins = Counter(min(int(n // 4), 4) for n in notes)
        labels = ["[0 ; 4[", "[4 ; 8[", "[8 ; 12[", "[12 ; 16[", "[16 ; 20]"]
        width = max(bins.values())
        for index, label in enumerate(labels):
            count = bins.get(index, 0)
            table.add_row(f"  {label}", f"{'█' * round(20 * count / width) if width else ''} {count}")
    console.print(table)
    problems = [o for o in outcomes if o.reason]
    if problems:
        detail = Table(title="À regarder", show_lines=False)
        detail.add_column("Étudiant·e")
        detail.add_column("Statut")
        detail.add_column("Raison")
        for o in problems:
            detail.add_row(o.submission.student_id or o.submission.origin, o.status, o.reason)
        console.print(detail)


def top_mistakes(console: Console, data: dict, page: Path, count: int = 3) -> None:
    """The end of the summary: the class's most frequent mistakes, then where the class report is."""
    frequent = data.get("erreurs_frequentes", [])[:count]
    if frequent:
        console.print("Erreurs les plus fréquentes :")
        for rank, mistake in enumerate(frequent, start=1):
            share = f"{100 * mistake['part']:.0f}\u00a0%"
            console.print(
                f"  {rank}. {mistake['nom']} ({mistake['question']}) : {share} des copies corrigées "
                f"({mistake['copies']})",
                markup=False,
                soft_wrap=True,
            )
    else:
        console.print("Aucune erreur dans les copies corrigées.")
    console.print(f"Rapport de la classe : {page}", markup=False, soft_wrap=True)
