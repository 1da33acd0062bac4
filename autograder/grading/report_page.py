"""The class report as one self-contained French HTML page: figures drawn with matplotlib, embedded as SVG.

Everything the page shows comes from the data of ``class_report.analyse``; each figure has a table with the
same numbers (and a text alternative), so the page reads without the pictures. No script, no external file:
it opens offline, from a mail attachment or a USB key. The SVG output is made deterministic (fixed ids, no
date), so the same data always gives the same page.
"""

from __future__ import annotations

import base64
import io
from importlib import resources
from typing import Any

import jinja2
import markupsafe

TEMPLATE = "rapport_classe/rapport.html.j2"
BLUE = "#2b6cb0"
ORANGE = "#c05621"


def _percent(part: float) -> str:
    return f"{100 * part:.0f}\u00a0%"


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text.replace(".", ",").replace("-", "−")


def _code(text: str) -> markupsafe.Markup:
    """Escaped text whose `backquoted` parts (as in the catalogue's French names) are shown as code."""
    parts = str(markupsafe.escape(text)).split("`")
    return markupsafe.Markup("".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts)))


def _svg(figure) -> str:
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "rapport-de-classe", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def warm_up() -> None:
    """Import matplotlib and load its fonts (about 0,8 s): ``autograder grade`` calls this in a thread while the
    copies are graded, so that the class report, written after the last copy, does not wait for it."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    figure.add_subplot().set_xlabel("note")
    _svg(figure)


def _histogram(data: dict[str, Any]) -> str:
    from matplotlib.figure import Figure

    notes = data["notes"]
    bins = notes["histogramme"]
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    axes.bar([b["de"] for b in bins], [b["copies"] for b in bins], width=1.9, align="edge", color=BLUE)
    if "moyenne" in notes:
        axes.axvline(notes["moyenne"], color=ORANGE, linewidth=2, label=f"moyenne {_number(notes['moyenne'])}")
        axes.axvline(notes["mediane"], color="black", linestyle="--", label=f"médiane {_number(notes['mediane'])}")
        axes.legend(frameon=False)
    axes.set_xlim(0, notes["sur"])
    axes.set_xticks(range(0, notes["sur"] + 1, 2))
    axes.set_xlabel(f"note sur {notes['sur']}")
    axes.set_ylabel("copies")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _success(data: dict[str, Any]) -> str:
    from matplotlib.figure import Figure

    questions = data["questions"]
    figure = Figure(figsize=(7, 0.5 + 0.45 * max(len(questions), 1)))
    axes = figure.add_subplot()
    labels = [f"{q['id']} ({_number(q['points'])} pt{'s' if q['points'] > 1 else ''})" for q in questions]
    rates = [100 * q["reussite"] for q in questions]
    positions = range(len(questions))
    axes.barh(positions, rates, color=BLUE)
    for position, rate in zip(positions, rates, strict=True):
        inside = rate > 80
        axes.text(
            rate - 1 if inside else rate + 1,
            position,
            f"{rate:.0f}\u00a0%",
            va="center",
            ha="right" if inside else "left",
            color="white" if inside else "black",
        )
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("copies qui réussissent la question (%)")
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def figures(data: dict[str, Any]) -> dict[str, str]:
    """Each figure as a ``data:`` URI."""
    return {"histogramme": _histogram(data), "reussite": _success(data)}


def _environment() -> jinja2.Environment:
    folder = resources.files("autograder") / "templates"
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # ids, names and reasons come from students' files
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["pourcent"] = _percent
    environment.filters["nombre"] = _number
    environment.filters["code"] = _code
    return environment


def render(data: dict[str, Any]) -> str:
    return _environment().get_template(TEMPLATE).render(data=data, figures=figures(data))
