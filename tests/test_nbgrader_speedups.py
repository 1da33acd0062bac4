"""What a grading batch changes in nbgrader's API (``faster_nbgrader``): same results, fewer repeated costs,
and nbgrader left as it was after the batch."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from unittest.mock import patch

import jsonschema
import pytest
from nbgrader import api as nbgrader_api
from nbgrader.api import Course, Gradebook

from autograder.grading import nbgrader_speedups
from autograder.grading.nbgrader_speedups import faster_nbgrader, validate


@pytest.fixture(autouse=True)
def _alembic_on_path(monkeypatch):
    """A new gradebook runs nbgrader's `alembic` command, installed next to this Python."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))


def test_a_batch_looks_each_course_up_once_and_creates_it_when_missing(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    original = nbgrader_api.Gradebook.check_course
    looked_up = []

    def spy(self, course_id="default_course", **kwargs):
        looked_up.append(course_id)
        return original(self, course_id=course_id, **kwargs)

    with patch.object(nbgrader_speedups, "_real_check_course", spy), faster_nbgrader():
        with Gradebook(url, "cours") as gb:
            assert [c.id for c in gb.db.query(Course)] == ["cours"]
        with Gradebook(url, "cours") as gb:
            gb.add_student("dupont")
        with Gradebook(url, "autre_cours") as gb:  # another course is still created
            assert sorted(c.id for c in gb.db.query(Course)) == ["autre_cours", "cours"]
    assert looked_up == ["cours", "autre_cours"]
    assert nbgrader_api.Gradebook.check_course is original
    assert nbgrader_api.create_engine is nbgrader_speedups._real_create_engine


def test_after_a_batch_a_new_gradebook_is_checked_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with faster_nbgrader():
        Gradebook(url, "cours").close()
    (tmp_path / "gradebook.db").unlink()
    with faster_nbgrader():
        with Gradebook(url, "cours") as gb:
            assert [c.id for c in gb.db.query(Course)] == ["cours"]


def test_the_cached_validator_raises_the_same_error_as_jsonschema():
    schema = {"type": "object", "properties": {"points": {"type": "number"}}, "required": ["points"]}
    validate({"points": 2}, schema)
    for instance in ({"points": "deux"}, {}):
        with pytest.raises(jsonschema.ValidationError) as ours:
            validate(instance, schema)
        with pytest.raises(jsonschema.ValidationError) as theirs:
            jsonschema.validate(instance, schema)
        assert ours.value.message == theirs.value.message
