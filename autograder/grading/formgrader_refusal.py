"""The formgrader's « Autograde » button runs student code unsandboxed, as the grader account: refuse it.

In a deployment the course service sets ``COURS_AUTOGRAD_FORMGRADER=1`` and ``nbgrader_config.py`` replaces nbgrader's
autograde preprocessors by this one. Manual grading, feedback and export in the formgrader keep working; copies are
graded by ``autograder grade`` (sandboxed, parallel), on the grading side.
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

MESSAGE = (
    "La correction automatique du `Formgrader` est désactivée dans ce déploiement : elle exécuterait le code des "
    "étudiant·e·s sans bac à sable, sous le compte correcteur. Corrigez avec `autograder grade` "
    "(`sudo deploiement/corriger.sh <tp>`) ; les notes arrivent dans ce même carnet de notes. Les notes déjà "
    "enregistrées ne changent pas ; relancez la correction pour rétablir la copie corrigée de cette personne."
)


class RefuseUnsandboxedAutograde(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        raise RuntimeError(MESSAGE)
