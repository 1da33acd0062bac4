"""CSV files a spreadsheet can open without running anything: cells that could start a formula are escaped.

A student controls file and folder names, Moodle names and error messages; a cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return would be read by Excel or LibreOffice as a formula (CSV injection).
Such a cell is written with a leading apostrophe, which spreadsheets show as text; plain numbers (``-1``,
``2.5``) are left as they are. ``unescape`` gives back the original text when we read our own CSV files.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def escape(value: Any) -> str:
    """The text of a CSV cell that no spreadsheet takes for a formula."""
    text = "" if value is None else str(value)
    if _NUMBER.fullmatch(text):
        return text
    if text.startswith(FORMULA_START) or text.startswith(ESCAPE):
        # A leading apostrophe is escaped too, so that ``unescape`` is exact.
        return ESCAPE + text
    return text


def unescape(text: str) -> str:
    return text[1:] if text.startswith(ESCAPE) else text


def write_rows(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """A UTF-8 CSV file, every cell escaped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow([escape(name) for name in header])
        for row in rows:
            writer.writerow([escape(cell) for cell in row])


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by ``write_rows``, cells unescaped."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [{unescape(k): unescape(v or "") for k, v in row.items()} for row in csv.DictReader(handle)]
