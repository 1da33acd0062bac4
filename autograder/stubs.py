"""An unanswered question says so in one French line instead of a traceback, and « Run All » goes on.

The student version of a TP keeps nbgrader's stub ``# VOTRE CODE ICI`` / ``raise NotImplementedError()``
(``nbgrader_config.py``). In a student's kernel (``mode.interactive()``), ``install`` registers an IPython
custom exception handler for ``NotImplementedError``: when the exception comes from such a stub line written
in the notebook (the raising frame runs in the notebook's namespace), the cell prints one line naming the
function to write and its execution counts as successful, so JupyterLab's « Exécuter toutes les cellules »
and « Redémarrer le noyau et Exécuter toutes les cellules… » keep going (they stop at the first cell whose
``execute_reply`` has ``status: error``, and ipykernel sends ``error`` whenever ``ExecutionResult.error_in_exec``
is set). The rest of that cell does not run, as after any exception. Any other ``NotImplementedError`` keeps
IPython's usual traceback and its error status.

Under grading nothing is installed: a stub is an error there, as nbgrader expects.
"""

from __future__ import annotations

import html
import linecache
import re
from types import TracebackType

from autograder import mode
from autograder.typography import french_spacing

_STUB_LINE = re.compile(r"^\s*raise\s+NotImplementedError(\(\s*\))?\s*(#.*)?$")


def stub_frame(shell, tb: TracebackType | None):
    """The innermost frame of ``tb`` if it is a stub line of the notebook (``raise NotImplementedError()``)."""
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if frame.f_globals is not shell.user_ns and frame.f_globals is not getattr(shell, "user_global_ns", None):
        return None
    line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
    return frame if _STUB_LINE.match(line) else None


def message(frame) -> str:
    """One French line: which answer is missing (`code` in backquotes)."""
    name = frame.f_code.co_name
    if name == "<module>":
        text = "⬜ Réponse à écrire : remplacez `raise NotImplementedError()` par votre code dans cette cellule."
    else:
        text = (
            f"⬜ `{name}` n'est pas encore écrite (elle contient `raise NotImplementedError()`) : "
            "la suite de cette cellule attendra votre réponse."
        )
    return french_spacing(text)


class Notice:
    """The line as rich output: code in code font in JupyterLab, plain text (no backquotes) elsewhere."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text.replace("`", ""))

    def _repr_html_(self) -> str:
        escaped = html.escape(self.text, quote=False)
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        return f'<div class="autograder-stub" role="note" style="color:#4b5563">{body}</div>'


def _handler(shell, etype, value, tb, tb_offset=None):
    frame = stub_frame(shell, tb)
    if frame is None or value.args:
        # Not a stub: IPython's usual traceback; the cell stays in error.
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)
        return None
    from IPython.display import display

    display(Notice(message(frame)))
    result = getattr(shell.displayhook, "exec_result", None)
    if result is not None:
        # The reply's status comes from this field: « ok », so that running all cells goes on.
        result.error_in_exec = None
    return None


def install() -> bool:
    """Register the handler in the current Jupyter kernel, outside grading only. True when installed."""
    shell = mode.kernel_shell()
    if shell is None or mode.grading():
        return False
    if shell.custom_exceptions and NotImplementedError not in shell.custom_exceptions:
        return False  # someone else's handler: leave it alone
    shell.set_custom_exc((NotImplementedError,), _handler)
    return True
