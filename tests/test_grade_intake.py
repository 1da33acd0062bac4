"""Intake of submissions: every file that came in is accounted for, with a French reason when it cannot be graded."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.grading.intake import COLLISION, IntakeError, collect, read_roster
from autograder.grading.outcome import GRADED, NOT_GRADED, Outcome
from autograder.grading.report import write_grades_csv, write_moodle_csv
from autograder.grading.spreadsheet import FORMULA_START, escape, read_rows, unescape
from tests.notebook_tools import ROOT, student_copy

ASSIGNMENT = "tp1_gradients"


def write_notebook(path, nb=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb or student_copy(ASSIGNMENT), path)


def by_id(subs):
    return {s.student_id: s for s in subs}


def test_flat_folder_one_notebook_per_student(tmp_path):
    copies = tmp_path / "copies"
    write_notebook(copies / "alice.ipynb")
    write_notebook(copies / "bob.ipynb")
    (copies / "carol.ipynb").write_text('{"cells": [', encoding="utf-8")  # truncated JSON
    (copies / "notes.txt").write_text("bonjour", encoding="utf-8")
    subs = by_id(collect(copies, ASSIGNMENT, tmp_path / "work"))
    assert subs["alice"].notebook and subs["alice"].problem is None
    assert subs["bob"].notebook
    assert subs["carol"].notebook is None and "pas un notebook JSON valide" in subs["carol"].problem
    assert subs["notes"].problem == "pas un notebook : notes.txt"


def test_nbgrader_layout_with_renamed_missing_and_extra_files(tmp_path):
    submitted = tmp_path / "submitted"
    write_notebook(submitted / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    (submitted / "alice" / ASSIGNMENT / "timestamp.txt").write_text("2026-11-20 10:00:00 UTC\n")
    write_notebook(submitted / "bob" / ASSIGNMENT / f"{ASSIGNMENT} (copie).ipynb")
    (submitted / "carol" / ASSIGNMENT).mkdir(parents=True)
    (submitted / "carol" / ASSIGNMENT / "brouillon.py").write_text("x = 1\n")
    subs = by_id(collect(tmp_path, ASSIGNMENT, tmp_path / "work"))
    assert subs["alice"].timestamp == "2026-11-20 10:00:00 UTC"
    assert subs["bob"].notebook.name == f"{ASSIGNMENT} (copie).ipynb"
    assert any("notebook renommé" in note for note in subs["bob"].notes)
    assert subs["carol"].problem == f"aucun notebook rendu (attendu : {ASSIGNMENT}.ipynb)"
    assert "fichier ignoré (pas un notebook) : brouillon.py" in subs["carol"].notes


def moodle_zip(tmp_path):
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            f"Élodie Dupont_12345_assignsubmission_file_/{ASSIGNMENT}.ipynb", nbformat.writes(student_copy(ASSIGNMENT))
        )
        zf.writestr("Jean Martin_23456_assignsubmission_file_/mon tp.ipynb", nbformat.writes(student_copy(ASSIGNMENT)))
        zf.writestr("Jean Martin_23456_assignsubmission_onlinetext_/onlinetext.html", "<p>coucou</p>")
        zf.writestr("Zoé Petit_34567_assignsubmission_file_/rapport.pdf", b"%PDF-1.4")
        zf.writestr("../../evil.ipynb", "{}")
    return archive


def test_moodle_zip_with_roster(tmp_path):
    roster = tmp_path / "etudiants.csv"
    roster.write_text(
        "id,nom,prenom,email\n"
        "edupont,Dupont,Élodie,elodie.dupont@example.fr\n"
        "jmartin,Martin,Jean,jean.martin@example.fr\n"
        "zpetit,Petit,Zoé,zoe.petit@example.fr\n"
        "aabsent,Absent,Anne,anne@example.fr\n",
        encoding="utf-8",
    )
    subs = by_id(collect(moodle_zip(tmp_path), ASSIGNMENT, tmp_path / "work", roster))
    assert subs["edupont"].notebook and subs["edupont"].lms_id == "12345"
    assert subs["edupont"].email == "elodie.dupont@example.fr"
    assert subs["jmartin"].notebook.name == "mon tp.ipynb"
    assert "rendu « onlinetext » ignoré (seuls les fichiers sont corrigés)" in subs["jmartin"].notes
    assert subs["zpetit"].problem.startswith("aucun notebook rendu")
    assert "fichier ignoré (pas un notebook) : rapport.pdf" in subs["zpetit"].notes
    assert subs["aabsent"].problem == "aucune copie rendue"
    assert not (tmp_path / "evil.ipynb").exists()  # zip slip refused


def test_roster_with_french_headers_and_semicolons(tmp_path):
    roster = tmp_path / "liste.csv"
    roster.write_text("Identifiant;Nom;Prénom;Courriel\n42;Durand;Léa;lea@example.fr\n", encoding="utf-8")
    (entry,) = read_roster(roster)
    assert (entry.student_id, entry.last_name, entry.first_name, entry.email) == (
        "42",
        "Durand",
        "Léa",
        "lea@example.fr",
    )


def test_unreadable_inputs_are_french_errors(tmp_path):
    with pytest.raises(IntakeError, match="Dépôt introuvable"):
        collect(tmp_path / "absent", ASSIGNMENT, tmp_path)
    not_zip = tmp_path / "copies.rar"
    not_zip.write_bytes(b"Rar!")
    with pytest.raises(IntakeError, match="ni un dossier ni une archive zip"):
        collect(not_zip, ASSIGNMENT, tmp_path)
    bad_roster = tmp_path / "liste.csv"
    bad_roster.write_text("nom,prenom\nDupont,Élodie\n", encoding="utf-8")
    with pytest.raises(IntakeError, match="colonne « id » absente"):
        read_roster(bad_roster)


def test_reports_are_quoted_utf8_and_moodle_ready(tmp_path):
    subs = by_id(collect(moodle_zip(tmp_path), ASSIGNMENT, tmp_path / "work"))
    graded = Outcome(subs["12345"], GRADED, scores={"tp1_graph": 3.0, "tp1_vjp": 0.0}, score=15.0, max_score=20.0)
    graded.notes = ["cellule « tp1_vjp » présente 2 fois, seule la dernière est corrigée"]
    failed = Outcome(subs["34567"], NOT_GRADED, reason="aucun notebook rendu, virgule", max_score=20.0)
    write_grades_csv(tmp_path / "grades.csv", [graded, failed], ["tp1_graph", "tp1_vjp"])
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8")))
    assert rows[0]["student_id"] == "12345" and rows[0]["tp1_graph"] == "3" and rows[0]["score"] == "15"
    assert rows[1]["status"] == NOT_GRADED and rows[1]["raison"] == "aucun notebook rendu, virgule"
    write_moodle_csv(tmp_path / "moodle.csv", [graded, failed])
    moodle = list(csv.DictReader((tmp_path / "moodle.csv").open(encoding="utf-8")))
    assert moodle[0]["Identifiant"] == "Participant 12345"
    assert moodle[0]["Nom complet"] == "Élodie Dupont" and moodle[0]["Note"] == "15"
    assert moodle[1]["Note"] == "0" and moodle[1]["Note maximale"] == "20"


def test_grading_is_refused_without_a_sandbox(tmp_path, monkeypatch, capsys):
    """Without bubblewrap, `autograder grade` refuses (French message) unless --sans-isolation is given."""
    import autograder.grading.command as command
    from autograder.cli import main

    monkeypatch.setattr(command, "isolation_status", lambda: (False, "bubblewrap (commande bwrap) est introuvable"))
    monkeypatch.chdir(ROOT)
    copies = tmp_path / "copies"
    write_notebook(copies / "alice.ipynb")
    assert main(["grade", ASSIGNMENT, str(copies)]) == 2
    err = capsys.readouterr().err
    assert "impossible d'isoler les copies" in err and "--sans-isolation" in err
    assert not (ROOT / "submitted" / "alice").exists()


def test_unknown_assignment_is_a_french_error(monkeypatch, capsys):
    from autograder.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["grade", "tp9_inconnu", "copies"]) == 2
    assert "TP inconnu « tp9_inconnu »" in capsys.readouterr().err.replace("\u00a0", " ")


# -- hostile intake (issue 10, part 6) ----------------------------------------------------------------------------


def test_names_equal_once_normalised_are_graded_separately_and_flagged(tmp_path):
    """`dupont.ipynb` and `dupönt.ipynb` keep two distinct ids (never one graded as the other), both flagged."""
    copies = tmp_path / "copies"
    write_notebook(copies / "dupont.ipynb")
    write_notebook(copies / "dupönt.ipynb")
    write_notebook(copies / "martin.ipynb")
    subs = collect(copies, ASSIGNMENT, tmp_path / "work")
    graded = [s for s in subs if s.notebook is not None]
    ids = [s.student_id for s in graded]
    assert len(ids) == len(set(ids)) == 3
    by_origin = {Path(s.origin).name: s for s in graded}
    assert by_origin["dupont.ipynb"].student_id == "dupont"  # the exact name keeps its id
    accented = by_origin["dupönt.ipynb"]
    assert accented.student_id.startswith("dupont_") and accented.notebook.name == "dupönt.ipynb"
    for name in ("dupont.ipynb", "dupönt.ipynb"):
        sub = by_origin[name]
        (category, detail), *_ = sub.review
        assert category == COLLISION
        assert "« dupont »" in detail and "« dupönt »" in detail and "séparément" in detail
        assert any(note.startswith("collision d'identifiants") for note in sub.notes)
    assert by_origin["martin.ipynb"].review == []
    # Same inputs, same ids: a re-run files each copy under the same id.
    again = {Path(s.origin).name: s.student_id for s in collect(copies, ASSIGNMENT, tmp_path / "work2")}
    assert again == {Path(s.origin).name: s.student_id for s in subs}


def test_nbgrader_folders_equal_once_normalised_are_both_kept(tmp_path):
    submitted = tmp_path / "submitted"
    write_notebook(submitted / "dupont" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    write_notebook(submitted / "dupönt" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", student_copy(ASSIGNMENT, answered=False))
    subs = collect(tmp_path, ASSIGNMENT, tmp_path / "work")
    assert len({s.student_id for s in subs}) == 2
    assert {Path(s.origin).name for s in subs} == {"dupont", "dupönt"}
    assert all(s.review[0][0] == COLLISION for s in subs)


def test_two_moodle_participants_with_one_roster_name_are_not_merged(tmp_path):
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for number in ("111", "222"):
            zf.writestr(
                f"Élodie Dupont_{number}_assignsubmission_file_/{ASSIGNMENT}.ipynb",
                nbformat.writes(student_copy(ASSIGNMENT)),
            )
    roster = tmp_path / "etudiants.csv"
    roster.write_text("id,nom,prenom,email\nedupont,Dupont,Élodie,e@example.fr\n", encoding="utf-8")
    subs = [s for s in collect(archive, ASSIGNMENT, tmp_path / "work", roster) if s.notebook is not None]
    assert len(subs) == 2 and len({s.student_id for s in subs}) == 2
    assert all(s.review and s.review[0][0] == COLLISION for s in subs)
    assert all("111 et 222" in s.review[0][1] for s in subs)


def bomb(path: Path, size: int) -> Path:
    """A Moodle zip whose notebook expands to ``size`` bytes of zeros, about 1 kB per MB: the deflate stream of
    1 MB of zeros (dictionary reset after it) repeated, written by hand so that making it takes a second."""
    import struct
    import zlib

    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.flush()
    count = size >> 20
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    name = f"Jean Martin_23456_assignsubmission_file_/{ASSIGNMENT}.ipynb".encode()
    compressed = len(chunk) * count + len(tail)
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0x800, 8, 0, 0x5B74, crc, compressed, size, len(name), 0)
    with path.open("wb") as out:
        out.write(local + name)
        for _ in range(count):
            out.write(chunk)
        out.write(tail)
        start = out.tell()
        central = struct.pack(
            "<4s4B4HL2L5H2L",
            b"PK\x01\x02",
            20,
            3,
            20,
            0,
            0x800,
            8,
            0,
            0x5B74,
            crc,
            compressed,
            size,
            len(name),
            0,
            0,
            0,
            0,
            0o100644 << 16,
            0,
        )
        out.write(central + name)
        end = out.tell()
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, end - start, start, 0))
    return path


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    """3 MB that expand to 3 GB: refused at once from the archive's directory, in French, with the sizes."""
    archive = bomb(tmp_path / "bombe.zip", 3 << 30)
    assert archive.stat().st_size < 4 << 20
    with pytest.raises(IntakeError) as refused:
        collect(archive, ASSIGNMENT, tmp_path / "work")
    message = str(refused.value)
    assert "bombe.zip refusée" in message and "3 Go" in message and "limite" in message
    assert sum(p.stat().st_size for p in (tmp_path / "work").rglob("*") if p.is_file()) == 0


def test_zip_member_with_absurd_compression_ratio_is_refused(tmp_path):
    archive = bomb(tmp_path / "petite_bombe.zip", 50 << 20)  # 50 MB of zeros: under the size limits
    with pytest.raises(IntakeError, match="compressé .* fois"):
        collect(archive, ASSIGNMENT, tmp_path / "work")


def test_zip_with_too_many_files_is_refused(tmp_path, monkeypatch):
    import autograder.grading.intake as intake

    monkeypatch.setattr(intake, "ZIP_MAX_FILES", 10)
    archive = tmp_path / "beaucoup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for index in range(11):
            zf.writestr(f"Jean Martin_23456_assignsubmission_file_/f{index}.txt", "x")
    with pytest.raises(IntakeError, match="11 fichiers dans l'archive \\(limite : 10\\)"):
        collect(archive, ASSIGNMENT, tmp_path / "work")


def test_zip_entry_lying_about_its_size_cannot_write_more(tmp_path):
    """An entry whose directory announces 1 kB but holds 5 MB: extraction stops and reports the archive unreadable."""
    archive = tmp_path / "menteuse.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"Jean Martin_23456_assignsubmission_file_/{ASSIGNMENT}.ipynb", b"0" * (5 << 20))
    data = bytearray(archive.read_bytes())
    # Patch the uncompressed size (offset 22 in the local header, 24 in the central directory) to 1024.
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (1024).to_bytes(4, "little")
    data[central + 24 : central + 28] = (1024).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(IntakeError, match="illisible dans l'archive"):
        collect(archive, ASSIGNMENT, tmp_path / "work")
    assert all(p.stat().st_size <= 1024 for p in (tmp_path / "work").rglob("*") if p.is_file())


def test_submission_time_comes_from_moodle_not_from_an_uploaded_timestamp(tmp_path):
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo(
            f"Élodie Dupont_12345_assignsubmission_file_/{ASSIGNMENT}.ipynb", (2026, 11, 20, 9, 58, 2)
        )
        zf.writestr(info, nbformat.writes(student_copy(ASSIGNMENT)))
        zf.writestr("Élodie Dupont_12345_assignsubmission_file_/timestamp.txt", "2020-01-01 00:00:00 UTC\n")
    (sub,) = collect(archive, ASSIGNMENT, tmp_path / "work")
    assert sub.timestamp == "2026-11-20 09:58:02"
    assert any("timestamp.txt déposé avec la copie ignoré" in note for note in sub.notes)


def test_uploaded_timestamp_is_ignored_in_an_extracted_moodle_folder(tmp_path):
    folder = tmp_path / "travaux" / "Jean Martin_23456_assignsubmission_file_"
    write_notebook(folder / f"{ASSIGNMENT}.ipynb")
    (folder / "timestamp.txt").write_text("2020-01-01 00:00:00 UTC\n", encoding="utf-8")
    (sub,) = collect(tmp_path / "travaux", ASSIGNMENT, tmp_path / "work")
    assert sub.timestamp is None


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_csv_cell_that_could_start_a_formula_is_escaped(tmp_path, start):
    """A folder named `=1+2 Evil`, a Moodle name or a reason starting with a formula character: never a formula."""
    hostile = f'{start}HYPERLINK("http://x")'
    copies = tmp_path / "copies"
    write_notebook(copies / "alice.ipynb")
    (sub,) = collect(copies, ASSIGNMENT, tmp_path / "work")
    sub.first_name, sub.last_name, sub.email, sub.origin = hostile, hostile, hostile, hostile
    sub.student_id = f"{start}1+2"
    outcome = Outcome(sub, NOT_GRADED, reason=hostile, max_score=20.0, notes=[hostile])
    write_grades_csv(tmp_path / "grades.csv", [outcome], ["tp1_graph"])
    write_moodle_csv(tmp_path / "moodle.csv", [outcome])
    for name in ("grades.csv", "moodle.csv"):
        with (tmp_path / name).open(encoding="utf-8", newline="") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert not [c for c in cells if c.startswith(FORMULA_START)], (name, cells)
        assert f"'{hostile}" in cells or f"'{hostile}".replace('""', '"') in cells
    rows = read_rows(tmp_path / "grades.csv")
    assert rows[0]["raison"] == hostile and rows[0]["student_id"] == f"{start}1+2"  # read back exactly


def test_folder_named_like_a_formula_gives_a_harmless_id(tmp_path):
    copies = tmp_path / "copies"
    write_notebook(copies / "=1+2 Evil.ipynb")
    (sub,) = collect(copies, ASSIGNMENT, tmp_path / "work")
    assert sub.student_id == "1_2_Evil"
    outcome = Outcome(sub, GRADED, score=20.0, max_score=20.0)
    write_grades_csv(tmp_path / "grades.csv", [outcome], [])
    with (tmp_path / "grades.csv").open(encoding="utf-8", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_START)]


def test_plain_numbers_stay_numbers_in_csv():
    assert [escape(v) for v in ("15", "-1", "2.5", "0")] == ["15", "-1", "2.5", "0"]
    assert escape("-1+2") == "'-1+2" and escape("'déjà") == "''déjà" and unescape(escape("'déjà")) == "'déjà"
