"""The kernel's per-copy limits (``autograder/grading/cgroups.py``): what a grading leaves behind, and cgroup v2.

- On this machine's real hierarchy (v1 or v2): the cgroups of a grading whose host is gone are removed when the
  next grading starts; those of a live grading are left alone.
- cgroup v2 forbids enabling controllers for the children of a cgroup that holds processes (« no internal
  processes »), which is the usual case (a terminal's scope, a container): the processes move into a leaf first.
  This machine may have cgroup v1 only, so that rule is played by a small simulated cgroup filesystem, built from
  the kernel's documented behaviour (writing ``cgroup.subtree_control`` fails with EBUSY while ``cgroup.procs`` is
  not empty; writing a pid to ``cgroup.procs`` moves that process).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading import cgroups


@pytest.fixture
def hierarchy():
    found, reason = cgroups.available()
    if found is None:
        pytest.skip(f"cgroups indisponibles : {reason}")
    return found


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_gradings_cgroups_are_removed_and_a_live_ones_kept(hierarchy):
    dead = [base / f"autograder-{_dead_pid()}-7" for base in hierarchy.bases.values()]
    live = [base / f"autograder-{os.getpid()}-99999" for base in hierarchy.bases.values()]
    try:
        for folder in dead + live:
            (folder / "copie-1").mkdir(parents=True)
        pool = cgroups.PoolCgroups(hierarchy)  # a new grading starts
        pool.close()
        assert not any(folder.exists() for folder in dead)
        assert all((folder / "copie-1").is_dir() for folder in live)
    finally:
        for folder in dead + live:
            for path in (folder / "copie-1", folder):
                try:
                    path.rmdir()
                except OSError:
                    pass


class SimulatedCgroupFs:
    """A cgroup v2 tree in a temporary folder, with the two kernel rules that ``_enable_controllers`` meets."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, path: Path, value: str) -> None:
        if path.name == "cgroup.subtree_control" and (path.parent / "cgroup.procs").read_text().split():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        if path.name == "cgroup.procs":  # moving a process: out of every other cgroup, into this one
            if not path.parent.is_dir():
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            for procs in self.root.rglob("cgroup.procs"):
                procs.write_text("\n".join(p for p in procs.read_text().split() if p != value))
            path.write_text("\n".join([*path.read_text().split(), value]) if path.exists() else value)
            return
        path.write_text(value)


def test_cgroup_v2_controllers_are_enabled_by_moving_our_cgroups_processes_into_a_leaf(tmp_path, monkeypatch):
    fs = SimulatedCgroupFs(tmp_path)
    base = tmp_path / "user.slice" / "session.scope"
    base.mkdir(parents=True)
    (base / "cgroup.procs").write_text("101\n102\n103")  # the shell, the Jupyter server, this grading
    (base / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cgroups, "_write", fs.write)
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        (self / "cgroup.procs").touch()

    monkeypatch.setattr(Path, "mkdir", mkdir)

    cgroups._enable_controllers(base)

    assert (base / "cgroup.procs").read_text().split() == []
    assert sorted((base / cgroups.LEAF / "cgroup.procs").read_text().split()) == ["101", "102", "103"]
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_cgroup_v2_other_refusals_are_reported_not_hidden(tmp_path, monkeypatch):
    base = tmp_path / "scope"
    base.mkdir()

    def refuse(path: Path, value: str) -> None:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(cgroups, "_write", refuse)
    with pytest.raises(PermissionError):
        cgroups._enable_controllers(base)
    assert not (base / cgroups.LEAF).exists()  # nothing moved when we may not even write there
