"""Lesson 2 « Dérivation automatique et régression linéaire »: ungraded practice questions.

Same machinery as the graded TPs (``assignment = None``: ``check`` prints the verdict and never
raises). References are computed at check time (autograd, eigenvalues of the Hessian given by
autograd, gradient descent run for real); the wrong values below only recognise typical mistakes
to name them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from autograder import observe
from autograder.exercise import Exercise, register
from autograder.tensor_checks import close, fmt_shape, fmt_values, scale_factor, untouched
from autograder.verdict import NotAttempted, WrongAnswer

LESSON = "notebooks/02_regression_lineaire.ipynb"

__all__ = [
    "PredictLinearGrad",
    "DescentStep",
    "DivergingRates",
    "predict_grad_scenario",
    "diverging_scenario",
    "CANDIDATE_RATES",
]


def _as_vector(value: Any, what: str) -> torch.Tensor:
    """A list, tuple or tensor of numbers as a float64 tensor; a French verdict otherwise."""
    if isinstance(value, torch.Tensor):
        return value.detach().double()
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool) for v in value
    ):
        try:
            return torch.tensor([float(v) for v in value], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    raise WrongAnswer(
        f"{what} doit être une liste de nombres, par exemple `[1.5, -2.0]`, ou un tenseur, "
        f"pas un objet de type `{type(value).__name__}`."
    )


# --------------------------------------------------------------------------------------------
# 1. Predict w.grad for the mean squared error of y = X @ w
# --------------------------------------------------------------------------------------------
PREDICT_X = ((1.0, 1.0), (2.0, 0.0), (0.0, 1.0))
PREDICT_Y = (0.0, 1.0, 1.0)
PREDICT_W = (2.0, 1.0)


def predict_grad_scenario() -> tuple[torch.Tensor, torch.Tensor]:
    """The computation of the question, exactly as written in the lesson: returns ``(w, loss)``."""
    X = torch.tensor(PREDICT_X)
    y_true = torch.tensor(PREDICT_Y)
    w = torch.tensor(PREDICT_W, requires_grad=True)
    loss = ((X @ w - y_true) ** 2).mean()
    return w, loss


@register
class PredictLinearGrad(Exercise):
    id = "l2_predict_grad"
    title = "Prédire `w.grad` pour l'erreur quadratique moyenne"
    names = ("predicted_grad",)
    section = (LESSON, "3. La rétropropagation du gradient")
    mistakes = {
        "oubli_facteur_2_sur_n": "oubli du facteur 2/n",
        "somme_au_lieu_de_moyenne": "dérivée de la somme des carrés au lieu de la moyenne",
        "oubli_facteur_2": "oubli du facteur 2 de la dérivée du carré",
        "facteur_2_compte_deux_fois": "facteur 2 compté deux fois",
        "signe_inverse": "résidus y − X·w au lieu de X·w − y",
        "perte_au_lieu_du_gradient": "la perte au lieu de son gradient",
        "mauvaise_forme": "un gradient qui n'a pas la forme de `w`",
        "residus_au_lieu_du_gradient": "les résidus au lieu du gradient",
    }
    hints = (
        "Calculez d'abord les prédictions X·w, puis les résidus r = X·w − y (un nombre par exemple, il y en a 3).",
        "Le gradient de l'EQM est (2/n)·Xᵀr avec n = 3 : chaque composante de `w.grad` est une somme sur les "
        "exemples, pondérée par la colonne correspondante de X.",
        "Relisez la leçon 2, partie 3 « La rétropropagation du gradient » : la vérification à la main de `w.grad`.",
    )

    def run(self, answers, rng, trials):
        predicted = answers["predicted_grad"]
        if untouched(predicted):
            raise NotAttempted("`predicted_grad` vaut encore `None` : remplacez-le par une liste de deux nombres.")
        got = _as_vector(predicted, "`predicted_grad`")
        w, loss = predict_grad_scenario()
        loss.backward()
        expected = w.grad.double()
        if got.numel() == 1 and got.dim() == 0:
            if math.isclose(float(got), float(loss), rel_tol=1e-3):
                raise WrongAnswer(
                    "Vous donnez la valeur de la perte elle-même, pas son gradient par rapport à `w`.",
                    code="perte_au_lieu_du_gradient",
                )
            raise WrongAnswer(
                "`w.grad` a la forme de `w` : deux nombres, un par poids, et non un seul nombre. Un gradient a "
                "toujours la forme du tenseur par rapport auquel on dérive.",
                code="mauvaise_forme",
            )
        got = got.flatten()
        if got.shape != expected.shape:
            residuals = torch.tensor(PREDICT_X, dtype=torch.float64) @ torch.tensor(PREDICT_W, dtype=torch.float64)
            residuals = residuals - torch.tensor(PREDICT_Y, dtype=torch.float64)
            if close(got, residuals) or close(got, 2 * residuals / 3):
                raise WrongAnswer(
                    "Ce sont les résidus (ou leurs dérivées), un nombre par exemple : il reste à les combiner "
                    "avec Xᵀ pour obtenir un nombre par poids.",
                    code="residus_au_lieu_du_gradient",
                )
            raise WrongAnswer(
                f"Votre réponse a {got.numel()} nombres ; `w.grad` a la forme de `w`, {fmt_shape(expected.shape)}.",
                code="mauvaise_forme",
            )
        if close(got, expected):
            return f"`w.grad` vaut bien {fmt_values(expected)} = (2/n)·Xᵀ(X·w − y), avec n = 3."
        factors = {
            1.5: (
                "C'est Xᵀ(X·w − y) sans le facteur 2/n : la dérivée de (·)² apporte un 2, et la moyenne divise "
                "par n = 3.",
                "oubli_facteur_2_sur_n",
            ),
            3.0: (
                "C'est 3 fois la bonne valeur : vous avez dérivé la **somme** des carrés, alors que la perte est "
                "une **moyenne** (divisez par n = 3).",
                "somme_au_lieu_de_moyenne",
            ),
            0.5: (
                "C'est la moitié de la bonne valeur : la dérivée de r² est 2r, n'oubliez pas le facteur 2.",
                "oubli_facteur_2",
            ),
            2.0: (
                "C'est le double de la bonne valeur : le facteur 2 de la dérivée de r² n'apparaît qu'une fois, "
                "vous l'avez compté deux fois (4/n au lieu de 2/n).",
                "facteur_2_compte_deux_fois",
            ),
            -1.0: (
                "Erreur de signe : la perte est (X·w − y)², sa dérivée par rapport à w est (2/n)·Xᵀ(X·w − y), et "
                "non (2/n)·Xᵀ(y − X·w).",
                "signe_inverse",
            ),
        }
        k = scale_factor(got, expected)
        if k is not None:
            for factor, (message, code) in factors.items():
                if abs(k - factor) < 1e-3 * max(1.0, abs(factor)):
                    raise WrongAnswer(message, code=code)
        raise WrongAnswer(
            f"{fmt_values(got)} n'est pas `w.grad`. Calculez les résidus r = X·w − y, puis (2/n)·Xᵀr avec n = 3."
        )


# --------------------------------------------------------------------------------------------
# 2. Write the gradient descent step
# --------------------------------------------------------------------------------------------
def _fresh_problem(rng: torch.Generator) -> tuple[torch.Tensor, float]:
    """A leaf ``w`` whose ``.grad`` was just filled by ``backward()`` on a random regression, and a rate."""
    X = torch.randn(6, 3, generator=rng)
    y_true = torch.randn(6, generator=rng)
    w = torch.randn(3, generator=rng).requires_grad_(True)
    ((X @ w - y_true) ** 2).mean().backward()
    lr = float(torch.empty(1).uniform_(0.05, 0.5, generator=rng))
    return w, lr


@register
class DescentStep(Exercise):
    id = "l2_gradient_step"
    title = "Écrire le pas de descente de gradient"
    names = ("gradient_step",)
    section = (LESSON, "4. Le pas de descente de gradient")
    mistakes = {
        "modification_par_data": "mise à jour par `.data`, dans le dos d'autograd",
        "oubli_zero_grad": "oubli de remettre le gradient à zéro",
        "oubli_taux": "gradient entier retiré, sans le taux d'apprentissage",
        "signe_inverse": "pas dans le sens du gradient (montée)",
        "reaffectation_au_lieu_de_en_place": "`w = w - …` au lieu d'une modification en place",
        "mise_a_jour_suivie": "mise à jour hors de `torch.no_grad()`",
        "remise_a_zero_avant_mise_a_jour": "gradient remis à zéro avant la mise à jour",
        "feuille_perdue": "`w` n'est plus une feuille qui demande un gradient",
    }
    hints = (
        "Trois choses : la mise à jour se fait **hors du graphe**, elle modifie `w` **en place** avec le taux "
        "`lr`, puis le gradient est remis à zéro.",
        "Relisez la leçon 2, partie 4 « Le pas de descente de gradient » : chaque ligne du pas y est expliquée.",
    )

    def run(self, answers, rng, trials):
        step = answers["gradient_step"]
        for _ in range(trials):
            w, lr = _fresh_problem(rng)
            before, grad = w.detach().clone(), w.grad.clone()
            what = f"`gradient_step(w, lr)` avec `lr = {lr:.3g}`"
            try:
                report = observe.run(step, w, lr, what=what)
            except WrongAnswer as failure:
                if "`.grad` vaut `None`" in failure.message:
                    raise WrongAnswer(self._rebound_message(), code="reaffectation_au_lieu_de_en_place") from None
                if "Modification en place d'une feuille" in failure.message:
                    raise WrongAnswer(failure.message, code="mise_a_jour_suivie") from None
                raise
            after = report.args[0]
            untouched_step = close(after.detach(), before) and after.grad is not None and close(after.grad, grad)
            if report.result is Ellipsis and untouched_step:
                # The placeholder `return ...` is still there and nothing happened; code written above it counts.
                raise NotAttempted("`gradient_step` renvoie encore `...` : écrivez le pas de descente.")
            self._check_after(after, before, grad, report.version_changes[0], lr)
        return (
            "`with torch.no_grad(): w -= lr * w.grad` puis remise à zéro du gradient : c'est exactement ce que "
            "fait `optimizer.step()` suivi de `optimizer.zero_grad()` pour la descente de gradient simple."
        )

    @staticmethod
    def _rebound_message() -> str:
        return (
            "`w` n'a pas changé : écrire `w = w - lr * w.grad` crée un **nouveau** tenseur, rangé dans une "
            "variable locale de la fonction ; le `w` de l'appelant reste le même. Modifiez-le en place : "
            "`w -= lr * w.grad`, dans un bloc `with torch.no_grad():`."
        )

    def _check_after(self, w: torch.Tensor, before: torch.Tensor, grad: torch.Tensor, versions: int | None, lr):
        now = w.detach()
        if not w.requires_grad or not observe.is_leaf(w):
            raise WrongAnswer(
                "Après votre pas, `w` n'est plus une feuille qui demande un gradient : le pas suivant ne "
                "pourrait plus calculer `w.grad`. Ne touchez pas à `requires_grad`, modifiez seulement les valeurs.",
                code="feuille_perdue",
            )
        if close(now, before):
            if w.grad is None or not w.grad.any():
                raise WrongAnswer(
                    "`w` n'a pas changé et le gradient est remis à zéro : soit la remise à zéro a lieu **avant** la "
                    "mise à jour (qui utilise alors un gradient nul), soit `w = w - …` a créé un nouveau tenseur "
                    "local. Mettez à jour `w` en place, puis remettez le gradient à zéro.",
                    code="remise_a_zero_avant_mise_a_jour",
                )
            raise WrongAnswer(self._rebound_message(), code="reaffectation_au_lieu_de_en_place")
        if close(now, before - grad):
            raise WrongAnswer(
                "Vous avez retiré le gradient entier, sans le multiplier par le taux d'apprentissage `lr` : c'est "
                "un taux implicite de 1, qui fait diverger la descente dès que 1 dépasse le seuil 2/λmax.",
                code="oubli_taux",
            )
        if close(now, before + lr * grad):
            raise WrongAnswer(
                "Erreur de signe : vous **montez** le gradient. Pour faire baisser la perte, on va dans la "
                "direction opposée au gradient.",
                code="signe_inverse",
            )
        if not close(now, before - lr * grad):
            raise WrongAnswer(
                f"Après le pas, `w` vaut {fmt_values(now)} ; on attendait w − lr·w.grad = "
                f"{fmt_values(before - lr * grad)}."
            )
        if versions == 0:
            raise WrongAnswer(
                "Les valeurs sont justes, mais la mise à jour passe par `.data`, qui contourne le suivi des "
                "modifications d'autograd : si `w` était encore utilisé par un graphe, le gradient suivant serait "
                "faux **sans aucune erreur**. Écrivez la mise à jour dans `with torch.no_grad():`.",
                code="modification_par_data",
            )
        if w.grad is not None and w.grad.any():
            raise WrongAnswer(
                "La mise à jour est juste, mais le gradient n'est pas remis à zéro : au prochain `backward()`, le "
                "nouveau gradient s'**ajoutera** à l'ancien. Terminez par une remise à zéro du gradient.",
                code="oubli_zero_grad",
            )


# --------------------------------------------------------------------------------------------
# 3. Which learning rates diverge?
# --------------------------------------------------------------------------------------------
DIVERGING_X = (1.0, 2.0, 3.0, 4.0)
DIVERGING_Y = (2.1, 3.9, 6.2, 7.8)
CANDIDATE_RATES = (0.02, 0.05, 0.1, 0.2, 0.3)


def diverging_scenario() -> tuple[torch.Tensor, torch.Tensor]:
    """The data of the question: model y ≈ w·x (one weight, no bias), mean squared error."""
    return torch.tensor(DIVERGING_X), torch.tensor(DIVERGING_Y)


def _loss_of(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((w * x - y) ** 2).mean()


def _diverges(lr: float, x: torch.Tensor, y: torch.Tensor, epochs: int = 100) -> bool:
    """Run the descent for real (autograd, float64) from w = 0 and see whether the loss ends above its start."""
    w = torch.zeros((), dtype=torch.float64, requires_grad=True)
    first = float(_loss_of(w, x, y).detach())
    for _ in range(epochs):
        loss = _loss_of(w, x, y)
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        w.grad = None
    return not float(_loss_of(w, x, y).detach()) < first


@register
class DivergingRates(Exercise):
    id = "l2_diverging_rates"
    title = "Quels taux d'apprentissage font diverger la descente ?"
    names = ("diverging",)
    section = (LESSON, "5. La perte a diminué… mais ce n'était pas garanti")
    mistakes = {
        "oubli_facteur_2": "oubli du facteur 2 de la dérivée seconde",
        "somme_au_lieu_de_moyenne": "hessienne de la somme des carrés au lieu de la moyenne",
        "seuil_d_oscillation": "1/λmax (oscillation) pris pour le seuil de divergence 2/λmax",
        "liste_non_fermee": "un taux qui diverge sans tous les taux plus grands",
        "taux_non_propose": "un taux qui n'est pas proposé",
    }
    hints = (
        "Le seuil de stabilité est 2/λmax, où λmax est la plus grande valeur propre de la matrice hessienne de la "
        "perte. Ici il n'y a qu'un poids : la hessienne est un seul nombre, la dérivée seconde de la perte.",
        "L(w) = (1/n) Σ (w·xᵢ − yᵢ)², donc L''(w) = (2/n) Σ xᵢ². Calculez-la avec n = 4, puis le seuil 2/L''.",
        "Relisez la leçon 2, partie 5 « La perte a diminué… mais ce n'était pas garanti » : le seuil de stabilité.",
    )

    def run(self, answers, rng, trials):
        answer = answers["diverging"]
        if untouched(answer):
            raise NotAttempted("`diverging` vaut encore `None` : remplacez-le par une liste de taux, par exemple `[]`.")
        if not isinstance(answer, (list, tuple, set)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in answer
        ):
            raise WrongAnswer(
                "`diverging` doit être une liste de taux pris parmi "
                f"{list(CANDIDATE_RATES)}, par exemple `[0.2, 0.3]`, pas `{answer!r}`."
            )
        chosen = set()
        for value in answer:
            match = [r for r in CANDIDATE_RATES if math.isclose(float(value), r, rel_tol=1e-9)]
            if not match:
                raise WrongAnswer(
                    f"{value!r} n'est pas l'un des taux proposés : choisissez parmi {list(CANDIDATE_RATES)}.",
                    code="taux_non_propose",
                )
            chosen.add(match[0])
        x, y = (t.double() for t in diverging_scenario())
        hessian = torch.autograd.functional.hessian(lambda w: _loss_of(w, x, y), torch.zeros((), dtype=torch.float64))
        lam = float(hessian)
        threshold = 2.0 / lam
        expected = {r for r in CANDIDATE_RATES if _diverges(r, x, y)}  # the run, not the formula, decides
        if chosen == expected:
            shown = " et ".join(f"{r:g}".replace(".", ",") for r in sorted(expected))
            limit = f"{threshold:.3f}".replace(".", ",")
            return (
                f"λmax = L''(w) = (2/n)·Σxᵢ² = {lam:g}, donc le seuil 2/λmax ≈ {limit} : au-delà, "
                f"c'est-à-dire pour {shown}, chaque pas amplifie l'écart à l'optimum."
            )
        sum_x2 = float((x**2).sum())
        n = len(x)

        def above(limit: float) -> set[float]:
            return {r for r in CANDIDATE_RATES if r > limit}

        known = [
            (
                above(2.0 / (sum_x2 / n)),
                "Il manque un facteur 2 dans la dérivée seconde : la dérivée de (w·x − y)² est 2x·(w·x − y), et sa "
                "dérivée seconde 2x². La hessienne est (2/n)·Σxᵢ².",
                "oubli_facteur_2",
            ),
            (
                above(2.0 / (2.0 * sum_x2)),
                "Vous avez pris la hessienne de la **somme** des carrés : la perte est une **moyenne**, sa "
                "hessienne est divisée par n = 4.",
                "somme_au_lieu_de_moyenne",
            ),
            (
                above(1.0 / lam),
                "1/λmax est le seuil d'**oscillation** : entre 1/λmax et 2/λmax, `w` dépasse l'optimum à chaque pas "
                "mais s'en rapproche quand même. La divergence commence au-delà de 2/λmax.",
                "seuil_d_oscillation",
            ),
        ]
        for subset, message, code in known:
            if chosen == subset:
                raise WrongAnswer(message, code=code)
        if any(r in chosen and s not in chosen and s > r for r in CANDIDATE_RATES for s in CANDIDATE_RATES):
            raise WrongAnswer(
                "Si un taux fait diverger la descente, tout taux plus grand la fait diverger aussi : votre liste "
                "doit contenir tous les taux au-dessus d'un seuil.",
                code="liste_non_fermee",
            )
        raise WrongAnswer(
            "Ce ne sont pas les bons taux. Calculez la dérivée seconde de la perte (la hessienne, ici un nombre), "
            "puis le seuil 2/λmax ; vous pouvez aussi lancer la descente avec chaque taux pour vérifier."
        )
