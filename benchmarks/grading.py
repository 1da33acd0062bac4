"""Grade the same N reference submissions with `nbgrader autograde` and with `autograder grade`, in one run.

Prints both wall times, the speed-up ratio and both grade lists (they must be identical).
Usage (from the course root, environment active):  python benchmarks/grading.py [N] [--sans-isolation]
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.notebook_tools import student_copy  # noqa: E402

ASSIGNMENT = "tp1_gradients"


def course_copy(base: Path) -> Path:
    course = base / "cours"
    course.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copytree(ROOT / "release", course / "release")
    return course


def run(args: list[str], cwd: Path) -> float:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "20"))
    extra = [a for a in sys.argv[1:] if a.startswith("--")]
    nb = student_copy(ASSIGNMENT)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        students = [f"etudiant{i:03d}" for i in range(n)]

        reference = course_copy(base / "nbgrader")
        run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], reference)
        for student in students:
            folder = reference / "submitted" / student / ASSIGNMENT
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
        t_nbgrader = run(["nbgrader", "autograde", ASSIGNMENT], reference)
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{reference / 'gradebook.db'}") as gb:
            theirs = [gb.find_submission(ASSIGNMENT, s).score for s in students]

        ours_course = course_copy(base / "autograder")
        copies = base / "copies"
        copies.mkdir()
        for student in students:
            nbformat.write(nb, copies / f"{student}.ipynb")
        run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], ours_course)  # same preparation as above
        t_ours = run(["autograder", "grade", ASSIGNMENT, str(copies), "--sans-retours", *extra], ours_course)
        rows = {r["student_id"]: r for r in csv.DictReader((ours_course / "grades" / f"{ASSIGNMENT}.csv").open())}
        ours = [float(rows[s]["score"]) for s in students]

    print(f"{n} copies de référence de {ASSIGNMENT}, {os.cpu_count()} cœurs")
    print(f"nbgrader autograde : {t_nbgrader:6.1f} s  ({t_nbgrader / n:.2f} s par copie)")
    print(f"autograder grade   : {t_ours:6.1f} s  ({t_ours / n:.2f} s par copie)")
    print(f"rapport de vitesse : {t_nbgrader / t_ours:.1f}×")
    print(f"notes nbgrader   : {theirs}")
    print(f"notes autograder : {ours}")
    print("notes identiques" if ours == theirs else "NOTES DIFFÉRENTES")


if __name__ == "__main__":
    main()
