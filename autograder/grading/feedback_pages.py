"""Students' HTML feedback pages, written by nbgrader's ``GenerateFeedback`` in background processes.

Pages are queued as soon as a copy is graded, so they are written while the next copies are graded. Each
process keeps one converter and one HTML exporter for the whole batch: compiling the feedback template
costs more than rendering a page, and nbgrader would compile it again for every student.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

FEEDBACK_CHUNK = 8  # below this many pages per process, starting another process costs more than it saves


def feedback_processes(workers: int, pages: int) -> int:
    """How many processes write ``pages`` pages beside ``workers`` grading workers: a page (about 0,05 s) is
    written faster than a copy is graded (about 0,35 s per worker), so one process per two workers keeps up
    and leaves the cores to the grading."""
    return max(1, min(workers // 2, pages // FEEDBACK_CHUNK + 1))


class FeedbackPages:
    """A few processes writing feedback pages; ``add`` a graded student, ``finish`` for the failures."""

    def __init__(self, root: Path, assignment: str, processes: int, on_page: Callable[[str], None] | None = None):
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._pool = ProcessPoolExecutor(processes, mp_context=context)
        self._root = str(root)
        self._assignment = assignment
        self._pending: dict[str, Future[str | None]] = {}
        self._on_page = on_page  # called with the student's id when a page is done (or failed)
        # Start the processes now: importing nbgrader overlaps with the grading.
        for _ in range(processes):
            self._pool.submit(_warm_up, self._root, self._assignment)

    def add(self, student: str) -> None:
        future = self._pending[student] = self._pool.submit(_write_page, self._root, self._assignment, student)
        if self._on_page is not None:
            on_page = self._on_page
            future.add_done_callback(lambda _future: on_page(student))

    def finish(self) -> dict[str, str]:
        """Wait for every page; the students whose page could not be written, with the reason."""
        failures: dict[str, str] = {}
        for student, future in self._pending.items():
            try:
                problem = future.result()
            except Exception as error:  # noqa: BLE001 - a process of the pool died: that page is missing
                problem = f"{type(error).__name__} : {error}"
            if problem is not None:
                failures[student] = problem
        return failures

    def close(self) -> None:
        """Stop the processes (the pages not written yet are dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- in the pool's processes ---------------------------------------------------------------------------
_converters: dict[tuple[str, str], Any] = {}


def _converter(root: str, assignment: str) -> Any:
    key = (root, assignment)
    if key not in _converters:
        from autograder.grading.lean_imports import skip_unused_imports

        skip_unused_imports()
        from nbconvert.writers import FilesWriter
        from nbgrader.converters import GenerateFeedback
        from nbgrader.coursedir import CourseDirectory

        from autograder.grading.feedback_grades import at_once
        from autograder.grading.nbgrader_speedups import faster_nbgrader
        from autograder.grading.pipeline import NBGRADER_LOG, load_course_config

        class OneExporterFeedback(GenerateFeedback):
            """nbgrader's GenerateFeedback, building its writer and HTML exporter once."""

            def start(self) -> None:
                self.init_notebooks()
                if not self.trait_has_value("exporter"):
                    self.writer = FilesWriter(parent=self, config=self.config)
                    self.exporter = self.exporter_class(parent=self, config=self.config)
                    for preprocessor in self.preprocessors:
                        self.exporter.register_preprocessor(preprocessor)
                current = os.getcwd()
                os.chdir(self.coursedir.root)
                try:
                    self.convert_notebooks()
                finally:
                    os.chdir(current)

        speedups = faster_nbgrader()
        speedups.__enter__()  # for the life of this process, which only writes feedback pages
        config = load_course_config(Path(root))
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = assignment
        _converters[key] = OneExporterFeedback(coursedir=coursedir, config=config, log=NBGRADER_LOG)
        _converters[key].force = True
        _converters[key].preprocessors = at_once(_converters[key].preprocessors)
    return _converters[key]


def _warm_up(root: str, assignment: str) -> None:
    _converter(root, assignment)


def _write_page(root: str, assignment: str, student: str) -> str | None:
    """nbgrader's feedback page of one graded student; None, or why it could not be written."""
    converter = _converter(root, assignment)
    converter.coursedir.student_id = student
    try:
        converter.start()
    except Exception as error:  # noqa: BLE001 - reported in that student's notes
        return str(error) or type(error).__name__
    return None
