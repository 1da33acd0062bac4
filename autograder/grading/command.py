"""`autograder grade` and `autograder verifier`: the command-line front of the grading pipeline."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autograder.grading import cgroups
from autograder.grading.executor import ExecutionLimits, WorkerPool
from autograder.grading.lean_imports import skip_unused_imports
from autograder.grading.sandbox import isolation_status
from autograder.typography import french_spacing

if TYPE_CHECKING:  # nbformat, nbgrader and the intake take 2 s to import: `grade` starts its workers first
    from autograder.grading.pipeline import Outcome

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _limits(**given: float | None) -> ExecutionLimits:
    """ExecutionLimits with the options the user gave; the others keep their defaults."""
    return ExecutionLimits(**{name: value for name, value in given.items() if value is not None})


class _FrenchConsole(Console):
    """A rich console that typesets French text (no-break spaces) before printing it."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(french_spacing(o) if isinstance(o, str) else o for o in objects), **kwargs)


def _say(text: str, file: Any = None) -> None:
    print(french_spacing(text), file=file)


def grade_command(args: argparse.Namespace, root: Path) -> int:
    skip_unused_imports()
    console = _FrenchConsole(stderr=False)
    errors = _FrenchConsole(stderr=True)
    logging.getLogger("autograder.grading").setLevel(logging.ERROR)
    assignment = args.assignment
    if not (root / "source" / assignment).is_dir():
        known = ", ".join(sorted(p.name for p in (root / "source").iterdir() if p.is_dir()))
        errors.print(f"autograder : erreur : TP inconnu « {assignment} » (TP de ce cours : {known}).")
        return 2
    isolated = not args.sans_isolation
    if isolated:
        available, reason = isolation_status()
        if not available:
            errors.print(
                f"autograder : erreur : impossible d'isoler les copies ({reason}).\n"
                "Installez bubblewrap (paquet Debian/Ubuntu « bubblewrap »), ou relancez avec --sans-isolation "
                "en connaissance de cause : le code des étudiant·e·s s'exécutera alors avec vos droits."
            )
            return 2
    else:
        errors.print(
            "⚠️  Correction SANS isolation : le code des étudiant·e·s s'exécute avec vos droits "
            "(il peut lire les solutions et modifier le carnet de notes)."
        )
    hierarchy, reason = cgroups.available()
    if hierarchy is None:
        errors.print(
            f"⚠️  Groupes de contrôle du noyau (`cgroups`) inutilisables ({reason}) : la mémoire et le nombre "
            "de processus sont limités processus par processus, pas pour chaque copie entière (voir `README.md`, "
            "« Chaque copie seule »)."
        )
    limits = _limits(cell_timeout=args.limite_cellule, notebook_timeout=args.limite_notebook, memory_mb=args.memoire)
    workers = args.processus or os.cpu_count() or 1
    # The warm workers start now: their preloading (PyTorch) overlaps the imports and the intake below.
    with WorkerPool(workers, limits, isolated=isolated, trusted=True) as pool:
        return _grade(args, root, assignment, console, errors, pool)


def _grade(
    args: argparse.Namespace, root: Path, assignment: str, console: Console, errors: Console, pool: WorkerPool
) -> int:
    from sqlalchemy.exc import SAWarning

    from autograder.grading import report, report_page
    from autograder.grading.intake import IntakeError, collect
    from autograder.grading.pipeline import Grader

    # Re-grading makes nbgrader's gradebook API emit SQLAlchemy autoflush warnings about rows it replaces;
    # the scores are unaffected (tests/test_grade_command.py::test_regrading_is_idempotent).
    warnings.filterwarnings("ignore", category=SAWarning)
    with tempfile.TemporaryDirectory(prefix="autograder-") as scratch:
        try:
            submissions = collect(Path(args.submissions), assignment, Path(scratch), args.liste)
        except IntakeError as error:
            errors.print(f"autograder : erreur : {error}")
            return 2
        if not submissions:
            errors.print(f"autograder : erreur : aucune copie trouvée dans {args.submissions}.")
            return 2
        grader = Grader(root, assignment, workers=pool.size, isolated=pool.isolated, limits=pool.limits)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"),
            console=console,
        ) as progress:
            task = progress.add_task("Correction", total=len(submissions), last="")

            def done(outcome: Outcome) -> None:
                progress.update(task, advance=1, last=outcome.submission.student_id)
                if outcome.graded and report_warm_up.ident is None:  # the workers are warm: the cores are free
                    report_warm_up.start()

            report_warm_up = threading.Thread(target=report_page.warm_up, name="autograder-report", daemon=True)

            pages = None
            if not args.sans_retours:
                pages = progress.add_task("Retours HTML", total=len(submissions), last="")

            def page_done(student: str) -> None:
                progress.update(pages, advance=1, last=student)

            # Each graded copy's feedback page is written while the next copies are graded.
            outcomes = grader.grade(
                submissions,
                on_done=done,
                feedback=not args.sans_retours,
                on_page=page_done if pages else None,
                pool=pool,
            )
            pool.close()  # its workers are done: the reports below have the machine
            if pages is not None:
                progress.update(pages, total=len(grader.pages), completed=len(grader.pages))
    grades_dir = root / "grades"
    csv_path = grades_dir / f"{assignment}.csv"
    moodle_path = grades_dir / f"{assignment}_moodle.csv"
    report.write_grades_csv(csv_path, outcomes, grader.grade_ids())
    report.write_moodle_csv(moodle_path, outcomes)
    report.summary(console, outcomes, assignment)
    console.print(f"Notes : {csv_path.relative_to(root)} · Moodle : {moodle_path.relative_to(root)}")
    if not args.sans_retours:
        console.print(f"Retours HTML : feedback/<étudiant·e>/{assignment}/{assignment}.html")
    _class_report(console, errors, root, assignment, outcomes, grader.grade_ids(), pool.catalogue)
    return 0


def _gradebook_facts(root: Path, assignment: str) -> tuple[dict[str, str], dict[str, float]]:
    """Students' names (id -> « Prénom Nom ») and the points of each graded cell, from nbgrader's gradebook."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.coursedir import CourseDirectory

    from autograder.grading.pipeline import load_course_config

    coursedir = CourseDirectory(config=load_course_config(root))
    names: dict[str, str] = {}
    points: dict[str, float] = {}
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for student in gb.students:
            names[student.id] = f"{student.first_name or ''} {student.last_name or ''}".strip()
        try:
            for notebook in gb.find_assignment(assignment).notebooks:
                points.update({cell.name: float(cell.max_score) for cell in notebook.grade_cells})
        except MissingEntry:
            pass
    return names, points


def _class_report(
    console: Console,
    errors: Console,
    root: Path,
    assignment: str,
    outcomes: list[Outcome],
    grade_ids: list[str],
    exercises: dict[str, dict[str, Any]] | None,
) -> None:
    """The mistakes CSV and the class report after a grading; a failure here never loses the grades."""
    from autograder.grading import class_report, mistakes, report

    try:
        names, points = _gradebook_facts(root, assignment)
        catalogue = mistakes.catalogue_of(assignment, exercises)  # from the trusted checker when it ran
        questions = mistakes.questions_of(assignment, {g: points.get(g, 0.0) for g in grade_ids}, catalogue)
        records = mistakes.records_of(outcomes, questions)
        grades_dir = root / "grades"
        mistakes.write_csv(class_report.paths(grades_dir, assignment)["erreurs"], records, questions)
        data, page = class_report.build(grades_dir, assignment, records, questions, names=names, new_run=True)
    except Exception as exc:  # noqa: BLE001 - the grades are written already
        errors.print(f"⚠️  Rapport de la classe non généré ({type(exc).__name__} : {exc}).")
        return
    report.top_mistakes(console, data, page.relative_to(root))


def report_command(args: argparse.Namespace, root: Path) -> int:
    """`autograder rapport`: rebuild the class report from the gradebook and the mistakes CSV, without grading."""
    from autograder.grading import class_report, mistakes, report

    console = _FrenchConsole(stderr=False)
    errors = _FrenchConsole(stderr=True)
    assignment = args.assignment
    grades_dir = root / "grades"
    files = class_report.paths(grades_dir, assignment, anonymous=args.anonyme)
    if not files["erreurs"].is_file():
        errors.print(
            f"autograder : erreur : {files['erreurs'].relative_to(root)} introuvable : corrigez d'abord le TP "
            f"avec « autograder grade {assignment} COPIES »."
        )
        return 2
    records, points = mistakes.read_csv(files["erreurs"])
    questions = mistakes.questions_of(assignment, points)
    names = {} if args.anonyme else _gradebook_facts(root, assignment)[0]
    data, page = class_report.build(grades_dir, assignment, records, questions, names=names, anonymous=args.anonyme)
    report.top_mistakes(console, data, page.relative_to(root))
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Run a notebook as the grader would (visible tests only) and report each graded cell."""
    import nbformat
    from nbgrader.utils import determine_grade

    path: Path = args.notebook
    if not path.is_file():
        _say(f"autograder : erreur : fichier introuvable : {path}", file=sys.stderr)
        return 2
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001
        _say(f"autograder : erreur : {path.name} n'est pas un notebook lisible ({exc}).", file=sys.stderr)
        return 2
    graded = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    if not graded:
        _say(f"{path.name} : aucune cellule de test (ce n'est pas un TP noté ?).")
        return 1
    limits = _limits(cell_timeout=args.limite_cellule)
    _say(f"Vérification de {path.name} (tests visibles seulement ; la correction ajoute des tests cachés)…")
    with WorkerPool(1, limits, isolated=False) as pool:
        result = pool.execute(nb, name=path.stem)
    total = earned = 0.0
    failures = 0
    for index in graded:
        cell = result.notebook.cells[index]
        meta = cell.metadata["nbgrader"]
        if cell.cell_type != "code":
            continue
        # Warnings on stderr cost nothing at grading time (IgnorePattern): ignore them here too.
        cell.outputs = [o for o in cell.outputs if not (o.get("name") == "stderr" and "Warning" in o.get("text", ""))]
        score, points = determine_grade(cell)
        score = score or 0.0
        total += points
        earned += score
        mark = "✅" if score == points else "❌"
        failures += score < points
        _say(f"{mark} {meta['grade_id']} : {score:g}/{points:g}")
        if score < points:
            for line in _error_lines(cell):
                _say(f"     {line}")
    _say(f"Total (tests visibles) : {earned:g}/{total:g}")
    if result.status != "ok":
        _say(f"⚠️  {result.message}")
    return 0 if failures == 0 and result.status == "ok" else 1


def _error_lines(cell) -> list[str]:
    lines = []
    for output in cell.outputs:
        if output.output_type == "error":
            lines.extend(ANSI.sub("", line) for line in output.traceback[-6:])
        elif output.get("name") == "stderr":
            lines.extend(output.text.strip().splitlines()[-3:])
    return [line for line in lines if line.strip()] or ["(échec sans message)"]
