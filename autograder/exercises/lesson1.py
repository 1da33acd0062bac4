"""Lesson 1 « Calcul de gradients avec Autograd »: ungraded practice questions.

Same machinery as the graded TPs (``assignment = None``: ``check`` prints the verdict and never
raises). References are computed with autograd at check time; the wrong formulas below only
recognise typical mistakes to name them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from autograder import observe
from autograder.exercise import Exercise, register
from autograder.hand_derivation import hand_derivation_required
from autograder.tensor_checks import (
    as_number,
    autograd_gradient,
    close,
    compare_hand_gradient,
    fmt_shape,
    fmt_values,
    require_tensor,
    untouched,
)
from autograder.verdict import NotAttempted, WrongAnswer

__all__ = [
    "PredictGrad",
    "ProductRule",
    "BackwardShapes",
    "SecondDerivative",
    "predict_grad_scenario",
    "backward_shapes_scenario",
    "SECOND_DERIVATIVE_FUNCTIONS",
]


LESSON = "notebooks/01_calcul_de_gradients.ipynb"
# Section titles as written in the lesson's headings (a test checks that each one exists).
SECTION_BACKWARD = (LESSON, "2. Rétropropagation : `backward()` et `x.grad`")
SECTION_WORKSHOP = (LESSON, "4. Atelier : le graphe de n'importe quelle expression")
SECTION_VJP = (LESSON, "5. Règle de dérivation en chaîne, matrice jacobienne et `backward(v)`")
SECTION_HIGHER = (LESSON, "8. Dérivées d'ordre supérieur : `torch.autograd.grad`")


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-3 * max(1.0, abs(b))


# --------------------------------------------------------------------------------------------
# 1. Predict x.grad (gradients add up where a variable is used twice)
# --------------------------------------------------------------------------------------------
PREDICT_X = 2.0


def predict_grad_scenario() -> tuple[torch.Tensor, torch.Tensor]:
    """The computation of the question, exactly as written in the lesson."""
    x = torch.tensor(PREDICT_X, requires_grad=True)
    y = x * x
    z = 3 * y + x
    return x, z


@register
class PredictGrad(Exercise):
    id = "l1_predict_grad"
    title = "Prédire `x.grad` quand `x` sert deux fois"
    names = ("predicted_grad",)
    section = SECTION_BACKWARD
    mistakes = {
        "valeur_au_lieu_de_derivee": "la valeur de la fonction au lieu de sa dérivée",
        "chemin_oublie": "un des chemins de `x` vers `z` oublié",
        "derivee_du_produit": "dérivée de x·x prise égale à x",
        "chaine_incomplete": "règle de dérivation en chaîne arrêtée en route",
        "chemins_comptes_deux_fois": "chaque chemin compté deux fois",
    }
    hints = (
        "`x` intervient deux fois dans `z` : dans `y = x * x` et directement dans `+ x`. Autograd additionne "
        "les contributions des deux chemins.",
        "Chemin par y : ∂z/∂y · ∂y/∂x = 3 · 2x. Chemin direct : ∂(x)/∂x = 1. Faites la somme en x = 2.",
    )

    def run(self, answers, rng, trials):
        predicted = answers["predicted_grad"]
        if untouched(predicted):
            raise NotAttempted("`predicted_grad` vaut encore `None` : remplacez-le par votre prédiction (un nombre).")
        got = as_number(predicted, "`predicted_grad`")
        x, z = predict_grad_scenario()
        z.backward()
        expected = float(x.grad)
        x0 = PREDICT_X
        if _same(got, expected):
            return f"`x.grad` vaut bien {expected:g} : 6x par le chemin `y = x * x`, plus 1 par le chemin direct `+ x`."
        mistakes = [
            (
                3 * x0**2 + x0,
                "valeur_au_lieu_de_derivee",
                "Vous donnez la valeur de `z` elle-même, pas celle de sa dérivée par rapport à `x`.",
            ),
            (
                6 * x0,
                "chemin_oublie",
                "Il manque le chemin direct `+ x` : `x` intervient deux fois dans `z`, et les gradients venant des "
                "deux chemins s'additionnent dans `x.grad`.",
            ),
            (
                1.0,
                "chemin_oublie",
                "Vous n'avez compté que le chemin direct `+ x` : il manque la contribution de `3 * y` (y = x·x).",
            ),
            (
                3 * x0 + 1,
                "derivee_du_produit",
                "La dérivée de y = x·x par rapport à x est 2x (règle du produit : x·1 + 1·x), pas x : le chemin "
                "par `y` apporte 3 · 2x.",
            ),
            (
                3.0,
                "chaine_incomplete",
                "3 est ∂z/∂y ; la règle de dérivation en chaîne demande encore de multiplier par ∂y/∂x = 2x.",
            ),
            (
                2 * expected,
                "chemins_comptes_deux_fois",
                "C'est le double de la bonne valeur : chaque chemin n'apporte sa contribution qu'une fois. Reprenez "
                "les deux termes, 3 · 2x par `y` et 1 par le chemin direct, sans les doubler.",
            ),
        ]
        for value, code, message in mistakes:
            if _same(got, value):
                raise WrongAnswer(message, code=code)
        raise WrongAnswer(
            f"{got:g} n'est pas la valeur de `x.grad`. Dérivez z = 3·x·x + x par rapport à x, puis prenez x = {x0:g}."
        )


# --------------------------------------------------------------------------------------------
# 2. Hand derivative of a product, checked against autograd
# --------------------------------------------------------------------------------------------
def _f_product(x: torch.Tensor) -> torch.Tensor:
    return x**2 * torch.sin(x)


@register
class ProductRule(Exercise):
    id = "l1_product_rule"
    title = "Dériver à la main f(x) = x² · sin(x) et comparer à autograd"
    names = ("grad_f",)
    section = SECTION_WORKSHOP
    mistakes = {
        "produit_des_derivees": "dérivée d'un produit prise égale au produit des dérivées",
        "terme_oublie": "un des deux termes de la dérivée d'un produit oublié",
        "signe": "erreur de signe",
        "fonction_au_lieu_de_derivee": "la fonction au lieu de sa dérivée",
        "autograd_utilise": "autograd utilisé au lieu d'une dérivée à la main",
    }
    hints = (
        "f est un produit u · v avec u = x² et v = sin(x) : (u·v)' = u'·v + u·v'.",
        "u' = 2x et v' = cos(x). Écrivez la formule avec des opérations PyTorch élément par élément "
        "(`torch.sin`, `torch.cos`, `*`), sans `backward()`.",
    )

    def run(self, answers, rng, trials):
        grad_f = answers["grad_f"]
        mistakes: list[tuple[Callable[[torch.Tensor], torch.Tensor], str, str]] = [
            (
                lambda t: 2 * t * torch.cos(t),
                "produit_des_derivees",
                "Vous avez multiplié les dérivées des deux facteurs : la dérivée d'un produit est u'·v + u·v', "
                "pas u'·v'.",
            ),
            (
                lambda t: 2 * t * torch.sin(t),
                "terme_oublie",
                "Il manque le terme x²·cos(x) : la dérivée d'un produit a deux termes.",
            ),
            (
                lambda t: t**2 * torch.cos(t),
                "terme_oublie",
                "Il manque le terme 2x·sin(x) : la dérivée d'un produit a deux termes.",
            ),
            (
                lambda t: 2 * t * torch.sin(t) - t**2 * torch.cos(t),
                "signe",
                "Erreur de signe : la dérivée de sin est +cos (c'est celle de cos qui vaut −sin).",
            ),
            (_f_product, "fonction_au_lieu_de_derivee", "Vous renvoyez f(x) elle-même, pas sa dérivée."),
        ]
        for trial in range(trials):
            x = torch.randn(3 + trial % 3, generator=rng) * 2
            what = f"`grad_f(x)` avec x de forme {fmt_shape(x.shape)}"
            report = observe.run(grad_f, x.clone(), what=what)
            if report.backward_passes:
                raise WrongAnswer(hand_derivation_required(), code="autograd_utilise")
            got = report.result
            if got is Ellipsis:
                raise NotAttempted("`grad_f` renvoie encore `...` : écrivez la formule de la dérivée.")
            expected = autograd_gradient(lambda t: _f_product(t).sum(), x)
            compare_hand_gradient(got, expected, x, what, mistakes)
        return f"2x·sin(x) + x²·cos(x) : votre formule coïncide avec autograd sur {trials} entrées aléatoires."


# --------------------------------------------------------------------------------------------
# 3. Shapes in z.backward(v)
# --------------------------------------------------------------------------------------------
SHAPES_IN, SHAPES_OUT = 4, 3


def backward_shapes_scenario(generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The computation of the question: ``W`` of shape (3, 4), ``x`` of shape (4,), ``z = W @ x``."""
    W = torch.randn(SHAPES_OUT, SHAPES_IN, generator=generator)
    x = torch.randn(SHAPES_IN, generator=generator, requires_grad=True)
    return x, W @ x


def _as_shape(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise WrongAnswer(f"{what} doit être une forme, par exemple `(5,)`, pas un booléen.", code="pas_une_forme")
    if isinstance(value, int):
        raise WrongAnswer(
            f"{what} : une forme s'écrit comme un tuple, par exemple `(5,)` pour un vecteur de 5 éléments "
            "(attention à la virgule), pas comme un entier.",
            code="pas_une_forme",
        )
    if isinstance(value, (tuple, list, torch.Size)) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
        return tuple(value)
    raise WrongAnswer(
        f"{what} doit être une forme, par exemple `(5,)` ou `(2, 3)`, pas `{value!r}`.", code="pas_une_forme"
    )


@register
class BackwardShapes(Exercise):
    id = "l1_backward_shapes"
    title = "Les formes dans `z.backward(v)`"
    names = ("v_shape", "grad_shape")
    section = SECTION_VJP
    mistakes = {
        "pas_une_forme": "une forme qui n'est pas écrite comme un tuple",
        "v_forme_entree": "`v` de la forme de l'entrée au lieu de celle de la sortie",
        "v_forme_jacobienne": "`v` de la forme de la matrice jacobienne",
        "v_scalaire": "`v` scalaire pour une sortie qui ne l'est pas",
        "grad_forme_sortie": "`x.grad` de la forme de la sortie",
        "grad_forme_jacobienne": "`x.grad` de la forme de la matrice jacobienne",
    }
    hints = (
        "`v` joue le rôle de ∂L/∂z : un nombre par élément de la **sortie** `z`.",
        "`x.grad` reçoit vᵀ·J : un nombre par élément de l'**entrée** `x`. Le gradient a toujours la forme du "
        "tenseur par rapport auquel on dérive.",
    )

    def run(self, answers, rng, trials):
        v_answer, grad_answer = answers["v_shape"], answers["grad_shape"]
        if untouched(v_answer) or untouched(grad_answer):
            missing = "v_shape" if untouched(v_answer) else "grad_shape"
            raise NotAttempted(f"`{missing}` vaut encore `None` : remplacez-le par une forme, par exemple `(5,)`.")
        v_shape = _as_shape(v_answer, "`v_shape`")
        grad_shape = _as_shape(grad_answer, "`grad_shape`")
        x, z = backward_shapes_scenario(rng)
        out = tuple(z.shape)
        z.backward(torch.ones(out))  # the shape that backward accepts is the output's
        inp = tuple(x.grad.shape)
        jacobian, transposed = (*out, *inp), (*inp, *out)
        if v_shape != out:
            if v_shape == inp:
                raise WrongAnswer(
                    f"`v_shape` = {fmt_shape(v_shape)} est la forme de l'entrée `x`. `v` représente ∂L/∂z : il a la "
                    "forme de la **sortie** `z` (sinon PyTorch lève l'erreur `Mismatch in shape`).",
                    code="v_forme_entree",
                )
            if v_shape == jacobian:
                raise WrongAnswer(
                    f"`v_shape` = {fmt_shape(v_shape)} est la forme de la matrice jacobienne J. Autograd ne construit "
                    "jamais cette matrice : `v` est un vecteur, de la forme de la sortie `z`.",
                    code="v_forme_jacobienne",
                )
            if v_shape == transposed:
                raise WrongAnswer(
                    f"`v_shape` = {fmt_shape(v_shape)} est la forme de la transposée de la matrice jacobienne. `v` "
                    "n'est pas une matrice : c'est un vecteur, de la forme de la sortie `z`.",
                    code="v_forme_jacobienne",
                )
            if v_shape == ():
                raise WrongAnswer(
                    "Un scalaire ne suffit pas : `z` n'est pas un scalaire, `v` contient un nombre par élément de `z`.",
                    code="v_scalaire",
                )
            raise WrongAnswer(f"`v_shape` = {fmt_shape(v_shape)} : `v` doit avoir exactement la forme de `z`.")
        if grad_shape != inp:
            if grad_shape == out:
                raise WrongAnswer(
                    f"`v_shape` est juste, mais `grad_shape` = {fmt_shape(grad_shape)} est la forme de la sortie. "
                    "`x.grad` contient vᵀ·J : un nombre par élément de `x`, donc la forme de `x`.",
                    code="grad_forme_sortie",
                )
            if grad_shape in (jacobian, transposed):
                raise WrongAnswer(
                    f"`v_shape` est juste, mais `grad_shape` = {fmt_shape(grad_shape)} est la forme de la matrice "
                    "jacobienne : `backward(v)` renvoie le produit vᵀ·J, un vecteur, pas la matrice J.",
                    code="grad_forme_jacobienne",
                )
            raise WrongAnswer(
                f"`v_shape` est juste, mais `grad_shape` = {fmt_shape(grad_shape)} n'est pas la forme de `x.grad`."
            )
        return (
            f"`v` a la forme de la sortie {fmt_shape(out)}, `x.grad` celle de l'entrée {fmt_shape(inp)} ; "
            f"la jacobienne {fmt_shape(jacobian)} n'est jamais construite."
        )


# --------------------------------------------------------------------------------------------
# 4. A second derivative with torch.autograd.grad(create_graph=True)
# --------------------------------------------------------------------------------------------
SECOND_DERIVATIVE_FUNCTIONS: tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...] = (
    ("x³", lambda t: t**3),
    ("sin(x)", torch.sin),
    ("x²·exp(x)", lambda t: t**2 * torch.exp(t)),
    ("1 / (1 + x²)", lambda t: 1 / (1 + t**2)),
)


@observe.student_side
def second_derivative_at(second_derivative: Any, label: str, x0: float) -> Any:
    """Call the student's ``second_derivative(f, x)`` on a catalogue function, in the student's process.

    The function ``f`` is looked up by its label here, so only plain data crosses from the checker.
    """
    f = dict(SECOND_DERIVATIVE_FUNCTIONS)[label]
    x = torch.tensor(x0, requires_grad=True)
    try:
        return second_derivative(f, x)
    except RuntimeError as exc:
        if "does not require grad" in str(exc):
            return "create_graph manquant"
        raise


CREATE_GRAPH_MESSAGE = (
    "Le premier `torch.autograd.grad` doit recevoir `create_graph=True` : sans cette option, la dérivée f'(x) "
    "obtenue n'a pas de `grad_fn`, on ne peut donc pas la dériver une seconde fois."
)


@register
class SecondDerivative(Exercise):
    id = "l1_second_derivative"
    title = "Une dérivée seconde avec `torch.autograd.grad`"
    names = ("second_derivative",)
    section = SECTION_HIGHER
    mistakes = {
        "oubli_create_graph": "`create_graph=True` oublié au premier appel",
        "derivee_premiere": "la dérivée première au lieu de la seconde",
        "tuple_renvoye": "le tuple de `torch.autograd.grad` renvoyé tel quel",
        "accumulation_dans_grad": "dérivées première et seconde additionnées dans `x.grad`",
        "formule_ecrite_a_la_main": "une formule écrite pour une seule fonction",
    }
    hints = (
        "Calculez d'abord `y = f(x)`, puis f'(x) avec `torch.autograd.grad(y, x, create_graph=True)`.",
        "`torch.autograd.grad` renvoie un tuple : `(g,) = torch.autograd.grad(...)`. Dérivez ensuite `g` par "
        "rapport à `x` avec un second `torch.autograd.grad`.",
    )

    def run(self, answers, rng, trials):
        second_derivative = answers["second_derivative"]
        for trial in range(max(trials, len(SECOND_DERIVATIVE_FUNCTIONS))):
            label, f = SECOND_DERIVATIVE_FUNCTIONS[trial % len(SECOND_DERIVATIVE_FUNCTIONS)]
            x0 = float(torch.empty(()).uniform_(-1.5, 1.5, generator=rng))
            what = f"`second_derivative(f, x)` pour f(x) = {label} en x = {x0:.3f}"
            got = observe.call(second_derivative_at, second_derivative, label, x0, what=what)
            if isinstance(got, str) and got == "create_graph manquant":
                raise WrongAnswer(CREATE_GRAPH_MESSAGE, code="oubli_create_graph")
            if got is Ellipsis:
                raise NotAttempted("`second_derivative` renvoie encore `...` : écrivez son code.")
            if isinstance(got, tuple):
                raise WrongAnswer(
                    "Vous renvoyez un tuple : `torch.autograd.grad` renvoie un tuple de gradients, prenez son premier "
                    "élément (`torch.autograd.grad(...)[0]`).",
                    code="tuple_renvoye",
                )
            if isinstance(got, (int, float)) and not isinstance(got, bool):
                got = torch.tensor(float(got))
            got = require_tensor(got, what)
            if got.numel() != 1:
                raise WrongAnswer(f"{what} doit être un seul nombre, pas un tenseur de forme {fmt_shape(got.shape)}.")
            got = got.detach().reshape(())
            point = torch.tensor(x0)
            expected = torch.autograd.functional.hessian(f, point).reshape(())
            if close(got, expected):
                continue
            first = torch.autograd.functional.jacobian(f, point).reshape(())
            if close(got, first):
                raise WrongAnswer(
                    f"{what} : vous renvoyez la dérivée première f'(x), pas la dérivée seconde. Dérivez encore une "
                    "fois le résultat du premier `torch.autograd.grad`.",
                    code="derivee_premiere",
                )
            if close(got, first + expected):
                raise WrongAnswer(
                    "Vous renvoyez f'(x) + f''(x) : avec `backward()`, la seconde dérivée s'est **ajoutée** à la "
                    "première dans `x.grad` (accumulation). Utilisez `torch.autograd.grad`, qui renvoie le gradient "
                    "sans toucher à `x.grad`.",
                    code="accumulation_dans_grad",
                )
            raise WrongAnswer(
                f"{what} : vous renvoyez {fmt_values(got)}, la dérivée seconde vaut {fmt_values(expected)}. "
                "Votre fonction doit marcher pour n'importe quelle fonction `f`, sans formule écrite à la main.",
                code="formule_ecrite_a_la_main",
            )
        return "la dérivée seconde calculée par deux `torch.autograd.grad` est juste pour x³, sin, x²·exp(x)…"
