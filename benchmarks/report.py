"""Time of the class report for a big class: `python benchmarks/report.py [copies]` (default 300).

The copies are the generated class of the report's tests (mistakes drawn from the TP1 catalogue with set
frequencies). Measured: writing the mistakes CSV and the page (figures included) after a grading, then
rebuilding it from the CSV as `autograder rapport` does. Target: under 10 s on 2 cores. The first run in a
process includes importing matplotlib and drawing its first figure.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.grading import class_report, mistakes  # noqa: E402
from tests.fixtures.class_with_known_mistakes import known_class  # noqa: E402

TARGET = 10.0


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    known = known_class("tp1_gradients", count=count)
    with tempfile.TemporaryDirectory() as folder:
        grades = Path(folder) / "grades"
        grades.mkdir()
        started = time.perf_counter()
        questions = mistakes.questions_of(known.assignment, known.points)
        records = mistakes.records_of(known.outcomes, questions)
        mistakes.write_csv(class_report.paths(grades, known.assignment)["erreurs"], records, questions)
        _, page = class_report.build(grades, known.assignment, records, questions, names=known.names, new_run=True)
        after_grading = time.perf_counter() - started

        started = time.perf_counter()
        read, points = mistakes.read_csv(class_report.paths(grades, known.assignment)["erreurs"])
        class_report.build(grades, known.assignment, read, mistakes.questions_of(known.assignment, points))
        rebuild = time.perf_counter() - started
        size = page.stat().st_size
    print(f"Rapport de la classe, {count} copies ({len(known.points)} questions) :")
    print(f"  après la correction (CSV + page, premières figures) : {after_grading:.2f} s")
    print(f"  reconstruction (autograder rapport, sans le carnet de notes) : {rebuild:.2f} s")
    print(f"  page : {size / 1024:.0f} kio ; objectif : moins de {TARGET:.0f} s")
    ok = max(after_grading, rebuild) < TARGET
    print("  objectif atteint" if ok else "  OBJECTIF MANQUÉ")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
