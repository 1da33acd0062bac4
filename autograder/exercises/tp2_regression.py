"""TP2 « Régression linéaire par descente de gradient »: the graded exercises (20 points).

The TP asks for transfer, not transcription of lesson 2: the loss is the mean squared error **plus a penalty**
α‖w‖² on the weights only (ridge regression, not in the lesson), its gradient is derived by hand, the stability
threshold and the fastest constant rate are computed for that new problem, mini-batch SGD is written from its
specification, and a « trouvez le bug » question gives each student a training loop with one hidden bug
(``autograder.bug_hunt``). Points: loss 2, ∂L/∂w 3, ∂L/∂b 1, threshold 3, fastest rate 2, mini-batches 5, bug
fixed 3, bug named 1.

Every reference is computed at check time on fresh random data: gradients and Hessians by autograd, eigenvalues by
``torch.linalg.eigvalsh``, descents run here. Student code is reached only through ``observe.run`` with tensors and
numbers, so the checkers also run in the trusted grading process. The wrong formulas below only recognise typical
mistakes, to name them; nothing here gives an answer away (the package ships to students).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from autograder import observe
from autograder.bug_hunt import VARIANTS, buggy_train
from autograder.exercise import Exercise, register
from autograder.hand_derivation import hand_derivation_required
from autograder.tensor_checks import as_number, close, fmt_shape, fmt_values, require_tensor
from autograder.typography import french_number as _fr
from autograder.verdict import NotAttempted, WrongAnswer

ASSIGNMENT = "tp2_regression"
LESSON = "notebooks/02_regression_lineaire.ipynb"
PART_2 = (LESSON, "2. Une régression linéaire pas à pas")
PART_3 = (LESSON, "3. La rétropropagation du gradient")
PART_4 = (LESSON, "4. Le pas de descente de gradient")
PART_5 = (LESSON, "5. La perte a diminué… mais ce n'était pas garanti")
PART_6 = (LESSON, "6. Une vraie régression\u00a0: 100 points et un biais")

# Fragments of PyTorch's messages for a matrix product with incompatible shapes (torch 2.13).
_SHAPE_ERRORS = ("size mismatch", "cannot be multiplied", "must be a matrix", "must match the size")


def reread(section: tuple[str, str]) -> str:
    """The last hint of a question: the lesson section to reread (no number: hints give no value away)."""
    title = section[1].partition(". ")[2]
    return f"Relisez, dans la leçon sur la régression linéaire ({section[0]}), la partie « {title} »."


# -- data and references, computed at check time ------------------------------------------------


def regression_data(
    rng: torch.Generator, n: int, d: int, *, scale: float = 1.0, offset: float = 0.0, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh noisy linear data: X of shape (n, d), y of shape (n,)."""
    X = torch.randn(n, d, generator=rng) * scale + offset
    w_true = torch.randn(d, generator=rng)
    b_true = torch.randn(1, generator=rng)[0]
    y = X @ w_true + b_true + noise * torch.randn(n, generator=rng)
    return X, y


def ridge(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """The loss of the statement: mean over the n examples of (x·w + b − y)², plus α‖w‖² (the bias is free)."""
    return ((X @ w + b - y) ** 2).mean() + alpha * (w**2).sum()


def ridge_gradients(X, y, w, b, alpha: float, **variant: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂L/∂w, ∂L/∂b) by autograd in float64 on fresh leaves; ``variant`` builds the loss of a typical mistake."""
    w_leaf = w.detach().double().clone().requires_grad_(True)
    b_leaf = b.detach().double().clone().requires_grad_(True)
    loss = _variant_loss(X.double(), y.double(), w_leaf, b_leaf, alpha, **variant)
    grad_w, grad_b = torch.autograd.grad(loss, (w_leaf, b_leaf))
    return grad_w, grad_b


def _variant_loss(
    X,
    y,
    w,
    b,
    alpha,
    *,
    data: float = 1.0,
    reduce: str = "mean",
    bias: bool = True,
    penalty: float = 1.0,
    bias_penalty: float = 0.0,
) -> torch.Tensor:
    residual = X @ w + (b if bias else 0.0) - y
    squares = residual**2
    fit = squares.sum() if reduce == "sum" else squares.mean()
    return data * fit + alpha * (penalty * (w**2).sum() + bias_penalty * b**2)


def loss_hessian(
    X: torch.Tensor,
    alpha: float = 0.0,
    *,
    bias: bool = True,
    data_scale: float | None = None,
    penalty_scale: float = 1.0,
    bias_penalty: float = 0.0,
) -> torch.Tensor:
    """Hessian, by autograd in float64, of data_scale·‖X @ w + b − y‖² + penalty_scale·α·‖w‖² + bias_penalty·α·b².

    The loss of the statement has data_scale = 1/n, penalty_scale = 1 and bias_penalty = 0; other values give the
    Hessians of typical mistakes. The loss is quadratic: its Hessian depends neither on the point nor on y.
    """
    n, d = X.shape
    data = X.double()
    scale = 1 / n if data_scale is None else data_scale

    def loss(theta: torch.Tensor) -> torch.Tensor:
        w, b = theta[:d], (theta[d] if bias else theta.new_zeros(()))
        return scale * ((data @ w + b) ** 2).sum() + alpha * (penalty_scale * (w**2).sum() + bias_penalty * b**2)

    return torch.autograd.functional.hessian(loss, torch.zeros(d + 1 if bias else d, dtype=torch.float64))


def curvatures(X: torch.Tensor, alpha: float = 0.0, **variant: Any) -> tuple[float, float]:
    """(λmin, λmax) of the Hessian of the penalised loss with respect to (w, b)."""
    eigen = torch.linalg.eigvalsh(loss_hessian(X, alpha, **variant))
    return float(eigen.min()), float(eigen.max())


def _same(a: float, b: float, rtol: float = 1e-3) -> bool:
    return abs(a - b) <= rtol * max(abs(b), 1e-12)


def _real_number(value: Any, what: str) -> float:
    """``as_number``, naming a complex eigenvalue (``torch.linalg.eigvals`` instead of ``eigvalsh``)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_complex():
        raise WrongAnswer(
            f"{what} est un nombre complexe : la hessienne est symétrique, ses valeurs propres sont réelles.",
            code="valeurs_propres_complexes",
        )
    return as_number(value, what)


def _run(func: Any, *args: Any, what: str, shapes: str | None = None) -> observe.CallReport:
    """``observe.run``, naming a matrix product with incompatible shapes (usually a missing transpose)."""
    __tracebackhide__ = True
    try:
        return observe.run(func, *args, what=what)
    except WrongAnswer as failure:
        if shapes and any(fragment in failure.message for fragment in _SHAPE_ERRORS):
            raise WrongAnswer(f"{failure.message} {shapes}", code="oubli_transposee") from None
        raise


def _hand_derived(report: observe.CallReport) -> None:
    if report.backward_passes:
        raise WrongAnswer(
            hand_derivation_required("`X`, `y`, `w`, `b` et `alpha`", "`w.grad` et `b.grad`"), code="autograd_utilise"
        )


ALPHAS = (0.5, 1.5, 0.2, 3.0, 0.8)


# -- 1. the penalised loss ------------------------------------------------------------------------


@register
class RidgeLoss(Exercise):
    id = "tp2_loss"
    assignment = ASSIGNMENT
    points = 2
    title = "La perte pénalisée, dans le graphe de calcul"
    names = ("ridge_loss",)
    section = PART_2
    mistakes = {
        "somme_au_lieu_de_moyenne": "somme des carrés au lieu de leur moyenne",
        "oubli_penalite": "pénalité α‖w‖² oubliée",
        "biais_penalise": "biais pénalisé",
        "norme_non_carree": "norme de w au lieu de son carré",
        "perte_hors_graphe": "perte sortie du graphe de calcul (nombre Python, `detach`)",
        "perte_non_scalaire": "perte non réduite à un scalaire",
        "calcul_detache": "une partie du calcul détachée du graphe",
    }
    hints = (
        "La perte a deux termes : l'ajustement aux données, une moyenne sur les n exemples, et la pénalité, qui "
        "porte sur les seuls poids. Lequel des deux dépend de n ?",
        "La fonction renvoie un tenseur à zéro dimension, calculé uniquement avec des opérations PyTorch sur ses "
        "arguments : c'est sur lui qu'on appellera `backward()`.",
        reread(PART_2),
    )

    def run(self, answers, rng, trials):
        ridge_loss = answers["ridge_loss"]
        for trial in range(trials):
            n, d = ((9, 3), (14, 2), (7, 4), (20, 3))[trial % 4]
            alpha = ALPHAS[trial % len(ALPHAS)]
            X, y = regression_data(rng, n, d, offset=0.3)
            w = torch.randn(d, generator=rng).requires_grad_(True)
            b = torch.randn((), generator=rng).requires_grad_(True)
            what = f"ridge_loss(X, y, w, b, alpha) avec X de forme {fmt_shape(X.shape)} et `alpha` = {_fr(alpha)}"
            report = _run(ridge_loss, X.clone(), y.clone(), w, b, alpha, what=what)
            got = report.result
            if isinstance(got, float):
                raise WrongAnswer(
                    "`ridge_loss` renvoie un nombre Python (`.item()` ?) : renvoyez le tenseur, sur lequel on "
                    "pourra appeler `backward()`.",
                    code="perte_hors_graphe",
                )
            got = require_tensor(got, "Le résultat de `ridge_loss`")
            if got.numel() != 1:
                raise WrongAnswer(
                    f"`ridge_loss` renvoie un tenseur de forme {fmt_shape(got.shape)} : une fonction de perte est un "
                    "seul nombre, réduisez les carrés des écarts.",
                    code="perte_non_scalaire",
                )
            value = float(got.detach())
            wd, bd = w.detach(), b.detach()
            expected = float(ridge(X.double(), y.double(), wd.double(), bd.double(), alpha))
            if not _same(value, expected, 1e-4):
                known = [
                    (
                        dict(reduce="sum"),
                        "somme_au_lieu_de_moyenne",
                        "Le terme d'ajustement est une **somme** des carrés : c'est une moyenne sur les n exemples (la "
                        "pénalité, elle, ne se divise pas par n).",
                    ),
                    (
                        dict(penalty=0.0),
                        "oubli_penalite",
                        "C'est l'EQM de la leçon, sans la pénalité α‖w‖² : ajoutez-la.",
                    ),
                    (
                        dict(bias_penalty=1.0),
                        "biais_penalise",
                        "Vous pénalisez aussi le biais : la pénalité α‖w‖² ne porte que sur les poids `w`.",
                    ),
                ]
                for variant, code, message in known:
                    wrong = float(_variant_loss(X.double(), y.double(), wd.double(), bd.double(), alpha, **variant))
                    if _same(value, wrong, 1e-4):
                        raise WrongAnswer(message, code=code)
                fit = float(((X @ wd + bd - y) ** 2).mean())
                if _same(value, fit + alpha * float(wd.norm()), 1e-4):
                    raise WrongAnswer(
                        "La pénalité est α fois la **somme des carrés** des poids, ‖w‖², pas la norme ‖w‖.",
                        code="norme_non_carree",
                    )
                raise WrongAnswer(f"`ridge_loss` vaut {_fr(value, 5)} au lieu de {_fr(expected, 5)}.")
            if observe.grad_fn_name(got) is None:
                raise WrongAnswer(
                    "La perte n'a pas de `grad_fn` : elle a été calculée hors du graphe de calcul (`detach()`, "
                    "`torch.no_grad()`, `.item()`, NumPy). `backward()` ne pourrait pas remonter jusqu'à `w` et `b`.",
                    code="perte_hors_graphe",
                )
            grads = observe.input_grads(got)
            want_w, want_b = ridge_gradients(X, y, wd, bd, alpha)
            if grads[2] is None or grads[3] is None or not (close(grads[2], want_w) and close(grads[3], want_b)):
                raise WrongAnswer(
                    "La valeur est juste, mais une partie du calcul est détachée du graphe : le gradient de la perte "
                    "par rapport à `w` ou à `b` est faux.",
                    code="calcul_detache",
                )
        return "moyenne des carrés des écarts plus α‖w‖², un scalaire dans le graphe de calcul."


# -- 2 and 3. the gradient, derived by hand ----------------------------------------------------------

_GRAD_SIZES = ((12, 3), (20, 3), (15, 4), (25, 2), (10, 4), (18, 5))


def _gradient_case(rng: torch.Generator, trial: int):
    n, d = _GRAD_SIZES[trial % len(_GRAD_SIZES)]
    alpha = ALPHAS[trial % len(ALPHAS)]
    X, y = regression_data(rng, n, d, offset=0.5)
    w = torch.randn(d, generator=rng)
    b = torch.randn((), generator=rng)
    return X, y, w, b, alpha


def _what(name: str, X: torch.Tensor, alpha: float) -> str:
    return f"{name}(X, y, w, b, alpha) avec X de forme {fmt_shape(X.shape)} et `alpha` = {_fr(alpha)}"


@register
class HandGradientW(Exercise):
    id = "tp2_grad_w"
    assignment = ASSIGNMENT
    points = 3
    title = "∂L/∂w, dérivé à la main"
    names = ("ridge_grad_w",)
    section = PART_3
    mistakes = {
        "oubli_penalite": "dérivée de la pénalité oubliée",
        "penalite_sans_facteur_2": "dérivée de α‖w‖² écrite α·w",
        "oubli_facteur_2": "facteur 2 de la dérivée du carré oublié",
        "somme_au_lieu_de_moyenne": "dérivée de la somme des carrés au lieu de la moyenne",
        "division_par_d": "division par le nombre de caractéristiques au lieu du nombre d'exemples",
        "oubli_biais": "biais oublié dans les résidus",
        "signe_inverse": "signe inversé",
        "oubli_transposee": "transposée de X oubliée",
        "mauvaise_forme": "gradient qui n'a pas la forme de `w`",
        "autograd_utilise": "gradient calculé par autograd au lieu d'être dérivé",
    }
    hints = (
        "Dérivez les deux termes séparément puis additionnez. Pour le premier, posez r = X @ w + b − y et "
        "dérivez d'abord (1/n)·Σ rᵢ² par rapport à un rᵢ, puis appliquez la règle de dérivation en chaîne.",
        "Le résultat a la forme (d,) de `w`. Une combinaison des lignes de X pondérée par un vecteur de taille n "
        "s'écrit avec la transposée de X. Pour la pénalité, dérivez α·(w₁² + … + w_d²) par rapport à un wⱼ.",
        reread(PART_3),
    )

    def run(self, answers, rng, trials):
        grad_w = answers["ridge_grad_w"]
        for trial in range(trials):
            X, y, w, b, alpha = _gradient_case(rng, trial)
            n, d = X.shape
            report = _run(
                grad_w,
                X.clone(),
                y.clone(),
                w.clone(),
                b.clone(),
                alpha,
                what=_what("ridge_grad_w", X, alpha),
                shapes=f"`X` a la forme ({n}, {d}) et les résidus la forme ({n},) : pour obtenir un vecteur de "
                "forme (d,), il faut la **transposée** de `X`.",
            )
            _hand_derived(report)
            got = require_tensor(report.result, "Le résultat de `ridge_grad_w`")
            expected, _ = ridge_gradients(X, y, w, b, alpha)
            if got.shape != expected.shape:
                raise WrongAnswer(
                    f"`ridge_grad_w` renvoie la forme {fmt_shape(got.shape)} au lieu de ({d},) : un gradient a la "
                    "forme du tenseur par rapport auquel on dérive.",
                    code="mauvaise_forme",
                )
            if close(got, expected):
                continue
            fit, _ = ridge_gradients(X, y, w, b, 0.0)
            pen = 2 * alpha * w.double()
            known = [
                (fit, "oubli_penalite", "Il manque la dérivée de la pénalité α‖w‖² : elle ajoute un terme en w."),
                (fit + pen / 2, "penalite_sans_facteur_2", "La dérivée de α·wⱼ² par rapport à wⱼ est 2α·wⱼ, pas α·wⱼ."),
                (fit / 2 + pen, "oubli_facteur_2", "Il manque le facteur 2 de la dérivée de rᵢ²."),
                ((fit + pen) / 2, "oubli_facteur_2", "Il manque le facteur 2 des deux dérivées de carrés."),
                (
                    n * fit + pen,
                    "somme_au_lieu_de_moyenne",
                    "Le terme d'ajustement est n fois trop grand : vous avez dérivé la **somme** des carrés, la perte "
                    "en est la moyenne.",
                ),
                (
                    ridge_gradients(X, y, w, b, alpha, bias=False)[0],
                    "oubli_biais",
                    "Vos résidus oublient le biais : r = X @ w + b − y.",
                ),
                (
                    -fit + pen,
                    "signe_inverse",
                    "Le signe du terme d'ajustement est inversé : avec r = X @ w + b − y, il vient avec un signe +.",
                ),
                (-(fit + pen), "signe_inverse", "Le signe est inversé : c'est le gradient, pas son opposé."),
                (
                    fit * n / d + pen,
                    "division_par_d",
                    f"Vous divisez par d = `X.shape[1]` = {d} (nombre de caractéristiques) au lieu de n = "
                    f"`X.shape[0]` = {n} (nombre d'exemples).",
                ),
            ]
            for wrong, code, message in known:
                if close(got, wrong):
                    raise WrongAnswer(message, code=code)
            raise WrongAnswer(
                f"`ridge_grad_w` est faux pour X de forme ({n}, {d}) et `alpha` = {_fr(alpha)} : vous renvoyez "
                f"{fmt_values(got)}, autograd donne {fmt_values(expected)}."
            )
        return "les deux termes du gradient coïncident avec autograd sur des données aléatoires de tailles variées."


@register
class HandGradientB(Exercise):
    id = "tp2_grad_b"
    assignment = ASSIGNMENT
    points = 1
    title = "∂L/∂b, dérivé à la main"
    names = ("ridge_grad_b",)
    section = PART_3
    mistakes = {
        "biais_penalise": "pénalité dérivée aussi par rapport au biais",
        "oubli_facteur_2": "facteur 2 de la dérivée du carré oublié",
        "somme_au_lieu_de_moyenne": "dérivée de la somme des carrés au lieu de la moyenne",
        "signe_inverse": "signe inversé",
        "mauvaise_forme": "un vecteur au lieu d'un seul nombre",
        "autograd_utilise": "gradient calculé par autograd au lieu d'être dérivé",
    }
    hints = (
        "Chaque résidu rᵢ dépend de b avec ∂rᵢ/∂b = 1. Et la pénalité dépend-elle de b ?",
        "`b` est un seul nombre : son gradient aussi. Les contributions des n exemples se combinent en un nombre.",
        reread(PART_3),
    )

    def run(self, answers, rng, trials):
        grad_b = answers["ridge_grad_b"]
        for trial in range(trials):
            X, y, w, b, alpha = _gradient_case(rng, trial)
            n = X.shape[0]
            report = _run(
                grad_b, X.clone(), y.clone(), w.clone(), b.clone(), alpha, what=_what("ridge_grad_b", X, alpha)
            )
            _hand_derived(report)
            got = require_tensor(report.result, "Le résultat de `ridge_grad_b`")
            if got.numel() != 1:
                raise WrongAnswer(
                    f"`ridge_grad_b` renvoie la forme {fmt_shape(got.shape)} : `b` est un seul nombre, son gradient "
                    "aussi ; les contributions des n exemples s'additionnent.",
                    code="mauvaise_forme",
                )
            value = float(got.detach())
            _, expected = ridge_gradients(X, y, w, b, alpha)
            want = float(expected)
            if _same(value, want, 1e-4):
                continue
            for wrong, code, message in (
                (
                    want + 2 * alpha * float(b),
                    "biais_penalise",
                    "La pénalité α‖w‖² ne dépend pas de b : elle n'apporte rien à ∂L/∂b.",
                ),
                (want / 2, "oubli_facteur_2", "Il manque le facteur 2 de la dérivée de rᵢ²."),
                (
                    want * n,
                    "somme_au_lieu_de_moyenne",
                    "`ridge_grad_b` est n fois trop grand : la perte est une **moyenne** sur les exemples.",
                ),
                (-want, "signe_inverse", "Le signe est inversé : avec r = X @ w + b − y, ∂rᵢ/∂b = +1."),
            ):
                if _same(value, wrong, 1e-4):
                    raise WrongAnswer(message, code=code)
            raise WrongAnswer(f"`ridge_grad_b` vaut {_fr(value, 5)} au lieu de {_fr(want, 5)}.")
        return "∂L/∂b coïncide avec autograd : la pénalité ne touche pas le biais."


# -- 4. largest stable learning rate ----------------------------------------------------------------

_CURVATURE_SETUPS = (
    (30, 2, 0.5, 0.8, 1.0),
    (40, 3, 0.7, 0.6, 0.5),
    (25, 2, 0.4, 1.0, 2.0),
    (50, 3, 1.0, 0.5, 1.5),
    (35, 3, 1.5, 1.0, 0.3),
)


def _curvature_case(rng: torch.Generator, trial: int) -> tuple[torch.Tensor, float, str]:
    n, d, scale, offset, alpha = _CURVATURE_SETUPS[trial % len(_CURVATURE_SETUPS)]
    X, _ = regression_data(rng, n, d, scale=scale, offset=offset)
    return X, alpha, f"avec X de forme {fmt_shape(X.shape)} et `alpha` = {_fr(alpha)}"


def _hessian_mistakes(X: torch.Tensor, alpha: float, rate: Callable[[float, float], float]) -> list[tuple]:
    """Rates computed from the Hessians of typical mistakes, with their codes and French explanations."""
    n = X.shape[0]
    return [
        (
            rate(*curvatures(X, alpha, bias=False)),
            "oubli_biais",
            "Vous oubliez le biais : `b` est aussi un paramètre entraîné, la hessienne porte sur θ = (w, b), une "
            "matrice (d + 1) × (d + 1).",
        ),
        (
            rate(*curvatures(X, alpha, bias_penalty=1.0)),
            "biais_penalise",
            "Vous pénalisez aussi le biais : la pénalité ne porte que sur les poids.",
        ),
        (
            rate(*curvatures(X, alpha, penalty_scale=0.0)),
            "oubli_penalite",
            "Vous oubliez la pénalité α‖w‖² : elle ajoute de la courbure sur chaque poids.",
        ),
        (
            rate(*curvatures(X, alpha, penalty_scale=0.5)),
            "penalite_sans_facteur_2",
            "La dérivée seconde de α·w² est 2α, pas α.",
        ),
        (
            rate(*curvatures(X, alpha, data_scale=0.5)),
            "oubli_facteur_2_sur_n",
            "Il manque le facteur 2/n dans la hessienne du terme d'ajustement.",
        ),
        (
            rate(*curvatures(X, alpha, data_scale=1.0)),
            "somme_au_lieu_de_moyenne",
            "Vous prenez la hessienne de la **somme** des carrés : l'ajustement est une moyenne, divisez par n.",
        ),
        (
            rate(*curvatures(X, alpha, data_scale=0.5 / n)),
            "oubli_facteur_2",
            "Il manque le facteur 2 de la dérivée seconde d'un carré.",
        ),
    ]


@register
class LargestStableRate(Exercise):
    id = "tp2_max_lr"
    assignment = ASSIGNMENT
    points = 3
    title = "Le seuil de stabilité d'un nouveau problème"
    names = ("max_stable_lr",)
    section = PART_5
    mistakes = {
        "oubli_biais": "biais oublié dans la hessienne",
        "biais_penalise": "biais pénalisé",
        "oubli_penalite": "pénalité oubliée dans la hessienne",
        "penalite_sans_facteur_2": "dérivée seconde de α·w² écrite α",
        "oubli_facteur_2_sur_n": "facteur 2/n oublié",
        "somme_au_lieu_de_moyenne": "hessienne de la somme des carrés",
        "oubli_facteur_2": "facteur 2 oublié",
        "lambda_min_au_lieu_de_lambda_max": "λmin au lieu de λmax",
        "seuil_d_oscillation": "1/λmax au lieu de 2/λmax",
        "lambda_au_lieu_du_taux": "la valeur propre elle-même au lieu du taux",
        "valeurs_propres_complexes": "valeurs propres complexes (`eigvals` au lieu de `eigvalsh`)",
    }
    hints = (
        "Le biais est un paramètre comme les autres : regroupez θ = (w, b) et écrivez la prédiction comme un "
        "produit d'une matrice par θ. La hessienne est alors une matrice (d + 1) × (d + 1).",
        "Dérivez deux fois chacun des deux termes de la perte par rapport à θ, et additionnez. Vous pouvez "
        "vérifier votre matrice sur un exemple avec `torch.autograd.functional.hessian`.",
        reread(PART_5),
    )

    def run(self, answers, rng, trials):
        max_stable_lr = answers["max_stable_lr"]
        for trial in range(trials):
            X, alpha, where = _curvature_case(rng, trial)
            report = _run(max_stable_lr, X.clone(), alpha, what=f"max_stable_lr(X, alpha) {where}")
            got = _real_number(report.result, "Le résultat de `max_stable_lr`")
            lam_min, lam_max = curvatures(X, alpha)
            expected = 2 / lam_max
            if _same(got, expected, 2e-3):
                continue
            known = _hessian_mistakes(X, alpha, lambda lo, hi: 2 / hi) + [
                (
                    2 / lam_min,
                    "lambda_min_au_lieu_de_lambda_max",
                    "Vous utilisez λmin : c'est la **plus grande** courbure qui limite le taux (la direction la plus "
                    "raide diverge la première).",
                ),
                (
                    1 / lam_max,
                    "seuil_d_oscillation",
                    "1/λmax est le seuil d'**oscillation** : entre 1/λmax et 2/λmax, la descente dépasse l'optimum "
                    "mais s'en rapproche encore.",
                ),
                (lam_max, "lambda_au_lieu_du_taux", "Vous renvoyez une valeur propre, pas un taux d'apprentissage."),
            ]
            for value, code, message in known:
                if _same(got, value, 2e-3):
                    raise WrongAnswer(message, code=code)
            raise WrongAnswer(f"`max_stable_lr(X, alpha)` vaut {_fr(got, 5)} au lieu de {_fr(expected, 5)} {where}.")
        return "2/λmax de la hessienne de la perte pénalisée, biais compris, sur des données aléatoires."


# -- 5. the fastest constant rate ----------------------------------------------------------------------


@register
class FastestRate(Exercise):
    id = "tp2_fastest_lr"
    assignment = ASSIGNMENT
    points = 2
    title = "Le taux constant le plus rapide et le conditionnement"
    names = ("fastest_lr",)
    section = PART_5
    mistakes = {
        "seuil_au_lieu_du_plus_rapide": "seuil de stabilité 2/λmax au lieu du taux le plus rapide",
        "seuil_d_oscillation": "1/λmax",
        "une_seule_valeur_propre": "une seule valeur propre prise en compte",
        "oubli_facteur_2": "facteur 2 oublié",
        "oubli_biais": "biais oublié dans la hessienne",
        "biais_penalise": "biais pénalisé",
        "oubli_penalite": "pénalité oubliée dans la hessienne",
        "penalite_sans_facteur_2": "dérivée seconde de α·w² écrite α",
        "oubli_facteur_2_sur_n": "facteur 2/n oublié",
        "somme_au_lieu_de_moyenne": "hessienne de la somme des carrés",
        "valeurs_propres_complexes": "valeurs propres complexes (`eigvals` au lieu de `eigvalsh`)",
    }
    hints = (
        "Chaque direction propre a son facteur |1 − ηλ| par pas, et la descente va au rythme de la plus lente. "
        "Quelles sont les deux directions qui comptent, et comment leurs facteurs varient-ils avec η ?",
        "Le meilleur η rend égaux les deux facteurs extrêmes : écrivez cette égalité, en faisant attention aux "
        "signes de 1 − ηλ de part et d'autre.",
        reread(PART_5),
    )

    def run(self, answers, rng, trials):
        fastest_lr = answers["fastest_lr"]
        for trial in range(trials):
            X, alpha, where = _curvature_case(rng, trial)
            report = _run(fastest_lr, X.clone(), alpha, what=f"fastest_lr(X, alpha) {where}")
            got = _real_number(report.result, "Le résultat de `fastest_lr`")
            lam_min, lam_max = curvatures(X, alpha)
            expected = 2 / (lam_min + lam_max)
            if _same(got, expected, 2e-3):
                continue
            known = [
                (
                    2 / lam_max,
                    "seuil_au_lieu_du_plus_rapide",
                    "C'est le seuil de stabilité 2/λmax : à ce taux, la direction de λmax ne converge plus du tout. Le "
                    "taux le plus rapide équilibre les directions de λmin et de λmax.",
                ),
                (
                    1 / lam_max,
                    "seuil_d_oscillation",
                    "1/λmax est le meilleur taux pour la seule direction de λmax ; celle de λmin reste alors la plus "
                    "lente. Équilibrez les deux directions extrêmes.",
                ),
                (
                    1 / lam_min,
                    "une_seule_valeur_propre",
                    "1/λmin ne tient compte que de la direction de λmin : la direction de λmax diverge à ce taux.",
                ),
                (
                    1 / (lam_min + lam_max),
                    "oubli_facteur_2",
                    "Il manque un facteur 2 : écrivez l'égalité des deux facteurs, 1 − ηλmin = ηλmax − 1.",
                ),
            ] + _hessian_mistakes(X, alpha, lambda lo, hi: 2 / (lo + hi))
            for value, code, message in known:
                if _same(got, value, 2e-3):
                    raise WrongAnswer(message, code=code)
            raise WrongAnswer(f"`fastest_lr(X, alpha)` vaut {_fr(got, 5)} au lieu de {_fr(expected, 5)} {where}.")
        return "2/(λmin + λmax) : les directions de λmin et de λmax convergent au même rythme, (κ − 1)/(κ + 1)."


# -- 6. mini-batch stochastic gradient descent ------------------------------------------------------------


def minibatch_descent(X, y, lr, n_epochs, batch_size, seed, *, variant: str = "") -> tuple[torch.Tensor, ...]:
    """The mini-batch descent of the statement (``variant`` = ""), or one typical mistake, by autograd in float64."""
    X, y = X.double(), y.double()
    n, d = X.shape
    w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(seed)
    size = 1 if variant == "taille_de_lot_ignoree" else batch_size
    once = torch.randperm(n, generator=generator) if variant == "permutation_unique" else None
    for _ in range(n_epochs):
        if variant == "un_pas_par_epoque":
            batches = [torch.arange(n)]
        else:
            if variant == "sans_melange":
                order = torch.arange(n)
            elif once is not None:
                order = once
            else:
                order = torch.randperm(n, generator=generator)
            stop = n - size + 1 if variant == "dernier_lot_oublie" else n
            batches = [order[start : start + size] for start in range(0, stop, size)]
        for batch in batches:
            squares = (X[batch] @ w + b - y[batch]) ** 2
            (squares.sum() if variant == "somme_au_lieu_de_moyenne" else squares.mean()).backward()
            with torch.no_grad():
                w -= lr * w.grad
                b -= lr * b.grad
            if variant not in ("zero_grad_par_epoque", "oubli_zero_grad"):
                w.grad = b.grad = None
        if variant == "zero_grad_par_epoque":
            w.grad = b.grad = None
    return w.detach(), b.detach()


def _finite_and_close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    if not torch.isfinite(expected).all():
        return not bool(torch.isfinite(got).all())
    return close(got, expected, rtol=1e-3, atol=1e-4)


@register
class MiniBatch(Exercise):
    id = "tp2_minibatch"
    assignment = ASSIGNMENT
    points = 5
    title = "La descente de gradient stochastique par mini-lots"
    names = ("fit_minibatch",)
    section = PART_6
    mistakes = {
        "zero_grad_par_epoque": "gradients remis à zéro à chaque époque au lieu de chaque pas",
        "oubli_zero_grad": "gradients jamais remis à zéro",
        "un_pas_par_epoque": "un seul pas par époque, sur toutes les données",
        "sans_melange": "mini-lots pris dans l'ordre, sans tirage aléatoire",
        "permutation_unique": "un seul tirage pour toutes les époques",
        "dernier_lot_oublie": "dernier mini-lot incomplet oublié",
        "somme_au_lieu_de_moyenne": "somme des carrés du mini-lot au lieu de leur moyenne",
        "taille_de_lot_ignoree": "un exemple par pas, sans tenir compte de `batch_size`",
        "mauvaise_forme": "paramètres renvoyés de la mauvaise forme",
    }
    hints = (
        "Deux boucles imbriquées : les époques, puis les mini-lots d'une époque. Qu'est-ce qui se passe une fois "
        "par époque, et qu'est-ce qui se passe à chaque pas ?",
        "Comptez les pas d'une époque quand n n'est pas un multiple de la taille des mini-lots : aucun "
        "exemple ne doit être oublié. Chaque pas part d'un gradient propre à son mini-lot.",
        reread(PART_6),
    )
    setups = ((37, 2, 8, 6), (45, 3, 10, 5), (29, 2, 6, 7), (50, 3, 16, 6))

    def run(self, answers, rng, trials):
        fit_minibatch = answers["fit_minibatch"]
        for trial in range(trials):
            n, d, batch_size, n_epochs = self.setups[trial % len(self.setups)]
            X, y = regression_data(rng, n, d, offset=0.3)
            _, lam_max = curvatures(X)
            lr = round(0.2 / lam_max, 4)
            seed = int(torch.randint(0, 10_000, (), generator=rng))
            what = (
                f"`fit_minibatch(X, y, lr, n_epochs, batch_size, seed)` avec n = {n}, `batch_size` = {batch_size}, "
                f"n_epochs = {n_epochs}"
            )
            report = _run(fit_minibatch, X.clone(), y.clone(), lr, n_epochs, batch_size, seed, what=what)
            out = report.result
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise WrongAnswer(
                    "`fit_minibatch` doit renvoyer les paramètres entraînés : `w, b`.", code="mauvaise_forme"
                )
            got_w = require_tensor(out[0], "Le `w` renvoyé").detach().reshape(-1)
            got_b = require_tensor(out[1], "Le `b` renvoyé").detach()
            if got_w.numel() != d or got_b.numel() != 1:
                raise WrongAnswer(
                    f"`w` doit avoir {d} valeurs et `b` une seule (reçu {fmt_shape(out[0].shape)} et "
                    f"{fmt_shape(out[1].shape)}).",
                    code="mauvaise_forme",
                )
            got = torch.cat([got_w, got_b.reshape(1)])
            args = (X, y, lr, n_epochs, batch_size, seed)
            if _finite_and_close(got, torch.cat([t.reshape(-1) for t in minibatch_descent(*args)])):
                continue
            steps = n_epochs * math.ceil(n / batch_size)
            for code in self.mistakes:
                if code == "mauvaise_forme":
                    continue
                wrong = torch.cat([t.reshape(-1) for t in minibatch_descent(*args, variant=code)])
                if _finite_and_close(got, wrong):
                    raise WrongAnswer(self._explain(code, n, batch_size, n_epochs, steps), code=code)
            raise WrongAnswer(
                f"Après {n_epochs} époques, (w, b) = {fmt_values(got)} au lieu de "
                f"{fmt_values(torch.cat([t.reshape(-1) for t in minibatch_descent(*args)]))}. Votre fonction a fait "
                f"{report.backward_passes} rétropropagations ; on en attend une par pas, soit {steps} "
                f"({n_epochs} époques de {math.ceil(n / batch_size)} mini-lots). Suivez l'ordre de l'énoncé pour les "
                "tirages aléatoires."
            )
        return "un pas par mini-lot, tiré au hasard à chaque époque, gradients remis à zéro à chaque pas."

    @staticmethod
    def _explain(code: str, n: int, batch_size: int, n_epochs: int, steps: int) -> str:
        per_epoch = math.ceil(n / batch_size)
        return {
            "zero_grad_par_epoque": "Les gradients ne sont remis à zéro qu'à la fin de chaque époque : à l'intérieur "
            "d'une époque, chaque pas ajoute son gradient à ceux des mini-lots précédents. La remise à zéro "
            "accompagne **chaque pas**.",
            "oubli_zero_grad": "Les gradients ne sont jamais remis à zéro : chaque `backward()` ajoute son gradient "
            "à tous les précédents.",
            "un_pas_par_epoque": f"Vous faites un seul pas par époque, sur toutes les données : c'est la descente "
            f"par lot complet. Avec n = {n} et `batch_size` = {batch_size}, une époque compte {per_epoch} pas, "
            f"soit {steps} pas en tout.",
            "sans_melange": "Vos mini-lots sont pris dans l'ordre des données : tirez un nouvel ordre des exemples à "
            "chaque époque, avec le générateur de l'énoncé. C'est ce tirage qui rend la descente stochastique.",
            "permutation_unique": "Vous tirez l'ordre des exemples une seule fois : il faut un nouveau tirage à "
            "**chaque époque**.",
            "dernier_lot_oublie": f"Le dernier mini-lot, incomplet, est oublié : avec n = {n} et `batch_size` = "
            f"{batch_size}, il contient {n % batch_size} exemples, qui doivent servir aussi.",
            "somme_au_lieu_de_moyenne": "La perte d'un mini-lot est la **somme** des carrés : prenez leur moyenne, "
            "sinon le pas effectif dépend de la taille du mini-lot.",
            "taille_de_lot_ignoree": "Vous faites un pas par exemple : utilisez des mini-lots de `batch_size` "
            "exemples.",
        }[code]


# -- 7 and 8. « trouvez le bug » ---------------------------------------------------------------------------


def reference_descent(X, y, lr, n_epochs, *, variant: str = "") -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Full-batch gradient descent from zero by autograd in float64: (w, b, losses); ``variant``: a typical bug."""
    X, y = X.double(), y.double()
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    losses = []
    for _ in range(n_epochs):
        pred = X @ w + b
        if variant == "cible_diffusee":
            squares = (pred.unsqueeze(1) - y) ** 2  # (n, 1) − (n,) → (n, n)
        else:
            squares = (pred - y) ** 2
        loss = squares.sum() if variant == "somme_au_lieu_de_moyenne" else squares.mean()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]) or losses[-1] > 1e30:
            break
        loss.backward()
        with torch.no_grad():
            if variant != "optimiseur_sur_copie":
                b -= lr * b.grad
                if variant != "data_coupe_le_graphe":
                    w -= lr * w.grad
        if variant != "oubli_zero_grad":
            w.grad = b.grad = None
    return w.detach(), b.detach(), losses


# Messages of the crashes a buggy loop produces (see ``autograder.pytorch_errors``) → the bug behind them.
_CRASHES = (
    ("Modification en place d'une feuille", "eval_au_lieu_de_no_grad"),
    ("`.grad` vaut `None`", "reaffectation_au_lieu_de_en_place"),
    ("NoneType", "reaffectation_au_lieu_de_en_place"),
    ("n'a pas de `grad_fn`", "reaffectation_au_lieu_de_en_place"),
)

BUG_MESSAGES = {
    "oubli_zero_grad": "Les gradients s'accumulent d'un pas à l'autre : `backward()` **ajoute** le nouveau gradient "
    "à `.grad`. Remettez les gradients à zéro à chaque pas.",
    "data_coupe_le_graphe": "`w` ne bouge pas alors que `b` s'entraîne : la propagation avant passe par `.data` (ou "
    "`detach()`), qui sort `w` du graphe de calcul ; `backward()` ne lui donne aucun gradient.",
    "reaffectation_au_lieu_de_en_place": "`w = w - …` crée un **nouveau** tenseur, qui n'est plus la feuille suivie "
    "par autograd : son `.grad` vaut `None`. Modifiez les paramètres en place.",
    "cible_diffusee": "La prédiction a la forme (n, 1) et `y` la forme (n,) : leur différence est diffusée en une "
    "matrice (n, n), et la perte mélange tous les exemples entre eux, sans aucune erreur.",
    "optimiseur_sur_copie": "`w` et `b` n'ont jamais bougé : l'optimiseur met à jour d'autres tenseurs que ceux du "
    "modèle entraîné (une copie).",
    "eval_au_lieu_de_no_grad": "Mise à jour en place d'un paramètre suivi par autograd : `model.eval()` ne coupe pas "
    "le suivi des gradients (il change seulement le comportement de couches comme le *dropout*). La mise à jour "
    "doit se faire hors du graphe.",
    "somme_au_lieu_de_moyenne": "La perte est la **somme** des carrés : le pas effectif est n fois trop grand et la "
    "descente diverge. L'EQM est une moyenne.",
}


def diagnose_training(train: Any, X: torch.Tensor, y: torch.Tensor, lr: float, n_epochs: int, *, runner=None):
    """None when ``train`` meets the specification on this data, else (mistake code, French explanation).

    ``runner`` calls ``train`` (``observe.run`` for student code, ``observe.run_here`` for a package variant).
    """
    runner = runner or observe.run
    what = f"`train(X, y, lr, n_epochs)` avec X de forme {fmt_shape(X.shape)}, `lr` = {_fr(lr, 4)}"
    try:
        report = runner(train, X.clone(), y.clone(), lr, n_epochs, what=what)
    except WrongAnswer as failure:
        for fragment, code in _CRASHES:
            if fragment in failure.message:
                return code, f"{failure.message} {BUG_MESSAGES[code]}"
        raise
    out = report.result
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        return "reponse_incorrecte", "`train` doit renvoyer `w, b, losses`, comme la boucle de départ."
    w = require_tensor(out[0], "Le `w` renvoyé").detach().double().reshape(-1)
    b = require_tensor(out[1], "Le `b` renvoyé").detach().double().reshape(-1)
    losses = out[2]
    if not isinstance(losses, (list, tuple)) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses
    ):
        return "reponse_incorrecte", "`losses` doit être une liste de nombres `float` (`loss.item()`), un par pas."
    got = torch.cat([w, b])

    def matches(variant: str) -> bool:
        ref_w, ref_b, ref_losses = reference_descent(X, y, lr, n_epochs, variant=variant)
        if len(ref_losses) < n_epochs:  # the variant blows up: the loop must have blown up as well
            return (
                len(losses) > 1
                and _same(float(losses[0]), ref_losses[0], 1e-3)
                and not (math.isfinite(losses[-1]) and losses[-1] < losses[0])
            )
        if len(losses) != n_epochs:
            return False
        same_losses = all(
            _same(float(a), c, 1e-3) or abs(float(a) - c) < 1e-6 for a, c in zip(losses, ref_losses, strict=True)
        )
        return same_losses and _finite_and_close(got, torch.cat([ref_w, ref_b.reshape(1)]))

    if matches(""):
        return None
    frozen_w = bool((w == 0).all())  # `.data` leaves w exactly at its start; a broadcast target only drives it near 0
    for code in BUG_MESSAGES:
        if code in ("reaffectation_au_lieu_de_en_place", "eval_au_lieu_de_no_grad"):
            continue  # these bugs crash: recognised above from the error
        if (code == "data_coupe_le_graphe") != frozen_w and code != "optimiseur_sur_copie":
            continue
        if matches(code):
            return code, BUG_MESSAGES[code]
    ref_w, ref_b, _ = reference_descent(X, y, lr, n_epochs)
    expected = torch.cat([ref_w, ref_b.reshape(1)])
    return "reponse_incorrecte", (
        f"Après {n_epochs} pas, (w, b) = {fmt_values(got)} au lieu de {fmt_values(expected)} : la boucle "
        "doit faire exactement la descente de gradient de la boucle de départ, sans son erreur."
    )


def _bug_case(rng: torch.Generator, trial: int) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    n, d = ((40, 3), (30, 2), (50, 4))[trial % 3]
    X, y = regression_data(rng, n, d, offset=0.3)
    _, lam_max = curvatures(X)
    return X, y, round(0.5 / lam_max, 4), 25


@register
class BugFix(Exercise):
    id = "tp2_bug_fix"
    assignment = ASSIGNMENT
    points = 3
    title = "Trouvez le bug : la boucle corrigée"
    names = ("train",)
    section = PART_4
    mistakes = {
        code: name
        for code, name in (
            ("oubli_zero_grad", "oubli de remettre les gradients à zéro"),
            ("data_coupe_le_graphe", "`.data` dans la propagation avant"),
            ("reaffectation_au_lieu_de_en_place", "`w = w - …` au lieu d'une modification en place"),
            ("cible_diffusee", "prédiction (n, 1) diffusée contre une cible (n,)"),
            ("optimiseur_sur_copie", "optimiseur construit sur une copie des paramètres"),
            ("eval_au_lieu_de_no_grad", "`model.eval()` pris pour `torch.no_grad()`"),
            ("somme_au_lieu_de_moyenne", "somme des carrés au lieu de leur moyenne"),
        )
    }
    hints = (
        "Exécutez la boucle de votre variante sur les données d'essai : plante-t-elle, la perte diverge-t-elle, "
        "les paramètres bougent-ils ? Le symptôme désigne l'étape fautive.",
        "Comparez la boucle, ligne à ligne, aux quatre étapes d'un pas : propagation avant et perte, "
        "rétropropagation, mise à jour hors du graphe, remise à zéro des gradients.",
        reread(PART_4),
    )

    def run(self, answers, rng, trials):
        train = answers["train"]
        for trial in range(trials):
            X, y, lr, n_epochs = _bug_case(rng, trial)
            found = diagnose_training(train, X, y, lr, n_epochs)
            if found is not None:
                code, message = found
                raise WrongAnswer(message, code=code)
        return "la boucle corrigée fait exactement la descente de gradient attendue, sur d'autres données."


@register
class BugName(Exercise):
    id = "tp2_bug_name"
    assignment = ASSIGNMENT
    points = 1
    title = "Trouvez le bug : le nom de l'erreur"
    names = ("variante", "erreur")
    section = PART_4
    mistakes = {"mauvais_diagnostic": "erreur mal nommée"}
    hints = (
        "Le code de l'erreur est l'un de ceux de la liste de l'énoncé. Exécutez la boucle de votre variante : son "
        "symptôme (plantage et son message, perte qui diverge, paramètres immobiles) vous oriente.",
        reread(PART_4),
    )

    def run(self, answers, rng, trials):
        variant, named = answers["variante"], answers["erreur"]
        if variant is None or named is None:
            raise NotAttempted("`variante` ou `erreur` vaut encore `None` : complétez les deux.")
        if isinstance(variant, bool) or not isinstance(variant, int) or not 1 <= variant <= len(VARIANTS):
            raise WrongAnswer(f"`variante` doit être le numéro affiché par `mon_bug()`, de 1 à {len(VARIANTS)}.")
        codes = list(BugFix.mistakes)
        if named not in codes:
            raise WrongAnswer(f"`erreur` doit être l'un des codes de l'énoncé : {', '.join(codes)}.")
        X, y, lr, n_epochs = _bug_case(rng, 0)
        found = diagnose_training(buggy_train(variant), X, y, lr, n_epochs, runner=_run_package_code)
        if found is None or found[0] != named:
            raise WrongAnswer(
                f"Ce n'est pas l'erreur de la variante n° {variant} : relancez-la et regardez ce qui se passe.",
                code="mauvais_diagnostic",
            )
        return f"variante n° {variant} : {BugFix.mistakes[named]}."


def _run_package_code(func: Any, *args: Any, what: str) -> observe.CallReport:
    """Run a buggy variant of the package itself (trusted code) in this process."""
    return observe.run_here(func, args, what)
