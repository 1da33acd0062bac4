"""An import the grading's processes skip: a grammar no schema they validate uses.

When ``rfc3987_syntax`` is installed (``jsonschema[format-nongpl]``, pulled in by JupyterLab's
``jupyter-events``), importing ``jsonschema`` builds its Lark grammar to register an « iri » format
checker: 0,9 s of CPU in every process that imports ``nbformat``. The grading's processes (the host of
``autograder grade``, its feedback pages) validate notebooks and nbgrader metadata only, whose schemas
use no « iri » format, and never with a format checker. They skip that import; JupyterLab and nbgrader's
own commands are untouched.
"""

from __future__ import annotations

import sys

UNUSED = "rfc3987_syntax"


def skip_unused_imports() -> None:
    """Make ``import rfc3987_syntax`` fail in this process (jsonschema then skips the « iri » checker).
    Without effect once jsonschema is imported, or when the module is imported already."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault(UNUSED, None)  # type: ignore[arg-type]  # None: "import fails" (importlib)
