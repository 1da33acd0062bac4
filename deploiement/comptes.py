"""Accounts of a deployment: read the roster (id,nom,prenom,email,role) once, for the installer and the hub config.

    python comptes.py valider comptes.csv      # French error and exit 1 on a bad line
    python comptes.py identifiants comptes.csv # one Unix account name per line

Roles: ``enseignant`` (hub admin, formgrader), ``correcteur`` (formgrader), ``etudiant`` (nbgrader student).
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROLES = ("enseignant", "correcteur", "etudiant")
# A portable Unix account name (useradd's default NAME_REGEX, lowercase).
ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Compte:
    id: str
    nom: str
    prenom: str
    email: str
    role: str


class RosterError(ValueError):
    pass


def read(path: str | Path) -> list[Compte]:
    comptes: list[Compte] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.DictReader(handle)
        expected = {"id", "nom", "prenom", "email", "role"}
        if rows.fieldnames is None or not expected <= set(rows.fieldnames):
            raise RosterError(f"{path} : la première ligne doit être « id,nom,prenom,email,role ».")
        for number, row in enumerate(rows, start=2):
            ident = (row["id"] or "").strip()
            role = (row["role"] or "").strip()
            if not ACCOUNT.match(ident):
                raise RosterError(
                    f"{path}, ligne {number} : « {ident} » n'est pas un nom de compte Unix valide "
                    "(minuscules, chiffres, « - » ou « _ », 32 caractères au plus)."
                )
            if role not in ROLES:
                raise RosterError(f"{path}, ligne {number} : rôle « {role} » inconnu (attendu : {', '.join(ROLES)}).")
            if ident in seen:
                raise RosterError(f"{path}, ligne {number} : le compte « {ident} » apparaît deux fois.")
            seen.add(ident)
            comptes.append(Compte(ident, row["nom"].strip(), row["prenom"].strip(), row["email"].strip(), role))
    return comptes


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("valider", "identifiants"):
        print("usage : comptes.py valider|identifiants FICHIER.csv", file=sys.stderr)
        return 2
    try:
        comptes = read(argv[1])
    except (OSError, RosterError) as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 1
    if argv[0] == "identifiants":
        for compte in comptes:
            print(compte.id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
