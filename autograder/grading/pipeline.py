"""Grade many submissions with nbgrader's own semantics, executed in parallel sandboxed workers.

For each student, nbgrader's ``Autograde`` converter runs as usual (student created in the gradebook,
locked and test cells restored by ``OverwriteCells``, hidden tests put back, grades saved by
``SaveAutoGrades``), except that its ``Execute`` step hands the notebook to a warm worker of
``WorkerPool`` instead of starting a fresh Jupyter kernel. Students are processed by a thread pool,
so the workers are kept busy while nbgrader prepares and saves the other notebooks.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest.mock import patch

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader import utils as nbgrader_utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder.grading.executor import ExecutionLimits, ExecutionResult, WorkerPool
from autograder.grading.feedback_pages import FeedbackPages, feedback_processes
from autograder.grading.intake import TAMPERED, Submission
from autograder.grading.nbgrader_speedups import faster_nbgrader
from autograder.grading.outcome import ABSENT, GRADED, GRADED_PARTIAL, NOT_GRADED, Outcome
from autograder.verdict import CRASHED, NOT_A_CHECK, Verdict

log = logging.getLogger("autograder.grading")
# nbgrader's own log (per-cell checksum warnings, tracebacks): outcomes carry what matters, in French.
NBGRADER_LOG = logging.getLogger("autograder.grading.nbgrader")
NBGRADER_LOG.addHandler(logging.NullHandler())
NBGRADER_LOG.propagate = False


class KeepLastDuplicate(DeduplicateIds):
    """nbgrader's DeduplicateIds leaves ``nbgrader: {}`` on duplicates, which aborts the whole batch
    with SchemaTooOldError (nbgrader #1083). Remove the metadata instead: the duplicate becomes a plain cell."""

    def preprocess_cell(self, cell, resources, cell_index):
        if not (nbgrader_utils.is_grade(cell) or nbgrader_utils.is_solution(cell) or nbgrader_utils.is_locked(cell)):
            return cell, resources
        grade_id = cell.metadata.nbgrader["grade_id"]
        if grade_id in self.grade_ids:
            del cell.metadata["nbgrader"]
            cell.metadata.pop("editable", None)
            cell.metadata.pop("deletable", None)
        else:
            self.grade_ids.add(grade_id)
        return cell, resources


class RestoreTestCellTags(NbGraderPreprocessor):
    """nbgrader restores a test cell's source and points, not its tags: a ``skip-execution`` (or any tag) a
    student added to a locked cell would change how it runs. Put back the release's tags of every locked cell."""

    def __init__(self, release: nbformat.NotebookNode, **kwargs):
        super().__init__(**kwargs)
        self.tags = {
            c.metadata["nbgrader"]["grade_id"]: list(c.metadata.get("tags", []))
            for c in release.cells
            if c.metadata.get("nbgrader", {}).get("locked") and c.metadata["nbgrader"].get("grade_id")
        }

    def preprocess_cell(self, cell, resources, cell_index):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id in self.tags and (meta.get("locked") or meta.get("grade")):
            if self.tags[grade_id]:
                cell.metadata["tags"] = list(self.tags[grade_id])
            else:
                cell.metadata.pop("tags", None)
        return cell, resources


class PoolExecute(NbGraderPreprocessor):
    """Stands in for nbgrader's ``Execute``: runs the sanitized notebook in a warm sandboxed worker."""

    def __init__(self, pool: WorkerPool, name: str, files: dict[str, bytes], **kwargs):
        super().__init__(**kwargs)
        self.pool = pool
        self.name = name
        self.files = files  # the assignment's data and helper files, as nbgrader copies them next to each copy
        self.result: ExecutionResult | None = None

    def preprocess(self, nb, resources):
        self.result = self.pool.submit(nb, name=self.name, files=self.files).result()
        executed = self.result.notebook
        # Keep nbgrader's sanitized cells (metadata, sources) and take only what execution produced.
        for cell, done in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs = done.get("outputs", [])
                cell.execution_count = done.get("execution_count")
        return nb, resources


@contextmanager
def _environment_left_alone(**_variables: str) -> Iterator[None]:
    """Replaces nbgrader's ``utils.setenv`` during a batch: it sets then deletes NBGRADER_EXECUTION in
    ``os.environ``, which breaks when several students are processed by threads (KeyError). The sandboxed
    workers set NBGRADER_EXECUTION=autograde themselves."""
    yield


def load_course_config(root: Path) -> Config:
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    return config


def _course_dir(config: Config, assignment: str, student: str = ".") -> CourseDirectory:
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    return coursedir


def ensure_assignment_generated(root: Path, assignment: str, config: Config) -> None:
    """autograde needs the assignment's cells in the gradebook, and the reports read release/: run nbgrader's
    generate_assignment when either is missing (it writes the same release/ as `make release`)."""
    coursedir = _course_dir(config, assignment)
    if (root / "release" / assignment / f"{assignment}.ipynb").exists():
        with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
            try:
                if gb.find_assignment(assignment).notebooks:
                    return
            except MissingEntry:
                pass
    generator = GenerateAssignment(coursedir=coursedir, config=config)
    generator.force = True
    generator.start()


def _student_folder(root: Path, student: str, assignment: str) -> Path:
    return root / "submitted" / student / assignment


def place_submission(root: Path, assignment: str, sub: Submission) -> None:
    """Copy the notebook where nbgrader expects it: submitted/<student>/<assignment>/<assignment>.ipynb."""
    folder = _student_folder(root, sub.student_id, assignment)
    target = folder / f"{assignment}.ipynb"
    if sub.notebook is not None and sub.notebook.resolve() == target.resolve():
        return  # already in nbgrader's layout, in this course
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(sub.notebook, target)
    if sub.timestamp:
        (folder / "timestamp.txt").write_text(sub.timestamp + "\n", encoding="utf-8")


def tampering_notes(release: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """French notes on what the student changed in cells they should not touch (restored by nbgrader)."""
    notes = []
    reference = {
        c.metadata["nbgrader"]["grade_id"]: c for c in release.cells if c.metadata.get("nbgrader", {}).get("locked")
    }
    seen: dict[str, int] = {}
    for cell in submitted.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            seen[grade_id] = seen.get(grade_id, 0) + 1
            original = reference.get(grade_id)
            if original is not None and cell.source != original.source:
                notes.append(f"cellule verrouillée « {grade_id} » modifiée : rétablie avant la correction")
    for grade_id, count in seen.items():
        if count > 1:
            notes.append(f"cellule « {grade_id} » présente {count} fois : seule la dernière est corrigée")
    for grade_id in reference:
        if grade_id not in seen:
            notes.append(f"cellule verrouillée « {grade_id} » supprimée : rétablie avant la correction")
    return notes


class Grader:
    """Grade one assignment of a course; thread-safe use of nbgrader, one converter per student."""

    def __init__(
        self,
        root: Path,
        assignment: str,
        *,
        workers: int | None = None,
        isolated: bool = True,
        limits: ExecutionLimits | None = None,
        trusted: bool = True,
    ) -> None:
        self.root = Path(root).resolve()
        # Test cells of check(...) calls are decided by the trusted checker (autograder.grading.checker);
        # False runs them in the copy's kernel, as nbgrader does.
        self.trusted = trusted
        self.assignment = assignment
        self.workers = workers or os.cpu_count() or 1
        self.isolated = isolated
        self.limits = limits or ExecutionLimits()
        self.config = load_course_config(self.root)
        # nbconvert validates the notebook after each of the dozen preprocessors of a copy: once at the end is
        # enough (an invalid copy is refused all the same), and saves about 20 ms of the host's time per copy.
        self.config.Exporter.optimistic_validation = True
        self._lock = threading.Lock()
        self._release_cache: nbformat.NotebookNode | None = None
        self.pages: dict[str, Path] = {}  # student -> feedback page, after grade(feedback=True)

    # -- one student -----------------------------------------------------------------------------
    def _autograde(self, pool: WorkerPool, sub: Submission) -> Outcome:
        coursedir = _course_dir(self.config, self.assignment, sub.student_id)
        execute = PoolExecute(pool, sub.student_id, self._assignment_files(), config=self.config)
        converter = Autograde(coursedir=coursedir, config=self.config, log=NBGRADER_LOG)
        converter.force = True
        converter.sanitize_preprocessors = [
            ClearOutput,
            KeepLastDuplicate,
            OverwriteKernelspec,
            OverwriteCells,
            RestoreTestCellTags(self._release(), config=self.config),
            CheckCellMetadata,
        ]
        converter.autograde_preprocessors = [
            execute,
            IgnorePattern,
            ClearMetadataPreprocessor,
            LimitOutput,
            SaveAutoGrades,
            AssignLatePenalties,
            CheckCellMetadata,
        ]
        outcome = Outcome(sub, GRADED)
        try:
            with self._lock:  # the student row and the submission row are created serially
                with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
                    gb.update_or_create_student(
                        sub.student_id, first_name=sub.first_name, last_name=sub.last_name, email=sub.email or None
                    )
            converter.start()
        except BaseException as exc:  # noqa: BLE001 - one bad submission never stops the others
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome.status = NOT_GRADED
            outcome.reason = f"erreur de nbgrader ({type(exc).__name__}) : {str(exc).strip()[:300]}"
            return outcome
        result = execute.result
        if result is not None:
            outcome.verdicts = {grade_id: Verdict(**verdict) for grade_id, verdict in result.verdicts.items()}
            outcome.notes = list(result.notes)
        if result is not None and result.status != "ok":
            outcome.execution = result.status
            outcome.status = GRADED_PARTIAL
            outcome.reason = result.message
        return outcome

    # -- the batch -------------------------------------------------------------------------------
    def grade(
        self,
        submissions: list[Submission],
        *,
        on_done: Callable[[Outcome], None] | None = None,
        feedback: bool = False,
        on_page: Callable[[str], None] | None = None,
        pool: WorkerPool | None = None,
    ) -> list[Outcome]:
        """Grade every submission; ``feedback``: also write each graded student's HTML page, while the
        next copies are graded (``self.pages`` then lists them; ``on_page`` is told of each). ``pool``: warm
        workers already started by the caller (who closes them), else the batch starts its own."""
        release = nbformat.read(self._release_notebook(), as_version=4)
        outcomes: list[Outcome] = []
        gradable = []
        for sub in submissions:
            if sub.problem is not None or sub.notebook is None:
                status = ABSENT if sub.problem == "aucune copie rendue" else NOT_GRADED
                outcome = Outcome(sub, status, reason=sub.problem or "aucun notebook", notes=list(sub.notes))
                outcomes.append(outcome)
                if on_done:
                    on_done(outcome)
                continue
            place_submission(self.root, self.assignment, sub)
            submitted = nbformat.read(sub.notebook, as_version=4)
            tampered = tampering_notes(release, submitted)
            sub.notes.extend(tampered)
            sub.review.extend((TAMPERED, note) for note in tampered)
            gradable.append(sub)
        pages: FeedbackPages | None = None  # started with the first graded copy: the workers are warm by then
        failures: dict[str, str] = {}
        try:
            if gradable:
                with (
                    faster_nbgrader(),
                    patch.object(nbgrader_utils, "setenv", _environment_left_alone),
                    nullcontext(pool) if pool is not None else self._new_pool() as pool,
                    ThreadPoolExecutor(max_workers=2 * self.workers) as threads,
                ):
                    futures = [threads.submit(self._autograde, pool, sub) for sub in gradable]
                    for future in as_completed(futures):
                        outcome = future.result()
                        outcome.notes = list(outcome.submission.notes) + outcome.notes
                        outcomes.append(outcome)
                        if feedback and outcome.graded:
                            if pages is None:
                                processes = feedback_processes(self.workers, len(gradable))
                                pages = FeedbackPages(self.root, self.assignment, processes, on_page)
                            pages.add(outcome.submission.student_id)
                        if on_done:
                            on_done(outcome)
            if pages is not None:
                failures = pages.finish()
        finally:
            if pages is not None:
                pages.close()
        self._read_scores(outcomes)
        if feedback:
            self.pages = self._pages(outcomes, failures)
        return sorted(outcomes, key=lambda o: (o.submission.student_id == "", o.submission.student_id))

    def _new_pool(self) -> WorkerPool:
        return WorkerPool(self.workers, self.limits, isolated=self.isolated, trusted=self.trusted)

    def _assignment_files(self) -> dict[str, bytes]:
        """Non-notebook files of source/<assignment>/ (data, helper modules), keyed by relative path."""
        folder = self.root / "source" / self.assignment
        return {
            str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts
        }

    def _release(self) -> nbformat.NotebookNode:
        if self._release_cache is None:
            self._release_cache = nbformat.read(self._release_notebook(), as_version=4)
        return self._release_cache

    def _release_notebook(self) -> Path:
        ensure_assignment_generated(self.root, self.assignment, self.config)
        return self.root / "release" / self.assignment / f"{self.assignment}.ipynb"

    def grade_ids(self) -> list[str]:
        """Graded cells in notebook order (the CSV columns)."""
        cells = nbformat.read(self._release_notebook(), as_version=4).cells
        return [c.metadata["nbgrader"]["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("grade")]

    def _read_scores(self, outcomes: list[Outcome]) -> None:
        coursedir = _course_dir(self.config, self.assignment)
        with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
            maximum = float(gb.find_assignment(self.assignment).max_score)
            for outcome in outcomes:
                outcome.max_score = maximum
                if not outcome.graded:
                    continue
                submission = gb.find_submission(self.assignment, outcome.submission.student_id)
                outcome.score = float(submission.score)
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        outcome.scores[grade.name] = float(grade.score)
                        verdict = outcome.verdicts.get(grade.name)
                        if verdict is None and self.trusted:
                            # the copy never ran (no worker could start); untrusted grading records no verdict
                            outcome.verdicts[grade.name] = Verdict(
                                grade.name, CRASHED, float(grade.score), float(grade.max_score), outcome.reason
                            )
                        elif verdict is not None and verdict.code == NOT_A_CHECK:
                            # a plain test cell: nbgrader's own score
                            verdict.points = float(grade.score)

    def _pages(self, outcomes: list[Outcome], failures: dict[str, str]) -> dict[str, Path]:
        """The feedback page of every graded student, and a French note for those whose page failed."""
        pages = {}
        for outcome in outcomes:
            student = outcome.submission.student_id
            if not outcome.graded:
                continue
            if student in failures:
                outcome.notes.append(f"retour HTML non généré : {failures[student]}")
                continue
            pages[student] = self.root / "feedback" / student / self.assignment / f"{self.assignment}.html"
        return pages
