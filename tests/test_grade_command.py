"""`autograder grade` end to end, in a temporary copy of the course: every failure mode gets its exact outcome.

The submissions are the released TP as students would hand it in, changed by one behaviour each
(the student id names the behaviour). One batch is graded once for the whole module.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import get_exercise
from autograder.grading.sandbox import isolation_status
from tests.conftest import nbgrader
from tests.fixtures import mistakes
from tests.fixtures.tp1_gradients_wrong_answers import NBGRADER_CASES, WRONG_ANSWERS
from tests.notebook_tools import ROOT, kernel_env, nbgrader_meta, student_copy

pytestmark = pytest.mark.grading

ASSIGNMENT = "tp1_gradients"
WRONG = {w.behaviour: w for w in WRONG_ANSWERS}
AUTOGRADER = str(Path(sys.executable).parent / "autograder")
POINTS = {e: get_exercise(e).points for e in NBGRADER_CASES}


def wrong(grade_id: str) -> dict[str, str]:
    w = WRONG[NBGRADER_CASES[grade_id]]
    return {w.cell_id: w.source}


def all_wrong() -> dict[str, str]:
    replacements = {}
    for grade_id in NBGRADER_CASES:
        replacements.update(wrong(grade_id))
    return replacements


def with_cells(nb, edit):
    nb.cells = edit(nb.cells)
    return nb


def duplicated(cells):
    index = next(i for i, c in enumerate(cells) if nbgrader_meta(c).get("grade_id") == "tp1_vjp")
    answer = next(i for i, c in enumerate(cells) if nbgrader_meta(c).get("grade_id") == "tp1_vjp_answer")
    return cells[: answer + 1] + [cells[answer]] + cells[answer + 1 : index + 1] + [cells[index]] + cells[index + 1 :]


def emptied_tests(cells):
    for cell in cells:
        if nbgrader_meta(cell).get("grade"):
            cell.source = ""
    return cells


def with_a_figure(cells: list) -> list:
    """The copy's cells, then one that draws a figure (its feedback page shows it)."""
    return [
        *cells,
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()\n"),
    ]


LAST_ANSWER = "tp1_bug_answer"  # the last answer cell: what runs before it keeps its points
ABOVE_LAST = 20 - POINTS["tp1_bug"]


def submissions() -> dict[str, tuple[nbformat.NotebookNode | str, float | None]]:
    """student id (= behaviour) -> (notebook or raw text, expected score; None when not graded)."""
    return {
        "reference": (student_copy(ASSIGNMENT), 20),
        "blank": (student_copy(ASSIGNMENT, answered=False), 0),
        "wrong_hand_grad": (student_copy(ASSIGNMENT, wrong("tp1_hand_grad")), 20 - POINTS["tp1_hand_grad"]),
        "wrong_vjp": (student_copy(ASSIGNMENT, wrong("tp1_vjp")), 20 - POINTS["tp1_vjp"]),
        "wrong_bug": (student_copy(ASSIGNMENT, wrong("tp1_bug")), 20 - POINTS["tp1_bug"]),
        "json_invalide": ('{"cells": [{"cell_type": "code", "source": "x = 1"', None),
        "cellules_dupliquees": (with_cells(student_copy(ASSIGNMENT), duplicated), 20),
        "trace_une_figure": (with_cells(student_copy(ASSIGNMENT), with_a_figure), 20),
        "cellule_test_supprimee": (
            with_cells(student_copy(ASSIGNMENT), lambda cells: [c for c in cells if c.id != "tp1_vjp"]),
            20,
        ),
        "cellule_test_modifiee": (
            student_copy(ASSIGNMENT, {**wrong("tp1_hand_grad"), "tp1_hand_grad": 'print("✅ tp1_hand_grad")'}),
            20 - POINTS["tp1_hand_grad"],
        ),
        "cellules_test_videes": (with_cells(student_copy(ASSIGNMENT, answered=False), emptied_tests), 0),
        "boucle_infinie": (student_copy(ASSIGNMENT, {"tp1_graph_scratch": "while True:\n    pass\n"}), 20),
        "boucle_infinie_sigint_ignore": (
            student_copy(
                ASSIGNMENT,
                {LAST_ANSWER: "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"},
            ),
            ABOVE_LAST,
        ),
        "noyau_arrete_os_exit": (student_copy(ASSIGNMENT, {LAST_ANSWER: "import os\nos._exit(1)\n"}), ABOVE_LAST),
        "bombe_memoire": (
            student_copy(ASSIGNMENT, {LAST_ANSWER: "blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))\n"}),
            ABOVE_LAST,
        ),
        "sorties_enormes": (
            student_copy(
                ASSIGNMENT,
                {"tp1_graph_scratch": "for i in range(200_000):\n    print(i)\nprint('x' * 20_000_000)\n"},
            ),
            20,
        ),
        "avertissements_stderr": (
            student_copy(
                ASSIGNMENT,
                {
                    "tp1_predict_answer": "import warnings\n\ndef predicted_grad(x, a):\n"
                    "    warnings.simplefilter('always')\n    warnings.warn('attention', UserWarning)\n"
                    "    return a * a * x + torch.exp(x) * (1 + x)\n"
                },
            ),
            20,
        ),
        "triche_allclose": (
            student_copy(
                ASSIGNMENT,
                {
                    "tp1_hand_grad_answer": "torch.allclose = lambda *a, **k: True\n"
                    "torch.testing.assert_close = lambda *a, **k: None\n\n"
                    "def grad_z(x):\n    return x\n"
                },
            ),
            20 - POINTS["tp1_hand_grad"],
        ),
        "triche_check": (
            student_copy(ASSIGNMENT, {**all_wrong(), "tp1_graph_path": "check = lambda *a, **k: None\npath = []\n"}),
            0,
        ),
        "triche_verificateur": (
            student_copy(
                ASSIGNMENT,
                {
                    **all_wrong(),
                    "tp1_graph_path": "import autograder.exercise\n"
                    "autograder.exercise.Exercise.check = lambda *a, **k: None\npath = []\n",
                },
            ),
            0,
        ),
        "triche_builtins": (
            student_copy(
                ASSIGNMENT,
                {
                    **all_wrong(),
                    "tp1_graph_path": "import builtins\nbuiltins.isinstance = lambda *a: True\n"
                    "builtins.print = lambda *a, **k: None\npath = []\n",
                },
            ),
            0,
        ),
        "lit_la_solution": (
            student_copy(
                ASSIGNMENT,
                {
                    "tp1_hand_grad_answer": "import glob, json\n"
                    "found = glob.glob('../../../source/**/*.ipynb', recursive=True) + "
                    f"glob.glob('{ROOT}/source/**/*.ipynb', recursive=True)\n"
                    "for path in found:\n"
                    "    for cell in json.load(open(path))['cells']:\n"
                    "        if 'def grad_z' in ''.join(cell['source']):\n"
                    "            exec(''.join(cell['source']))\n"
                },
            ),
            20 - POINTS["tp1_hand_grad"],
        ),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("cours")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copytree(ROOT / "release", course / "release")
    copies = tmp_path_factory.mktemp("copies")
    expected = {}
    for student, (content, score) in submissions().items():
        path = copies / f"{student}.ipynb"
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            nbformat.write(content, path)
        expected[student] = score
    (copies / "lisez-moi.txt").write_text("pas une copie", encoding="utf-8")
    roster = course / "etudiants.csv"
    roster.write_text("id,nom,prenom,email\nreference,Ref,Érence,ref@example.fr\nabsente,Dupont,Anne,a@example.fr\n")
    available, reason = isolation_status()
    if not available:  # the expected outcomes assume the sandbox (e.g. reading the solution fails)
        pytest.skip(f"bubblewrap indisponible : {reason}")
    # A generous cell limit: on a loaded machine an honest cell (200 000 lines printed) must not reach it. A copy's
    # memory capped at 1 Gio: the memory bomb fails with MemoryError after touching 1 Gio, not 4, so that it stays far
    # from the cell limit on a loaded machine too (grading again must give the same CSV, status included).
    args = [AUTOGRADER, "grade", ASSIGNMENT, str(copies), "--liste", str(roster), "--limite-cellule", "10"]
    args += ["--memoire", "1024"]
    run = subprocess.run(args, cwd=course, env=kernel_env(), capture_output=True, text=True, timeout=900)
    rows = {
        r["student_id"]: r for r in csv.DictReader((course / "grades" / f"{ASSIGNMENT}.csv").open(encoding="utf-8"))
    }
    return {"course": course, "copies": copies, "run": run, "rows": rows, "expected": expected, "args": args}


def test_command_succeeds_in_french(graded):
    run = graded["run"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Correction de tp1_gradients" in run.stdout
    assert "Copies corrigées" in run.stdout and "Moyenne /20" in run.stdout


@pytest.mark.parametrize("student", list(submissions()))
def test_each_behaviour_gets_its_exact_score(graded, student):
    row = graded["rows"][student]
    expected = graded["expected"][student]
    if expected is None:
        assert row["status"] == "non corrigé" and row["score"] == "0"
    else:
        assert row["status"].startswith("corrigé"), row
        assert float(row["score"]) == expected, row


def test_nothing_is_lost(graded):
    """Every file that came in, and every student of the roster, has a row with a score or a reason."""
    rows = graded["rows"]
    origins = {Path(r["origine"]).name for r in rows.values()}
    for path in graded["copies"].iterdir():
        assert path.name in origins
    assert rows["absente"]["status"] == "absent" and rows["absente"]["raison"] == "aucune copie rendue"
    assert "pas un notebook JSON valide" in rows["json_invalide"]["raison"]
    assert rows["lisez-moi"]["raison"] == "pas un notebook : lisez-moi.txt"


def test_failures_are_explained(graded):
    rows = graded["rows"]
    assert "supprimée : rétablie" in rows["cellule_test_supprimee"]["remarques"]
    assert "« tp1_hand_grad » modifiée : rétablie" in rows["cellule_test_modifiee"]["remarques"]
    assert "présente 2 fois" in rows["cellules_dupliquees"]["remarques"]
    assert rows["boucle_infinie_sigint_ignore"]["status"] == "corrigé (exécution interrompue)"
    assert rows["noyau_arrete_os_exit"]["status"] == "corrigé (exécution interrompue)"
    assert rows["noyau_arrete_os_exit"]["raison"]


def test_mistakes_csv_and_class_report_after_grading(graded):
    """Every graded copy has one row per question: the reference loses nothing, a blank copy everything, a copy
    with one typical mistake exactly that question's points; the summary ends with the frequent mistakes and
    the report's path."""
    from autograder.grading.spreadsheet import read_rows

    course = graded["course"]
    rows = read_rows(course / "grades" / f"{ASSIGNMENT}_erreurs.csv")
    verdicts = {(r["student_id"], r["question"]): r for r in rows if r["question"]}
    for grade_id, points in POINTS.items():
        assert verdicts["reference", grade_id]["code"] == "correcte"
        assert float(verdicts["reference", grade_id]["points_perdus"]) == 0
        assert verdicts["blank", grade_id]["code"] != "correcte"
        assert float(verdicts["blank", grade_id]["points_perdus"]) == points
        mistake = verdicts["wrong_vjp", grade_id]
        assert (mistake["code"] != "correcte") == (grade_id == "tp1_vjp")
        assert float(mistake["points_perdus"]) == (points if grade_id == "tp1_vjp" else 0)
    review = {(r["student_id"], r["code"]) for r in rows if not r["question"]}
    assert ("cellule_test_modifiee", "cellule_modifiee") in review
    assert ("json_invalide", "non_corrigee") in review
    assert ("absente", "absente") in review
    page = course / "grades" / f"{ASSIGNMENT}_rapport.html"
    assert "Rapport de la classe" in page.read_text(encoding="utf-8")
    out = graded["run"].stdout.replace("\u00a0", " ")
    assert "Erreurs les plus fréquentes :" in out
    assert out.rstrip().endswith(f"Rapport de la classe : grades/{page.name}")
    # `autograder rapport` rebuilds the same page from the gradebook and the CSV, without grading again.
    before = page.read_text(encoding="utf-8")
    page.unlink()
    rebuilt = subprocess.run(
        [AUTOGRADER, "rapport", ASSIGNMENT], cwd=course, env=kernel_env(), capture_output=True, text=True, timeout=300
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert page.read_text(encoding="utf-8") == before


def test_scores_go_to_the_nbgrader_gradebook(graded):
    with Gradebook(f"sqlite:///{graded['course'] / 'gradebook.db'}") as gb:
        assert gb.find_submission(ASSIGNMENT, "reference").score == 20
        assert gb.find_submission(ASSIGNMENT, "wrong_vjp").score == 20 - POINTS["tp1_vjp"]
        student = gb.find_student("reference")
        assert (student.first_name, student.last_name) == ("Érence", "Ref")
    export = nbgrader(graded["course"], "export", "--to", "export.csv")
    assert export.returncode == 0


def test_outputs_are_bounded(graded):
    path = graded["course"] / "autograded" / "sorties_enormes" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert path.stat().st_size < 2_000_000


def test_french_feedback_hides_hidden_tests(graded):
    page = graded["course"] / "feedback" / "wrong_vjp" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = page.read_text(encoding="utf-8")
    assert "Cellule notée" in text and "seed=" not in text and "HIDDEN" not in text
    assert "forme de la" in text


def test_feedback_figures_have_a_french_alt_text(graded):
    page = graded["course"] / "feedback" / "trace_une_figure" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = page.read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,' in text
    assert 'alt="Figure produite par cette cellule (sans description)"' in text
    assert "No description has been provided" not in text


def test_feedback_pages_are_exactly_those_of_nbgraders_generate_feedback(graded, tmp_path):
    """The feedback processes keep the release's rendered text from one page to the next and read a copy's grades
    in one query: every page must still be, byte for byte, the one nbgrader's own GenerateFeedback writes (its
    GetGrades, a new exporter for each page)."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    from autograder.grading.pipeline import load_course_config

    course = tmp_path / "cours"
    shutil.copytree(graded["course"], course, ignore=shutil.ignore_patterns("feedback"))
    config = load_course_config(course)
    students = sorted(p.name for p in (graded["course"] / "feedback").iterdir())
    assert len(students) >= 15
    for student in students:
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = ASSIGNMENT
        coursedir.student_id = student
        GenerateFeedback(coursedir=coursedir, config=config).start()
        page = Path(student) / ASSIGNMENT / f"{ASSIGNMENT}.html"
        ours = (graded["course"] / "feedback" / page).read_text(encoding="utf-8")
        assert ours == (course / "feedback" / page).read_text(encoding="utf-8"), student


def test_moodle_csv(graded):
    rows = list(csv.DictReader((graded["course"] / "grades" / f"{ASSIGNMENT}_moodle.csv").open(encoding="utf-8")))
    reference = next(r for r in rows if r["Identifiant"] == "reference")
    assert reference["Note"] == "20" and reference["Adresse de courriel"] == "ref@example.fr"


def test_regrading_is_idempotent(graded):
    before = (graded["course"] / "grades" / f"{ASSIGNMENT}.csv").read_text(encoding="utf-8")
    again = subprocess.run(graded["args"], cwd=graded["course"], env=kernel_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (graded["course"] / "grades" / f"{ASSIGNMENT}.csv").read_text(encoding="utf-8") == before


def test_scores_equal_nbgrader_autograde(graded, tmp_path):
    """On well-formed submissions, plain `nbgrader autograde` gives the same scores."""
    course = tmp_path / "cours"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    students = ["reference", "blank", "wrong_hand_grad", "wrong_vjp", "wrong_bug", "avertissements_stderr"]
    for student in students:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(graded["copies"] / f"{student}.ipynb", folder / f"{ASSIGNMENT}.ipynb")
    nbgrader(course, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        theirs = {s: gb.find_submission(ASSIGNMENT, s).score for s in students}
    ours = {s: float(graded["rows"][s]["score"]) for s in students}
    assert ours == theirs


def test_verifier_exit_codes(graded, tmp_path):
    good = subprocess.run(
        [AUTOGRADER, "verifier", str(graded["copies"] / "reference.ipynb")], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Total (tests visibles) : 20/20" in good.stdout.replace("\u00a0", " ")
    bad = subprocess.run(
        [AUTOGRADER, "verifier", str(graded["copies"] / "wrong_vjp.ipynb")], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "❌ tp1_vjp" in bad.stdout and "forme de la" in bad.stdout


def test_moodle_zip_in_moodle_csv_out(graded, tmp_path):
    """The zip of Moodle's « Télécharger tous les travaux remis » is graded as is; the Moodle CSV names participants."""
    import zipfile

    archive = tmp_path / "travaux.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "Élodie Dupont_12345_assignsubmission_file_/tp1_gradients.ipynb",
            nbformat.writes(student_copy(ASSIGNMENT)),
        )
        zf.writestr(
            "Jean Martin_23456_assignsubmission_file_/TP1 final.ipynb",
            nbformat.writes(student_copy(ASSIGNMENT, wrong("tp1_vjp"))),
        )
        zf.writestr("Zoé Petit_34567_assignsubmission_onlinetext_/onlinetext.html", "<p>oubli</p>")
    args = [AUTOGRADER, "grade", ASSIGNMENT, str(archive), "--sans-retours"]
    run = subprocess.run(args, cwd=graded["course"], env=kernel_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    moodle = {
        r["Identifiant"]: r
        for r in csv.DictReader((graded["course"] / "grades" / f"{ASSIGNMENT}_moodle.csv").open(encoding="utf-8"))
    }
    assert moodle["Participant 12345"]["Note"] == "20"
    assert moodle["Participant 12345"]["Nom complet"] == "Élodie Dupont"
    assert moodle["Participant 23456"]["Note"] == str(20 - POINTS["tp1_vjp"])
    assert moodle["Participant 34567"]["Note"] == "0"
    assert "aucun notebook rendu" in moodle["Participant 34567"]["Commentaires"]


TP2 = "tp2_regression"


def tp2_submissions() -> dict[str, tuple[nbformat.NotebookNode, float]]:
    """TP2 copies: reference, blank and two typical mistakes (student id = behaviour) -> expected score."""
    fixtures = mistakes(TP2)
    by_behaviour = {w.behaviour: w for w in fixtures.WRONG_ANSWERS}
    copies = {"reference": (student_copy(TP2), 20.0), "blank": (student_copy(TP2, answered=False), 0.0)}
    for grade_id in ("tp2_grad_w", "tp2_minibatch"):
        w = by_behaviour[fixtures.NBGRADER_CASES[grade_id]]
        copies[w.behaviour] = (student_copy(TP2, {w.cell_id: w.source}), 20.0 - get_exercise(grade_id).points)
    return copies


TP3 = "tp3_retropropagation"


def tp3_submissions() -> dict[str, tuple[nbformat.NotebookNode, float]]:
    """TP3 copies: reference, blank and the typical mistake of each question -> expected score."""
    fixtures = mistakes(TP3)
    by_behaviour = {w.behaviour: w for w in fixtures.WRONG_ANSWERS}
    copies = {"reference": (student_copy(TP3), 20.0), "blank": (student_copy(TP3, answered=False), 0.0)}
    for grade_id, behaviour in fixtures.NBGRADER_CASES.items():
        w = by_behaviour[behaviour]
        copies[behaviour] = (student_copy(TP3, {w.cell_id: w.source}), 20.0 - get_exercise(grade_id).points)
    return copies


@pytest.mark.parametrize(("tp", "make_copies"), [(TP2, tp2_submissions), (TP3, tp3_submissions)], ids=[TP2, TP3])
def test_tp_scores_equal_nbgrader_autograde(tmp_path, tp, make_copies):
    """`autograder grade <tp>` gives exactly the scores of plain `nbgrader autograde`: 20, 0, 20 − points."""
    available, reason = isolation_status()
    if not available:
        pytest.skip(f"bubblewrap indisponible : {reason}")
    submissions = make_copies()
    courses = {}
    for name in ("autograder", "nbgrader"):
        course = courses[name] = tmp_path / name
        course.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "source", course / "source")
        shutil.copytree(ROOT / "release", course / "release")
    copies = tmp_path / "copies"
    copies.mkdir()
    for student, (nb, _) in submissions.items():
        nbformat.write(nb, copies / f"{student}.ipynb")
        folder = courses["nbgrader"] / "submitted" / student / tp
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{tp}.ipynb")

    args = [AUTOGRADER, "grade", tp, str(copies), "--limite-cellule", "30", "--sans-retours"]
    run = subprocess.run(args, cwd=courses["autograder"], env=kernel_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    grades = courses["autograder"] / "grades" / f"{tp}.csv"
    ours = {r["student_id"]: float(r["score"]) for r in csv.DictReader(grades.open(encoding="utf-8"))}

    nbgrader(courses["nbgrader"], "generate_assignment", tp, "--force")
    nbgrader(courses["nbgrader"], "autograde", tp)
    with Gradebook(f"sqlite:///{courses['nbgrader'] / 'gradebook.db'}") as gb:
        theirs = {s: gb.find_submission(tp, s).score for s in submissions}

    expected = {student: score for student, (_, score) in submissions.items()}
    assert ours == theirs == expected


def test_class_report_counts_the_trusted_checkers_mistake_codes(tmp_path):
    """With the trusted checker (AUTOGRADER_TRUSTED_CHECKER=1), `autograder grade` records each checker's own code:
    nothing lost by the reference, « non_tentee » on every question of a blank copy, the typical mistake's code on
    the one question a copy gets wrong; the report counts them."""
    from autograder.grading.spreadsheet import read_rows

    available, reason = isolation_status()
    if not available:
        pytest.skip(f"bubblewrap indisponible : {reason}")
    course = tmp_path / "cours"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copytree(ROOT / "release", course / "release")
    mistake = WRONG[NBGRADER_CASES["tp1_vjp"]]
    copies = tmp_path / "copies"
    copies.mkdir()
    nbformat.write(student_copy(ASSIGNMENT), copies / "reference.ipynb")
    nbformat.write(student_copy(ASSIGNMENT, answered=False), copies / "blank.ipynb")
    nbformat.write(student_copy(ASSIGNMENT, wrong("tp1_vjp")), copies / "wrong_vjp.ipynb")
    env = {**kernel_env(), "AUTOGRADER_TRUSTED_CHECKER": "1"}
    args = [AUTOGRADER, "grade", ASSIGNMENT, str(copies), "--limite-cellule", "30", "--sans-retours"]
    run = subprocess.run(args, cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = read_rows(course / "grades" / f"{ASSIGNMENT}_erreurs.csv")
    codes = {(r["student_id"], r["question"]): r["code"] for r in rows if r["question"]}
    assert {codes["reference", q] for q in POINTS} == {"correcte"}
    assert {codes["blank", q] for q in POINTS} == {"non_tentee"}
    assert {q: codes["wrong_vjp", q] for q in POINTS} == {
        q: (mistake.code or codes["wrong_vjp", "tp1_vjp"]) if q == "tp1_vjp" else "correcte" for q in POINTS
    }
    assert codes["wrong_vjp", "tp1_vjp"] in get_exercise("tp1_vjp").mistakes
    data = json.loads((course / "grades" / f"{ASSIGNMENT}_rapport.json").read_text(encoding="utf-8"))
    vjp = next(q for q in data["questions"] if q["id"] == "tp1_vjp")
    assert vjp["reussies"] == 1
    assert {m["code"]: m["copies"] for m in vjp["erreurs"]} == {"non_tentee": 1, codes["wrong_vjp", "tp1_vjp"]: 1}
