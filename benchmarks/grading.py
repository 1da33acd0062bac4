"""The instructor's whole job, side by side in one run: grade N copies and write every feedback page.

- `nbgrader autograde` + `nbgrader generate_feedback` (one fresh kernel per copy, pages one by one);
- `autograder grade` (warm sandboxed workers, feedback pages in parallel processes).

The copies mix full, blank and wrong answers (each typical mistake of the assignment in turn). Prints
both wall times, the ratio, whether the scores are identical, then the time of `autograder grade` on
a large class (300 copies by default), feedback included.

Usage (from the course root, environment active):
    python benchmarks/grading.py [N] [--grand 300] [--sans-isolation]
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

from tests.fixtures.tp1_gradients_wrong_answers import NBGRADER_CASES, WRONG_ANSWERS  # noqa: E402
from tests.notebook_tools import student_copy  # noqa: E402

ASSIGNMENT = "tp1_gradients"


def mixed_copies(n: int) -> dict[str, nbformat.NotebookNode]:
    """n copies: full, blank, then each typical mistake of the assignment, in turn."""
    by_behaviour = {w.behaviour: w for w in WRONG_ANSWERS}
    kinds: list[tuple[str, nbformat.NotebookNode]] = [
        ("complete", student_copy(ASSIGNMENT)),
        ("vide", student_copy(ASSIGNMENT, answered=False)),
    ]
    for grade_id, behaviour in NBGRADER_CASES.items():
        wrong = by_behaviour[behaviour]
        kinds.append((f"faux_{grade_id}", student_copy(ASSIGNMENT, {wrong.cell_id: wrong.source})))
    return {f"etudiant{i:03d}_{kinds[i % len(kinds)][0]}": kinds[i % len(kinds)][1] for i in range(n)}


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
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} a échoué :\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def nbgrader_job(base: Path, copies: dict[str, nbformat.NotebookNode]) -> tuple[float, float, dict[str, float]]:
    course = course_copy(base / "nbgrader")
    run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], course)
    for student, nb in copies.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    t_grade = run(["nbgrader", "autograde", ASSIGNMENT], course)
    t_feedback = run(["nbgrader", "generate_feedback", ASSIGNMENT], course)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: float(gb.find_submission(ASSIGNMENT, s).score) for s in copies}
    pages = len(list((course / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")))
    assert pages == len(copies), f"nbgrader : {pages} retours pour {len(copies)} copies"
    return t_grade, t_feedback, scores


def autograder_job(base: Path, copies: dict[str, nbformat.NotebookNode], extra: list[str]) -> tuple[float, dict]:
    course = course_copy(base / "autograder")
    folder = base / "copies"
    folder.mkdir()
    for student, nb in copies.items():
        nbformat.write(nb, folder / f"{student}.ipynb")
    run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], course)  # same preparation as nbgrader's
    elapsed = run(["autograder", "grade", ASSIGNMENT, str(folder), *extra], course)
    rows = csv.DictReader((course / "grades" / f"{ASSIGNMENT}.csv").open(encoding="utf-8"))
    scores = {r["student_id"]: float(r["score"]) for r in rows if r["student_id"] in copies}
    pages = len(list((course / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")))
    assert pages == len(copies), f"autograder : {pages} retours pour {len(copies)} copies"
    return elapsed, scores


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # each figure as soon as it is measured
    args = sys.argv[1:]
    n = int(next((a for a in args if a.isdigit()), "40"))
    large = int(args[args.index("--grand") + 1]) if "--grand" in args else 300
    extra = [a for a in args if a == "--sans-isolation"]
    copies = mixed_copies(n)
    with tempfile.TemporaryDirectory() as tmp:
        t_grade, t_feedback, theirs = nbgrader_job(Path(tmp), copies)
    with tempfile.TemporaryDirectory() as tmp:
        t_ours, ours = autograder_job(Path(tmp), copies, extra)
    t_theirs = t_grade + t_feedback
    kinds = sorted({student.split("_", 1)[1] for student in copies})
    print(f"{n} copies de {ASSIGNMENT} ({', '.join(kinds)}), {os.cpu_count()} cœurs, retours HTML compris")
    print(f"nbgrader autograde + generate_feedback : {t_theirs:6.1f} s  ({t_grade:.1f} s + {t_feedback:.1f} s)")
    print(f"autograder grade                       : {t_ours:6.1f} s  ({t_ours / n:.2f} s par copie)")
    print(f"rapport de vitesse : {t_theirs / t_ours:.1f}×")
    same = ours == theirs
    print("notes identiques" if same else f"NOTES DIFFÉRENTES :\n  nbgrader   {theirs}\n  autograder {ours}")
    if large:
        with tempfile.TemporaryDirectory() as tmp:
            t_large, scores = autograder_job(Path(tmp), mixed_copies(large), extra)
        per_copy = t_large / large
        print(f"{large} copies avec retours HTML : autograder grade {t_large:.1f} s ({per_copy:.2f} s par copie)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
