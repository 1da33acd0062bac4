"""Copy side, before any student code: give a copy its own PID namespace, /proc, /tmp and /dev/shm.

Inside the bubblewrap sandbox a worker keeps three capabilities of the sandbox's own user namespace
(never of the host): CAP_SYS_ADMIN, CAP_SETPCAP, CAP_SYS_RESOURCE. For each copy:

1. the worker calls ``new_pid_namespace``, forks the copy's init (PID 1 of a fresh PID namespace,
   not dumpable, so the copy can neither see nor trace nor write the worker or its init), then
   ``back_to_own_pid_namespace``;
2. the copy's init calls ``enter`` (own mount namespace, fresh /proc of its PID namespace with
   /proc/sys read-only, no new user namespace, /tmp and /dev/shm fresh tmpfs capped in size and
   inodes), forks the process that runs the cells, and both call ``drop_privileges`` (no capability
   left, even after an ``execve``, and no new privileges).

When the copy's init dies, the kernel kills every process of its PID namespace, and the last one
takes the mount namespace and its tmpfs down with it: nothing a copy did survives it, and there is
no clean-up to crash. Standard library only (ctypes).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")  # as bubblewrap does for its own /proc

_libc = ctypes.CDLL(None, use_errno=True)


class ConfinementError(OSError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise ConfinementError(errno, f"{what} : {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def set_dumpable(value: bool) -> None:
    _check(_libc.prctl(PR_SET_DUMPABLE, int(value), 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def own_pid_namespace() -> int:
    """A descriptor of the caller's PID namespace (kept by the worker for ``back_to_own_pid_namespace``)."""
    return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)


def new_pid_namespace() -> None:
    """The caller's next child is PID 1 of a new PID namespace."""
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")


def back_to_own_pid_namespace(namespace_fd: int) -> None:
    _check(_libc.setns(namespace_fd, CLONE_NEWPID), "setns(CLONE_NEWPID)")


def open_paths(paths: Iterable[str]) -> dict[str, int]:
    """O_PATH descriptors of read-only binds that a fresh /tmp would hide (a course under /tmp)."""
    return {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in paths if os.path.isdir(path)}


def enter(
    *,
    tmp_bytes: int,
    shm_bytes: int,
    inodes: int,
    hidden_binds: dict[str, int],
) -> None:
    """In the copy's init (PID 1 of its namespace): private mounts, fresh /proc, /tmp and /dev/shm."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # No user namespace can be created inside the sandbox any more (the sandbox's own limit).
    with open("/proc/sys/user/max_user_namespaces", "w") as handle:
        handle.write("0")
    for name in _PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Read-only binds under /tmp (a course cloned under /tmp: its .venv and package) would vanish under the fresh
    # /tmp. The descriptors opened by the worker belong to its mount namespace, which mount(2) refuses as a bind
    # source here (EINVAL): the paths are bound by name in this namespace to a staging place on the sandbox's
    # /dev/shm first, then moved back over the fresh /tmp. The fresh /dev/shm below hides the staging folder.
    staged = []
    for number, (path, fd) in enumerate(sorted(hidden_binds.items())):
        os.close(fd)
        stage = f"/dev/shm/.binds-du-correcteur/{number}"
        os.makedirs(stage, exist_ok=True)
        _mount(path, stage, None, MS_BIND | MS_REC)
        staged.append((path, stage))
    options = f"size={tmp_bytes},nr_inodes={inodes},mode=1777"
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options)
    for path, stage in staged:
        os.makedirs(path, exist_ok=True)
        _mount(stage, path, None, MS_MOVE)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={shm_bytes},nr_inodes={inodes},mode=1777")


def drop_privileges() -> None:
    """No capability left (bounding set included: an ``execve`` as uid 0 gains nothing) and no new privileges."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last = int(handle.read())
    except (OSError, ValueError):
        last = 63
    for capability in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)  # EINVAL for unknown ones: ignored
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: empty (two 32-bit words each)
    number = SYS_CAPSET.get(os.uname().machine)
    if number is None:
        raise ConfinementError(0, f"capset : architecture {os.uname().machine} non prise en charge")
    _check(_libc.syscall(number, header, data), "capset")


def close_descriptors(keep: Iterable[int]) -> None:
    """Close every descriptor but ``keep`` (and 0, 1, 2): a copy inherits nothing of its worker."""
    kept = sorted({0, 1, 2, *keep})
    low = 0
    for fd in kept:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)
