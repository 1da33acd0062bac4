"""HTML of a student's copy made safe to open: what nbconvert's ``clean_html`` does, with ordinary markup kept.

A copy's Markdown cells and HTML outputs end up in its feedback page and in the formgrader, opened by the
instructor. nbconvert's own ``clean_html`` (used when ``HTMLExporter.sanitize_html`` is set) escapes even ``<p>``
and headings, so every paragraph would show its tags; this one keeps text markup, tables, lists, images and links,
and drops scripts, styles, event handlers and ``javascript:`` links.
"""

from __future__ import annotations

import bleach

from autograder.grading.kept_renderings import kept

TAGS = frozenset(
    (
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "small", "span",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    )
)  # fmt: skip
ATTRIBUTES = {
    "*": ["class", "id", "title"],
    "a": ["href"],
    "img": ["src", "alt", "width", "height"],
    "td": ["colspan", "rowspan", "align"],
    "th": ["colspan", "rowspan", "align"],
}
PROTOCOLS = frozenset(("http", "https", "mailto", "data"))


def clean(element: object) -> str:
    """The element's HTML with only harmless tags and attributes (the others escaped, their text kept)."""
    return _clean(element.decode() if isinstance(element, bytes) else str(element))


@kept  # the release's text, the same in every copy: bleach parses it once per process
def _clean(text: str) -> str:
    return bleach.clean(text, tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS)
