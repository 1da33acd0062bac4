"""Lesson practice questions, for every lesson: the right answers pass, each typical mistake gets its own
message, an untouched placeholder reads « non tentée », hints come one by one, and the notebook's placeholder and
solution agree with the checker. The answers live in ``tests/fixtures/lesson<N>_practice.py``."""

from __future__ import annotations

import importlib
from typing import Any

import nbformat
import pytest
import torch

from autograder import get_exercise
from autograder.exercise import all_exercises
from tests.practice import cells_of, code_blocks, verdict

LESSONS = {
    name: importlib.import_module(f"tests.fixtures.{name}")
    for name in ("lesson1_practice", "lesson2_practice", "lesson3_practice")
}


def ids_of(fixture) -> list[str]:
    return sorted(e.id for e in all_exercises() if e.id.startswith(fixture.PREFIX))


QUESTIONS = [(name, q) for name, fixture in LESSONS.items() for q in ids_of(fixture)]
RIGHT = [(q, answers) for fixture in LESSONS.values() for q, many in fixture.RIGHT.items() for answers in many]
MISTAKES = [(name, m) for name, fixture in LESSONS.items() for m in fixture.MISTAKES]


def test_every_lesson_notebook_has_its_practice_fixture():
    notebooks = {fixture.NOTEBOOK.name for fixture in LESSONS.values()}
    lessons = {p.name for p in LESSONS["lesson1_practice"].NOTEBOOK.parent.glob("[0-9][1-9]_*.ipynb")}
    assert lessons == notebooks


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_has_three_to_five_practice_questions(name):
    fixture = LESSONS[name]
    ids = ids_of(fixture)
    assert 3 <= len(ids) <= 5
    assert set(ids) == set(fixture.RIGHT) == set(fixture.UNTOUCHED) == {m.exercise_id for m in fixture.MISTAKES}
    for exercise_id in ids:
        exercise = get_exercise(exercise_id)
        assert exercise.assignment is None and exercise.points == 0
        assert exercise.title and len(exercise.hints) >= 2 and exercise.names


@pytest.mark.parametrize(("exercise_id", "answers"), RIGHT, ids=[f"{q}-{i}" for i, (q, _) in enumerate(RIGHT)])
@pytest.mark.parametrize("seed", [0, 1, 2026])
def test_right_answer_passes(exercise_id, answers, seed, capsys):
    out = verdict(exercise_id, dict(answers), capsys, seed)
    assert out.startswith(f"✅ {exercise_id} — Correct"), out
    assert "❌" not in out


@pytest.mark.parametrize(("name", "mistake"), MISTAKES, ids=[f"{m.exercise_id}-{m.behaviour}" for _, m in MISTAKES])
def test_typical_mistake_gets_its_own_message(name, mistake, capsys):
    out = verdict(mistake.exercise_id, dict(mistake.answers), capsys)
    assert out.startswith(f"❌ {mistake.exercise_id} — Réponse incorrecte"), out
    assert mistake.expected in out, out
    assert f'hint("{mistake.exercise_id}")' in out
    others = [m.expected for m in LESSONS[name].MISTAKES if m.exercise_id == mistake.exercise_id and m is not mistake]
    assert not any(other in out for other in others), out


@pytest.mark.parametrize(("name", "exercise_id"), QUESTIONS, ids=[q for _, q in QUESTIONS])
def test_untouched_placeholder_is_not_attempted(name, exercise_id, capsys):
    out = verdict(exercise_id, dict(LESSONS[name].UNTOUCHED[exercise_id]), capsys)
    assert out.startswith(f"⬜ {exercise_id} — Question non tentée"), out


@pytest.mark.parametrize(("name", "exercise_id"), QUESTIONS, ids=[q for _, q in QUESTIONS])
def test_missing_name_is_not_attempted(name, exercise_id, capsys):
    assert "non tentée" in verdict(exercise_id, {}, capsys)


@pytest.mark.parametrize(("name", "exercise_id"), QUESTIONS, ids=[q for _, q in QUESTIONS])
def test_hints_are_revealed_one_by_one(name, exercise_id):
    exercise = get_exercise(exercise_id)
    exercise.hints_shown = 0
    first, second = exercise.next_hint(), exercise.next_hint()
    total = len(exercise.hints)
    assert f"Indice 1/{total}" in first and f"Indice 2/{total}" in second and first != second
    exercise.hints_shown = 0


@pytest.fixture(scope="module")
def notebooks():
    return {name: nbformat.read(fixture.NOTEBOOK, as_version=4) for name, fixture in LESSONS.items()}


@pytest.mark.parametrize(("name", "exercise_id"), QUESTIONS, ids=[q for _, q in QUESTIONS])
def test_notebook_placeholder_reads_not_attempted_and_solution_passes(notebooks, name, exercise_id, capsys):
    statement, answer_cell, solution = cells_of(notebooks[name], exercise_id)
    assert f'hint("{exercise_id}")' in statement.source
    assert "VOTRE" in answer_cell.source
    namespace: dict[str, Any] = {"torch": torch}
    exec(answer_cell.source, namespace)
    assert "non tentée" in verdict(exercise_id, namespace, capsys)
    assert solution.cell_type == "markdown" and solution.source.startswith("<details><summary>Solution</summary>")
    (code,) = code_blocks(solution.source)
    namespace = {"torch": torch}
    exec(code, namespace)
    assert verdict(exercise_id, namespace, capsys).startswith(f"✅ {exercise_id} — Correct")
