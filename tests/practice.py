"""Shared machinery of the lesson practice tests: one fixture module per lesson, one generic test file.

A lesson's fixture module (``tests/fixtures/lesson<N>_practice.py``) defines ``NOTEBOOK``, ``PREFIX`` and the
answers: ``RIGHT`` (exercise id -> list of right answer namespaces), ``UNTOUCHED`` (the placeholder left in the
notebook) and ``MISTAKES`` (typical mistakes, each with the fragment of its own French message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from autograder import check


@dataclass
class Mistake:
    exercise_id: str
    behaviour: str
    answers: dict[str, Any] = field(repr=False)
    expected: str


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def verdict(exercise_id: str, namespace: dict[str, Any], capsys, seed: int = 0) -> str:
    check(exercise_id, namespace, seed=seed)  # practice: never raises
    return plain(capsys.readouterr().out)


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def cells_of(lesson, exercise_id):
    """(statement markdown, answer cell, solution markdown) of a practice question in a lesson notebook."""
    cells = lesson.cells
    index = next(
        i for i, c in enumerate(cells) if c.cell_type == "code" and c.source == f'check("{exercise_id}", globals())'
    )
    statement = next(c for c in reversed(cells[:index]) if c.cell_type == "markdown")
    solution = cells[index + 1]
    return statement, cells[index - 1], solution


def statement_namespace(lesson, exercise_id: str, block: int = 0) -> dict[str, Any]:
    """Run a code block shown in a practice question's statement; return what it defined."""
    statement, _, _ = cells_of(lesson, exercise_id)
    namespace: dict[str, Any] = {"torch": torch}
    exec(code_blocks(statement.source)[block], namespace)
    return namespace
