"""The HTML exporter of the feedback pages: nbconvert's ``HTMLExporter`` without its BeautifulSoup pass, and
with the release's text rendered once per process.

After rendering, ``HTMLExporter`` parses the whole page again with BeautifulSoup to add an English alt text
to images that lack one and ``tabindex`` to the JupyterLab template's cells. The feedback template
(``feedback_fr``, based on the classic template) has no JupyterLab cells, and gives its figures a French alt
text itself; the pass cost about a third of the time of each page (``benchmarks/grading.py``).

Most cells of a copy are the release's, the same in every copy of the class: their Markdown and their
highlighted code are kept (pure functions of the cell's text), so only what a student wrote is rendered.
"""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbformat import NotebookNode
from traitlets import Bool

from autograder.grading.kept_renderings import kept


class _KeptHighlight(Highlight2HTML):
    """nbconvert's code highlighting, kept per (source, language): pygments takes a millisecond per cell."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._kept = kept(self._highlight)

    def __call__(self, source: str, language: str | None = None, metadata: Any = None) -> str:
        magics = metadata.get("magics_language") if metadata else None  # the only key pygments reads
        if not isinstance(magics, (str, type(None))):
            return super().__call__(source, language, metadata)
        return self._kept(source, language, magics)

    def _highlight(self, source: str, language: str | None, magics: str | None) -> str:
        return super().__call__(source, language, {"magics_language": magics} if magics else None)


class FeedbackExporter(HTMLExporter):
    """``HTMLExporter.from_notebook_node`` (nbconvert 7.17) up to the rendering, without the parse after it."""

    optimistic_validation = Bool(True)  # validate the notebook once, after the preprocessors, not after each

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # Without attachments nor embedded images, nbconvert's filter reads nothing of its context but the source.
        self._markdown = kept(lambda source: HTMLExporter.markdown2html(self, {}, source))
        self._highlighters: dict[str | None, _KeptHighlight] = {}

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        """nbconvert's Markdown filter, kept per source for the life of the exporter. A cell with attachments,
        or pages that embed image files, depend on more than the source: those are rendered each time."""
        if self.embed_images or context.get("cell", {}).get("attachments"):
            return HTMLExporter.markdown2html(self, context, source)
        return self._markdown(source)

    def from_notebook_node(  # type: ignore[override]
        self, nb: NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight_code = self.filters.get("highlight_code") or self._highlighter(lexer)
        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources)
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    def _highlighter(self, lexer: str | None) -> _KeptHighlight:
        if lexer not in self._highlighters:
            self._highlighters[lexer] = _KeptHighlight(pygments_lexer=lexer, parent=self)
        return self._highlighters[lexer]
