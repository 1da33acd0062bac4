"""The HTML exporter of the feedback pages: nbconvert's ``HTMLExporter`` without its BeautifulSoup pass.

After rendering, ``HTMLExporter`` parses the whole page again with BeautifulSoup to add an English alt text
to images that lack one and ``tabindex`` to the JupyterLab template's cells. The feedback template
(``feedback_fr``, based on the classic template) has no JupyterLab cells, and gives its figures a French alt
text itself; the pass cost about a third of the time of each page (``benchmarks/grading.py``).
"""

from __future__ import annotations

from typing import Any

from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbformat import NotebookNode
from traitlets import Bool


class FeedbackExporter(HTMLExporter):
    """``HTMLExporter.from_notebook_node`` (nbconvert 7.17) up to the rendering, without the parse after it."""

    optimistic_validation = Bool(True)  # validate the notebook once, after the preprocessors, not after each

    def from_notebook_node(  # type: ignore[override]
        self, nb: NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources)
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)
