"""Lesson 3 (backpropagation: theory and an example): ungraded practice questions on the student's own
scalar autograd engine (« micrograd en français »), built in three steps.

The student's ``Valeur`` class is only used through ``autograder.engine_checks.build_with_class`` (a
``student_side`` helper); every reference comes from PyTorch at check time, on random expressions.
"""

from __future__ import annotations

from autograder.engine_checks import ENGINE_MISTAKES, check_backward, check_local_rules, compare_random
from autograder.exercise import Exercise, register

__all__ = ["ValeurAddMul", "ValeurBackward", "ValeurFonctions"]

LESSON = "notebooks/03_retropropagation.ipynb"
SECTION = "4. Écrire son propre moteur de rétropropagation"


def _mistakes(*codes: str) -> dict[str, str]:
    return {code: ENGINE_MISTAKES[code] for code in (*codes, "reponse_incorrecte")}


@register
class ValeurAddMul(Exercise):
    id = "l3_valeur_add_mul"
    title = "Les `_backward` de l'addition et de la multiplication"
    names = ("Valeur",)
    section = (LESSON, SECTION)
    mistakes = _mistakes(
        "oubli_gradient_amont", "facteur_non_echange", "egal_au_lieu_de_plus_egal", "meme_entree_deux_fois"
    )
    hints = (
        "Pour `out = self * other` : ∂out/∂self = other.data et ∂out/∂other = self.data ; chaque entrée reçoit "
        "sa dérivée locale **multipliée** par le gradient reçu `out.grad`.",
        "Écrivez `self.grad += other.data * out.grad` et `other.grad += self.data * out.grad` : `+=`, car une "
        "valeur qui sert plusieurs fois reçoit la somme des contributions.",
    )

    def run(self, answers, rng, trials):
        cls = answers["Valeur"]
        check_local_rules(cls, ("add", "mul"), rng)
        compare_random(cls, ("add", "mul"), rng, trials, "manual")
        return (
            "vos `_backward` de `+` et `*` donnent les gradients de PyTorch, embranchements compris "
            f"(`+=`), sur {trials} expressions aléatoires."
        )


@register
class ValeurBackward(Exercise):
    id = "l3_valeur_backward"
    title = "La méthode `backward()` : graine et ordre topologique"
    names = ("Valeur",)
    section = (LESSON, SECTION)
    mistakes = _mistakes(
        "oubli_graine",
        "ordre_non_topologique",
        "oubli_gradient_amont",
        "facteur_non_echange",
        "egal_au_lieu_de_plus_egal",
        "meme_entree_deux_fois",
    )
    hints = (
        "Construisez la liste `topo` par un parcours en profondeur : on visite d'abord les entrées `_prev` d'un "
        "nœud, puis on l'ajoute à la liste ; un ensemble `vus` évite de l'ajouter deux fois.",
        "Posez `self.grad = 1.0`, puis appelez `noeud._backward()` pour chaque nœud de `reversed(topo)` : de la "
        "sortie vers les feuilles.",
    )

    def run(self, answers, rng, trials):
        cls = answers["Valeur"]
        check_local_rules(cls, ("add", "mul"), rng)
        check_backward(cls, ("add", "mul"), rng, trials)
        return f"votre `backward()` donne les gradients de PyTorch sur {trials} expressions aléatoires."


@register
class ValeurFonctions(Exercise):
    id = "l3_valeur_fonctions"
    title = "Puissance, `tanh` et `exp` dans `Valeur`"
    names = ("Valeur",)
    section = (LESSON, SECTION)
    mistakes = _mistakes(
        "derivee_locale_fausse",
        "oubli_gradient_amont",
        "egal_au_lieu_de_plus_egal",
        "oubli_graine",
        "ordre_non_topologique",
    )
    hints = (
        "Dérivées locales : (xⁿ)' = n·xⁿ⁻¹, tanh' = 1 − tanh², et l'exponentielle est sa propre dérivée. "
        "Chacune est multipliée par `out.grad`.",
        "Dans `tanh`, calculez `t = math.tanh(self.data)` une fois, et utilisez `(1 - t**2) * out.grad` ; dans "
        "`exp`, la sortie `out.data` est déjà la dérivée locale.",
    )

    def run(self, answers, rng, trials):
        cls = answers["Valeur"]
        check_local_rules(cls, ("pow", "tanh", "exp"), rng)
        check_backward(cls, ("add", "mul", "pow", "tanh", "exp"), rng, trials)
        return (
            "`**`, `tanh` et `exp` ont les bonnes dérivées locales ; votre moteur donne les gradients de PyTorch "
            f"sur {trials} expressions aléatoires."
        )
