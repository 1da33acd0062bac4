"""The landing page `make lab` opens: it lists every lesson and TP, in order, and its links all lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from tests.notebook_tools import ASSIGNMENTS, LESSONS, ROOT, read, release_notebook

SOMMAIRE = ROOT / "notebooks" / "00_sommaire.ipynb"
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def links() -> list[str]:
    text = "\n".join(c.source for c in read(SOMMAIRE).cells if c.cell_type == "markdown")
    return LINK.findall(text)


def course_notebooks() -> list[Path]:
    return [p for p in LESSONS if p != SOMMAIRE] + [release_notebook(a) for a in ASSIGNMENTS]


def test_every_link_points_to_an_existing_file():
    assert links()
    for target in links():
        assert not re.match(r"[a-z]+:", target), f"lien externe dans le sommaire : {target}"
        assert (SOMMAIRE.parent / target).resolve().is_file(), f"le lien « {target} » ne mène à aucun fichier"


def test_every_lesson_and_tp_is_listed():
    listed = {(SOMMAIRE.parent / target).resolve() for target in links()}
    missing = [p.relative_to(ROOT).as_posix() for p in course_notebooks() if p.resolve() not in listed]
    assert not missing, f"absents du sommaire : {missing}"


def test_lessons_come_in_order_each_before_its_tp():
    order = [(SOMMAIRE.parent / target).resolve() for target in links()]
    lessons = [p for p in order if p.parent == SOMMAIRE.parent]
    assert lessons == sorted(lessons)
    for tp in (p for p in order if p.parent.parent.name == "release"):
        number = re.match(r"tp(\d+)_", tp.stem)
        assert number, tp
        lesson = next(p for p in lessons if p.name.startswith(f"{int(number.group(1)):02d}_"))
        assert order.index(lesson) < order.index(tp), f"{tp.name} avant sa leçon {lesson.name}"


def test_sommaire_is_a_clean_french_notebook():
    nb = read(SOMMAIRE)
    headings = [
        len(line) - len(line.lstrip("#"))
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("#")
    ]
    assert headings[0] == 1 and headings.count(1) == 1 and nb.cells[0].source.startswith("# ")
    assert all(b - a <= 1 for a, b in zip(headings, headings[1:], strict=False)), headings
    assert all(c.cell_type == "markdown" or (not c.outputs and c.execution_count is None) for c in nb.cells)
    for c in nb.cells:
        prose = re.sub(r"`[^`]*`|\]\([^)]*\)", "", c.source)
        assert not re.search(r"[^\u00a0][:;!?](\s|$)", prose), prose
        assert not re.search(r"«[^\u00a0]|[^\u00a0]»", prose), prose
