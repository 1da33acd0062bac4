"""Worker side: find, count, kill and reap the processes of a job.

Standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def task_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def descendants(root: int) -> list[int]:
    """Descendants of ``root`` through /proc/<pid>/task/<tid>/children."""
    found: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


class JobProcesses:
    """The processes of the job in progress, seen from its worker."""

    def __init__(self, is_init: bool):
        self.is_init = is_init  # PID 1 of a private PID namespace: kill(-1) is safe
        self.doomed: set[int] = set()  # killed, not yet reaped (not counted as processes of the next job)

    def live(self) -> list[int]:
        """Every live process of the current job (all but us in our PID namespace, else our descendants)."""
        me = os.getpid()
        if self.is_init:
            pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        else:
            pids = descendants(me)
        return [pid for pid in pids if pid != me and pid not in self.doomed]

    def reap(self) -> dict[int, int]:
        statuses = {}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            statuses[pid] = status
            self.doomed.discard(pid)
        # A killed grandchild is reaped by its own parent, never by us: once gone from /proc, forget it
        # (else kill_all(wait=True) would wait for it until its deadline).
        self.doomed = {pid for pid in self.doomed if os.path.exists(f"/proc/{pid}")}
        return statuses

    def kill_all(self, wait: bool = False) -> None:
        """SIGKILL every process of the job (fork bombs included).

        In our own PID namespace a single kill(-1) is enough: the kernel signals every process under
        the tasklist lock and a fork racing with it fails, so nothing of the job can run any more. The
        dying processes are then left to finish their exit (tearing down a forked copy of the worker
        takes milliseconds) while the next job starts; they are reaped later and not counted as its
        processes. Without a PID namespace, the worker's descendants are killed until none is left.
        """
        if self.is_init:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.reap()
            self.doomed.update(self.live())
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not self.is_init:
                for pid in self.live():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            self.reap()
            if not self.live() and not (wait and self.doomed):
                return
            time.sleep(0.001)
