"""Host side: the kernel's limits for a whole copy — every process, thread, memfd and tmpfs page of it.

Each copy runs in its own cgroup, created by the host (trusted) under the cgroup the grading runs in,
before any cell of the copy runs:

- ``pids.max``: processes and threads at once. Beyond it, ``fork``/``clone`` fail with ``EAGAIN``
  inside the copy (``BlockingIOError``, « can't start new thread »), as on a real system;
- memory: everything the copy's processes charge (anonymous memory, memfd, its tmpfs, kernel
  memory such as inodes). Beyond it, the kernel's OOM killer stops a process of that copy only.

cgroup v2 (``memory.max``, ``pids.max``, ``cgroup.kill``) when its controllers can be delegated to
us, else cgroup v1 (``memory`` and ``pids`` hierarchies). ``available()`` says which, or why none
(French): the per-process limits (``RLIMIT_AS``, ``RLIMIT_NPROC``) and the worker's process
watchdog then remain the only limits. Standard library only.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import re
import signal
import time
from pathlib import Path

MEMORY_MARGIN = 256 * 1024 * 1024  # copy-on-write copies of the preloaded worker, kernel memory, small files
_counter = itertools.count()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, super options) of the cgroup filesystems."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        head, _, tail = line.partition(" - ")
        fields, tail_fields = head.split(), tail.split()
        if len(fields) > 4 and len(tail_fields) > 2 and tail_fields[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], tail_fields[0], set(tail_fields[2].split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> path of this process's cgroup, from /proc/self/cgroup."""
    paths = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


class Hierarchy:
    """Where to create the pool's cgroups: one folder per hierarchy (one for v2, two for v1)."""

    def __init__(self, version: int, bases: dict[str, Path]):
        self.version = version
        self.bases = bases  # "pids"/"memory" (v1) or "" (v2) -> folder of the grading's own cgroup


def _probe_v2() -> tuple[Hierarchy | None, str]:
    mounts = [m for m in _mounts() if m[1] == "cgroup2"]
    own = _own_cgroups().get("")
    if not mounts or own is None:
        return None, "pas de `cgroup` v2"
    base = Path(mounts[0][0]) / own.lstrip("/")
    controllers = set(_read(base / "cgroup.controllers").split())
    if not {"memory", "pids"} <= controllers:
        return None, "les contrôleurs `memory` et `pids` du `cgroup` v2 ne nous sont pas délégués"
    enabled = set(_read(base / "cgroup.subtree_control").split())
    if not {"memory", "pids"} <= enabled:
        try:
            _enable_controllers(base)
        except OSError as error:
            return None, f"impossible d'activer les contrôleurs du `cgroup` v2 ({error.strerror})"
    return Hierarchy(2, {"": base}), ""


LEAF = "processus"  # where the processes of the grading's own cgroup go, so that it may have controlled children


def _enable_controllers(base: Path) -> None:
    """Enable ``memory`` and ``pids`` for the children of ``base`` (our own cgroup).

    cgroup v2 forbids it while ``base`` itself holds processes (EBUSY, « no internal processes »), which is
    the usual case: a terminal's scope, a container, a JupyterHub server. As container runtimes do, the
    processes of ``base`` (this one and those beside it) then move one level down, into the leaf
    ``base/processus``: the limits of ``base`` still apply to them, and ``base`` can have controlled children.
    """
    try:
        _write(base / "cgroup.subtree_control", "+memory +pids")
        return
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise
    leaf = base / LEAF
    leaf.mkdir(exist_ok=True)
    for _attempt in range(5):  # a process may start beside us while we move the others
        pids = _read(base / "cgroup.procs").split()
        if not pids:
            break
        for pid in pids:
            try:
                _write(leaf / "cgroup.procs", pid)
            except ProcessLookupError:
                pass  # it has just exited
    _write(base / "cgroup.subtree_control", "+memory +pids")


def _probe_v1() -> tuple[Hierarchy | None, str]:
    own = _own_cgroups()
    bases = {}
    for point, kind, options in _mounts():
        for controller in ("pids", "memory"):
            if kind == "cgroup" and controller in options and controller in own:
                bases[controller] = Path(point) / own[controller].lstrip("/")
    if set(bases) != {"pids", "memory"}:
        return None, "ni `cgroup` v2 utilisable, ni hiérarchies `memory` et `pids` du `cgroup` v1"
    return Hierarchy(1, bases), ""


@functools.lru_cache(maxsize=1)
def available() -> tuple[Hierarchy | None, str]:
    """The usable hierarchy, or None and a French reason (the pool then relies on per-process limits)."""
    if not Path("/proc/self/cgroup").exists():
        return None, "pas de `cgroups` sur ce système"
    reasons = []
    for probe in (_probe_v2, _probe_v1):
        hierarchy, reason = probe()
        if hierarchy is None:
            reasons.append(reason)
            continue
        try:  # we must be allowed to create (and remove) cgroups there
            pool = PoolCgroups(hierarchy)
            pool.close()
        except OSError as error:
            reasons.append(f"création de `cgroup` refusée ({error.strerror})")
            continue
        return hierarchy, ""
    return None, " ; ".join(reasons)


class PoolCgroups:
    """The cgroups of one pool: a parent folder per hierarchy, one child per copy."""

    def __init__(self, hierarchy: Hierarchy):
        self.hierarchy = hierarchy
        sweep_stale(hierarchy)
        name = f"autograder-{os.getpid()}-{next(_counter)}"
        self.roots: dict[str, Path] = {}
        try:
            for controller, base in hierarchy.bases.items():
                root = base / name
                root.mkdir()
                self.roots[controller] = root
                if hierarchy.version == 2:
                    _write(root / "cgroup.subtree_control", "+memory +pids")
        except OSError:
            self.close()
            raise

    def copy(self, memory_bytes: int, tasks: int) -> CopyCgroup:
        return CopyCgroup(self, f"copie-{next(_counter)}", memory_bytes, tasks)

    def close(self) -> None:
        for root in self.roots.values():
            _remove_pool_folder(root)


_POOL_NAME = re.compile(r"autograder-(\d+)-\d+")


def sweep_stale(hierarchy: Hierarchy) -> list[Path]:
    """Remove the cgroups that an earlier grading left behind (its host is gone: killed, or a copy's last
    processes were still exiting when it closed); the ones still holding a process are kept. Returns the
    folders removed."""
    removed = []
    for base in hierarchy.bases.values():
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for folder in entries:
            match = _POOL_NAME.fullmatch(folder.name)
            if match is None or not folder.is_dir() or _alive(int(match.group(1))):
                continue
            removed += _remove_pool_folder(folder)
    return removed


def _remove_pool_folder(folder: Path) -> list[Path]:
    """Remove a pool's folder and its copies' cgroups (those still holding a process stay); what was removed."""
    removed = [child for child in sorted(folder.glob("copie-*")) if _remove(child)]
    return removed + [folder] if _remove(folder) else removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CopyCgroup:
    """The cgroup of one copy (in each hierarchy for v1)."""

    def __init__(self, pool: PoolCgroups, name: str, memory_bytes: int, tasks: int):
        self.version = pool.hierarchy.version
        self.dirs = {controller: root / name for controller, root in pool.roots.items()}
        for directory in self.dirs.values():
            directory.mkdir()
        if self.version == 2:
            directory = self.dirs[""]
            _write(directory / "memory.max", str(memory_bytes))
            if (directory / "memory.swap.max").exists():
                _write(directory / "memory.swap.max", "0")
            _write(directory / "pids.max", str(tasks))
        else:
            memory = self.dirs["memory"]
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
            if (memory / "memory.memsw.limit_in_bytes").exists():
                try:
                    _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
                except OSError:
                    pass
            _write(self.dirs["pids"] / "pids.max", str(tasks))

    def add(self, pid: int) -> None:
        """Move a process (and so everything it will start) into the copy's cgroup."""
        for directory in self.dirs.values():
            _write(directory / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self.dirs.values():
            found.update(int(p) for p in _read(directory / "cgroup.procs").split())
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL whatever is still in the copy's cgroup."""
        if self.version == 2 and (self.dirs[""] / "cgroup.kill").exists():
            try:
                _write(self.dirs[""] / "cgroup.kill", "1")
                return
            except OSError:
                pass
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def peak_memory(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = _read(self.dirs["" if self.version == 2 else "memory"] / name).strip()
        return int(text) if text.isdigit() else None

    def remove(self, wait: float = 0.0) -> bool:
        """Remove the cgroup once its processes have exited; False if some are still dying."""
        deadline = time.monotonic() + wait
        while True:
            if all(_remove(d) for d in self.dirs.values()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _remove(directory: Path) -> bool:
    try:
        directory.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
