"""Lesson 3 (backpropagation: theory and an example): ungraded practice questions on the student's own
scalar autograd engine (« micrograd en français »), built in three steps.

The student's ``Valeur`` class is only used through ``autograder.engine_checks.build_with_class`` (a
``student_side`` helper); every reference comes from PyTorch at check time, on random expressions.
"""

from __future__ import annotations

import torch

from autograder.engine_checks import ENGINE_MISTAKES, check_backward, check_local_rules, compare_random
from autograder.exercise import Exercise, register
from autograder.tensor_checks import as_number, untouched
from autograder.verdict import NotAttempted, WrongAnswer

__all__ = ["HandGradients", "ValeurAddMul", "ValeurBackward", "ValeurFonctions", "hand_scenario"]

LESSON = "notebooks/03_retropropagation.ipynb"
SECTION = "4. Écrire son propre moteur de rétropropagation"


# --------------------------------------------------------------------------------------------
# 1. Backpropagate by hand through f = (x·y + x)·z: every intermediate gradient
# --------------------------------------------------------------------------------------------
HAND_INPUTS = {"x": 3.0, "y": -2.0, "z": 2.0}
HAND_NODES = ("r", "z", "q", "y", "x")  # in the order backpropagation reaches them


def hand_scenario() -> tuple[dict[str, float], dict[str, float]]:
    """The computation of the question, as written in the lesson: (values, gradients) of every node, by autograd."""
    x, y, z = (torch.tensor(HAND_INPUTS[k], requires_grad=True) for k in "xyz")
    q = x * y
    r = q + x
    f = r * z
    for t in (q, r):
        t.retain_grad()
    f.backward()
    values = {"x": x, "y": y, "z": z, "q": q, "r": r, "f": f}
    grads = {"x": x.grad, "y": y.grad, "z": z.grad, "q": q.grad, "r": r.grad}
    return {k: float(v.detach()) for k, v in values.items()}, {k: float(g) for k, g in grads.items()}


def _is(got: float, *candidates: float) -> bool:
    return any(abs(got - c) <= 1e-3 * max(1.0, abs(c)) for c in candidates)


@register
class HandGradients(Exercise):
    id = "l3_gradients_a_la_main"
    title = "Rétropropager à la main dans f = (x·y + x)·z"
    names = ("gradients",)
    section = (LESSON, "2. Un exemple à la main, nœud par nœud")
    mistakes = {
        "valeur_au_lieu_du_gradient": "la valeur du nœud (propagation avant) au lieu de son gradient",
        "facteur_non_echange": "la multiplication n'échange pas les facteurs",
        "oubli_gradient_amont": "oubli du gradient reçu : la dérivée locale seule",
        "oubli_embranchement": "un seul des deux chemins d'un embranchement",
        "reponse_incorrecte": "gradient faux",
    }
    hints = (
        "Partez de la sortie : ∂f/∂f = 1. Pour f = r·z, la multiplication échange : ∂f/∂r = z et ∂f/∂z = r. "
        "Pour r = q + x, l'addition distribue ∂f/∂r à q et à x.",
        "x sert deux fois : dans q = x·y (contribution ∂f/∂q · y) et directement dans r = q + x (contribution "
        "∂f/∂r · 1). Additionnez les deux.",
    )

    def run(self, answers, rng, trials):
        given = answers["gradients"]
        if untouched(given) or (isinstance(given, dict) and all(untouched(v) for v in given.values())):
            raise NotAttempted("`gradients` ne contient encore que des `None` : remplacez-les par vos valeurs.")
        if not isinstance(given, dict):
            raise WrongAnswer(
                f'`gradients` doit être un dictionnaire, par exemple `{{"r": 1.0, "z": 2.0, ...}}`, pas '
                f"`{type(given).__name__}`."
            )
        missing = [k for k in HAND_NODES if k not in given or untouched(given[k])]
        if missing:
            raise WrongAnswer(f"Il manque ∂f/∂{missing[0]} dans `gradients` : donnez un nombre pour chaque nœud.")
        value, grad = hand_scenario()
        x, y, z = HAND_INPUTS["x"], HAND_INPUTS["y"], HAND_INPUTS["z"]
        for node in HAND_NODES:
            got = as_number(given[node], f'`gradients["{node}"]`')
            expected = grad[node]
            if _is(got, expected):
                continue
            head = f"∂f/∂{node} vaut {expected:g}, pas {got:g}"
            forward_values = (value["f"],) if node == "z" else (value[node], value["f"])
            if _is(got, *forward_values):
                raise WrongAnswer(
                    f"{head} : {got:g} est une **valeur** de la propagation avant, pas un gradient.",
                    code="valeur_au_lieu_du_gradient",
                )
            swapped = {"z": z, "y": grad["q"] * y, "x": grad["q"] * x + grad["r"]}
            if node in swapped and _is(got, swapped[node]):
                raise WrongAnswer(
                    f"{head} : la multiplication **échange** les facteurs, chaque entrée reçoit le gradient reçu "
                    "multiplié par l'**autre** entrée.",
                    code="facteur_non_echange",
                )
            local_only = {"q": 1.0, "y": x, "x": y + 1}
            if node in local_only and _is(got, local_only[node]):
                raise WrongAnswer(
                    f"{head} : c'est la dérivée locale seule ; multipliez-la par le gradient reçu du nœud suivant "
                    "(règle de dérivation en chaîne).",
                    code="oubli_gradient_amont",
                )
            if node == "x" and _is(got, grad["q"] * y, grad["r"]):
                raise WrongAnswer(
                    f"{head} : x sert **deux fois**, dans q = x·y et directement dans r = q + x ; son gradient est "
                    f"la **somme** des deux contributions, {grad['q'] * y:g} et {grad['r']:g}.",
                    code="oubli_embranchement",
                )
            raise WrongAnswer(
                f"{head}. Reprenez la rétropropagation nœud par nœud, depuis ∂f/∂f = 1.", code="reponse_incorrecte"
            )
        return (
            f"f = {value['f']:g} ; ∂f/∂r = {grad['r']:g}, ∂f/∂z = {grad['z']:g}, ∂f/∂q = {grad['q']:g}, "
            f"∂f/∂y = {grad['y']:g} et ∂f/∂x = {grad['x']:g} (deux chemins additionnés)."
        )


# --------------------------------------------------------------------------------------------
# 2. The micrograd-style engine, in three steps
# --------------------------------------------------------------------------------------------
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
