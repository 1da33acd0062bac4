"""Worker of the grading pool: preload the course stack once, then run each copy in a forked child.

A worker is one long-lived Python process, inside bubblewrap when isolation is on (it is then PID 1
of its own PID namespace). It preloads torch, numpy, matplotlib, IPython and the autograder package
(``shell.Runtime``), then waits for jobs on fd 0. For each job it forks a child that executes the
code cells in that pristine copy of the process, so a submission starts in about a millisecond
instead of the seconds a fresh kernel plus ``import torch`` take. The worker never runs student
code itself: it watches the child (``monitor``), assembles the outputs like a Jupyter kernel would
(``outputs``), kills every process the job left behind (``processes``), resets the scratch space
(``scratch``) and reports each cell to the host on fd 1 (``protocol``).

Modules, by side of the trust boundary:
- host: ``executor`` (pool of workers), ``sandbox`` (bubblewrap command line);
- worker (trusted, never runs student code): ``worker``, ``monitor``, ``outputs``, ``processes``,
  ``scratch``;
- child (runs student code, untrusted): ``shell``, ``limits``, ``tamper_guard``;
- shared, data only: ``protocol`` (framing), ``messages`` (French texts).

This module only imports the standard library at import time; the preload imports the rest.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import struct
import sys
import time
from typing import Any

from autograder.grading import limits as resource_limits
from autograder.grading.monitor import Monitor
from autograder.grading.outputs import JobState
from autograder.grading.processes import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, JobProcesses, prctl
from autograder.grading.protocol import dumps, read_frame, write_frame
from autograder.grading.relay import Relay
from autograder.grading.scratch import Scratch

BOOT = "import autograder.grading.worker as w; w.main()"


def main() -> None:
    """Entry point (``python -c BOOT CONFIG``): preload, announce readiness, serve jobs until EOF."""
    config = json.loads(sys.argv[1])
    proto_in, proto_out = os.dup(0), os.dup(1)  # non-inheritable copies: a child closes them
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints of the worker go to its log, never into the protocol
    os.close(null)
    started = time.monotonic()
    worker = Worker(config, proto_in, proto_out)
    worker.preload()
    ready = {"t": "ready", "preload": time.monotonic() - started, "pid": os.getpid(), "uid": os.getuid()}
    write_frame(proto_out, dumps(ready))
    while True:
        payload = read_frame(proto_in)
        if payload is None:
            break
        job = json.loads(payload)
        if isinstance(job, dict) and "cells" in job:  # not a request to relay that arrived after its job ended
            worker.run_job(job)
    worker.processes.kill_all(wait=True)
    os._exit(0)


class Worker:
    """The in-sandbox side of one pool worker."""

    def __init__(self, config: dict[str, Any], proto_in: int, proto_out: int):
        self.limits: dict[str, Any] = config["limits"]
        self.isolated: bool = config["isolated"]
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.is_init = os.getpid() == 1  # PID 1 of a private PID namespace: kill(-1) is safe
        self.runtime: Any = None  # shell.Runtime, once preloaded
        self.processes = JobProcesses(self.is_init)
        self.scratch = Scratch(self.is_init, config.get("scratch_root"))
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self.wake_read, self.wake_write = wake_read, wake_write
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not self.is_init:
            # Orphans of a job are re-parented to us, so we can find and kill them; die with the host.
            prctl(PR_SET_CHILD_SUBREAPER, 1)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    # -- preload ------------------------------------------------------------------------------
    def preload(self) -> None:
        from autograder.grading.shell import Runtime

        self.scratch.before_preload()
        self.runtime = Runtime.create()
        self.scratch.after_preload()

    # -- one job ------------------------------------------------------------------------------
    def run_job(self, job: dict[str, Any]) -> None:
        started = time.monotonic()
        scratch = self.scratch.make(job.get("files") or {})
        job_state = JobState(job, self.limits, self._send_host)
        shared = mmap.mmap(-1, 8)  # the cell the worker means to interrupt (see shell._on_sigint)
        shared[:8] = struct.pack("q", -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ev_r, ev_w = os.pipe()
        req_r, req_w = os.pipe()  # trusted checks: the checker's requests, relayed to the child
        nproc = resource_limits.nproc_limit(self.limits, self.isolated)
        marker = b"\x00\x1e" + os.urandom(8).hex().encode() + b"\x1e\x00"
        timing = {"prepare": time.monotonic() - started}
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 70
            try:
                os.close(out_r)
                os.close(err_r)
                os.close(ev_r)
                os.close(req_w)
                os.close(self.proto_in)
                os.close(self.proto_out)
                signal.set_wakeup_fd(-1)
                os.close(self.wake_read)
                os.close(self.wake_write)
                self.runtime.run_child(
                    job, scratch, (out_w, err_w, ev_w, req_r), shared, self.limits, nproc, self.is_init, marker
                )
                code = 0
            except BaseException:  # noqa: BLE001 - a failure of the grader's own code, shown in the cell
                import traceback

                try:
                    os.write(2, ("\nErreur interne du correcteur :\n" + traceback.format_exc()).encode())
                except Exception:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        timing["fork"] = time.monotonic() - started
        for fd in (out_w, err_w, ev_w, req_r):
            os.close(fd)
        self._send_host({"t": "job", "pid": pid})
        relay = Relay(self.proto_in, req_w, self._send_host, job_state)
        monitor = Monitor(self, job_state, pid, (out_r, err_r, ev_r), shared, started, marker, relay)
        reported = False
        try:
            monitor.run()
            timing["run"] = time.monotonic() - started
            if monitor.bye:
                # Every cell ran: report now, the child's exit and the clean-up overlap with the host.
                monitor.drain_raw_now()
                job_state.finish(None, None)
                self._send_host({"t": "done", **job_state.summary(time.monotonic() - started), "timing": timing})
                reported = True
        finally:
            self.processes.kill_all()
            if not reported:
                monitor.drain_until_eof(deadline=time.monotonic() + 1.0)
            for fd in (out_r, err_r, ev_r, req_w):
                os.close(fd)
            shared.close()
            self.scratch.wipe(scratch)
        if not reported:
            job_state.finish(monitor.outcome, monitor.exit_status)
            self._send_host({"t": "done", **job_state.summary(time.monotonic() - started), "timing": timing})

    def _send_host(self, message: dict[str, Any]) -> None:
        write_frame(self.proto_out, dumps(message))
