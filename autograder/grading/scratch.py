"""Worker side: the scratch folder a copy runs in, and the clean-up between two copies.

Standard library only.
"""

from __future__ import annotations

import base64
import os

SCRATCH = "/tmp/copie"  # cwd of a submission inside the sandbox (a fresh, empty folder per job)
SANDBOX_HOME = "/tmp/home"


class Scratch:
    """Scratch folders of one worker: inside the sandbox /tmp itself is reset between two jobs."""

    def __init__(self, is_init: bool, scratch_root: str | None):
        self.is_init = is_init
        self.scratch_root = scratch_root
        self.protected: frozenset[str] = frozenset()
        self.tmp_baseline: list[tuple[str, int, bytes | None]] = []
        self.root_modes: dict[str, int] = {}

    def before_preload(self) -> None:
        if self.is_init:
            os.makedirs(SANDBOX_HOME, exist_ok=True)

    def after_preload(self) -> None:
        """Remember what the preload left in /tmp (HOME, caches): every job starts from it."""
        if self.is_init:
            self.protected = _protected_paths()
            self.tmp_baseline = _snapshot_tree("/tmp", self.protected)
            self.root_modes = {root: os.stat(root).st_mode & 0o7777 for root in ("/tmp", "/dev/shm")}

    def make(self, files: dict[str, str]) -> str:
        if self.is_init:
            scratch = SCRATCH
            if os.path.lexists(scratch):
                _force_remove(scratch)
            os.makedirs(scratch)  # fails (and the host starts a fresh worker) if a job left it undeletable
        else:
            import tempfile

            scratch = tempfile.mkdtemp(prefix="copie-", dir=self.scratch_root)
        write_files(scratch, files)
        return scratch

    def restore_baseline(self) -> None:
        """In a copy's fresh /tmp: what the preload left there (HOME, caches)."""
        for root, mode in self.root_modes.items():
            try:
                os.chmod(root, mode)
            except OSError:
                pass
        _restore_tree("/tmp", self.tmp_baseline)

    def wipe(self, scratch: str) -> None:
        if self.is_init:
            # /tmp goes back to what the preload left (HOME, caches) and /dev/shm is emptied: a job
            # cannot leave anything behind for the next submission, nor change a cache it would read.
            for root, mode in self.root_modes.items():
                try:
                    os.chmod(root, mode)
                except OSError:
                    pass
                _empty_folder(root, self.protected)
            _restore_tree("/tmp", self.tmp_baseline)
        else:
            _force_remove(scratch)


def write_files(scratch: str, files: dict[str, str]) -> None:
    """The assignment's files (relative path -> base64) in the copy's folder; nothing outside it."""
    for relative, encoded in files.items():
        parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            continue
        target = os.path.join(scratch, *parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(base64.b64decode(encoded))


def _protected_paths() -> frozenset[str]:
    """Read-only binds of the sandbox (interpreter, venv, package). When the course lives under /tmp they sit
    inside the job's /tmp: never read, copy or delete them while resetting /tmp between jobs."""
    from autograder.grading.sandbox import readonly_paths

    return frozenset(str(p) for p in readonly_paths())


def _holds_protected(path: str, protected: frozenset[str]) -> bool:
    """``path`` is a protected bind, or a folder on the way to one."""
    prefix = path.rstrip("/") + "/"
    return path in protected or any(p.startswith(prefix) for p in protected)


def _snapshot_tree(root: str, protected: frozenset[str] = frozenset()) -> list[tuple[str, int, bytes | None]]:
    """(relative path, mode, content or None for a folder) of everything under ``root``."""
    entries: list[tuple[str, int, bytes | None]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in protected]
        for name in dirs:
            path = os.path.join(folder, name)
            entries.append((os.path.relpath(path, root), os.stat(path).st_mode & 0o7777, None))
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                entries.append((os.path.relpath(path, root), os.stat(path).st_mode & 0o7777, handle.read()))
    return entries


def _empty_folder(root: str, protected: frozenset[str] = frozenset()) -> None:
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        if path in protected:
            continue
        if _holds_protected(path, protected):
            _empty_folder(path, protected)  # keep the way to the bind, remove what a job added beside it
        else:
            _force_remove(path)


def _force_remove(path: str) -> None:
    """Remove a file or a tree, even one a job made unreadable (chmod 000: no capability overrides it)."""
    import shutil

    if os.path.islink(path) or not os.path.isdir(path):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    stack = [path]
    while stack:  # give every folder back its owner's permissions, iteratively (nesting can be deep)
        folder = stack.pop()
        try:
            os.chmod(folder, 0o700)
            with os.scandir(folder) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def _restore_tree(root: str, entries: list[tuple[str, int, bytes | None]]) -> None:
    for relative, mode, content in entries:
        path = os.path.join(root, relative)
        try:
            if content is None:
                os.makedirs(path, mode=mode, exist_ok=True)
            else:
                with open(path, "wb") as handle:
                    handle.write(content)
                os.chmod(path, mode)
        except OSError:
            pass
