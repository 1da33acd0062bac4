"""French texts of the grading's own cell errors (time limits, crashes, cut outputs), for host and worker.

Everything here is what a student or an instructor reads in an executed notebook or a report.
Standard library only: the host imports it without torch.
"""

from __future__ import annotations

import os
import signal
from typing import Any


def seconds(value: float) -> str:
    return f"{value:g} s".replace(".", ",")


def thousands(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def error_output(ename: str, evalue: str) -> dict[str, Any]:
    """An nbformat error output for an event the grader itself reports (timeout, crash...)."""
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"],
    }


def not_executed_output(reason: str) -> dict[str, Any]:
    return error_output("CellNotExecutedError", f"Cellule non exécutée : {reason}")


def died_output(detail: str) -> dict[str, Any]:
    return error_output(
        "DeadKernelError",
        f"Le noyau s'est arrêté pendant cette cellule (os._exit, mémoire épuisée ?) : {detail}.",
    )


def describe_exit(status: int | None) -> str:
    """French description of a child's wait status."""
    if status is None:
        return "cause inconnue"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        if number == signal.SIGXCPU:
            return f"limite de temps CPU atteinte (signal {name})"
        if number == signal.SIGKILL:
            return f"tué par le signal {name}, probablement faute de mémoire"
        return f"tué par le signal {name}"
    if os.WIFEXITED(status):
        return f"sortie avec le code {os.WEXITSTATUS(status)}"
    return "cause inconnue"


def dropped_output_marker(count: int, mimes: list[str], limit: int) -> dict[str, Any]:
    kinds = ", ".join(sorted(set(mimes))) or "données"
    plural = "s" if count > 1 else ""
    text = (
        f"[Sortie{plural} supprimée{plural} : {count} sortie{plural} ({kinds}) "
        f"au-delà de la limite de {thousands(limit)} octets par cellule.]"
    )
    return {"output_type": "display_data", "data": {"text/plain": text}, "metadata": {}}


def truncation_marker(dropped: int, limit: int, scope: str = "par cellule") -> str:
    return (
        f"\n[… sortie tronquée : {thousands(dropped)} caractères supprimés, "
        f"limite de {thousands(limit)} caractères {scope}]\n"
    )
