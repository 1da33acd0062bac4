"""The class report: its numbers equal the known mistakes of a generated class, it can be shared anonymised,
rebuilt without grading again, and its CSV opens safely in a spreadsheet."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.grading import class_report, mistakes
from autograder.grading.intake import Submission
from autograder.grading.outcome import GRADED, GRADED_PARTIAL, Outcome
from autograder.grading.spreadsheet import FORMULA_START
from autograder.verdict import CORRECT, NOT_ATTEMPTED, TIMED_OUT, Verdict
from tests.fixtures.class_with_known_mistakes import KnownClass, known_class, write_gradebook
from tests.notebook_tools import ROOT, kernel_env

TPS = ["tp1_gradients", "tp2_regression"]


class Tables(HTMLParser):
    """Every table of a page as rows of cell texts, with the id of the section holding it."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, str, list[list[str]]]] = []  # (section id, last heading, rows)
        self.section = ""
        self.heading = ""
        self._in_heading = False
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = dict(attrs).get("id", "")
        elif tag in ("h2", "h3"):
            self._in_heading, self.heading = True, ""
        elif tag == "table":
            self.tables.append((self.section, self.heading, []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self._in_heading = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1][2].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in_heading:
            self.heading += data
        if self._cell is not None:
            self._cell.append(data)


def tables(page: str) -> list[tuple[str, str, list[list[str]]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


def make_report(tmp_path: Path, known: KnownClass, **options) -> tuple[dict, Path]:
    questions = mistakes.questions_of(known.assignment, known.points)
    records = mistakes.records_of(known.outcomes, questions)
    grades = tmp_path / "grades"
    grades.mkdir(parents=True, exist_ok=True)
    mistakes.write_csv(class_report.paths(grades, known.assignment)["erreurs"], records, questions)
    return class_report.build(grades, known.assignment, records, questions, **options)


@pytest.fixture(scope="module", params=TPS)
def known(request):
    return known_class(request.param)


def test_report_numbers_equal_the_known_frequencies(tmp_path, known):
    data, page = make_report(tmp_path, known, names=known.names, new_run=True)
    graded = known.graded
    assert data["copies"] == {"total": graded + 2, "corrigees": graded, "non_corrigees": 1, "absentes": 1}
    for question in data["questions"]:
        expected = known.counts[question["id"]]
        assert question["reussies"] == expected[CORRECT]
        assert question["reussite"] == expected[CORRECT] / graded
        found = {m["code"]: (m["copies"], m["part"]) for m in question["erreurs"]}
        assert found == {c: (n, n / graded) for c, n in expected.items() if c != CORRECT and n}
    grades = sorted(known.grades.values())
    assert data["notes"]["moyenne"] == pytest.approx(sum(grades) / len(grades), abs=1e-12)
    assert data["notes"]["mediane"] == pytest.approx((grades[29] + grades[30]) / 2, abs=1e-12)
    assert sum(b["copies"] for b in data["notes"]["histogramme"]) == graded
    # The most shared mistakes come first, and the known biggest one leads « À reprendre en cours ».
    shares = [m["copies"] for m in data["a_reprendre"]]
    assert shares == sorted(shares, reverse=True) and shares[0] == max(
        n for counts in known.counts.values() for c, n in counts.items() if c not in (CORRECT,)
    )

    # The page's tables say the same, in French (readable without the pictures).
    text = page.read_text(encoding="utf-8")
    found_tables = tables(text)
    per_question = {heading.split()[0]: rows for section, heading, rows in found_tables if section == "erreurs"}
    for question in data["questions"]:
        rows = per_question[question["id"]][1:]
        expected = known.counts[question["id"]]
        assert {row[1]: int(row[2]) for row in rows} == {c: n for c, n in expected.items() if c != CORRECT and n}
        for row in rows:
            assert row[3] == f"{100 * expected[row[1]] / graded:.0f}\u00a0%"
    (success,) = [rows for section, _, rows in found_tables if section == "questions"]
    assert {row[0]: int(row[3]) for row in success[1:]} == {q: c[CORRECT] for q, c in known.counts.items()}
    assert json.loads((tmp_path / "grades" / f"{known.assignment}_rapport.json").read_text(encoding="utf-8")) == data


def test_mistake_names_and_sections_come_from_the_catalogue(tmp_path, known):
    data, page = make_report(tmp_path, known)
    questions = {q.id: q for q in mistakes.questions_of(known.assignment, known.points)}
    for question in data["questions"]:
        catalogue = questions[question["id"]]
        for mistake in question["erreurs"]:
            assert mistake["nom"] == catalogue.name(mistake["code"])
            if mistake["code"] in catalogue.mistakes:
                assert mistake["nom"] == catalogue.mistakes[mistake["code"]]
        if catalogue.section:
            assert question["section"] == {"notebook": catalogue.section[0], "titre": catalogue.section[1]}
    assert "question non tentée" in page.read_text(encoding="utf-8")


def test_copies_to_look_at_are_listed_with_their_reason(tmp_path, known):
    data, page = make_report(tmp_path, known, names=known.names)
    reasons = {row["copie"]: [m["code"] for m in row["motifs"]] for row in data["a_regarder"]}
    assert reasons == {
        "etu000 (Prénom000 Nomdefamille000)": ["collision_identifiant"],
        "etu001 (Prénom001 Nomdefamille001)": [TIMED_OUT],
        "etu_casse (Prénomcasse)": ["non_corrigee"],
    }
    text = page.read_text(encoding="utf-8")
    assert "une cellule a dépassé la limite de temps" in text and "identifiants en collision" in text


def test_anonymous_report_leaks_no_name_and_no_id(tmp_path, known):
    data, page = make_report(tmp_path, known, anonymous=True)
    assert page.name == f"{known.assignment}_rapport_anonyme.html"
    published = page.read_text(encoding="utf-8") + page.with_suffix(".json").read_text(encoding="utf-8")
    for decoded in re.findall(r"base64,([A-Za-z0-9+/=]+)", published):
        published += base64.b64decode(decoded).decode("utf-8", "replace")
    secrets = [*known.names, *known.names.values(), *known.emails, "Prénom", "Nomdefamille", "etu0", "etu_"]
    assert [s for s in secrets if s in published] == []
    assert [row["copie"] for row in data["a_regarder"]] == ["Copie 1", "Copie 2", "Copie 3"]
    assert all(m["detail"] is None for row in data["a_regarder"] for m in row["motifs"])
    # The numbers are those of the named report.
    named, _ = make_report(tmp_path / "nomme", known, names=known.names)
    assert named["questions"] == data["questions"] and named["notes"] == data["notes"]


def test_mistakes_csv_is_utf8_escaped_and_one_row_per_copy_and_question(tmp_path, known):
    known = known_class(known.assignment)  # changed below: not the shared one
    hostile = known.outcomes[2]
    question = next(iter(known.points))
    hostile.verdicts[question].message = '=HYPERLINK("http://x";"é")'
    make_report(tmp_path, known)
    path = tmp_path / "grades" / f"{known.assignment}_erreurs.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == mistakes.HEADER
    assert not [cell for row in rows for cell in row if cell.startswith(FORMULA_START)]
    per_question = [r for r in rows[1:] if r[1]]
    assert len(per_question) == known.graded * len(known.points)
    lost = {(r[0], r[1]): float(r[4]) for r in per_question}
    for outcome in known.outcomes[: known.graded]:
        for q, points in known.points.items():
            assert lost[outcome.submission.student_id, q] == points - outcome.scores[q]
    assert "Prénom" not in path.read_text(encoding="utf-8")  # ids only, names stay in the gradebook
    records, _ = mistakes.read_csv(path)
    back = next(r for r in records if r.student_id == hostile.submission.student_id)
    assert back.verdicts[question].message == '=HYPERLINK("http://x";"é")'


def test_codes_without_trusted_verdicts_come_from_scores_and_execution_status():
    """Until the trusted checker fills the verdicts: full points -> correcte, a copy cut short -> delai_depasse /
    plantage, other lost points -> non_reussie; never read from the output text."""
    questions = [mistakes.Question("q1", 2.0), mistakes.Question("q2", 3.0)]
    plain = Outcome(Submission("a", "a.ipynb"), GRADED, scores={"q1": 2.0, "q2": 1.0})
    cut = Outcome(Submission("b", "b.ipynb"), GRADED_PARTIAL, scores={"q1": 2.0, "q2": 0.0}, execution="cell_timeout")
    crashed = Outcome(Submission("c", "c.ipynb"), GRADED_PARTIAL, scores={"q1": 0.0}, execution="crashed")
    trusted = Outcome(Submission("d", "d.ipynb"), GRADED, scores={"q1": 0.0, "q2": 3.0})
    trusted.verdicts["q1"] = Verdict("q1", NOT_ATTEMPTED, 0.0, 2.0)
    # A cell the gradebook gives every point passed, whatever a « plantage » verdict says.
    full = Outcome(Submission("e", "e.ipynb"), GRADED, scores={"q1": 2.0, "q2": 0.0})
    full.verdicts = {q.id: Verdict(q.id, "plantage", 0.0, q.points) for q in questions}
    codes = {
        r.student_id: {q: v.code for q, v in r.verdicts.items()}
        for r in mistakes.records_of([plain, cut, crashed, trusted, full], questions)
    }
    assert codes == {
        "a": {"q1": CORRECT, "q2": mistakes.UNDETAILED},
        "b": {"q1": CORRECT, "q2": TIMED_OUT},
        "c": {"q1": "plantage", "q2": "plantage"},
        "d": {"q1": NOT_ATTEMPTED, "q2": CORRECT},
        "e": {"q1": CORRECT, "q2": "plantage"},
    }


def test_the_page_is_self_contained_and_its_pictures_are_embedded(tmp_path, known):
    _, page = make_report(tmp_path, known)
    text = page.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == 2 and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', text) and "<script" not in text
    assert all(re.search(r'<img src="[^"]+" alt="[^"]{20,}"', text) for _ in sources)


def test_comparison_with_the_previous_run_of_the_same_tp(tmp_path):
    first = known_class("tp1_gradients", seed=1)
    data, _ = make_report(tmp_path, first, new_run=True)
    assert data["comparaison"] is None
    second = known_class("tp1_gradients", seed=2)
    for outcome in second.outcomes[:10]:  # ten more copies get everything right
        for q, v in outcome.verdicts.items():
            v.code, v.points = CORRECT, v.max_points
            outcome.scores[q] = v.max_points
    again, page = make_report(tmp_path, second, new_run=True)
    rows = {row["indicateur"]: row for row in again["comparaison"]["lignes"]}
    assert rows["Moyenne /20"]["avant"] == class_report._french(data["notes"]["moyenne"])
    assert rows["Moyenne /20"]["maintenant"] == class_report._french(again["notes"]["moyenne"])
    history = json.loads((tmp_path / "grades" / "tp1_gradients_historique.json").read_text(encoding="utf-8"))
    assert len(history) == 2 and "etu" not in json.dumps(history)
    assert "Comparaison avec la correction précédente" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("anonymous", [False, True], ids=["nomme", "anonyme"])
def test_rapport_command_rebuilds_the_same_report_without_grading_again(tmp_path, monkeypatch, capsys, anonymous):
    """`autograder rapport <tp>` reads the gradebook (names) and the mistakes CSV: same page, same data."""
    from autograder.cli import main

    course = tmp_path / "cours"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    monkeypatch.setenv("PATH", kernel_env()["PATH"])  # nbgrader's gradebook runs alembic from the environment
    known = known_class("tp1_gradients")
    write_gradebook(course, known)
    names = {} if anonymous else {k: v for k, v in known.names.items()}
    original, page = make_report(course, known, names=names, anonymous=anonymous, new_run=True)
    before = page.read_text(encoding="utf-8")
    page.unlink()
    monkeypatch.chdir(course)
    assert main(["rapport", "tp1_gradients", *(["--anonyme"] if anonymous else [])]) == 0
    assert page.read_text(encoding="utf-8") == before
    assert json.loads(page.with_suffix(".json").read_text(encoding="utf-8")) == original
    out = capsys.readouterr().out.replace("\u00a0", " ")
    assert "Erreurs les plus fréquentes :" in out and out.rstrip().endswith(f"grades/{page.name}")
    top = original["erreurs_frequentes"][0]
    assert f"1. {top['nom']} ({top['question']})" in out


def test_rapport_without_a_grading_is_a_french_error(tmp_path, monkeypatch, capsys):
    from autograder.cli import main

    course = tmp_path / "cours"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    (course / "source" / "tp1_gradients").mkdir(parents=True)
    monkeypatch.chdir(course)
    assert main(["rapport", "tp1_gradients"]) == 2
    assert "corrigez d'abord le TP" in " ".join(capsys.readouterr().err.replace("\u00a0", " ").split())


def test_reteach_list_holds_every_widespread_mistake_and_at_least_three(tmp_path, known):
    data, _ = make_report(tmp_path, known)
    widespread = [m for m in data["erreurs_frequentes"] if m["part"] >= class_report.RETEACH_SHARE]
    expected = max(3, min(len(widespread), class_report.RETEACH_AT_MOST))
    assert data["a_reprendre"] == data["erreurs_frequentes"][:expected]
    assert all(m["code"] not in ("correcte", "plantage", "delai_depasse") for m in data["a_reprendre"])


def test_text_from_students_files_is_escaped_in_the_page(tmp_path):
    """A reason quoting a file name is shown as text: a file named like HTML never becomes markup."""
    known = known_class("tp1_gradients", count=8)
    known.outcomes[0].submission.review.append(("collision_identifiant", '<img src=x onerror="alert(1)">.ipynb'))
    _, page = make_report(tmp_path, known, names=known.names)
    text = page.read_text(encoding="utf-8")
    assert "<img src=x" not in text and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.ipynb" in text


def test_an_instructors_plain_test_cell_is_scored_by_points_and_flagged_once():
    """A test cell without check(...) (trusted verdict « test_hors_check »): correct when nbgrader gave its points,
    a failure of that test otherwise; the question is flagged, the copies are not sent for review."""
    questions = [mistakes.Question("plain", 1.0, "plain", catalogued=False)]
    passed = Outcome(Submission("a", "a.ipynb"), GRADED, scores={"plain": 1.0})
    failed = Outcome(Submission("b", "b.ipynb"), GRADED, scores={"plain": 0.0})
    for outcome in (passed, failed):
        outcome.verdicts["plain"] = Verdict("plain", "test_hors_check", 0.0, 1.0)
    records = mistakes.records_of([passed, failed], questions)
    assert [r.verdicts["plain"].code for r in records] == [CORRECT, "test_hors_check"]
    assert all(r.review == [] for r in records)
    data = class_report.analyse(records, questions, assignment="tp", date="aujourd'hui")
    (question,) = data["questions"]
    assert question["hors_check"] and question["reussite"] == 0.5 and data["a_regarder"] == []
