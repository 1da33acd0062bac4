"""A verdict shown as feedback in JupyterLab: a coloured box with the question's title, the explanation, the hint
and a link to the lesson section to reread.

The box is rich output (``text/html``) with the same verdict as ``text/plain`` next to it, for the terminal, for
screen readers and for any front end that does not render HTML. Colour is never the only signal: the icon is
followed by its label (« Correct », « Réponse incorrecte », « Question non tentée »).
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from autograder import mode
from autograder.typography import french_spacing
from autograder.verdict import CheckFailed, NotAttempted, plain_text, points_text

# (border, background) of each kind; dark text on light backgrounds, readable in light and dark themes.
_COLOURS = {
    "correct": ("#1a7f37", "#e8f5ec"),
    "incorrect": ("#c62828", "#fdecea"),
    "not_attempted": ("#6b7280", "#f1f3f5"),
}
_ICONS = {"correct": "✅", "incorrect": "❌", "not_attempted": "⬜"}
_LABELS = {"correct": "Correct", "incorrect": "Réponse incorrecte", "not_attempted": "Question non tentée"}
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_NUMBERING = re.compile(r"^\d+(?:\.\d+)*\.?\s+")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@dataclass
class VerdictBox:
    """One verdict, ready to be displayed: ``kind`` is ``correct``, ``incorrect`` or ``not_attempted``."""

    kind: str
    exercise_id: str | None
    message: str
    title: str | None = None
    hint: str | None = None
    section: tuple[str, str] | None = None
    points: int | None = None

    @classmethod
    def from_failure(cls, failure: CheckFailed) -> VerdictBox:
        kind = "not_attempted" if isinstance(failure, NotAttempted) else "incorrect"
        return cls(kind, failure.exercise_id, failure.message, failure.title, failure.hint, failure.section)

    @property
    def label(self) -> str:
        return _LABELS[self.kind]

    def text(self) -> str:
        return plain_text(
            _ICONS[self.kind],
            self.label,
            self.exercise_id,
            self.message,
            title=self.title,
            hint=self.hint,
            section=self.section,
            points=self.points,
        )

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text())

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        border, background = _COLOURS[self.kind]
        heading = f"{self.label}"
        if self.title:
            heading += f" — {_inline(self.title)}"
        details = [html.escape(item) for item in (self.exercise_id, points_text(self.points)) if item]
        parts = [
            f'<div style="font-weight:600"><span aria-hidden="true">{_ICONS[self.kind]}</span> {heading}'
            + (f' <span style="font-weight:400;color:#4b5563">({", ".join(details)})</span>' if details else "")
            + "</div>",
            f'<div style="white-space:pre-wrap;margin-top:0.3em">{_inline(self.message)}</div>',
        ]
        if self.hint:
            parts.append(f'<div style="margin-top:0.3em">💡 Indice\u00a0: {_inline(self.hint)}</div>')
        if self.section:
            parts.append(
                f'<div style="margin-top:0.3em">📖 À relire dans la leçon\u00a0: {_section_html(self.section)}</div>'
            )
        label = html.escape(
            french_spacing(f"Verdict{f' de {self.exercise_id}' if self.exercise_id else ''} : {self.label}")
        )
        return (
            f'<div class="autograder-verdict autograder-verdict-{self.kind}" role="note" aria-label="{label}" '
            f'style="border:1px solid {border};border-left:6px solid {border};background:{background};'
            f'color:#1f2328;padding:0.5em 0.9em;margin:0.2em 0;border-radius:4px;line-height:1.45">'
            + "".join(parts)
            + "</div>"
        )


def _inline(text: str) -> str:
    """French text with `code` spans, as HTML (escaped, typographic spaces applied)."""
    escaped = html.escape(french_spacing(text), quote=False)
    return _CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)


def _section_html(section: tuple[str, str]) -> str:
    path, title = section
    words = f"« {_inline(title)} »"
    href = section_link(section)
    if href:
        words = f'<a href="{html.escape(href)}" style="color:#0b57d0;text-decoration:underline">{words}</a>'
    return french_spacing(f"{words} ({html.escape(path)})")


def section_link(section: tuple[str, str], start: Path | None = None) -> str | None:
    """Relative link from the kernel's folder to the lesson, pointing at the section's cell when it is found.

    The lesson path is relative to the course root, which is the kernel's folder or one of its parents
    (JupyterLab starts a kernel in its notebook's folder). None when the lesson is not there (a TP handed out alone).
    """
    path, title = section
    here = (start or Path.cwd()).resolve()
    for base in (here, *list(here.parents)[:4]):
        lesson = base / path
        if lesson.is_file():
            link = Path(os.path.relpath(lesson, here)).as_posix()
            cell_id = _heading_cell(str(lesson), lesson.stat().st_mtime_ns, _plain(title))
            # JupyterLab's notebook understands « #cell-id=… » fragments (ASCII ids, no escaping issue).
            return f"{link}#cell-id={cell_id}" if cell_id else link
    return None


def _plain(text: str) -> str:
    """A heading or section title without markup, numbering (« 5. »), case or spacing differences."""
    words = " ".join(re.sub(r"[`*_]", "", text).split())
    return _NUMBERING.sub("", words).casefold()


@lru_cache(maxsize=16)
def _heading_cell(lesson: str, _mtime: int, title: str) -> str | None:
    """Id of the markdown cell whose heading reads ``title`` (markup and case ignored)."""
    try:
        cells = json.loads(Path(lesson).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if any(_plain(heading) == title for heading in _HEADING.findall(source)):
            return cell.get("id")
    return None


def show(box: VerdictBox) -> None:
    """Display the box in an interactive kernel; print its text elsewhere (grading, terminal, tests)."""
    if mode.interactive():
        from IPython.display import display

        display(box)
    else:
        print(box.text())
