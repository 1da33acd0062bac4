"""The trusted checkers' processes: forked from one warm zygote, replaced when they die, gone with the pool.

Each pool worker has its own checker; all of them are forks of one zygote that imported torch and the
exercises once. These tests grade the reference copy of TP1 through a real pool (bubblewrap) and look at
the processes from /proc.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from autograder.grading.executor import ExecutionLimits, WorkerPool
from autograder.grading.mistakes import catalogue_of
from autograder.grading.sandbox import isolation_status
from tests.notebook_tools import student_copy

pytestmark = pytest.mark.grading

ASSIGNMENT = "tp1_gradients"


@pytest.fixture(autouse=True)
def _needs_sandbox() -> None:
    available, reason = isolation_status()
    if not available:
        pytest.skip(f"bubblewrap indisponible : {reason}")


def _pool(size: int) -> WorkerPool:
    return WorkerPool(size, ExecutionLimits(cell_timeout=30), trusted=True)


def _all_correct(result) -> bool:
    return bool(result.verdicts) and all(v["code"] == "correcte" for v in result.verdicts.values())


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        stat = handle.read()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def _gone(pid: int, within: float = 15.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_each_worker_has_its_own_checker_forked_from_one_warm_zygote():
    with _pool(2) as pool:
        results = [f.result() for f in [pool.submit(student_copy(ASSIGNMENT), name=f"c{i}") for i in range(4)]]
        assert all(_all_correct(r) for r in results), [r.verdicts for r in results]
        zygote = pool._zygote.process.pid
        checkers = {number: checker.pid for number, checker in pool._checkers.items()}
        assert len(checkers) == 2 and len(set(checkers.values())) == 2
        assert all(_parent(pid) == zygote for pid in checkers.values())


def test_a_checker_that_dies_is_replaced_and_the_next_copy_is_still_decided():
    with _pool(1) as pool:
        assert _all_correct(pool.execute(student_copy(ASSIGNMENT), name="avant"))
        first = pool._checkers[0].pid
        os.kill(first, signal.SIGKILL)
        assert _gone(first)
        assert _all_correct(pool.execute(student_copy(ASSIGNMENT), name="apres"))
        assert pool._checkers[0].pid not in (None, first)


def test_a_dead_zygote_is_started_again_when_a_checker_is_needed():
    with _pool(1) as pool:
        assert _all_correct(pool.execute(student_copy(ASSIGNMENT), name="avant"))
        zygote, checker = pool._zygote.process.pid, pool._checkers[0].pid
        os.kill(zygote, signal.SIGKILL)
        os.kill(checker, signal.SIGKILL)
        assert _gone(checker)
        assert _all_correct(pool.execute(student_copy(ASSIGNMENT), name="apres"))
        assert pool._zygote.process.pid != zygote


def test_closing_the_pool_leaves_no_checker_behind():
    pool = _pool(2)
    try:
        pool.execute(student_copy(ASSIGNMENT), name="copie")
        pids = [pool._zygote.process.pid, *(c.pid for c in pool._checkers.values() if c.pid)]
    finally:
        pool.close()
    assert len(pids) >= 2
    assert all(_gone(pid) for pid in pids)


def test_the_class_reports_catalogue_comes_from_the_checker_and_matches_the_exercises():
    with _pool(1) as pool:
        pool.execute(student_copy(ASSIGNMENT), name="copie")
        assert pool.catalogue is not None
        sent = catalogue_of(ASSIGNMENT, pool.catalogue)
    assert sent == catalogue_of(ASSIGNMENT) and len(sent) >= 8


def test_without_pidfd_the_checkers_still_decide_and_end_with_the_pool(monkeypatch):
    """Kernels before 5.3 (and macOS, with --sans-isolation) have no pidfd: a checker then ends with its channel."""
    monkeypatch.delattr(os, "pidfd_open")
    pool = _pool(1)
    try:
        assert _all_correct(pool.execute(student_copy(ASSIGNMENT), name="copie"))
        checker = pool._checkers[0].pid
        assert checker is not None and pool._checkers[0].alive()
    finally:
        pool.close()
    assert _gone(checker)
