"""Find every submission in what the instructor hands in, and account for every file.

Accepted inputs:
- a folder with one notebook per student: ``<student_id>.ipynb``;
- nbgrader's layout: ``submitted/<student_id>/<assignment>/*.ipynb`` (the folder given may be
  ``submitted/`` itself or its parent);
- the zip made by Moodle's « Télécharger tous les travaux remis », whose folders are named
  ``Prénom Nom_12345_assignsubmission_file_``.
Optionally a roster CSV ``id,nom,prenom,email`` gives names and lists students who handed nothing in.
"""

from __future__ import annotations

import csv
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<number>\d+)_assignsubmission_(?P<kind>[a-z]+)_?$")
SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Submission:
    """One student's hand-in, as found; ``problem`` says (in French) why it cannot be graded."""

    student_id: str
    origin: str  # where it came from, for the report
    notebook: Path | None = None  # readable notebook to grade
    problem: str | None = None
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    timestamp: str | None = None
    lms_id: str = ""  # Moodle participant number, for the grade import
    notes: list[str] = field(default_factory=list)


@dataclass
class RosterEntry:
    student_id: str
    last_name: str
    first_name: str
    email: str


class IntakeError(Exception):
    """The input as a whole cannot be read (French message)."""


def normalise_name(text: str) -> str:
    """« Élodie  DUPONT » -> « elodie dupont »: for matching Moodle names with the roster."""
    stripped = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(stripped.lower().split())


def safe_id(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return SAFE_ID.sub("_", ascii_text).strip("_.") or "inconnu"


def read_roster(path: Path) -> list[RosterEntry]:
    """Read ``id,nom,prenom,email`` (French headers; nbgrader's English ones are accepted too)."""
    if not path.is_file():
        raise IntakeError(f"Liste d'étudiant·e·s introuvable : {path}")
    aliases = {
        "id": "id",
        "identifiant": "id",
        "nom": "last",
        "last_name": "last",
        "prenom": "first",
        "prénom": "first",
        "first_name": "first",
        "email": "email",
        "courriel": "email",
        "mail": "email",
    }
    with path.open(encoding="utf-8-sig", newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample else csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        columns = {aliases.get((name or "").strip().lower()): name for name in reader.fieldnames or []}
        if "id" not in columns:
            raise IntakeError(f"{path.name} : colonne « id » absente (colonnes attendues : id,nom,prenom,email).")
        entries = []
        for row in reader:
            student_id = (row.get(columns["id"]) or "").strip()
            if not student_id:
                continue
            entries.append(
                RosterEntry(
                    student_id=safe_id(student_id),
                    last_name=(row.get(columns.get("last"), "") or "").strip(),
                    first_name=(row.get(columns.get("first"), "") or "").strip(),
                    email=(row.get(columns.get("email"), "") or "").strip(),
                )
            )
    return entries


def _check_notebook(path: Path) -> str | None:
    """French reason why ``path`` is not a readable notebook, or None."""
    try:
        nbformat.read(path, as_version=4)
    except UnicodeDecodeError:
        return "fichier illisible : ce n'est pas du texte UTF-8 (notebook corrompu ?)"
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds of errors
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return f"fichier illisible : ce n'est pas un notebook JSON valide ({detail})"
    return None


def _pick_notebook(sub: Submission, files: list[Path], assignment: str) -> None:
    """Choose the notebook to grade among a student's files; note everything else."""
    notebooks = sorted(p for p in files if p.suffix == ".ipynb" and ".ipynb_checkpoints" not in p.parts)
    others = sorted(p for p in files if p not in notebooks and p.name != "timestamp.txt")
    for other in others:
        sub.notes.append(f"fichier ignoré (pas un notebook) : {other.name}")
    expected = f"{assignment}.ipynb"
    if not notebooks:
        sub.problem = f"aucun notebook rendu (attendu : {expected})"
        return
    exact = [p for p in notebooks if p.name == expected]
    chosen = exact[0] if exact else notebooks[0]
    if not exact:
        sub.notes.append(f"notebook renommé : « {chosen.name} » corrigé comme {expected}")
    for extra in notebooks:
        if extra != chosen:
            sub.notes.append(f"notebook supplémentaire ignoré : {extra.name}")
    sub.problem = _check_notebook(chosen)
    if sub.problem is None:
        sub.notebook = chosen


def _from_folders(folders: dict[str, tuple[list[Path], str]], assignment: str) -> list[Submission]:
    subs = []
    for student_id, (files, origin) in sorted(folders.items()):
        sub = Submission(student_id=student_id, origin=origin)
        _pick_notebook(sub, files, assignment)
        stamp = next((p for p in files if p.name == "timestamp.txt"), None)
        if stamp is not None:
            sub.timestamp = stamp.read_text(encoding="utf-8", errors="replace").strip() or None
        subs.append(sub)
    return subs


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _nbgrader_layout(root: Path, assignment: str) -> Path | None:
    """The ``submitted``-like folder if ``root`` follows nbgrader's layout, else None."""
    for candidate in (root / "submitted", root):
        if candidate.is_dir() and any((d / assignment).is_dir() for d in candidate.iterdir() if d.is_dir()):
            return candidate
    return None


def _moodle_layout(root: Path) -> bool:
    return any(MOODLE_FOLDER.match(d.name) for d in root.iterdir() if d.is_dir())


def _scan_folder(root: Path, assignment: str) -> list[Submission]:
    submitted = _nbgrader_layout(root, assignment)
    if submitted is not None:
        folders = {}
        subs = []
        for student_dir in sorted(d for d in submitted.iterdir()):
            if not student_dir.is_dir():
                subs.append(
                    Submission("", str(student_dir), problem="fichier hors de tout dossier d'étudiant·e, ignoré")
                )
                continue
            work = student_dir / assignment
            files = _files_under(work) if work.is_dir() else _files_under(student_dir)
            folders[safe_id(student_dir.name)] = (files, str(student_dir))
        return subs + _from_folders(folders, assignment)
    if _moodle_layout(root):
        return _scan_moodle(root, assignment)
    # Flat folder: one notebook per student, named after the student.
    subs = []
    for path in sorted(p for p in root.iterdir()):
        if path.is_dir():
            subs.append(
                Submission("", str(path), problem="dossier inattendu (un notebook par étudiant·e attendu), ignoré")
            )
            continue
        sub = Submission(student_id=safe_id(path.stem), origin=str(path))
        if path.suffix != ".ipynb":
            sub.problem = f"pas un notebook : {path.name}"
        else:
            _pick_notebook(sub, [path], path.stem)
            sub.notes.clear()  # in a flat folder the file is named after the student, not the assignment
        subs.append(sub)
    return subs


def _scan_moodle(root: Path, assignment: str) -> list[Submission]:
    files: dict[str, list[Path]] = {}
    origins: dict[str, str] = {}
    names: dict[str, str] = {}
    other_kinds: dict[str, list[str]] = {}
    stray = []
    for folder in sorted(root.iterdir()):
        match = MOODLE_FOLDER.match(folder.name) if folder.is_dir() else None
        if match is None:
            stray.append(Submission("", str(folder), problem="élément inattendu dans l'archive Moodle, ignoré"))
            continue
        student_id = match["number"]
        names[student_id] = match["name"]
        origins.setdefault(student_id, folder.name)
        files.setdefault(student_id, [])
        if match["kind"] == "file":
            files[student_id].extend(_files_under(folder))
            origins[student_id] = folder.name
        else:
            other_kinds.setdefault(student_id, []).append(match["kind"])
    subs = _from_folders({sid: (paths, origins[sid]) for sid, paths in files.items()}, assignment)
    for sub in subs:
        first, _, last = names[sub.student_id].partition(" ")
        sub.first_name, sub.last_name = first, last
        sub.lms_id = sub.student_id
        for kind in other_kinds.get(sub.student_id, []):
            sub.notes.append(f"rendu « {kind} » ignoré (seuls les fichiers sont corrigés)")
    return stray + subs


def collect(source: Path, assignment: str, workdir: Path, roster: Path | None = None) -> list[Submission]:
    """Every submission found in ``source`` (folder or zip), matched with the roster when given."""
    source = Path(source)
    if not source.exists():
        raise IntakeError(f"Dépôt introuvable : {source}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise IntakeError(f"{source.name} n'est ni un dossier ni une archive zip.")
        target = workdir / "extrait"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        with zipfile.ZipFile(source) as archive:
            for member in archive.infolist():
                # Never write outside the extraction folder (zip slip).
                destination = (target / member.filename).resolve()
                if not destination.is_relative_to(target.resolve()):
                    continue
                archive.extract(member, target)
        entries = [p for p in target.iterdir() if not p.name.startswith("__MACOSX")]
        single = len(entries) == 1 and entries[0].is_dir() and not MOODLE_FOLDER.match(entries[0].name)
        root = entries[0] if single else target
        subs = _scan_folder(root, assignment)
    else:
        subs = _scan_folder(source, assignment)
    return _apply_roster(subs, read_roster(roster) if roster else [])


def _apply_roster(subs: list[Submission], roster: list[RosterEntry]) -> list[Submission]:
    if not roster:
        return subs
    by_id = {entry.student_id: entry for entry in roster}
    by_name = {normalise_name(f"{e.first_name} {e.last_name}"): e for e in roster}
    by_name.update({normalise_name(f"{e.last_name} {e.first_name}"): e for e in roster})
    seen = set()
    for sub in subs:
        if not sub.student_id:
            continue
        entry = by_id.get(sub.student_id)
        if entry is None and (sub.first_name or sub.last_name):
            entry = by_name.get(normalise_name(f"{sub.first_name} {sub.last_name}"))
            if entry is not None:
                sub.notes.append(f"identifiant Moodle {sub.student_id} associé à « {entry.student_id} » par le nom")
                sub.student_id = entry.student_id
        if entry is None:
            sub.notes.append("absent·e de la liste d'étudiant·e·s")
            continue
        seen.add(entry.student_id)
        sub.first_name, sub.last_name, sub.email = entry.first_name, entry.last_name, entry.email
    for entry in roster:
        if entry.student_id not in seen:
            subs.append(
                Submission(
                    student_id=entry.student_id,
                    origin="(liste d'étudiant·e·s)",
                    problem="aucune copie rendue",
                    first_name=entry.first_name,
                    last_name=entry.last_name,
                    email=entry.email,
                )
            )
    return subs
