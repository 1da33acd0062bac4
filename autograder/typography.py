"""French typographic spacing, applied to every message a student reads.

Convention (documented in the README): a no-break space (U+00A0) before « : ; ! ? » and inside
« guillemets »; code and LaTeX are left untouched.
"""

from __future__ import annotations

import re

NBSP = "\u00a0"
# Code blocks, code spans and LaTeX are left as they are.
_PROTECTED = re.compile(r"(```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$)", re.DOTALL)
_BEFORE = re.compile(r"[ \u202f]([:;!?»])")
_AFTER = re.compile(r"«[ \u202f]")


def _fix(text: str) -> str:
    text = _BEFORE.sub(NBSP + r"\1", text)
    return _AFTER.sub("«" + NBSP, text)


def french_spacing(text: str) -> str:
    """Replace plain spaces by no-break spaces where French typography wants them (outside code)."""
    parts = _PROTECTED.split(text)
    # re.split with one group alternates: text, protected, text, protected, ...
    return "".join(part if i % 2 else _fix(part) for i, part in enumerate(parts))
