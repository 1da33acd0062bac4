"""Bubblewrap sandbox for running submissions: no network, read-only system, nothing of the course.

The sandbox sees, read-only: /usr (with Debian's /bin, /lib... symlinks), /etc (minus password
hashes and host keys), the Python interpreter's prefix, the virtualenv and the installed
``autograder`` package folder only (with an editable install, ``<repo>/autograder`` and never the
repository root: ``source/`` holds the solutions and ``gradebook.db`` the grades; a layout that
would expose it is refused). / and /dev are read-only; /tmp (size-limited) and /dev/shm are the
only writable places, private tmpfs. /proc is private. All namespaces are unshared (network, PID,
IPC, UTS, user, cgroup), every capability is dropped, no new user namespace can be created inside,
and the sandbox dies with its parent. Works as root and as a normal user (unprivileged user
namespaces, enabled by default on Debian).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import autograder

TMP_SIZE = 512 * 1024 * 1024  # bytes of the sandbox's /tmp (tmpfs, counted in RAM)
SHM_SIZE = 64 * 1024 * 1024  # bytes of its /dev/shm
SANDBOX_HOME = "/tmp/home"
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
_WORKER_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_SYS_RESOURCE")  # of the sandbox's user namespace
_MASKED_DIRS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d")


class SandboxError(RuntimeError):
    """The sandbox cannot be built safely (French message)."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or (str(Path("/usr/bin/bwrap")) if Path("/usr/bin/bwrap").exists() else None)


def package_dir() -> Path:
    """Folder of the installed ``autograder`` package (the only part of the course the sandbox sees)."""
    return Path(autograder.__file__).resolve().parent


def readonly_paths() -> list[Path]:
    """Folders bound read-only besides /usr and /etc, without duplicates or nested entries."""
    candidates = [Path(sys.base_prefix), Path(sys.prefix), package_dir()]
    # The venv's python is usually a symlink into the base prefix; bind wherever it really lives too.
    real_python = Path(sys.executable).resolve()
    if not any(real_python.is_relative_to(c.resolve()) for c in candidates):
        candidates.append(real_python.parent.parent)
    paths: list[Path] = []
    for path in candidates:
        for variant in dict.fromkeys((path, path.resolve())):
            if _covered(variant, [Path("/usr"), Path("/etc"), *paths]):
                continue
            paths = [p for p in paths if not p.is_relative_to(variant)] + [variant]
    return paths


def _covered(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_course_hidden(bound: list[Path]) -> None:
    """Refuse a sandbox that would see the course (a venv created in the repository, a course under /usr...)."""
    course = package_dir().parent
    if not ((course / "nbgrader_config.py").exists() or (course / "source").is_dir()):
        return  # a regular install in site-packages: no course folder next to the package
    for path in bound:
        if course == path or course.is_relative_to(path):
            raise SandboxError(
                f"le dossier {path} monté dans le bac à sable contient le cours ({course}, avec les solutions "
                "et le carnet de notes) : placez l'environnement Python et le cours dans des dossiers distincts."
            )


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed worker."""
    env = {
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "NBGRADER_EXECUTION": "autograde",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",  # same set/dict orders in every worker: re-grading gives identical outputs
    }
    env.update(extra or {})
    return env


def sandbox_argv(
    argv: list[str],
    *,
    writable: Path | None = None,
    env: Mapping[str, str] | None = None,
    as_pid_1: bool = False,
    chdir: str = "/tmp",
    confines_copies: bool = False,
) -> list[str]:
    """Wrap a command in bubblewrap.

    ``writable``: a host folder bound read-write at the same path (nothing else is writable but
    /tmp). ``env``: variables added to the minimal environment. ``as_pid_1``: the command is the
    PID namespace's init (the pool's workers use it to kill every process of a job at once).
    ``confines_copies``: the command is a pool worker, which gives each copy its own PID and mount
    namespaces (``confinement``). It keeps CAP_SYS_ADMIN, CAP_SETPCAP and CAP_SYS_RESOURCE of the
    sandbox's own user namespace (uid 0 there, so that no second, nested user namespace takes them
    away) and forbids new user namespaces itself; every copy drops them all before running anything.
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise FileNotFoundError("bwrap")
    args = [bwrap, "--unshare-all", "--unshare-user"]
    if confines_copies:
        args += ["--uid", "0", "--gid", "0", "--cap-drop", "ALL"]
        args += [arg for cap in _WORKER_CAPABILITIES for arg in ("--cap-add", cap)]
    else:
        args += ["--disable-userns", "--cap-drop", "ALL"]
    args += [
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "correction",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link in _SYSTEM_LINKS:
        path = Path(link)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), link]
        elif path.is_dir():
            args += ["--ro-bind", link, link]
    args += ["--ro-bind", "/etc", "/etc"]
    for masked in _MASKED_FILES:
        if Path(masked).is_file():
            args += ["--ro-bind", "/dev/null", masked]
    for masked in _MASKED_DIRS:
        if Path(masked).is_dir():
            args += ["--tmpfs", masked]
    # The tmpfs come before the read-only binds: when the course (and so its .venv) lives under /tmp,
    # a later `--tmpfs /tmp` would hide the interpreter and the package.
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_SIZE), "--tmpfs", "/dev/shm"]
    args += ["--size", str(TMP_SIZE), "--tmpfs", "/tmp"]
    bound = readonly_paths()
    check_course_hidden([Path("/usr"), Path("/etc"), *bound])
    for path in bound:
        args += ["--ro-bind", str(path), str(path)]
    if writable is not None:
        args += ["--bind", str(Path(writable)), str(Path(writable))]
    # bwrap's own root and /dev are unbounded tmpfs: read-only, only /tmp (bounded) can be written.
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--clearenv"]
    for key, value in minimal_env(env).items():
        args += ["--setenv", key, value]
    args += ["--chdir", chdir]
    if as_pid_1:
        args.append("--as-pid-1")
    return [*args, "--", *argv]


@functools.lru_cache(maxsize=1)
def isolation_status() -> tuple[bool, str]:
    """(available, French reason when not): bwrap is installed and a trial sandbox really starts."""
    if sys.platform != "linux":
        return False, "l'isolation repose sur bubblewrap, qui n'existe que sous Linux."
    if bwrap_path() is None:
        return False, (
            "bubblewrap (commande `bwrap`) est introuvable : installez le paquet Debian/Ubuntu « bubblewrap » "
            "(`sudo apt install bubblewrap`)."
        )
    probe = "import socket, sys; sys.stdout.write('ok')"
    try:
        argv = sandbox_argv([sys.executable, "-S", "-c", probe])
    except SandboxError as error:
        return False, f"{error}"
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return False, f"bubblewrap ne démarre pas : {error}."
    if done.returncode != 0 or done.stdout != "ok":
        detail = (done.stderr or done.stdout).strip().splitlines()
        detail_text = detail[-1] if detail else f"code de sortie {done.returncode}"
        hint = ""
        if any(word in detail_text for word in ("uid map", "Permission denied", "Operation not permitted")):
            hint = (
                " Les espaces de noms utilisateur non privilégiés semblent désactivés "
                "(`sysctl kernel.unprivileged_userns_clone=1`, ou sur Ubuntu 24.04 "
                "`sysctl kernel.apparmor_restrict_unprivileged_userns=0` ou un profil AppArmor pour `bwrap`)."
            )
        return False, f"le bac à sable bubblewrap ne démarre pas : {detail_text}.{hint}"
    return True, ""
