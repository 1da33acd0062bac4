"""Child side: the resource limits a copy's process runs under (set in the child before any cell).

Standard library only.
"""

from __future__ import annotations

import os
import resource
from typing import Any

from autograder.grading.processes import task_count

MAX_FILE_BYTES = 50 * 1024 * 1024  # RLIMIT_FSIZE of a submission


def nproc_limit(limits: dict[str, Any], isolated: bool) -> int | None:
    """RLIMIT_NPROC for a job (counts the uid's tasks; inside a user namespace only the sandbox's)."""
    margin = int(limits["max_processes"]) + 16
    if isolated:
        return task_count(os.getpid()) + margin
    if os.getuid() == 0:
        return None  # not enforced for root anyway; the watchdog does the job
    uid = os.getuid()
    tasks = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    tasks += task_count(int(entry))
            except OSError:
                pass
    return tasks + margin


def vsize() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def apply(limits: dict[str, Any], nproc: int | None) -> None:
    """Address space, CPU time, file size, core dumps and process count of the calling process.

    A copy runs at the same priority as any other program (as a Jupyter kernel would): on a loaded
    machine it gets its fair share of the processors, so its time limits mean the same thing.
    """
    memory = int(limits["memory_mb"]) * 1024 * 1024
    address_space = vsize() + memory
    cpu = int(limits["cpu_seconds"])
    for name, soft, hard in (
        ("RLIMIT_AS", address_space, address_space),
        ("RLIMIT_CPU", cpu, cpu + 5),
        ("RLIMIT_FSIZE", MAX_FILE_BYTES, MAX_FILE_BYTES),
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_NPROC", nproc, nproc),
    ):
        if soft is None:
            continue
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError):
            pass
