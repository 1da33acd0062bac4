"""Intake of submissions: every file that came in is accounted for, with a French reason when it cannot be graded."""

from __future__ import annotations

import csv
import zipfile

import nbformat
import pytest

from autograder.grading.intake import IntakeError, collect, read_roster
from autograder.grading.outcome import GRADED, NOT_GRADED, Outcome
from autograder.grading.report import write_grades_csv, write_moodle_csv
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
