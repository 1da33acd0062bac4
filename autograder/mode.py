"""Where a check runs: under grading, or in a student's interactive kernel.

Grading is nbgrader's ``autograde`` and ``validate`` (the « Validate » button of JupyterLab runs the
latter), ``autograder grade`` and ``autograder verifier``: all of them set ``NBGRADER_EXECUTION`` in the
environment of the kernel they start (nbgrader documents the variable; our sandbox sets it too). A failing
check then raises, so that its test cell holds an error output and scores 0.

Interactive is a Jupyter kernel started without that variable (JupyterLab, nbclient): a failing check shows
its verdict and lets the next cells run, and an unanswered stub says so in one line (``autograder.stubs``).

The variable is also looked up in the environment the process *started* with (``/proc/self/environ`` on
Linux), which code run in the kernel cannot edit: deleting it from ``os.environ`` in a notebook cell does
not turn grading into interactive mode. Setting it only ever makes checks stricter.
"""

from __future__ import annotations

import os
import sys

GRADING_VARIABLE = "NBGRADER_EXECUTION"


def _initial_environment() -> dict[str, str]:
    try:
        with open("/proc/self/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return {}
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


_AT_START = _initial_environment().get(GRADING_VARIABLE, "")


def grading() -> bool:
    """True under nbgrader (autograde, validate) and our grader: failing checks must raise."""
    return bool(_AT_START or os.environ.get(GRADING_VARIABLE) or _initial_environment().get(GRADING_VARIABLE))


def kernel_shell():
    """The IPython shell of the Jupyter kernel this code runs in, or None (plain Python, pytest, terminal)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return shell


def interactive() -> bool:
    """True in a Jupyter kernel outside grading: a failing check shows its verdict and does not raise."""
    return kernel_shell() is not None and not grading()
