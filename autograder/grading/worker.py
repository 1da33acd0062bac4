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

from autograder.grading import confinement
from autograder.grading import limits as resource_limits
from autograder.grading.monitor import Monitor
from autograder.grading.outputs import JobState
from autograder.grading.processes import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, JobProcesses, prctl
from autograder.grading.protocol import dumps, read_frame, write_frame
from autograder.grading.relay import Relay
from autograder.grading.scratch import SCRATCH, Scratch, write_files

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
        self.cgroups: bool = bool(config.get("cgroups"))  # the host moves each copy into its own cgroup
        self.copy_space: dict[str, int] = config.get("copy_space") or {}
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.is_init = os.getpid() == 1  # PID 1 of a private PID namespace: kill(-1) is safe
        # Inside the sandbox each copy gets its own PID and mount namespaces (see confinement).
        self.confined = self.isolated and self.is_init
        self.runtime: Any = None  # shell.Runtime, once preloaded
        self.processes = JobProcesses(self.is_init)
        self.scratch = Scratch(self.is_init, config.get("scratch_root"))
        self.pid_namespace = -1
        self.hidden_binds: dict[str, int] = {}
        # Nothing without privileges can trace this process or read its memory and descriptors.
        confinement.set_dumpable(False)
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
        if self.confined:
            self.pid_namespace = confinement.own_pid_namespace()
            self.hidden_binds = confinement.open_paths(p for p in self.scratch.protected if p.startswith("/tmp/"))

    # -- one job ------------------------------------------------------------------------------
    def run_job(self, job: dict[str, Any]) -> None:
        started = time.monotonic()
        files = job.get("files") or {}
        scratch = SCRATCH if self.confined else self.scratch.make(files)
        job_state = JobState(job, self.limits, self._send_host)
        shared = mmap.mmap(-1, 8)  # the cell the worker means to interrupt (see shell._on_sigint)
        shared[:8] = struct.pack("q", -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ev_r, ev_w = os.pipe()
        req_r, req_w = os.pipe()  # trusted checks: the checker's requests, relayed to the child
        go_r, go_w = os.pipe()  # worker -> shell: the next cell may run (its time limit starts now)
        release_r, release_w = os.pipe()  # worker -> copy: its cgroup is in place, start
        status_r, status_w = os.pipe()  # copy's init -> worker: how the shell ended
        nproc = resource_limits.nproc_limit(self.limits, self.isolated)
        marker = b"\x00\x1e" + os.urandom(8).hex().encode() + b"\x1e\x00"
        pid = -1
        if self.confined:
            confinement.new_pid_namespace()
        try:
            pid = os.fork()
        finally:
            if self.confined and pid != 0:
                confinement.back_to_own_pid_namespace(self.pid_namespace)
        if pid == 0:  # pragma: no cover - runs in the child
            code = 70
            try:
                signal.set_wakeup_fd(-1)
                shell_fds = (out_w, err_w, ev_w, go_r, req_r)
                confinement.close_descriptors([*shell_fds, release_r, status_w, *self.hidden_binds.values()])
                if os.read(release_r, 1) != b"g":
                    os._exit(code)
                os.close(release_r)
                if self.confined:
                    self._copy_init(job, files, shell_fds, status_w, shared, nproc, marker)
                else:
                    os.close(status_w)
                    os.chdir(scratch)
                    self.runtime.run_child(job, shell_fds, shared, self.limits, nproc, marker, True)
                code = 0
            except BaseException:  # noqa: BLE001 - a failure of the grader's own code, shown in the cell
                import traceback

                try:
                    os.write(2, ("\nErreur interne du correcteur :\n" + traceback.format_exc()).encode())
                except Exception:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        for fd in (out_w, err_w, ev_w, go_r, req_r, release_r, status_w):
            os.close(fd)
        self._send_host({"t": "job", "pid": pid})
        if self.cgroups:
            answer = read_frame(self.proto_in)  # the host has moved the copy into its cgroup
            if answer is None:
                self.processes.kill_all(wait=True)
                os._exit(0)
        os.write(release_w, b"g")
        os.close(release_w)
        relay = Relay(self.proto_in, req_w, self._send_host, job_state)
        monitor = Monitor(self, job_state, pid, (out_r, err_r, ev_r), shared, started, marker, relay, go_w, status_r)
        reported = False
        try:
            monitor.run()
            if monitor.bye:
                # Every cell ran: report now, the child's exit and the clean-up overlap with the host.
                monitor.drain_raw_now()
                job_state.finish(None, None)
                self._send_host({"t": "done", **job_state.summary(time.monotonic() - started)})
                reported = True
        finally:
            self.processes.kill_all()
            if not reported:
                monitor.drain_until_eof(deadline=time.monotonic() + 1.0)
                monitor.read_exit_status()
            for fd in (out_r, err_r, ev_r, req_w, go_w, status_r):
                os.close(fd)
            shared.close()
            if not self.confined:
                self.scratch.wipe(scratch)  # a confined copy's /tmp went away with its mount namespace
        if not reported:
            job_state.finish(monitor.outcome, monitor.exit_status)
            self._send_host({"t": "done", **job_state.summary(time.monotonic() - started)})

    def _copy_init(self, job, files, shell_fds, status_w, shared, nproc, marker) -> None:
        """PID 1 of the copy's namespace: build its private /proc, /tmp and /dev/shm, run the shell, report."""
        space = self.copy_space
        confinement.enter(
            tmp_bytes=space.get("tmp_bytes", 512 << 20),
            shm_bytes=space.get("shm_bytes", 64 << 20),
            inodes=space.get("inodes", 50_000),
            hidden_binds=self.hidden_binds,
        )
        self.scratch.restore_baseline()
        os.makedirs(SCRATCH)
        write_files(SCRATCH, files)
        os.chdir(SCRATCH)
        shell = os.fork()
        if shell == 0:
            os.close(status_w)
            confinement.drop_privileges()
            confinement.set_dumpable(True)
            self.runtime.run_child(job, shell_fds, shared, self.limits, nproc, marker, False)
            os._exit(0)
        for fd in shell_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # the worker's log is none of the copy's business
        os.close(null)
        confinement.drop_privileges()
        for number in range(1, signal.NSIG):
            try:
                signal.signal(number, signal.SIG_IGN if number != signal.SIGCHLD else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        while True:  # reap every orphan of the copy; leave (and take the namespace down) with the shell
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                os._exit(0)
            if pid == shell:
                os.write(status_w, struct.pack("i", status))
                os._exit(0)

    def _send_host(self, message: dict[str, Any]) -> None:
        write_frame(self.proto_out, dumps(message))
