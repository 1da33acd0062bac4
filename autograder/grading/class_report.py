"""What the class did not understand: the figures of the class report, its history, and the files it writes.

``analyse`` turns the copies' records (``mistakes.CopyRecord``) into plain data — score distribution out of 20,
success per question, the most frequent mistakes of each question with their share of the graded copies, the
mistakes shared by most of the class (« À reprendre en cours »), the copies a person should look at, and the
comparison with the previous grading of the same TP. The same data is written as JSON next to the HTML page
(``grades/<tp>_rapport.json``), so that every number of the page can be read by a program.

A small history (``grades/<tp>_historique.json``, no names, no ids) keeps a summary of each grading run; a run is
identified by the hash of its mistakes CSV, so rebuilding the report of a run compares it with the run before.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autograder.grading.mistakes import REVIEW_NAMES, TECHNICAL, CopyRecord, Question
from autograder.verdict import CORRECT, NOT_A_CHECK

SCALE = 20
BIN_WIDTH = 2
RETEACH_SHARE = 0.25  # a mistake made by a quarter of the class is worth going over again
RETEACH_AT_LEAST = 3
RETEACH_AT_MOST = 10
HISTORY_LENGTH = 20


def paths(grades: Path, assignment: str, *, anonymous: bool = False) -> dict[str, Path]:
    suffix = "_anonyme" if anonymous else ""
    return {
        "erreurs": grades / f"{assignment}_erreurs.csv",
        "html": grades / f"{assignment}_rapport{suffix}.html",
        "json": grades / f"{assignment}_rapport{suffix}.json",
        "historique": grades / f"{assignment}_historique.json",
    }


def _percent(part: float) -> str:
    return f"{100 * part:.0f}\u00a0%"


def _french(value: float, digits: int = 2) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return text.replace(".", ",")


def _grade(record: CopyRecord) -> float:
    return SCALE * record.score / record.max_score if record.max_score else 0.0


def _section(question: Question) -> dict[str, str] | None:
    if question.section is None:
        return None
    notebook, title = question.section
    return {"notebook": notebook, "titre": title}


def _distribution(grades: list[float]) -> dict[str, Any]:
    bins = [{"de": low, "a": low + BIN_WIDTH, "copies": 0} for low in range(0, SCALE, BIN_WIDTH)]
    for grade in grades:
        bins[min(int(grade // BIN_WIDTH), len(bins) - 1)]["copies"] += 1
    result: dict[str, Any] = {"sur": SCALE, "histogramme": bins}
    if grades:
        q1, median, q3 = statistics.quantiles(grades, n=4, method="inclusive") if len(grades) > 1 else [grades[0]] * 3
        result.update(
            moyenne=statistics.fmean(grades),
            mediane=statistics.median(grades),
            q1=q1,
            q3=q3,
            min=min(grades),
            max=max(grades),
        )
    return result


def analyse(
    records: list[CopyRecord],
    questions: list[Question],
    *,
    assignment: str,
    date: str,
    names: dict[str, str] | None = None,
    anonymous: bool = False,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's data (JSON-ready). ``names``: student id -> « Prénom Nom », left out when ``anonymous``."""
    records = sorted(records, key=lambda r: r.student_id)
    graded = [r for r in records if r.graded]
    count = len(graded)
    data: dict[str, Any] = {
        "tp": assignment,
        "date": date,
        "anonyme": anonymous,
        "copies": {
            "total": len(records),
            "corrigees": count,
            "non_corrigees": sum(r.status == "non_corrigee" for r in records),
            "absentes": sum(r.status == "absente" for r in records),
        },
        "notes": _distribution([_grade(r) for r in graded]),
    }
    question_rows = []
    shared = []
    for question in questions:
        verdicts = [r.verdicts[question.id] for r in graded if question.id in r.verdicts]
        codes: dict[str, int] = {}
        for verdict in verdicts:
            codes[verdict.code] = codes.get(verdict.code, 0) + 1
        right = codes.pop(CORRECT, 0)
        mistakes = [
            {"code": code, "nom": question.name(code), "copies": n, "part": n / count if count else 0.0}
            for code, n in sorted(codes.items(), key=lambda item: (-item[1], item[0]))
        ]
        question_rows.append(
            {
                "id": question.id,
                "titre": question.title,
                "points": question.points,
                "reussies": right,
                "reussite": right / count if count else 0.0,
                "points_moyens": statistics.fmean(v.points for v in verdicts) if verdicts else 0.0,
                "section": _section(question),
                # A plain test cell of the instructor (no check(...)): scored with nbgrader's own semantics.
                "hors_check": not question.catalogued or any(v.code == NOT_A_CHECK for v in verdicts),
                "erreurs": mistakes,
            }
        )
        for mistake in mistakes:
            if mistake["code"] not in TECHNICAL:
                shared.append(
                    {"question": question.id, "titre": question.title, **mistake, "section": _section(question)}
                )
    data["questions"] = question_rows
    order = {q.id: i for i, q in enumerate(questions)}
    shared.sort(key=lambda m: (-m["copies"], order[m["question"]], m["code"]))
    data["erreurs_frequentes"] = shared
    # Every mistake made by a quarter of the class (at most ten), and at least the three most frequent ones.
    widespread = sum(m["part"] >= RETEACH_SHARE for m in shared)
    data["a_reprendre"] = shared[: max(RETEACH_AT_LEAST, min(widespread, RETEACH_AT_MOST))]
    data["a_regarder"] = _review(records, names or {}, anonymous)
    data["comparaison"] = _comparison(data, previous) if previous else None
    return data


def _review(records: list[CopyRecord], names: dict[str, str], anonymous: bool) -> list[dict[str, Any]]:
    """Copies a person should look at. Anonymised: a number and the kinds of problem, no free text (a reason
    may quote a file name, and a file name may be a name)."""
    rows = []
    for number, record in enumerate((r for r in records if r.review), start=1):
        reasons = [
            {"code": code, "nom": REVIEW_NAMES.get(code, code), "detail": None if anonymous else detail}
            for code, detail in record.review
        ]
        if anonymous:
            label = f"Copie {number}"
        else:
            name = names.get(record.student_id, "")
            label = f"{record.student_id} ({name})" if name else record.student_id
        rows.append({"copie": label, "motifs": reasons})
    return rows


# -- history -----------------------------------------------------------------------------------------------------


def fingerprint(mistakes_csv: Path) -> str:
    return hashlib.sha256(mistakes_csv.read_bytes()).hexdigest()


def history_entry(data: dict[str, Any], run: str) -> dict[str, Any]:
    """What the next run compares with: no names, no ids."""
    return {
        "empreinte": run,
        "date": data["date"],
        "corrigees": data["copies"]["corrigees"],
        "moyenne": data["notes"].get("moyenne"),
        "mediane": data["notes"].get("mediane"),
        "reussite": {q["id"]: q["reussite"] for q in data["questions"]},
    }


def read_history(path: Path) -> list[dict[str, Any]]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict) and "empreinte" in e] if isinstance(entries, list) else []


def _comparison(data: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    rows = [_row("Copies corrigées", previous.get("corrigees"), data["copies"]["corrigees"], whole=True)]
    for key, label in (("moyenne", "Moyenne /20"), ("mediane", "Médiane /20")):
        rows.append(_row(label, previous.get(key), data["notes"].get(key)))
    for question in data["questions"]:
        before = previous.get("reussite", {}).get(question["id"])
        rows.append(_row(f"Réussite de {question['id']}", before, question["reussite"], percent=True))
    return {"date_precedente": previous.get("date", ""), "lignes": rows}


def _row(label: str, before: float | None, now: float | None, *, whole: bool = False, percent: bool = False):
    def show(value: float | None) -> str:
        if value is None:
            return "—"
        if percent:
            return _percent(value)
        return _french(value, 0 if whole else 2)

    if before is None or now is None:
        change = "—"
    elif percent:
        change = f"{100 * (now - before):+.0f} points".replace("-", "−")
    else:
        change = ("+" if now >= before else "−") + _french(abs(now - before), 0 if whole else 2)
    return {"indicateur": label, "avant": show(before), "maintenant": show(now), "ecart": change}


# -- the whole report --------------------------------------------------------------------------------------------


def build(
    grades: Path,
    assignment: str,
    records: list[CopyRecord],
    questions: list[Question],
    *,
    names: dict[str, str] | None = None,
    anonymous: bool = False,
    new_run: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Write the HTML page and its JSON data from records whose mistakes CSV is already written.

    ``new_run`` (after a grading): the run is added to the history (replacing the last entry when the results
    are the same). Otherwise (rebuilding): the history is only read. Either way the page compares with the last
    run whose results differ from this one.
    """
    from autograder.grading.report_page import render  # matplotlib: only when a page is made

    files = paths(grades, assignment, anonymous=anonymous)
    run = fingerprint(files["erreurs"])
    history = read_history(files["historique"])
    this = next((e for e in reversed(history) if e["empreinte"] == run), None)
    date = this["date"] if this and not new_run else datetime.now(UTC).strftime("%d/%m/%Y à %H:%M UTC")
    earlier = [e for e in history if e["empreinte"] != run]
    previous = earlier[-1] if earlier else None
    data = analyse(
        records, questions, assignment=assignment, date=date, names=names, anonymous=anonymous, previous=previous
    )
    if new_run:
        history = [e for e in history if e["empreinte"] != run] + [history_entry(data, run)]
        files["historique"].write_text(
            json.dumps(history[-HISTORY_LENGTH:], ensure_ascii=False, indent=1), encoding="utf-8"
        )
    files["json"].write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    files["html"].write_text(render(data), encoding="utf-8")
    return data, files["html"]
