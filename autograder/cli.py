"""The `autograder` command line (French help and messages)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autograder import __version__
from autograder.typography import NBSP, french_spacing

# argparse looks its fixed texts up through gettext at run time: give it French ones.
_ARGPARSE_FR_PLAIN = {
    "usage: ": "utilisation : ",
    "positional arguments": "arguments",
    "options": "options",
    "show this help message and exit": "affiche cette aide et quitte",
    "show program's version number and exit": "affiche la version et quitte",
    "%(prog)s: error: %(message)s\n": "%(prog)s : erreur : %(message)s\n",
    "the following arguments are required: %s": "arguments obligatoires manquants : %s",
    "unrecognized arguments: %s": "arguments non reconnus : %s",
    "invalid choice: %(value)r (choose from %(choices)s)": "choix invalide : %(value)r (choix possibles : %(choices)s)",
    "expected one argument": "un argument est attendu",
    "argument %(argument_name)s: %(message)s": "argument %(argument_name)s : %(message)s",
}
_ARGPARSE_FR = {english: french_spacing(french) for english, french in _ARGPARSE_FR_PLAIN.items()}


@contextmanager
def _french_argparse() -> Iterator[None]:
    """argparse's fixed texts in French while the command parses its arguments, and only then: importing this
    module changes nothing for other users of argparse in the same interpreter."""
    saved = argparse._  # type: ignore[attr-defined]
    argparse._ = lambda text: _ARGPARSE_FR.get(text, text)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        argparse._ = saved  # type: ignore[attr-defined]


class _FrenchHelpFormatter(argparse.HelpFormatter):
    """French spacing in the help, applied before wrapping so that a line never starts with « : »."""

    def start_section(self, heading: str | None) -> None:
        # argparse appends ":" to a section heading itself.
        super().start_section(f"{heading}{NBSP}" if heading else heading)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(french_spacing(text), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(french_spacing(text), width, indent)


class _Parser(argparse.ArgumentParser):
    """Every parser and sub-parser of the command formats its help the French way."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _FrenchHelpFormatter)
        super().__init__(*args, **kwargs)


def _say(text: str, file=None) -> None:
    print(french_spacing(text), file=file)


def _course_root() -> Path:
    """The nbgrader course root: the current folder or one of its parents holding nbgrader_config.py."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").exists() and (folder / "source").is_dir():
            return folder
    raise SystemExit(
        french_spacing(
            "autograder : erreur : aucun cours trouvé ici. Lancez la commande depuis la racine du cours "
            "(le dossier qui contient nbgrader_config.py et source/)."
        )
    )


def cmd_exercises(args: argparse.Namespace) -> int:
    from autograder.exercise import all_exercises

    exercises = [e for e in all_exercises() if args.tp is None or e.assignment == args.tp]
    if not exercises:
        _say(f"Aucun exercice pour « {args.tp} ».", file=sys.stderr)
        return 1
    by_group: dict[str, list] = {}
    for exercise in exercises:
        by_group.setdefault(exercise.assignment or "entraînement (leçons, non noté)", []).append(exercise)
    for group, items in by_group.items():
        total = sum(e.points for e in items)
        _say(f"{group}" + (f" — {total} points" if total else ""))
        for e in items:
            points = f"{e.points:>2} pt{'s' if e.points > 1 else ' '}" if e.assignment else "      "
            _say(f"  {e.id:<24} {points}  {e.title}")
    return 0


def cmd_hint(args: argparse.Namespace) -> int:
    try:
        from autograder.exercise import get_exercise

        exercise = get_exercise(args.exercise)
    except KeyError as error:
        _say(f"autograder : erreur : {error.args[0]}", file=sys.stderr)
        return 2
    for number, text in enumerate(exercise.hints, start=1):
        _say(f"💡 Indice {number}/{len(exercise.hints)} : {text}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    root = _course_root()
    assignments = args.tp or sorted(p.name for p in (root / "source").iterdir() if p.is_dir())
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    for assignment in assignments:
        if not (root / "source" / assignment).is_dir():
            _say(f"autograder : erreur : source/{assignment} n'existe pas.", file=sys.stderr)
            return 2
        _say(f"Génération de release/{assignment} à partir de source/{assignment}…")
        done = subprocess.run(["nbgrader", "generate_assignment", assignment, "--force"], cwd=root, env=env)
        if done.returncode != 0:
            _say(f"autograder : erreur : nbgrader n'a pas pu générer {assignment} (voir ci-dessus).", file=sys.stderr)
            return done.returncode
    _say("Terminé. Vérifiez le résultat avec `git diff release/` puis commitez-le.")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from autograder.grading.command import grade_command

    return grade_command(args, _course_root())


def cmd_report(args: argparse.Namespace) -> int:
    from autograder.grading.command import report_command

    return report_command(args, _course_root())


def cmd_verify(args: argparse.Namespace) -> int:
    from autograder.grading.command import verify_command

    return verify_command(args)


def _add_cell_limit(parser: argparse.ArgumentParser) -> None:
    # No default here: options left out keep ExecutionLimits' defaults (defined in one place).
    parser.add_argument("--limite-cellule", metavar="S", type=float, help="durée maximale d'une cellule (s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autograder",
        description="Outils du cours « Dérivation automatique avec PyTorch » : exercices, indices, "
        "version étudiante des TP.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="affiche la version et quitte"
    )
    commands = parser.add_subparsers(title="commandes", dest="command", metavar="COMMANDE")

    listing = commands.add_parser("exercices", help="liste les exercices, leurs identifiants et leurs points")
    listing.add_argument("--tp", metavar="TP", help="n'afficher qu'un TP (par exemple tp1_gradients)")
    listing.set_defaults(func=cmd_exercises)

    hints = commands.add_parser("indices", help="affiche tous les indices d'un exercice")
    hints.add_argument("exercise", metavar="EXERCICE", help="identifiant de l'exercice (par exemple tp1_vjp)")
    hints.set_defaults(func=cmd_hint)

    release = commands.add_parser(
        "publier", help="régénère release/ à partir de source/ avec nbgrader (version étudiante)"
    )
    release.add_argument("tp", nargs="*", metavar="TP", help="TP à régénérer (par défaut : tous ceux de source/)")
    release.set_defaults(func=cmd_release)

    grade = commands.add_parser(
        "grade",
        help="corrige toutes les copies d'un TP (isolées, en parallèle) et écrit notes et retours",
        description="Corrige les copies d'un TP avec nbgrader (cellules de test rétablies, tests cachés), chacune "
        "dans un bac à sable, en parallèle. Écrit grades/<TP>.csv, un CSV pour Moodle, les retours HTML en français "
        "et les notes dans le carnet de notes de nbgrader. À lancer depuis la racine du cours.",
    )
    grade.add_argument("assignment", metavar="TP", help="identifiant du TP (par exemple tp1_gradients)")
    grade.add_argument(
        "submissions",
        metavar="COPIES",
        help="dossier d'un notebook par étudiant·e (<id>.ipynb), dossier submitted/ de nbgrader, "
        "ou archive zip « Télécharger tous les travaux remis » de Moodle",
    )
    grade.add_argument("--liste", metavar="CSV", type=Path, help="liste des étudiant·e·s : id,nom,prenom,email")
    grade.add_argument(
        "--processus", metavar="N", type=int, default=None, help="nombre de processus de correction (défaut : cœurs)"
    )
    grade.add_argument(
        "--sans-isolation",
        action="store_true",
        help="corriger sans bac à sable (déconseillé : le code des étudiant·e·s s'exécute avec vos droits)",
    )
    _add_cell_limit(grade)
    grade.add_argument("--limite-notebook", metavar="S", type=float, help="durée maximale d'une copie entière (s)")
    grade.add_argument("--memoire", metavar="Mio", type=int, help="mémoire qu'une copie peut allouer (Mio)")
    grade.add_argument("--sans-retours", action="store_true", help="ne pas générer les retours HTML")
    grade.set_defaults(func=cmd_grade)

    rapport = commands.add_parser(
        "rapport",
        help="refait le rapport de la classe d'un TP déjà corrigé (sans recorriger)",
        description="Refait grades/<TP>_rapport.html, le rapport de la classe (distribution des notes, réussite "
        "et erreurs fréquentes par question, copies à regarder), à partir du carnet de notes et de "
        "grades/<TP>_erreurs.csv, sans recorriger les copies.",
    )
    rapport.add_argument("assignment", metavar="TP", help="identifiant du TP (par exemple tp1_gradients)")
    rapport.add_argument(
        "--anonyme",
        action="store_true",
        help="ni noms ni identifiants, pour partager le rapport (écrit grades/<TP>_rapport_anonyme.html)",
    )
    rapport.set_defaults(func=cmd_report)

    verify = commands.add_parser(
        "verifier",
        help="rejoue un notebook comme la correction (tests visibles) et dit ce qui échoue",
        description="Exécute le notebook du début à la fin, comme le fera la correction mais sans les tests cachés, "
        "et affiche le bilan de chaque question. Code de sortie 0 si tout passe, 1 sinon.",
    )
    verify.add_argument("notebook", metavar="NOTEBOOK", type=Path, help="le notebook à vérifier (.ipynb)")
    _add_cell_limit(verify)
    verify.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    with _french_argparse():
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
