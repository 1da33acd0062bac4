"""Two costs of nbgrader's API that a batch pays once instead of once per copy; the results are unchanged.

- ``jsonschema.validate(instance, schema)`` checks the schema itself against its meta-schema at every call;
  nbgrader validates every cell's metadata that way, twice per copy (about 0,1 s of the host's time per
  copy). Here one validator per schema is built, checked once and reused; the same errors are raised.
- Each ``nbgrader.api.Gradebook(...)`` creates a SQLAlchemy engine, inspects the database, runs
  ``create_all`` and looks the course up, creating it when missing (about 10 of them per copy, 9 ms each).
  Here one engine per database URL is shared by the batch (``NullPool``: every session still opens its own
  connection, so threads never wait on a pool), the tables are created at most once per URL, and the course
  is looked up once per URL (``check_course`` has no other caller than ``Gradebook.__init__``, which ignores
  its result; nothing deletes a course during a batch).

Applied only around a batch (``faster_nbgrader()``), in the process that runs it; nbgrader's own commands
are untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest.mock import patch

import jsonschema
from jsonschema.exceptions import best_match
from nbgrader import api as nbgrader_api
from nbgrader.nbgraderformat import common as nbgrader_format
from sqlalchemy.pool import NullPool

_lock = threading.Lock()
_validators: dict[str, Any] = {}
_engines: dict[str, Any] = {}
_tables_ready: set[str] = set()
_courses_ready: set[tuple[str, str]] = set()
_real_create_engine = nbgrader_api.create_engine
_real_inspect = nbgrader_api.inspect
_real_create_all = nbgrader_api.Base.metadata.create_all
_real_check_course = nbgrader_api.Gradebook.check_course


def validate(instance: Any, schema: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    """``jsonschema.validate`` with the schema checked once: raises the same best-matching error."""
    if args or kwargs:
        jsonschema.validate(instance, schema, *args, **kwargs)
        return
    key = json.dumps(schema, sort_keys=True)
    validator = _validators.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema)
        with _lock:
            _validators[key] = validator
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


class _JsonSchema:
    """Stands for the ``jsonschema`` module inside ``nbgrader.nbgraderformat.common``."""

    validate = staticmethod(validate)

    def __getattr__(self, name: str) -> Any:
        return getattr(jsonschema, name)


def _create_engine(url: Any, **kwargs: Any) -> Any:
    key = str(url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _real_create_engine(url, poolclass=NullPool, **kwargs)
        return engine


class _Inspector:
    """``inspect(engine)`` as nbgrader uses it: only to know whether the database has tables yet."""

    def __init__(self, engine: Any):
        self.engine = engine

    def get_table_names(self) -> list[str]:
        if str(self.engine.url) in _tables_ready:
            return ["alembic_version"]
        return _real_inspect(self.engine).get_table_names()


def _create_all(bind: Any = None, **kwargs: Any) -> None:
    key = str(bind.url)
    if key in _tables_ready:
        return
    _real_create_all(bind=bind, **kwargs)
    with _lock:
        _tables_ready.add(key)


def _check_course(self: Any, course_id: str = "default_course", **kwargs: Any) -> Any:
    key = (str(self.engine.url), course_id)
    if key in _courses_ready and not kwargs:
        return None
    course = _real_check_course(self, course_id=course_id, **kwargs)
    with _lock:
        _courses_ready.add(key)
    return course


@contextmanager
def faster_nbgrader() -> Iterator[None]:
    """nbgrader's API with cached schema validators and one engine per gradebook, for one batch."""
    with ExitStack() as stack:
        stack.enter_context(patch.object(nbgrader_format, "jsonschema", _JsonSchema()))
        stack.enter_context(patch.object(nbgrader_api, "create_engine", _create_engine))
        stack.enter_context(patch.object(nbgrader_api, "inspect", _Inspector))
        stack.enter_context(patch.object(nbgrader_api.Base.metadata, "create_all", _create_all))
        stack.enter_context(patch.object(nbgrader_api.Gradebook, "check_course", _check_course))
        try:
            yield
        finally:
            with _lock:
                engines = list(_engines.values())
                _engines.clear()
                _tables_ready.clear()
                _courses_ready.clear()
            for engine in engines:
                engine.dispose()
