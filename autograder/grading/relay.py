"""Worker side of trusted checks: the checker's requests go to the child, the child's replies go back.

A test cell decided by the trusted checker is sent to the child as ``serve`` (no source): the child
announces it waits (``serve`` event), answers each request with one ``r`` frame, and ends the cell at
the request ``{"op": "end"}``. The worker only moves bytes between the host (fd 0 / fd 1) and the child
(a request pipe / the event pipe): it never parses a request's content nor a reply's.

The time the child spends waiting for the checker is not the student's: the monitor adds it back to
the running cell's time limit (``idle``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from autograder.grading.outputs import JobState
from autograder.grading.protocol import HEADER, read_frame


class Relay:
    def __init__(self, host: int, child: int, send_host: Callable[[dict[str, Any]], None], state: JobState):
        self.host = host  # the worker's fd 0: frames from the host
        self.child = child  # write end of the child's request pipe (non-blocking)
        self.send_host = send_host
        self.state = state
        self.serve_cells = {cell["i"] for cell in state.job_cells if cell.get("serve")}
        self.served: set[int] = set()
        self.pending = bytearray()  # request bytes the child's pipe could not take yet
        self.closed = False  # the host closed its end
        self.outstanding = 0  # requests sent to the child and not answered yet
        self.idle_since: float | None = None  # the child answered and waits for the checker's next request
        os.set_blocking(child, False)

    def serve(self, index: Any) -> None:
        """The child waits for requests on test cell ``index``: tell the host (once, for the running cell)."""
        if index in self.serve_cells and index not in self.served and index == self.state.current:
            self.served.add(index)
            self.idle_since = time.monotonic()
            self.send_host({"t": "serve", "i": index})

    def reply(self, body: bytes) -> None:
        """The child's answer: one per request sent (replies nobody asked for are dropped, never queued)."""
        if self.outstanding > 0:
            self.outstanding -= 1
            self.idle_since = time.monotonic()
            self.send_host({"t": "reply", "body": body.decode("utf-8", "replace")})

    def idle(self) -> float:
        """Seconds the child spent waiting for the checker since its last reply (not the student's time)."""
        if self.idle_since is None:
            return 0.0
        elapsed, self.idle_since = time.monotonic() - self.idle_since, None
        return elapsed

    def from_host(self) -> None:
        """One frame from the host: a request for the child."""
        payload = read_frame(self.host)
        if payload is None:
            self.closed = True
            return
        try:
            message = json.loads(payload)
            body = message["body"].encode("utf-8")
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        self.pending += HEADER.pack(len(body)) + body
        if not message.get("end"):  # the end of the cell expects no reply
            self.outstanding += 1
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                written = os.write(self.child, self.pending)
            except OSError:  # full (BlockingIOError) or the child is gone
                return
            del self.pending[:written]
