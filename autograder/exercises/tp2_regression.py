"""TP2 « Régression linéaire par descente de gradient »: the graded exercises (20 points).

The model is y ≈ X @ w + b with X of shape (n, d), w of shape (d,) and a scalar bias b; the loss is the
mean squared error. Every reference is computed at check time on fresh random data, with autograd
(gradients), ``torch.linalg.lstsq`` (the least-squares solution) and ``torch.linalg.eigvalsh``
(the curvature of the loss), so nothing here gives an answer away: the package ships to students.
The few wrong formulas below only recognise typical mistakes in order to name them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from autograder.autograd_guard import forbid_autograd
from autograder.exercise import Exercise, call, register
from autograder.tensor_checks import (
    as_number,
    autograd_gradient,
    close,
    fmt_shape,
    fmt_values,
    max_gap,
    require_tensor,
    scale_factor,
)
from autograder.typography import french_number as _fr
from autograder.verdict import WrongAnswer

ASSIGNMENT = "tp2_regression"

# Fragments of PyTorch's messages for a matrix product with incompatible shapes (torch 2.13).
_SHAPE_ERRORS = ("size mismatch", "cannot be multiplied", "must be a matrix", "must match the size")


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


def _loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The loss of the statement: mean over the n examples of (x·w + b − y)²."""
    return ((X @ w + b - y) ** 2).mean()


def _reference_gradients(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """∂L/∂w and ∂L/∂b computed by autograd on fresh leaf copies."""
    w_leaf = w.detach().clone().requires_grad_(True)
    b_leaf = b.detach().clone().requires_grad_(True)
    grad_w, grad_b = torch.autograd.grad(_loss(X, y, w_leaf, b_leaf), (w_leaf, b_leaf))
    return grad_w, grad_b


def _with_ones(X: torch.Tensor) -> torch.Tensor:
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1)


def least_squares(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (w*, b*) by ``torch.linalg.lstsq`` in float64."""
    theta = torch.linalg.lstsq(_with_ones(X.double()), y.double().unsqueeze(1)).solution.squeeze(1)
    return theta[:-1], theta[-1]


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

    The loss of the statement has data_scale = 1/n, penalty_scale = 1 and bias_penalty = 0 (alpha = 0: the MSE);
    other values give the Hessians of typical mistakes. The loss is quadratic, so its Hessian depends neither on
    the point (θ = 0 here) nor on y (taken as 0).
    """
    n, d = X.shape
    data = X.double()
    scale = 1 / n if data_scale is None else data_scale

    def loss(theta: torch.Tensor) -> torch.Tensor:
        w, b = theta[:d], (theta[d] if bias else theta.new_zeros(()))
        return scale * ((data @ w + b) ** 2).sum() + alpha * (penalty_scale * (w**2).sum() + bias_penalty * b**2)

    return torch.autograd.functional.hessian(loss, torch.zeros(d + 1 if bias else d, dtype=torch.float64))


def _curvatures(X: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (ascending) of the Hessian of the MSE with respect to (w, b)."""
    return torch.linalg.eigvalsh(loss_hessian(X))


def _stable_lr(X: torch.Tensor) -> float:
    """The learning rate given to the training questions: half the stability limit 2/λmax."""
    return float(1 / _curvatures(X).max())


def _epochs_needed(X: torch.Tensor) -> int:
    """Epochs for gradient descent at lr = 1/λmax to shrink the error by 1e-6 (plus a margin)."""
    eigen = _curvatures(X)
    kappa = float(eigen.max() / eigen.min())
    return min(400, math.ceil(math.log(1e-6) / math.log(1 - 1 / kappa)) + 10)


def _call(func: Any, *args: Any, what: str, shapes: str) -> Any:
    """``call``, naming a matrix product with incompatible shapes (usually a missing transpose)."""
    __tracebackhide__ = True
    try:
        return call(func, *args, what=what)
    except WrongAnswer as failure:
        if any(fragment in failure.message for fragment in _SHAPE_ERRORS):
            raise WrongAnswer(f"{failure.message} {shapes}") from None
        raise


def _same(a: float, b: float, rtol: float = 1e-3) -> bool:
    return abs(a - b) <= rtol * max(abs(b), 1e-12)


def _real_number(value: Any, what: str) -> float:
    """``as_number``, naming a complex eigenvalue (``torch.linalg.eigvals`` instead of ``eigvalsh``)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_complex():
        raise WrongAnswer(
            f"{what} est un nombre complexe : la hessienne est symétrique, ses valeurs propres sont réelles. "
            "Utilisez `torch.linalg.eigvalsh`."
        )
    return as_number(value, what)


def _require_losses(losses: Any, n_epochs: int, name: str) -> list[float]:
    """A list of n_epochs Python numbers (``loss.item()``), one per epoch."""
    if not isinstance(losses, (list, tuple)):
        raise WrongAnswer(f"`{name}` doit renvoyer la liste des pertes, pas `{type(losses).__name__}`.")
    if len(losses) != n_epochs:
        raise WrongAnswer(
            f"{len(losses)} pertes renvoyées pour n_epochs = {n_epochs} : une par époque (n'écrivez pas le nombre "
            "d'époques en dur, utilisez le paramètre `n_epochs`)."
        )
    for loss in losses:
        if isinstance(loss, torch.Tensor):
            raise WrongAnswer(
                "Les pertes de la liste sont des tenseurs : enregistrez `loss.item()`, un nombre `float`. Garder le "
                "tenseur `loss` garde aussi tout son graphe de calcul en mémoire, époque après époque."
            )
        if isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise WrongAnswer(f"Chaque perte doit être un nombre `float`, pas `{type(loss).__name__}`.")
    return [float(loss) for loss in losses]


def _divergence(losses: list[float], effective_lr: float | None, X: torch.Tensor, lr: float) -> str | None:
    """French explanation when the loss blew up or went up, else None."""
    finite = all(math.isfinite(v) for v in losses)
    if finite and losses[-1] <= losses[0]:
        return None
    lr_max = float(2 / _curvatures(X).max())
    last = losses[-1] if finite else next(v for v in losses if not math.isfinite(v))
    step = "" if effective_lr is None else f" Le pas effectif de votre boucle vaut {_fr(effective_lr, 3)}."
    return (
        f"La perte a divergé (elle atteint {_fr(last, 3)}, contre {_fr(losses[0], 3)} au départ).{step} La "
        "descente de gradient n'est stable que si le taux d'apprentissage reste sous "
        f"2/λmax = {_fr(lr_max, 3)}, où λmax est la plus grande valeur propre de la hessienne de l'EQM : au-delà, "
        "l'écart à l'optimum est amplifié à chaque pas. Utilisez le taux `lr` reçu en paramètre "
        f"(ici `lr={lr}`)."
    )


# -- 1. prediction --------------------------------------------------------------------------------


@register
class Prediction(Exercise):
    id = "tp2_predict"
    assignment = ASSIGNMENT
    points = 2
    title = "La prédiction du modèle linéaire"
    names = ("predict",)
    hints = (
        "Chaque ligne de `X` est un exemple : sa prédiction est le produit scalaire de la ligne avec `w`, plus `b`. "
        "Le produit matriciel `X @ w` les calcule toutes d'un coup.",
        "`X` a la forme (n, d) et `w` la forme (d,) : `X @ w` a la forme (n,), comme `y`. N'oubliez pas `+ b`.",
    )

    def run(self, answers, rng, trials):
        predict = answers["predict"]
        sizes = ((7, 3), (10, 2), (5, 4), (12, 3), (8, 5))
        for trial in range(trials):
            n, d = sizes[trial % len(sizes)]
            X, _ = regression_data(rng, n, d)
            w = torch.randn(d, generator=rng).requires_grad_(True)
            b = torch.randn(1, generator=rng)[0].requires_grad_(True)
            what = f"predict(X, w, b) avec X de forme {fmt_shape(X.shape)} et w de forme {fmt_shape(w.shape)}"
            got = _call(
                predict,
                X.clone(),
                w,
                b,
                what=what,
                shapes="Chaque ligne de `X` (forme (n, d)) se multiplie par `w` (forme (d,)) : écrivez `X @ w`, "
                "dans cet ordre.",
            )
            got = require_tensor(got, "Le résultat de `predict`")
            expected = X @ w.detach() + b.detach()
            if got.shape == X.shape and close(got, X * w.detach() + b.detach()):
                raise WrongAnswer(
                    "`X * w` multiplie élément par élément (résultat de forme (n, d)) : la prédiction demande le "
                    "**produit matriciel** `X @ w`, qui somme sur les d caractéristiques."
                )
            if got.shape == (n, 1):
                raise WrongAnswer(
                    f"La prédiction a la forme {fmt_shape(got.shape)} (un vecteur colonne) au lieu de ({n},). Une "
                    f"fois soustraite à `y` de forme ({n},), elle serait diffusée en une matrice ({n}, {n}) et l'EQM "
                    "serait fausse sans aucune erreur. Gardez `w` de forme (d,) : `X @ w + b`."
                )
            if got.shape != expected.shape:
                raise WrongAnswer(
                    f"La prédiction a la forme {fmt_shape(got.shape)} au lieu de ({n},) : une prédiction par exemple."
                )
            if not close(got, expected):
                if close(got, X @ w.detach()):
                    raise WrongAnswer("Il manque le biais : la prédiction est `X @ w + b`.")
                if close(got, X @ w.detach() - b.detach()):
                    raise WrongAnswer("Le biais est soustrait au lieu d'être ajouté : `X @ w + b`.")
                raise WrongAnswer(
                    f"Prédiction fausse : vous renvoyez {fmt_values(got)}, attendu {fmt_values(expected)} "
                    f"(écart maximal {_fr(max_gap(got, expected), 3)})."
                )
            if got.grad_fn is None:
                raise WrongAnswer(
                    "La prédiction n'a pas de `grad_fn` : elle a été calculée hors du graphe de calcul (`detach()`, "
                    "`torch.no_grad()`, NumPy…). Sans graphe, `backward()` ne pourra pas remonter jusqu'à `w` et `b`."
                )
            grads = torch.autograd.grad(got.sum(), (w, b), allow_unused=True)
            if any(g is None for g in grads) or not close(grads[0], X.sum(0)) or not close(grads[1], torch.tensor(n)):
                raise WrongAnswer(
                    "Les valeurs sont justes, mais une partie du calcul est détachée du graphe : le gradient de la "
                    "prédiction par rapport à `w` ou à `b` est faux."
                )
        return "`X @ w + b` : une prédiction par exemple, de forme (n,), dans le graphe de calcul."


# -- 2. mean squared error ------------------------------------------------------------------------


@register
class MeanSquaredError(Exercise):
    id = "tp2_mse"
    assignment = ASSIGNMENT
    points = 2
    title = "L'erreur quadratique moyenne (EQM)"
    names = ("mse",)
    hints = (
        "EQM = moyenne sur les n exemples de (prédiction − cible)². Trois opérations : soustraire, élever au carré, "
        "faire la moyenne.",
        "Renvoyez un tenseur scalaire (pas `.item()`) : c'est sur lui qu'on appellera `backward()`.",
    )

    def run(self, answers, rng, trials):
        mse = answers["mse"]
        for trial in range(trials):
            n = (6, 9, 4, 11)[trial % 4]
            y = torch.randn(n, generator=rng) * 2
            y_pred = (y + torch.randn(n, generator=rng) + 0.3).requires_grad_(True)
            got = call(mse, y_pred, y.clone(), what=f"mse(y_pred, y) avec des vecteurs de forme ({n},)")
            if isinstance(got, float):
                raise WrongAnswer(
                    "`mse` renvoie un nombre Python (`.item()` ?) : renvoyez le tenseur, sur lequel on pourra "
                    "appeler `backward()`."
                )
            got = require_tensor(got, "Le résultat de `mse`")
            diff = y_pred.detach() - y
            expected = (diff**2).mean()
            if got.numel() != 1:
                raise WrongAnswer(
                    f"`mse` renvoie un tenseur de forme {fmt_shape(got.shape)} : les carrés des erreurs, un par "
                    "exemple. La fonction de perte est un scalaire : faites-en la moyenne avec `.mean()`."
                )
            value = float(got.detach())
            if not _same(value, float(expected), 1e-4):
                known = [
                    (
                        float((diff**2).sum()),
                        "`.sum()` au lieu de `.mean()` : l'EQM est une **moyenne**, divisez par n.",
                    ),
                    (float(diff.abs().mean()), "C'est l'erreur absolue moyenne : l'EQM élève les écarts **au carré**."),
                    (
                        float(expected.sqrt()),
                        "Vous prenez la racine carrée : c'est la racine de l'EQM (en anglais `RMSE`). L'EQM "
                        "s'arrête à la moyenne des carrés.",
                    ),
                    (
                        float(diff.mean() ** 2),
                        "Vous élevez au carré la moyenne des écarts : les écarts positifs et négatifs se compensent. "
                        "Élevez chaque écart au carré **avant** la moyenne.",
                    ),
                    (float(diff.mean()), "Il manque le carré : la moyenne des écarts bruts peut être nulle."),
                ]
                for wrong, message in known:
                    if _same(value, wrong, 1e-4):
                        raise WrongAnswer(message)
                raise WrongAnswer(f"`mse` vaut {_fr(value, 5)} au lieu de {_fr(float(expected), 5)}.")
            if got.grad_fn is None:
                raise WrongAnswer(
                    "La perte n'a pas de `grad_fn` : elle a été recalculée hors du graphe de calcul "
                    "(`torch.tensor(...)`, `.item()`, NumPy). Utilisez uniquement des opérations PyTorch sur `y_pred`."
                )
        return "moyenne des carrés des écarts, un scalaire dans le graphe de calcul."


# -- 3. gradient derived by hand ------------------------------------------------------------------


@register
class HandGradient(Exercise):
    id = "tp2_hand_grad"
    assignment = ASSIGNMENT
    points = 4
    title = "Le gradient de l'EQM, dérivé à la main"
    names = ("mse_grad",)
    hints = (
        "Posez r = X @ w + b − y (les résidus, forme (n,)) : L = (1/n)·Σ rᵢ². Dérivez d'abord L par rapport à un "
        "rᵢ, puis appliquez la règle de dérivation en chaîne.",
        "rᵢ dépend de w par la ligne numéro i de X (∂rᵢ/∂w = xᵢ) et de b avec ∂rᵢ/∂b = 1. Une somme de lignes de X "
        "pondérées par un vecteur s'écrit avec la transposée : `X.T @ vecteur`, de forme (d,) comme `w`.",
        "n est le nombre d'exemples, `X.shape[0]` (pas `X.shape[1]`, ni `X.numel()`).",
    )

    sizes = ((12, 3), (20, 3), (15, 4), (25, 3), (10, 4), (18, 5))

    def run(self, answers, rng, trials):
        mse_grad = answers["mse_grad"]
        for trial in range(trials):
            n, d = self.sizes[trial % len(self.sizes)]
            X, y = regression_data(rng, n, d, offset=0.5)
            w = torch.randn(d, generator=rng)
            b = torch.randn(1, generator=rng)[0]
            what = f"mse_grad(X, y, w, b) avec X de forme {fmt_shape(X.shape)}"
            with forbid_autograd(inputs="`X`, `y`, `w` et `b`", reference="`w.grad` et `b.grad`"):
                got = _call(
                    mse_grad,
                    X.clone(),
                    y.clone(),
                    w.clone(),
                    b.clone(),
                    what=what,
                    shapes=f"`X` a la forme ({n}, {d}) et les résidus r la forme ({n},) : le gradient par rapport à "
                    "`w` est (2/n)·Xᵀr, avec la **transposée** `X.T @ r`.",
                )
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise WrongAnswer("`mse_grad` doit renvoyer deux gradients : `return grad_w, grad_b`.")
            grad_w = require_tensor(got[0], "`grad_w`")
            grad_b = require_tensor(got[1], "`grad_b`")
            expected_w, expected_b = _reference_gradients(X, y, w, b)
            self._diagnose_w(grad_w, expected_w, X, y, w, b)
            self._diagnose_b(grad_b, expected_b, n)
        return f"(2/n)·Xᵀr et (2/n)·Σr coïncident avec autograd sur {trials} jeux de données aléatoires."

    @staticmethod
    def _diagnose_w(grad_w, expected, X, y, w, b) -> None:
        n, d = X.shape
        if grad_w.shape != expected.shape:
            raise WrongAnswer(
                f"`grad_w` a la forme {fmt_shape(grad_w.shape)} au lieu de ({d},) : le gradient a la forme de `w`."
            )
        if close(grad_w, expected):
            return
        if close(grad_w, _reference_gradients(X, y, w, torch.zeros(()))[0]):
            raise WrongAnswer("Vos résidus oublient le biais : r = X @ w + b − y.")
        k = scale_factor(grad_w, expected)
        factors = {
            0.5: "Il manque le facteur 2 : la dérivée de r² est 2·r.",
            2.0: "Votre gradient est deux fois trop grand : la dérivée de r² est 2·r, le facteur 2 n'apparaît qu'une "
            "fois.",
            -1.0: "Le signe est inversé : avec r = X @ w + b − y, le gradient est +(2/n)·Xᵀr (ou bien vos résidus "
            "sont y − X @ w − b).",
            float(n): "Votre gradient est n fois trop grand : il manque la division par n de la **moyenne** "
            "(vous avez dérivé la somme des carrés).",
            n / 2: "Il manque le facteur 2/n : la dérivée de (1/n)·Σ rᵢ² est (2/n)·rᵢ.",
            1 / n: "Vous divisez deux fois par n : (2/n)·Xᵀr, une seule division.",
            n / d: f"Vous divisez par d = `X.shape[1]` = {d} (nombre de caractéristiques) au lieu de n = `X.shape[0]` "
            f"= {n} (nombre d'exemples).",
            1 / d: f"Vous divisez par `X.numel()` = n·d = {n * d} : la moyenne porte sur les n = {n} exemples.",
        }
        if k is not None:
            for factor, message in factors.items():
                if abs(k - factor) < 1e-3 * max(1.0, abs(factor)):
                    raise WrongAnswer(message)
            raise WrongAnswer(f"`grad_w` vaut {_fr(k, 4)} fois le bon gradient : un facteur constant est faux.")
        raise WrongAnswer(
            f"`grad_w` est faux pour X de forme ({n}, {d}) : vous renvoyez {fmt_values(grad_w)}, autograd donne "
            f"{fmt_values(expected)} (écart maximal {_fr(max_gap(grad_w, expected), 3)})."
        )

    @staticmethod
    def _diagnose_b(grad_b, expected, n) -> None:
        if grad_b.numel() != 1:
            raise WrongAnswer(
                f"`grad_b` a la forme {fmt_shape(grad_b.shape)} : c'est un seul nombre, comme `b`. Les contributions "
                "des n exemples s'additionnent : (2/n)·Σ rᵢ."
            )
        got, want = float(grad_b.detach()), float(expected)
        if _same(got, want):
            return
        for factor, message in {
            0.5: "`grad_b` : il manque le facteur 2 de la dérivée de r².",
            -1.0: "`grad_b` a le mauvais signe.",
            float(n): "`grad_b` est n fois trop grand : il manque la division par n.",
            n / 2: "`grad_b` : il manque le facteur 2/n.",
        }.items():
            if _same(got, factor * want):
                raise WrongAnswer(message)
        raise WrongAnswer(
            f"`grad_b` vaut {_fr(got, 5)} au lieu de {_fr(want, 5)} : dérivez chaque rᵢ² par rapport à b, sachant "
            "que ∂rᵢ/∂b = 1."
        )


# -- 4. one descent step ----------------------------------------------------------------------------


@register
class DescentStep(Exercise):
    id = "tp2_step"
    assignment = ASSIGNMENT
    points = 3
    title = "Un pas de descente de gradient sur `w` et `b`"
    names = ("descent_step",)
    hints = (
        "Calculez la perte, appelez `loss.backward()` : `w.grad` et `b.grad` sont remplis.",
        "La mise à jour ne doit pas entrer dans le graphe de calcul : `with torch.no_grad(): w -= lr * w.grad` "
        "(de même pour `b`). `w = w - ...` crée un nouveau tenseur au lieu de modifier `w`.",
        "Après la mise à jour : `w.grad.zero_()` et `b.grad.zero_()`, sinon le prochain `backward()` s'y ajoute.",
    )

    def run(self, answers, rng, trials):
        descent_step = answers["descent_step"]
        for trial in range(trials):
            n, d = (8, 3) if trial % 2 == 0 else (12, 2)
            X, y = regression_data(rng, n, d)
            lr = (0.05, 0.1, 0.02)[trial % 3]
            w = torch.randn(d, generator=rng).requires_grad_(True)
            b = torch.randn(1, generator=rng)[0].requires_grad_(True)
            before_w, before_b = w.detach().clone(), b.detach().clone()
            grad_w, grad_b = _reference_gradients(X, y, w, b)
            version = w._version
            out = call(
                descent_step,
                X.clone(),
                y.clone(),
                w,
                b,
                lr,
                what=f"descent_step(X, y, w, b, lr=lr) avec `lr` = {_fr(lr)}",
            )
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise WrongAnswer("`descent_step` doit renvoyer les paramètres : `return w, b`.")
            out_w = require_tensor(out[0], "Le `w` renvoyé")
            out_b = require_tensor(out[1], "Le `b` renvoyé")
            for name, got, param in (("w", out_w, w), ("b", out_b, b)):
                if got is not param:
                    if got.grad_fn is not None:
                        raise WrongAnswer(
                            f"Le `{name}` renvoyé a un `grad_fn` (`{type(got.grad_fn).__name__}`) : mise à jour suivie "
                            f"par autograd. `{name}` n'est plus une feuille, et la rétropropagation de l'époque "
                            "suivante traverserait toutes les mises à jour. Faites-la dans `with torch.no_grad():`, "
                            f"en place (`{name} -= lr * {name}.grad`)."
                        )
                    raise WrongAnswer(
                        f"Vous renvoyez un nouveau tenseur : `{name} = {name} - ...` ne modifie pas le paramètre "
                        f"d'origine (et le nouveau ne suit plus les gradients). Modifiez `{name}` en place : "
                        f"`{name} -= lr * {name}.grad`."
                    )
                if not param.requires_grad:
                    raise WrongAnswer(f"`{name}` ne suit plus les gradients : ne changez pas `requires_grad`.")
            self._check_update("w", w, before_w, grad_w, lr, n)
            self._check_update("b", b, before_b, grad_b, lr, n)
            if w._version == version:
                raise WrongAnswer(
                    "Les valeurs sont justes, mais vous avez modifié `w.data`, ce qui contourne le suivi des versions "
                    "d'autograd. Utilisez `with torch.no_grad(): w -= lr * w.grad`."
                )
            for name, param in (("w", w), ("b", b)):
                if param.grad is not None and bool(param.grad.abs().sum() > 0):
                    raise WrongAnswer(
                        f"La mise à jour est juste, mais `{name}.grad` n'a pas été remis à zéro : au prochain "
                        f"`backward()` les gradients s'accumuleraient. Ajoutez `{name}.grad.zero_()`."
                    )
        return "`w` et `b` mis à jour en place hors du graphe, restés des feuilles ; gradients remis à zéro."

    @staticmethod
    def _check_update(name, param, before, grad, lr, n) -> None:
        expected = before - lr * grad
        if close(param, expected):
            return
        if close(param, before):
            raise WrongAnswer(
                f"`{name}` n'a pas changé : appliquez aussi la mise à jour {name} ← {name} − lr·∂L/∂{name}."
            )
        if close(param, before + lr * grad):
            raise WrongAnswer(
                f"Mauvais signe sur `{name}` : il faut **descendre** le gradient, {name} − lr·{name}.grad."
            )
        k = scale_factor((param.detach() - before).reshape(-1), (-grad).reshape(-1))
        if k is not None and abs(k - n * lr) < 1e-3 * n * lr:
            raise WrongAnswer(
                "Le pas est n fois trop grand : votre perte est une somme. La fonction de perte est l'EQM, une "
                "**moyenne** (`.mean()`)."
            )
        if k is not None:
            raise WrongAnswer(
                f"Le pas effectif est {_fr(k, 4)} au lieu de `lr={lr}` : utilisez le paramètre `lr`, sans constante "
                "en dur."
            )
        raise WrongAnswer(f"`{name}` vaut {fmt_values(param)} au lieu de {fmt_values(expected)} après le pas.")


# -- 5. training loop -------------------------------------------------------------------------------


class _GradientRecorder:
    """Record, at each backward pass, the parameters and the gradients accumulated in w and b."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        self.records: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.b_grads: list[torch.Tensor] = []
        self.handles = [
            w.register_post_accumulate_grad_hook(self._on_w),
            b.register_post_accumulate_grad_hook(self._on_b),
        ]
        self.b = b

    def _on_w(self, w: torch.Tensor) -> None:
        self.records.append((w.detach().clone(), self.b.detach().clone(), w.grad.detach().clone()))

    def _on_b(self, b: torch.Tensor) -> None:
        self.b_grads.append(b.grad.detach().clone())

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@register
class TrainingLoop(Exercise):
    id = "tp2_fit"
    assignment = ASSIGNMENT
    points = 3
    title = "La boucle d'entraînement, comparée aux moindres carrés"
    names = ("fit",)
    hints = (
        "À chaque époque : la perte, `loss.backward()`, puis la mise à jour de `w` et `b` sous `torch.no_grad()` et "
        "la remise à zéro des gradients (c'est votre `descent_step`).",
        "Enregistrez `loss.item()` (un nombre) avant la mise à jour, une fois par époque.",
        "Si la perte diverge, votre pas est trop grand : utilisez le `lr` reçu en paramètre et une perte **moyenne**.",
    )

    def run(self, answers, rng, trials):
        fit = answers["fit"]
        setups = ((40, 3, 2.0), (30, 2, 1.0), (50, 4, 3.0))
        for trial in range(trials):
            n, d, scale = setups[trial % len(setups)]
            X, y = regression_data(rng, n, d, scale=scale, offset=0.2)
            lr, n_epochs = round(_stable_lr(X), 4), _epochs_needed(X)
            w = (0.1 * torch.randn(d, generator=rng)).requires_grad_(True)
            b = torch.zeros(()).requires_grad_(True)
            start_w, start_b = w.detach().clone(), b.detach().clone()
            recorder = _GradientRecorder(w, b)
            try:
                losses = call(
                    fit,
                    X.clone(),
                    y.clone(),
                    w,
                    b,
                    lr,
                    n_epochs,
                    what=f"fit(X, y, w, b, lr=lr, n_epochs=n_epochs) avec `lr` = {_fr(lr)} et n_epochs = {n_epochs}",
                )
            finally:
                recorder.remove()
            losses = _require_losses(losses, n_epochs, "fit")
            if len(recorder.records) != n_epochs:
                raise WrongAnswer(
                    f"`loss.backward()` a rempli `w.grad` {len(recorder.records)} fois pour n_epochs = {n_epochs} : "
                    "une rétropropagation par époque, qui donne le gradient du pas de descente."
                )
            self._check_gradients(recorder, X, y, n)
            effective_lr = self._effective_lr(recorder)
            diverged = _divergence(losses, effective_lr, X, lr)
            if diverged:
                raise WrongAnswer(diverged)
            if effective_lr is not None and not _same(effective_lr, lr, 1e-2):
                raise WrongAnswer(
                    f"Le pas effectif de votre boucle est {_fr(effective_lr, 4)} au lieu de `lr={lr}` : utilisez le "
                    "paramètre `lr`, sans constante en dur."
                )
            first = float(_loss(X, y, start_w, start_b))
            if not _same(losses[0], first, 1e-3):
                raise WrongAnswer(
                    f"La première perte enregistrée ({_fr(losses[0], 5)}) n'est pas l'EQM des paramètres de départ "
                    f"({_fr(first, 5)}) : enregistrez la perte de chaque époque **avant** la mise à jour."
                )
            if close(w, start_w):
                raise WrongAnswer(
                    "`w` n'a pas changé : entraînez les tenseurs `w` et `b` reçus, en place (`w -= ...` sous "
                    "`torch.no_grad()`), sans les remplacer par de nouveaux tenseurs."
                )
            if close(b, start_b):
                raise WrongAnswer("`b` n'a pas changé : le biais s'entraîne aussi, b ← b − lr·b.grad.")
            self._check_solution(w, b, X, y, n_epochs, losses)
        return (
            "la perte décroît à chaque époque et (w, b) rejoint la solution des moindres carrés (`torch.linalg.lstsq`)."
        )

    @staticmethod
    def _check_gradients(recorder: _GradientRecorder, X, y, n) -> None:
        accumulated = None
        for k, (w_k, b_k, grad_k) in enumerate(recorder.records[:4]):
            if not (torch.isfinite(w_k).all() and torch.isfinite(grad_k).all()):
                return
            expected, _ = _reference_gradients(X, y, w_k, b_k)
            accumulated = expected if accumulated is None else accumulated + expected
            if close(grad_k, expected, rtol=1e-3, atol=1e-4):
                continue
            if k > 0 and close(grad_k, accumulated, rtol=1e-3, atol=1e-4):
                raise WrongAnswer(
                    "Les gradients s'accumulent d'une époque à l'autre : `backward()` **ajoute** le nouveau gradient "
                    "à `w.grad`. Remettez `w.grad` et `b.grad` à zéro à chaque époque (`.zero_()`)."
                )
            factor = scale_factor(grad_k, expected)
            if factor is not None and _same(factor, n, 1e-2):
                raise WrongAnswer(
                    "Le gradient est n fois trop grand : votre perte est la **somme** des carrés. Avec `.sum()`, le "
                    "pas effectif est multiplié par n et la descente diverge : l'EQM est une moyenne (`.mean()`)."
                )
            raise WrongAnswer(
                f"À l'époque {k + 1}, `w.grad` n'est pas le gradient de l'EQM (X @ w + b − y)² moyennée : vérifiez la "
                "perte calculée dans la boucle."
            )

    @staticmethod
    def _effective_lr(recorder: _GradientRecorder) -> float | None:
        """Step size measured between the first two backward passes (w₁ − w₀ = −lr·∂L/∂w)."""
        if len(recorder.records) < 2:
            return None
        (w0, _, g0), (w1, _, _) = recorder.records[:2]
        k = scale_factor((w1 - w0).reshape(-1), (-g0).reshape(-1))
        return k

    @staticmethod
    def _check_solution(w, b, X, y, n_epochs, losses) -> None:
        for k in range(1, len(losses)):
            if losses[k] > losses[k - 1] + 1e-6 * losses[0]:
                raise WrongAnswer(
                    f"La perte remonte à l'époque {k + 1} ({_fr(losses[k - 1], 5)} → {_fr(losses[k], 5)}) : avec "
                    "un taux stable, chaque pas de descente de gradient fait baisser l'EQM."
                )
        w_star, b_star = least_squares(X, y)
        tolerance = dict(rtol=1e-3, atol=1e-3)
        if not (close(w, w_star, **tolerance) and close(b, b_star, **tolerance)):
            raise WrongAnswer(
                f"Après {n_epochs} époques, `w` = {fmt_values(w)} et `b` = {fmt_values(b)} sont loin de la solution "
                f"des moindres carrés, `w` = {fmt_values(w_star)} et `b` = {fmt_values(b_star)}, donnée par "
                "`torch.linalg.lstsq` : "
                "faites exactement `n_epochs` pas de descente sur `w` **et** `b`."
            )


# -- 6. largest stable learning rate ----------------------------------------------------------------


@register
class LargestStableRate(Exercise):
    id = "tp2_max_lr"
    assignment = ASSIGNMENT
    points = 3
    title = "Le plus grand taux d'apprentissage stable, calculé à partir des données"
    names = ("max_stable_lr",)
    hints = (
        "Le biais est un paramètre comme les autres : avec X̃ = [X, 1] (une colonne de 1 ajoutée à `X`) et "
        "θ = (w, b), la prédiction s'écrit X̃θ et la hessienne est une matrice (d + 1) × (d + 1).",
        "Dérivez deux fois chacun des deux termes de L par rapport à θ, et additionnez les deux hessiennes. La "
        "pénalité ne porte que sur w : sa hessienne est nulle sur la ligne et la colonne de b.",
        "La hessienne est symétrique : `torch.linalg.eigvalsh(H)` donne ses valeurs propres (ordre croissant). "
        "Renvoyez 2/λmax sous forme de nombre `float`. Pour vérifier votre matrice sur un exemple : "
        "`torch.autograd.functional.hessian`.",
    )
    setups = (
        (30, 2, 0.5, 0.8, 1.0),
        (40, 3, 0.7, 0.6, 0.5),
        (25, 2, 0.4, 1.0, 2.0),
        (50, 3, 1.0, 0.5, 1.5),
        (35, 3, 1.5, 1.0, 0.0),
    )

    def run(self, answers, rng, trials):
        max_stable_lr = answers["max_stable_lr"]
        for trial in range(trials):
            n, d, scale, offset, alpha = self.setups[trial % len(self.setups)]
            X, _ = regression_data(rng, n, d, scale=scale, offset=offset)
            what = f"max_stable_lr(X, alpha) avec X de forme {fmt_shape(X.shape)} et `alpha` = {_fr(alpha)}"
            got = _real_number(call(max_stable_lr, X.clone(), alpha, what=what), "Le résultat de `max_stable_lr`")
            eigen = torch.linalg.eigvalsh(loss_hessian(X, alpha))
            expected = float(2 / eigen.max())
            if _same(got, expected, 2e-3):
                continue

            def threshold(X=X, alpha=alpha, **wrong):
                return float(2 / torch.linalg.eigvalsh(loss_hessian(X, alpha, **wrong)).max())

            known = [
                (
                    threshold(bias=False),
                    "Vous oubliez le biais : `b` est aussi un paramètre entraîné. Ajoutez à `X` une colonne de 1 "
                    "(X̃ = [X, 1]) : la hessienne porte sur θ = (w, b).",
                ),
                (
                    threshold(bias_penalty=1.0),
                    "Vous pénalisez aussi le biais : la pénalité α·‖w‖² ne porte que sur les poids, sa hessienne vaut "
                    "0 sur la ligne et la colonne du biais.",
                ),
                (
                    threshold(penalty_scale=0.0),
                    "Vous oubliez la pénalité α·‖w‖² : elle ajoute de la courbure (2α sur chaque poids) et abaisse "
                    "donc le seuil.",
                ),
                (threshold(penalty_scale=0.5), "La dérivée seconde de α·w² est 2α, pas α."),
                (
                    float(2 / eigen.min()),
                    "Vous utilisez λmin : c'est la **plus grande** courbure, λmax, qui limite le taux d'apprentissage "
                    "(la direction la plus raide diverge la première).",
                ),
                (expected / 2, "Vous renvoyez 1/λmax : le seuil de stabilité est 2/λmax."),
                (
                    threshold(data_scale=0.5),
                    "Il manque le facteur 2/n : la hessienne de l'EQM est (2/n)·X̃ᵀX̃, pas X̃ᵀX̃.",
                ),
                (
                    threshold(data_scale=1.0),
                    "Vous utilisez 2·X̃ᵀX̃ sans diviser par n : l'EQM est une moyenne, sa hessienne est (2/n)·X̃ᵀX̃.",
                ),
                (
                    threshold(data_scale=0.5 / n),
                    "Il manque le facteur 2 de l'EQM : la hessienne de (1/n)·‖X̃θ − y‖² est (2/n)·X̃ᵀX̃.",
                ),
                (float(eigen.max()), "Vous renvoyez λmax, la plus grande valeur propre, pas le taux 2/λmax."),
            ]
            for value, message in known:
                if _same(got, value, 2e-3):
                    raise WrongAnswer(message)
            raise WrongAnswer(
                f"`max_stable_lr(X, alpha)` vaut {_fr(got, 5)} au lieu de {_fr(expected, 5)} pour X de forme "
                f"{fmt_shape(X.shape)} et `alpha` = {_fr(alpha)}."
            )
        return "2/λmax de la hessienne de l'EQM pénalisée, biais compris, sur des données aléatoires."


# -- 7. torch.optim.SGD and nn.Linear -------------------------------------------------------------


@register
class OptimizerTraining(Exercise):
    id = "tp2_sgd"
    assignment = ASSIGNMENT
    points = 3
    title = "Le même entraînement avec `nn.Linear` et `torch.optim.SGD`"
    names = ("fit_sgd",)
    hints = (
        "`model = torch.nn.Linear(d, 1)` contient `w` (`model.weight`, forme (1, d)) et `b` (`model.bias`). "
        "L'optimiseur : `torch.optim.SGD(model.parameters(), lr=lr)`, créé une fois avant la boucle.",
        "`model(X)` a la forme (n, 1) : `model(X).squeeze(1)` a la forme (n,) de `y`. Sans cela, `model(X) - y` est "
        "diffusé en une matrice (n, n).",
        "À chaque époque : `optimizer.zero_grad()`, la perte, `loss.backward()`, `optimizer.step()`.",
    )

    def run(self, answers, rng, trials):
        fit_sgd = answers["fit_sgd"]
        setups = ((40, 3, 1.5), (30, 2, 1.0), (50, 4, 2.0))
        for trial in range(trials):
            n, d, scale = setups[trial % len(setups)]
            X, y = regression_data(rng, n, d, scale=scale, offset=0.2)
            lr, n_epochs = round(_stable_lr(X), 4), _epochs_needed(X)
            steps: list[tuple[torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor | None]]]] = []

            def record(optimizer, args, kwargs, steps=steps):
                params = [p for group in optimizer.param_groups for p in group["params"]]
                steps.append(
                    (optimizer, [(p.detach().clone(), None if p.grad is None else p.grad.clone()) for p in params])
                )

            handle = register_optimizer_step_pre_hook(record)
            try:
                out = call(
                    fit_sgd,
                    X.clone(),
                    y.clone(),
                    lr,
                    n_epochs,
                    what=f"fit_sgd(X, y, lr=lr, n_epochs=n_epochs) avec `lr` = {_fr(lr)} et n_epochs = {n_epochs}",
                )
            finally:
                handle.remove()
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise WrongAnswer("`fit_sgd` doit renvoyer le modèle et la liste des pertes : `return model, losses`.")
            model, losses = out
            if not isinstance(model, torch.nn.Linear) or (model.in_features, model.out_features) != (d, 1):
                raise WrongAnswer(
                    f"Le modèle doit être `torch.nn.Linear(d, 1)` avec d = `X.shape[1]` = {d}, pas `{model!r}`."[:300]
                )
            self._check_steps(steps, model, X, y, lr, n_epochs)
            losses = _require_losses(losses, n_epochs, "fit_sgd")
            diverged = _divergence(losses, None, X, lr)
            if diverged:
                raise WrongAnswer(diverged)
            with torch.no_grad():
                got = model(X).reshape(-1)
            w_star, b_star = least_squares(X, y)
            if not close(got, X.double() @ w_star + b_star, rtol=1e-3, atol=1e-3):
                raise WrongAnswer(
                    f"Après {n_epochs} époques, les prédictions du modèle sont loin de celles de la solution des "
                    "moindres carrés (`torch.linalg.lstsq`)."
                )
            if not losses[-1] < losses[0]:
                raise WrongAnswer("La perte n'a pas diminué au cours de l'entraînement.")
        return "`zero_grad` → perte → `backward` → `step` à chaque époque ; le modèle rejoint les moindres carrés."

    @staticmethod
    def _check_steps(steps, model, X, y, lr, n_epochs) -> None:
        if not steps:
            raise WrongAnswer(
                "`optimizer.step()` n'a jamais été appelé : créez `torch.optim.SGD(model.parameters(), lr=lr)` et "
                "appelez `step()` à chaque époque."
            )
        optimizer = steps[0][0]
        if not isinstance(optimizer, torch.optim.SGD):
            raise WrongAnswer(f"Utilisez `torch.optim.SGD` (ici : `{type(optimizer).__name__}`).")
        used_lr = optimizer.param_groups[0]["lr"]
        if abs(used_lr - lr) > 1e-12:
            raise WrongAnswer(f"L'optimiseur a un taux d'apprentissage de {_fr(used_lr, 4)} au lieu de `lr={lr}`.")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if len(params) != 2 or params[0] is not model.weight or params[1] is not model.bias:
            raise WrongAnswer(
                "L'optimiseur doit recevoir les paramètres du modèle renvoyé : `torch.optim.SGD(model.parameters(), "
                "lr=lr)`."
            )
        if len(steps) != n_epochs:
            raise WrongAnswer(
                f"`optimizer.step()` a été appelé {len(steps)} fois pour {n_epochs} époques : une fois par époque."
            )
        accumulated = None
        for k, (_, state) in enumerate(steps[:4]):
            (weight, grad_weight), (bias, _) = state
            if grad_weight is None:
                raise WrongAnswer(
                    f"À l'époque {k + 1}, `model.weight.grad` vaut `None` au moment de `step()` : `zero_grad()` "
                    "efface les gradients, appelez-le **avant** `loss.backward()`, pas entre `backward()` et `step()`."
                )
            expected, _ = _reference_gradients(X, y, weight.reshape(-1), bias.reshape(()))
            expected = expected.reshape(1, -1)
            accumulated = expected if accumulated is None else accumulated + expected
            if close(grad_weight, expected, rtol=1e-3, atol=1e-4):
                continue
            if k > 0 and close(grad_weight, accumulated, rtol=1e-3, atol=1e-4):
                raise WrongAnswer(
                    "Les gradients s'accumulent d'une époque à l'autre : appelez `optimizer.zero_grad()` à chaque "
                    "époque, avant `loss.backward()`."
                )
            broadcast = autograd_gradient(lambda W, bias=bias: (((X @ W.T + bias) - y) ** 2).mean(), weight)
            if close(grad_weight, broadcast, rtol=1e-3, atol=1e-4):
                n = X.shape[0]
                raise WrongAnswer(
                    f"`model(X)` a la forme ({n}, 1) et `y` la forme ({n},) : `model(X) - y` est diffusé en une "
                    f"matrice ({n}, {n}) et la perte mélange tous les exemples entre eux, sans erreur. Utilisez "
                    "`model(X).squeeze(1)`."
                )
            raise WrongAnswer(
                f"À l'époque {k + 1}, `model.weight.grad` n'est pas le gradient de l'EQM : vérifiez la perte de la "
                "boucle (moyenne des carrés de `model(X).squeeze(1) - y`)."
            )
