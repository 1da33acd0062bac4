"""Worker side: the event loop of one job — read the child's outputs and events, enforce the deadlines.

The child is untrusted: its frames are parsed with a size cap, its events only move a cell forward,
and the time limits are enforced from here (SIGINT at the cell limit, SIGKILL when it is ignored).
"""

from __future__ import annotations

import codecs
import json
import mmap
import os
import select
import signal
import struct
import time
from typing import TYPE_CHECKING, Any

from autograder.grading.outputs import JobState
from autograder.grading.protocol import OVERSIZED, FrameParser

if TYPE_CHECKING:
    from autograder.grading.relay import Relay
    from autograder.grading.worker import Worker

WATCHDOG_INTERVAL = 0.02  # s between two process counts


class Monitor:
    """Event loop of the worker during one job: outputs, deadlines, process watchdog."""

    def __init__(
        self,
        worker: Worker,
        state: JobState,
        pid: int,
        fds: tuple[int, int, int],
        shared: mmap.mmap,
        started: float,
        marker: bytes,
        relay: Relay,
        go_w: int,
        status_r: int,
    ):
        out_r, err_r, ev_r = fds
        self.worker = worker
        self.state = state
        self.limits = worker.limits
        self.pid = pid
        self.raw = {out_r: "stdout", err_r: "stderr"}
        self.decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in self.raw}
        self.marker = marker
        self.raw_tail = {fd: b"" for fd in self.raw}
        self.raw_cell = {fd: 0 for fd in self.raw}  # position in state.order of the cell fds 1/2 write to
        self.ev_r = ev_r
        self.shared = shared
        self.started = started
        limit = int(self.limits["max_output_bytes"]) + 4 * int(self.limits["max_output_chars"]) + (1 << 20)
        self.parser = FrameParser(limit)
        self.open_fds = {out_r, err_r, ev_r}
        for fd in self.open_fds:
            os.set_blocking(fd, False)
        self.outcome: tuple[str, str] | None = None
        self.exit_status: int | None = None
        self.child_done = False
        self.bye = False
        self.cell_started_at: float | None = None
        self.interrupt_deadline: float | None = None
        self.timed_out_cells: set[int] = set()
        self.relay = relay
        self.go_w = go_w  # the next cell may run: written by us, read by the shell
        self.status_r = status_r  # how the shell ended, from the copy's init (confined copies)
        self.position = 0  # cells allowed so far (position in state.order)
        self.finished_at: float | None = None  # when the last cell ended
        self.cpu_at_interrupt: dict[int, int] = {}  # clock ticks of each job process when SIGINT was sent
        self.interrupted_at: float | None = None

    # -- reading ------------------------------------------------------------------------------
    def _read_raw(self, fd: int, budget: int = 1 << 20) -> None:
        while budget > 0 and fd in self.open_fds:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.open_fds.discard(fd)
                return
            budget -= len(data)
            self._raw_data(fd, data)

    def _raw_data(self, fd: int, data: bytes, final: bool = False) -> None:
        """Attribute what the job wrote on fds 1/2 to cells: the child writes a marker after each cell."""
        buffer = self.raw_tail[fd] + data
        marker = self.marker
        while True:
            position = buffer.find(marker)
            if position < 0:
                break
            self._raw_text(fd, buffer[:position])
            buffer = buffer[position + len(marker) :]
            self.raw_cell[fd] += 1
        keep = 0
        if not final:
            for size in range(min(len(marker) - 1, len(buffer)), 0, -1):
                if marker.startswith(buffer[-size:]):
                    keep = size
                    break
        self._raw_text(fd, buffer[: len(buffer) - keep], final)
        self.raw_tail[fd] = buffer[len(buffer) - keep :]

    def _raw_text(self, fd: int, data: bytes, final: bool = False) -> None:
        text = self.decoders[fd].decode(data, final)
        if text and self.state.order:
            index = self.state.order[min(self.raw_cell[fd], len(self.state.order) - 1)]
            self.state.add_stream(self.raw[fd], text, index)

    def _drain_raw(self) -> None:
        for fd in self.raw:
            self._read_raw(fd)

    def drain_raw_now(self) -> None:
        """What is already in the pipes of fds 1/2, up to the last cell's marker."""
        self._drain_raw()
        for fd in self.raw:
            self._raw_data(fd, b"", final=True)

    def _read_events(self, budget: int = 4 << 20) -> None:
        while self.ev_r in self.open_fds and budget > 0:
            try:
                data = os.read(self.ev_r, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.open_fds.discard(self.ev_r)
                return
            budget -= len(data)
            frames = self.parser.feed(data)
            if frames:
                self._drain_raw()  # what was written to fds 1/2 before these events comes first
            for frame in frames:
                self._handle(frame)

    def _handle(self, frame: Any) -> None:
        state = self.state
        if frame is OVERSIZED:
            state.oversized()
            self.relay.reply(b"")  # it may have been a reply: the checker must not wait for it
            return
        kind, body = frame[:1], frame[1:]
        if kind == b"r":
            self.relay.reply(body)
            return
        if kind in (b"o", b"e"):
            state.add_stream("stdout" if kind == b"o" else "stderr", body.decode("utf-8", "replace"))
            return
        try:
            event = json.loads(body)
            tag = event["t"]
        except (ValueError, KeyError, TypeError):
            return
        if tag == "out":
            output = event.get("o")
            if isinstance(output, dict):
                state.add_output(output)
        elif tag == "update":
            state.update_display(str(event.get("id")), event.get("o") or {})
        elif tag == "clear":
            state.clear(bool(event.get("wait")))
        elif tag == "end":
            index = event.get("i")
            if index in state.cells and state.cells[index].state == "running":
                state.end(
                    index,
                    bool(event.get("interrupted")),
                    int(event.get("dropped") or 0),
                    index in self.timed_out_cells,
                    float(self.limits["cell_timeout"]),
                )
                self.cell_started_at = None
                self.interrupt_deadline = None
                self.allow_next()
        elif tag == "serve":
            self.relay.serve(event.get("i"))
        elif tag == "bye":
            self.bye = True

    def drain_until_eof(self, deadline: float) -> None:
        """After every job process is dead: read what is left in the pipes."""
        while self.open_fds and time.monotonic() < deadline:
            self._read_events()
            self._drain_raw()
            if self.open_fds:
                select.select(list(self.open_fds), [], [], 0.01)
        for fd in self.raw:
            self._raw_data(fd, b"", final=True)

    # -- cells and deadlines --------------------------------------------------------------------
    def allow_next(self) -> None:
        """Let the shell run the next cell; its time limit starts now, whatever the child says."""
        order = self.state.order
        if self.position >= len(order):
            self.finished_at = time.monotonic()
            return
        index = order[self.position]
        self.position += 1
        self.state.start(index, self.position)  # a kernel's execution counts: 1, 2, 3... in this order
        self.cell_started_at = time.monotonic()
        self.interrupt_deadline = None
        try:
            os.write(self.go_w, struct.pack("q", index))
        except OSError:
            pass  # the shell is gone: its exit is noticed by the main loop

    def _shell_pid(self) -> int:
        """The process that runs the cells: our child, or the only child of the copy's init."""
        if not self.worker.confined:
            return self.pid
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as handle:
                children = handle.read().split()
        except OSError:
            children = []
        return int(children[0]) if children else self.pid

    def _cpu_ticks(self) -> dict[int, int]:
        ticks = {}
        for pid in self.worker.processes.live():
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                continue
        return ticks

    def _cpu_since_interrupt(self) -> float:
        """CPU seconds the job's processes used since the interrupt was sent."""
        used = sum(t - self.cpu_at_interrupt.get(pid, 0) for pid, t in self._cpu_ticks().items())
        return used / os.sysconf("SC_CLK_TCK")

    def read_exit_status(self) -> None:
        """A confined copy's init reports how the shell ended (its own exit says nothing about it)."""
        if not self.worker.confined:
            return
        try:
            data = os.read(self.status_r, 4)
        except (BlockingIOError, OSError):
            return
        if len(data) == 4:
            self.exit_status = struct.unpack("i", data)[0]

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> None:
        limits = self.limits
        nb_deadline = self.started + float(limits["notebook_timeout"])
        cell_timeout = float(limits["cell_timeout"])
        grace = float(limits["interrupt_grace"])
        # The grace after SIGINT is measured in CPU time: on a loaded machine an interruptible loop
        # may wait long for a processor before it can stop; a loop that ignores the signal burns CPU.
        # A copy that ignores it while blocked is stopped after a long wall-clock grace.
        wall_grace = max(20 * grace, 10.0)
        max_processes = int(limits["max_processes"])
        watchdog = not self.worker.cgroups  # with cgroups, the kernel refuses extra processes itself
        os.set_blocking(self.status_r, False)
        poller = select.poll()
        for fd in (*self.open_fds, self.worker.wake_read, self.relay.host):
            poller.register(fd, select.POLLIN)
        registered = set(self.open_fds)
        next_watchdog = time.monotonic()
        self.allow_next()
        while True:
            now = time.monotonic()
            deadlines = [nb_deadline, next_watchdog]
            if self.cell_started_at is not None and self.interrupt_deadline is None:
                deadlines.append(self.cell_started_at + cell_timeout)
            if self.interrupt_deadline is not None:
                deadlines.append(self.interrupt_deadline)
            if self.finished_at is not None:
                deadlines.append(self.finished_at + cell_timeout)
            wait_ms = max(0, int((min(deadlines) - now) * 1000) + 1)
            for fd in registered - self.open_fds:
                poller.unregister(fd)
            registered &= self.open_fds
            events = poller.poll(wait_ms)
            for fd, _ in events:
                if fd == self.relay.host and not self.relay.closed:
                    if self.cell_started_at is not None:  # a check's time limit counts the student's calls only
                        self.cell_started_at += self.relay.idle()
                    self.relay.from_host()
                    if self.relay.closed:
                        poller.unregister(fd)
                if fd == self.worker.wake_read:
                    try:
                        os.read(fd, 512)
                    except BlockingIOError:
                        pass
            self._read_events()
            self._drain_raw()
            self.relay.flush()
            if self.bye:
                return
            for pid, status in self.worker.processes.reap().items():
                if pid == self.pid:
                    self.exit_status = status
                    self.read_exit_status()
                    self.child_done = True
            if self.child_done:
                self._read_events()
                return
            now = time.monotonic()
            if now >= next_watchdog:
                next_watchdog = now + WATCHDOG_INTERVAL
                if watchdog and len(self.worker.processes.live()) > max_processes:
                    self.outcome = ("killed", f"trop de processus (plus de {max_processes} à la fois)")
                    return
            if now >= nb_deadline:
                self._read_events()
                if self.child_done or self.bye:
                    return
                self.outcome = ("notebook_timeout", "")
                return
            if self.finished_at is not None and now >= self.finished_at + cell_timeout:
                self.outcome = ("killed", "le noyau ne s'est pas arrêté après la dernière cellule")
                return
            running = self.state.current
            if running is not None and self.cell_started_at is not None:
                if self.interrupt_deadline is None and now >= self.cell_started_at + cell_timeout:
                    self._read_events()  # the cell may have just finished
                    if self.state.current == running:
                        self.timed_out_cells.add(running)
                        self.shared[:8] = struct.pack("q", running)
                        self.cpu_at_interrupt = self._cpu_ticks()
                        try:
                            os.kill(self._shell_pid(), signal.SIGINT)
                        except ProcessLookupError:
                            pass
                        self.interrupted_at = now
                        self.interrupt_deadline = now + min(grace, WATCHDOG_INTERVAL * 5)
                elif self.interrupt_deadline is not None and now >= self.interrupt_deadline:
                    self._read_events()
                    if self.state.current != running:
                        continue
                    assert self.interrupted_at is not None
                    if now >= self.interrupted_at + wall_grace or self._cpu_since_interrupt() >= grace:
                        self.outcome = ("cell_timeout_hard", "")
                        return
                    self.interrupt_deadline = now + min(grace, WATCHDOG_INTERVAL * 5)
