"""Worker side: assemble the outputs of a copy's cells like a Jupyter kernel would, within bounds.

``JobState`` receives what the child (untrusted) reports, applies the per-cell limits and a
job-wide cap, and sends each finished cell to the host. Nothing the child sends can make it keep
more than the caps, hide an error the grader itself adds, or grow without bound.
"""

from __future__ import annotations

from typing import Any

from autograder.grading.messages import (
    describe_exit,
    died_output,
    dropped_output_marker,
    error_output,
    not_executed_output,
    seconds,
    truncation_marker,
)
from autograder.grading.protocol import dumps

MAX_ERRORS_PER_CELL = 20


def output_size(output: dict[str, Any]) -> int:
    """Approximate size in bytes of a rich output's data (what the limit is about)."""
    total = 0
    for value in (output.get("data") or {}).values():
        total += len(value) if isinstance(value, str) else len(dumps(value))
    return total


class CellRecord:
    def __init__(self, index: int):
        self.index = index
        self.execution_count: int | None = None
        self.outputs: list[dict[str, Any]] = []
        self.stream_chars = 0
        self.dropped_chars = 0
        self.truncated: dict[str, Any] | None = None  # stream output that receives the truncation marker
        self.rich_bytes = 0
        self.dropped_rich: list[str] = []
        self.dropped_marker: dict[str, Any] | None = None
        self.errors = 0
        self.clear_pending = False
        self.extra: list[dict[str, Any]] = []  # grader errors appended after the kernel's outputs
        self.state = "pending"  # pending -> running -> done
        self.sent = False
        self.kept = 0  # characters/bytes of output kept, counted in the job's total
        self.capped = False  # cut by the job-wide cap rather than the per-cell limit


class JobState:
    """Outputs of every cell of one job, with the per-cell limits (and a job-wide cap) applied."""

    def __init__(self, job: dict[str, Any], limits: dict[str, Any], send):
        self.limits = limits
        self.send = send
        # However many cells a notebook has, what the worker and the host keep stays bounded.
        self.cap = 10 * (int(limits["max_output_bytes"]) + int(limits["max_output_chars"]))
        self.total = 0
        self.order = [cell["i"] for cell in job["cells"]]
        self.grade_ids = {cell["i"]: cell.get("grade_id") for cell in job["cells"]}
        self.job_cells = job["cells"]
        self.cells = {i: CellRecord(i) for i in self.order}
        self.current: int | None = None  # started, not ended
        self.last: int | None = None  # last started
        self.timeouts: list[int] = []
        self.status = "ok"
        self.messages: list[str] = []

    # -- helpers ------------------------------------------------------------------------------
    def target(self) -> CellRecord | None:
        index = self.current if self.current is not None else self.last
        return self.cells.get(index) if index is not None else None

    def _prepare(self, cell: CellRecord) -> None:
        if cell.clear_pending:
            self._clear(cell)

    def _clear(self, cell: CellRecord) -> None:
        self.total -= cell.kept
        cell.kept = 0
        cell.outputs = []
        cell.stream_chars = cell.dropped_chars = cell.rich_bytes = 0
        cell.truncated = cell.dropped_marker = None
        cell.dropped_rich = []
        cell.clear_pending = False

    # -- events -------------------------------------------------------------------------------
    def add_stream(self, name: str, text: str, index: int | None = None) -> None:
        cell = self.target() if index is None else self.cells.get(index)
        if cell is None or not text:
            return
        if cell.sent:
            cell.sent = False  # late output (a background process): the cell is sent again
        self._prepare(cell)
        limit = int(self.limits["max_output_chars"])
        budget = min(limit - cell.stream_chars, self.cap - self.total)
        if self.cap - self.total < limit - cell.stream_chars:
            cell.capped = True
        if budget <= 0:
            cell.dropped_chars += len(text)
            if cell.truncated is None:
                cell.truncated = {"output_type": "stream", "name": name, "_chunks": []}
                cell.outputs.append(cell.truncated)
            return
        if len(text) > budget:
            cell.dropped_chars += len(text) - budget
            text = text[:budget]
        cell.stream_chars += len(text)
        cell.kept += len(text)
        self.total += len(text)
        last = cell.outputs[-1] if cell.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name and "_chunks" in last:
            last["_chunks"].append(text)
        else:
            last = {"output_type": "stream", "name": name, "_chunks": [text]}
            cell.outputs.append(last)
        if cell.dropped_chars and cell.truncated is None:
            cell.truncated = last

    def add_child_dropped(self, index: int, dropped: int) -> None:
        cell = self.cells.get(index)
        if cell is None or not dropped:
            return
        cell.dropped_chars += dropped
        if cell.truncated is None:
            streams = [o for o in cell.outputs if o["output_type"] == "stream"]
            if streams:
                cell.truncated = streams[-1]
            else:
                cell.truncated = {"output_type": "stream", "name": "stdout", "_chunks": []}
                cell.outputs.append(cell.truncated)

    def add_output(self, output: dict[str, Any]) -> None:
        cell = self.target()
        if cell is None:
            return
        self._prepare(cell)
        kind = output.get("output_type")
        if kind == "error":
            if cell.errors >= MAX_ERRORS_PER_CELL:
                return
            cell.errors += 1
            limit = int(self.limits["max_output_chars"]) if self.total < self.cap else 1000
            error = bounded_error(output, limit)
            size = len(error["evalue"]) + sum(map(len, error["traceback"]))
            cell.kept += size
            self.total += size
            cell.outputs.append(error)
            return
        if kind not in ("display_data", "execute_result"):
            return
        limit = int(self.limits["max_output_bytes"])
        size = output_size(output)
        if cell.rich_bytes + size > limit or self.total + size > self.cap:
            cell.dropped_rich.extend((output.get("data") or {}).keys())
            if cell.dropped_marker is None:
                cell.dropped_marker = {"output_type": "display_data", "data": {}, "metadata": {}}
                cell.outputs.append(cell.dropped_marker)
            return
        cell.rich_bytes += size
        cell.kept += size
        self.total += size
        cell.outputs.append(output)

    def oversized(self) -> None:
        """A message too big to read: it may have been an error, so the cell must fail, never pass."""
        cell = self.target()
        if cell is None:
            return
        cell.outputs.append(
            error_output("OutputTooLargeError", "Une sortie illisible, car trop volumineuse, a été supprimée.")
        )

    def update_display(self, display_id: str, output: dict[str, Any]) -> None:
        for cell in self.cells.values():
            for existing in cell.outputs:
                if existing.get("_display_id") == display_id:
                    existing["data"] = output.get("data", {})
                    existing["metadata"] = output.get("metadata", {})
                    cell.sent = False  # sent again with the next batch

    def clear(self, wait: bool) -> None:
        cell = self.target()
        if cell is None:
            return
        if wait:
            cell.clear_pending = True
        else:
            self._clear(cell)

    def send_done_cells(self) -> None:
        for index in self.order:
            cell = self.cells[index]
            if cell.state == "done" and not cell.sent:
                self._send_cell(cell)

    def start(self, index: int, execution_count: int) -> None:
        self.send_done_cells()
        cell = self.cells[index]
        cell.state = "running"
        cell.execution_count = execution_count
        self.current = self.last = index

    def end(self, index: int, interrupted: bool, dropped: int, timed_out: bool, limit: float) -> None:
        self.add_child_dropped(index, dropped)
        cell = self.cells[index]
        cell.state = "done"
        self.current = None
        if timed_out and interrupted:
            self.timeouts.append(index)
            cell.extra.append(
                error_output(
                    "CellTimeoutError",
                    f"La cellule a dépassé la limite de {seconds(limit)} : elle a été interrompue.",
                )
            )
        # Report the cell at once: if the worker itself dies later, the host still has it. Output that
        # arrives afterwards (a background process) makes it be sent again.
        self.send_done_cells()

    # -- end of job ---------------------------------------------------------------------------
    def finish(self, outcome: tuple[str, str] | None, exit_status: int | None) -> None:
        """Synthesise the grader's errors after an abnormal end, then send every unsent cell."""
        running = self.current
        pending = [i for i in self.order if self.cells[i].state == "pending"]
        if outcome is None and (running is not None or pending):
            outcome = ("crashed", describe_exit(exit_status))
        if outcome is not None:
            kind, detail = outcome
            self.status = kind if kind != "cell_timeout_hard" else "cell_timeout"
            culprit = running if running is not None else (pending[0] if pending else None)
            if culprit is not None:
                cell = self.cells[culprit]
                if cell.state == "pending":
                    pending.remove(culprit)
                cell.state = "done"
                cell.extra.append(self._culprit_error(kind, detail))
            reason = self._not_executed_reason(kind)
            for index in pending:
                self.cells[index].state = "done"
                self.cells[index].extra.append(not_executed_output(reason))
            self.messages.append(self._job_message(kind, detail, culprit, len(pending)))
        if self.timeouts and self.status == "ok":
            self.status = "cell_timeout"
        if self.timeouts:
            where = ", ".join(self._where(i) for i in self.timeouts)
            plural = "s" if len(self.timeouts) > 1 else ""
            self.messages.insert(
                0,
                f"limite de {seconds(self.limits['cell_timeout'])} par cellule dépassée, "
                f"cellule{plural} interrompue{plural} : {where}",
            )
        self.send_done_cells()

    def _culprit_error(self, kind: str, detail: str) -> dict[str, Any]:
        limits = self.limits
        if kind == "cell_timeout_hard":
            return error_output(
                "CellTimeoutError",
                f"La cellule a dépassé la limite de {seconds(limits['cell_timeout'])} et n'a pas pu être "
                "interrompue (signal d'interruption ignoré) : le noyau a été arrêté.",
            )
        if kind == "notebook_timeout":
            return error_output(
                "NotebookTimeoutError",
                f"Le notebook a dépassé la limite de {seconds(limits['notebook_timeout'])} : "
                "son exécution a été arrêtée pendant cette cellule.",
            )
        if kind == "killed":
            return error_output("ResourceLimitError", f"Exécution arrêtée : {detail}.")
        return died_output(detail)

    def _not_executed_reason(self, kind: str) -> str:
        return {
            "cell_timeout_hard": "une cellule précédente a dépassé la limite de temps.",
            "notebook_timeout": (f"le notebook a dépassé la limite de {seconds(self.limits['notebook_timeout'])}."),
            "killed": "l'exécution a été arrêtée (limite de ressources dépassée).",
        }.get(kind, "le noyau s'est arrêté pendant une cellule précédente.")

    def _where(self, index: int | None) -> str:
        if index is None:
            return "après la dernière cellule"
        grade_id = self.grade_ids.get(index)
        return f"cellule {index + 1}" + (f" ({grade_id})" if grade_id else "")

    def _job_message(self, kind: str, detail: str, culprit: int | None, skipped: int) -> str:
        where = self._where(culprit)
        tail = f" ; {skipped} cellule{'s' if skipped > 1 else ''} non exécutée{'s' if skipped > 1 else ''}"
        tail = tail if skipped else ""
        if kind == "cell_timeout_hard":
            return (
                f"{where} : limite de {seconds(self.limits['cell_timeout'])} dépassée et interruption "
                f"ignorée, noyau arrêté{tail}"
            )
        if kind == "notebook_timeout":
            return f"limite de {seconds(self.limits['notebook_timeout'])} par notebook dépassée ({where}){tail}"
        if kind == "killed":
            return f"{detail} ({where}){tail}"
        return f"le noyau s'est arrêté ({detail}) pendant la {where}{tail}"

    def _send_cell(self, cell: CellRecord) -> None:
        cell.sent = True
        self.send({"t": "cell", "i": cell.index, "ec": cell.execution_count, "outputs": self._final_outputs(cell)})

    def _final_outputs(self, cell: CellRecord) -> list[dict[str, Any]]:
        outputs = []
        for output in cell.outputs:
            clean = {k: v for k, v in output.items() if not k.startswith("_")}
            if "_chunks" in output:
                clean["text"] = "".join(output["_chunks"])
                if output is cell.truncated:
                    if cell.capped:
                        clean["text"] += truncation_marker(cell.dropped_chars, self.cap, "pour tout le notebook")
                    else:
                        clean["text"] += truncation_marker(cell.dropped_chars, int(self.limits["max_output_chars"]))
            if output is cell.dropped_marker:
                clean = dropped_output_marker(
                    len(cell.dropped_rich), cell.dropped_rich, int(self.limits["max_output_bytes"])
                )
            if clean.get("output_type") == "stream" and not clean.get("text"):
                continue
            outputs.append(clean)
        return outputs + cell.extra

    def summary(self, duration: float) -> dict[str, Any]:
        return {"status": self.status, "message": " ; ".join(self.messages), "duration": duration}


def bounded_error(output: dict[str, Any], limit: int) -> dict[str, Any]:
    """An error output of at most about ``limit`` characters; the end of the traceback (the message) is kept."""

    def cut(text: Any, size: int) -> str:
        text = text if isinstance(text, str) else str(text)
        return text if len(text) <= size else text[:size] + "…"

    lines = output.get("traceback") or []
    if not isinstance(lines, list):
        lines = [lines]
    kept: list[str] = []
    budget = limit
    for line in reversed(lines):
        line = cut(line, budget)
        kept.append(line)
        budget -= len(line)
        if budget <= 0:
            if len(kept) < len(lines):
                kept.append("…")
            break
    return {
        "output_type": "error",
        "ename": cut(output.get("ename", "Error"), 200),
        "evalue": cut(output.get("evalue", ""), limit),
        "traceback": kept[::-1],
    }
