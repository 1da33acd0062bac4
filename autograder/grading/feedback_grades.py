"""nbgrader's ``GetGrades`` with one query per page instead of two per graded cell.

The feedback page shows each graded cell's score and each answer's comment, read from the gradebook.
nbgrader's ``GetGrades`` asks for them cell by cell (``find_grade``, ``find_comment``), about 35 ORM
queries per copy, half the time of a page once the release's text is rendered once per process
(``feedback_exporter``). This preprocessor reads the copy's grades and comments in two queries and
fills the same metadata; a cell missing from the gradebook fails the page as nbgrader's does.
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.api import BaseCell, Comment, Grade, Gradebook, MissingEntry
from nbgrader.preprocessors import GetGrades


class GetGradesAtOnce(GetGrades):
    """``GetGrades`` (nbgrader 0.9) reading a copy's grades and comments once."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            notebook = gradebook.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            grades = gradebook.db.query(BaseCell.name, Grade.score, Grade.max_score).join(
                Grade, Grade.cell_id == BaseCell.id
            )
            comments = gradebook.db.query(BaseCell.name, Comment.comment).join(Comment, Comment.cell_id == BaseCell.id)
            own = grades.filter(Grade.notebook_id == notebook.id)
            self._scores = {name: (score, points) for name, score, points in own}
            self._comments = dict(comments.filter(Comment.notebook_id == notebook.id).all())
            nb, resources = Preprocessor.preprocess(self, nb, resources)  # each cell, with the rows read above
            late_penalty = notebook.late_submission_penalty
            if late_penalty is None:
                late_penalty = 0
            else:
                self.log.warning(f"Late submission penalty: {late_penalty}")
            info["score"] = notebook.score - late_penalty
            info["max_score"] = notebook.max_score
            info["late_penalty"] = late_penalty
        return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: Any, cell_index: int) -> tuple[NotebookNode, Any]:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if utils.is_solution(cell) or utils.is_task(cell):
            if grade_id not in self._comments:
                raise MissingEntry()
            cell.metadata.nbgrader["comment"] = self._comments[grade_id]
        if utils.is_grade(cell) or utils.is_task(cell):
            if grade_id not in self._scores:
                raise MissingEntry()
            cell.metadata.nbgrader["score"], cell.metadata.nbgrader["points"] = self._scores[grade_id]
        return cell, resources


def at_once(preprocessors: list[Any]) -> list[Any]:
    """A converter's preprocessors (classes or import paths) with nbgrader's ``GetGrades`` replaced by ours."""
    return [GetGradesAtOnce if p in (GetGrades, "nbgrader.preprocessors.GetGrades") else p for p in preprocessors]
