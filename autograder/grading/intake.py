"""Find every submission in what the instructor hands in, and account for every file.

Accepted inputs:
- a folder with one notebook per student: ``<student_id>.ipynb``;
- nbgrader's layout: ``submitted/<student_id>/<assignment>/*.ipynb`` (the folder given may be
  ``submitted/`` itself or its parent);
- the zip made by Moodle's « Télécharger tous les travaux remis », whose folders are named
  ``Prénom Nom_12345_assignsubmission_file_``.
Optionally a roster CSV ``id,nom,prenom,email`` gives names and lists students who handed nothing in.

What comes in is untrusted: a zip is extracted within bounds (total size, file count, compression ratio, never
outside its folder); two names that give the same id once normalised (``dupont``, ``dupönt``) are graded
separately under distinct ids and flagged, never merged; the submission time comes from the LMS (nbgrader's
``timestamp.txt`` in its own layout, the zip entry's date for Moodle), never from a file a student uploaded.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<number>\d+)_assignsubmission_(?P<kind>[a-z]+)_?$")
SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")

# Bounds of zip extraction: a whole class's notebooks fit well within them, a zip bomb does not.
ZIP_MAX_TOTAL = 1 << 30  # bytes, all members together
ZIP_MAX_MEMBER = 200 << 20  # bytes, one member
ZIP_MAX_FILES = 20_000
ZIP_MAX_RATIO = 200  # uncompressed / compressed, for a member of more than ZIP_RATIO_FROM bytes
ZIP_RATIO_FROM = 1 << 20
_CHUNK = 1 << 20

# Review categories (``Submission.review``): why a person should look at a copy.
COLLISION = "collision_identifiant"
TAMPERED = "cellule_modifiee"  # a locked cell changed, deleted or duplicated (restored before grading)


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
    # (category, French detail) of what a person should check, e.g. (COLLISION, "« dupont.ipynb » et …").
    review: list[tuple[str, str]] = field(default_factory=list)


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


def unique_ids(names: list[str]) -> dict[str, str]:
    """Raw name -> distinct safe id. A name that is its own safe id keeps it; the others whose safe id is
    taken get a suffix from a hash of their raw name, so the same inputs always give the same ids."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    exact = sorted(n for n in set(names) if safe_id(n) == n)
    for name in [*exact, *sorted(set(names) - set(exact))]:
        candidate = base = safe_id(name)
        digest = hashlib.sha256(name.encode()).hexdigest()
        length = 6
        while candidate in taken:
            candidate = f"{base}_{digest[:length]}"
            length += 2
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _flag_collisions(subs: list[tuple[str, Submission]]) -> None:
    """Note on every submission whose raw name shares its normalised id with another one's."""
    groups: dict[str, list[tuple[str, Submission]]] = {}
    for raw, sub in subs:
        groups.setdefault(safe_id(raw), []).append((raw, sub))
    for base, members in groups.items():
        if len(members) < 2:
            continue
        listing = ", ".join(f"« {raw} » (corrigée sous « {sub.student_id} »)" for raw, sub in members)
        detail = f"noms identiques une fois normalisés en « {base} » : {listing} ; copies corrigées séparément"
        for _, sub in members:
            sub.notes.append(f"collision d'identifiants : {detail}")
            sub.review.append((COLLISION, detail))


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


def _from_folders(
    folders: list[tuple[str, list[Path], str]], assignment: str, *, nbgrader_timestamps: bool
) -> list[Submission]:
    """One submission per (raw name, files, origin); ids made distinct, collisions flagged.

    ``timestamp.txt`` is nbgrader's own record only in nbgrader's layout (its exchange writes it over anything a
    student put there); anywhere else it is a file the student uploaded, ignored with a note.
    """
    ids = unique_ids([raw for raw, _, _ in folders])
    named = []
    for raw, files, origin in sorted(folders, key=lambda f: ids[f[0]]):
        sub = Submission(student_id=ids[raw], origin=origin)
        _pick_notebook(sub, files, assignment)
        stamp = next((p for p in files if p.name == "timestamp.txt"), None)
        if stamp is not None and nbgrader_timestamps:
            sub.timestamp = stamp.read_text(encoding="utf-8", errors="replace").strip()[:64] or None
        elif stamp is not None:
            sub.notes.append("timestamp.txt déposé avec la copie ignoré : l'heure de remise vient du dépôt lui-même")
        named.append((raw, sub))
    _flag_collisions(named)
    return [sub for _, sub in named]


def _file_time(path: Path) -> str:
    """The modification time of a file as the LMS set it (zip entry date, kept on extraction), local time."""
    return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")


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


def _scan_folder(root: Path, assignment: str, entry_times: dict[Path, str] | None = None) -> list[Submission]:
    submitted = _nbgrader_layout(root, assignment)
    if submitted is not None:
        folders = []
        subs = []
        for student_dir in sorted(d for d in submitted.iterdir()):
            if not student_dir.is_dir():
                subs.append(
                    Submission("", str(student_dir), problem="fichier hors de tout dossier d'étudiant·e, ignoré")
                )
                continue
            work = student_dir / assignment
            files = _files_under(work) if work.is_dir() else _files_under(student_dir)
            folders.append((student_dir.name, files, str(student_dir)))
        return subs + _from_folders(folders, assignment, nbgrader_timestamps=True)
    if _moodle_layout(root):
        return _scan_moodle(root, assignment, entry_times or {})
    # Flat folder: one notebook per student, named after the student.
    subs = []
    files = []
    for path in sorted(p for p in root.iterdir()):
        if path.is_dir():
            subs.append(
                Submission("", str(path), problem="dossier inattendu (un notebook par étudiant·e attendu), ignoré")
            )
        else:
            files.append(path)
    # Ids are made distinct among the notebooks (the copies that will be graded and stored under their id).
    ids = unique_ids([path.stem for path in files if path.suffix == ".ipynb"])
    named = []
    for path in files:
        if path.suffix != ".ipynb":
            subs.append(Submission(safe_id(path.stem), str(path), problem=f"pas un notebook : {path.name}"))
            continue
        sub = Submission(student_id=ids[path.stem], origin=str(path))
        _pick_notebook(sub, [path], path.stem)
        sub.notes.clear()  # in a flat folder the file is named after the student, not the assignment
        named.append((path.stem, sub))
    _flag_collisions(named)
    return subs + [sub for _, sub in named]


def _scan_moodle(root: Path, assignment: str, entry_times: dict[Path, str]) -> list[Submission]:
    """Moodle's folders ``Prénom Nom_<participant>_assignsubmission_<kind>_``; the submission time is the date of
    the notebook's entry in Moodle's zip (``entry_times``), unknown for a folder extracted elsewhere."""
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
    folders = [(sid, paths, origins[sid]) for sid, paths in files.items()]
    subs = _from_folders(folders, assignment, nbgrader_timestamps=False)
    for sub in subs:
        if sub.notebook is not None:
            sub.timestamp = entry_times.get(sub.notebook.resolve())
        first, _, last = names[sub.student_id].partition(" ")
        sub.first_name, sub.last_name = first, last
        sub.lms_id = sub.student_id
        for kind in other_kinds.get(sub.student_id, []):
            sub.notes.append(f"rendu « {kind} » ignoré (seuls les fichiers sont corrigés)")
    return stray + subs


def _size(n: int) -> str:
    """« 3,2 Go », « 200 Mo »: a size in French units (powers of 1024)."""
    for unit, scale in (("Go", 1 << 30), ("Mo", 1 << 20), ("ko", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".replace(".", ",").replace(",0", "") + f" {unit}"
    return f"{n} octets"


def extract_zip(source: Path, target: Path) -> dict[Path, str]:
    """Extract ``source`` into ``target`` within bounds; return each extracted file's entry date (local time).

    The archive is refused as a whole (``IntakeError``, French reason) before anything is written when its
    entries announce too many files, too many bytes or more than the free disk space; a member with an
    implausible compression ratio or size is refused too. While extracting, the bytes actually written are
    counted (an entry cannot yield more than it announced: zipfile stops there and checks the CRC).
    Entries that would land outside ``target`` (zip slip), links and special files are skipped.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise IntakeError(f"{source.name} : archive zip illisible ({error}).") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > ZIP_MAX_FILES:
            raise IntakeError(
                f"{source.name} refusée : {len(members)} fichiers dans l'archive (limite : {ZIP_MAX_FILES})."
            )
        total = sum(m.file_size for m in members)
        if total > ZIP_MAX_TOTAL:
            raise IntakeError(
                f"{source.name} refusée : elle se décompresserait en {_size(total)} "
                f"(limite : {_size(ZIP_MAX_TOTAL)}) ; une archive de copies de TP n'est jamais aussi grosse."
            )
        for m in members:
            if m.file_size > ZIP_MAX_MEMBER:
                raise IntakeError(
                    f"{source.name} refusée : « {m.filename} » se décompresserait en {_size(m.file_size)} "
                    f"(limite par fichier : {_size(ZIP_MAX_MEMBER)})."
                )
            if m.file_size > ZIP_RATIO_FROM and m.file_size > ZIP_MAX_RATIO * max(m.compress_size, 1):
                raise IntakeError(
                    f"{source.name} refusée : « {m.filename} » est compressé {m.file_size // max(m.compress_size, 1)} "
                    f"fois (limite : {ZIP_MAX_RATIO}), c'est une bombe de décompression."
                )
        free = shutil.disk_usage(target).free
        if total > free // 2:
            raise IntakeError(
                f"{source.name} refusée : {_size(total)} à décompresser, {_size(free)} libres sur le disque."
            )
        root = target.resolve()
        written = 0
        times: dict[Path, str] = {}
        for member in members:
            kind = (member.external_attr >> 16) & 0o170000
            if kind not in (0, 0o100000):  # a symbolic link or a special file: never created
                continue
            destination = (target / member.filename).resolve()
            if not destination.is_relative_to(root) or destination == root:
                continue  # zip slip
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source_file, destination.open("wb") as out:
                    while chunk := source_file.read(_CHUNK):
                        written += len(chunk)
                        if written > ZIP_MAX_TOTAL:
                            raise IntakeError(
                                f"{source.name} refusée : plus de {_size(ZIP_MAX_TOTAL)} une fois décompressée."
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
                raise IntakeError(
                    f"{source.name} : « {member.filename} » illisible dans l'archive ({error})."
                ) from None
            try:
                stamp = datetime(*member.date_time)
            except ValueError:
                continue
            os.utime(destination, (time.time(), stamp.timestamp()))
            times[destination] = stamp.strftime("%Y-%m-%d %H:%M:%S")
        return times


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
        entry_times = extract_zip(source, target)
        entries = [p for p in target.iterdir() if not p.name.startswith("__MACOSX")]
        single = len(entries) == 1 and entries[0].is_dir() and not MOODLE_FOLDER.match(entries[0].name)
        root = entries[0] if single else target
        subs = _scan_folder(root, assignment, entry_times)
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
    matched_by_name: dict[str, Submission] = {}
    for sub in subs:
        if not sub.student_id:
            continue
        entry = by_id.get(sub.student_id)
        if entry is None and (sub.first_name or sub.last_name):
            entry = by_name.get(normalise_name(f"{sub.first_name} {sub.last_name}"))
            if entry is not None and entry.student_id in matched_by_name:
                # Two participants with the same name: never merged, each keeps its Moodle id.
                detail = (
                    f"deux participant·e·s Moodle ({matched_by_name[entry.student_id].lms_id} et {sub.lms_id}) "
                    f"ont le nom de « {entry.student_id} » dans la liste ; copies corrigées séparément"
                )
                for same in (matched_by_name[entry.student_id], sub):
                    same.notes.append(f"collision d'identifiants : {detail}")
                    same.review.append((COLLISION, detail))
                continue
            if entry is not None:
                sub.notes.append(f"identifiant Moodle {sub.student_id} associé à « {entry.student_id} » par le nom")
                matched_by_name[entry.student_id] = sub
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
