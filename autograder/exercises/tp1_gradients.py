"""TP1 « Calcul de gradients avec Autograd »: the graded exercises (20 points).

Every reference is computed with autograd at check time on fresh random inputs, so nothing
here gives an answer away: the package ships to students.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from autograder.autograd_guard import forbid_autograd
from autograder.exercise import Exercise, call, register
from autograder.tensor_checks import (
    autograd_gradient,
    close,
    compare_hand_gradient,
    fmt_shape,
    fmt_values,
    require_shape,
    require_tensor,
    scale_factor,
)
from autograder.verdict import NotAttempted, WrongAnswer

ASSIGNMENT = "tp1_gradients"


def two_outputs(x: torch.Tensor) -> torch.Tensor:
    """The function ℝ³ → ℝ² of the vector-Jacobian question (given to students)."""
    return torch.stack([x[0] * x[1] + x[2] ** 2, torch.sin(x[0]) - 3 * x[2]])


def _randn(rng: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=rng) * scale


def _randint(rng: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=rng))


@contextmanager
def _recording_backward_gradients() -> Iterator[list[Any]]:
    """Record the ``gradient`` argument of every ``backward`` call made inside the block."""
    calls: list[Any] = []
    original = torch.autograd.backward

    def recording(tensors, grad_tensors=None, *args, **kwargs):
        calls.append(grad_tensors)
        return original(tensors, grad_tensors, *args, **kwargs)

    torch.autograd.backward = recording
    try:
        yield calls
    finally:
        torch.autograd.backward = original


@register
class BuildGraph(Exercise):
    id = "tp1_graph"
    assignment = ASSIGNMENT
    points = 3
    title = "Construire un graphe de calcul et lire ses `grad_fn`"
    names = ("build_graph", "path")
    hints = (
        "N'utilisez que des opérations PyTorch sur `x` (`torch.exp`, `*`, `-`, `.mean()`) : `math.exp` ou `.item()` "
        "sortent du graphe.",
        "Pour `path`, partez de `f.grad_fn`, puis suivez `noeud.next_functions` (une liste de couples "
        "`(noeud_enfant, indice)`) jusqu'à la feuille `x`, dont le nœud s'appelle `AccumulateGrad`.",
        "`type(noeud).__name__` donne le nom d'un nœud, par exemple `'MeanBackward0'`.",
    )

    def run(self, answers, rng, trials):
        build_graph, path = answers["build_graph"], answers["path"]
        first_graph = None
        for trial in range(trials):
            n = 2 + trial % 4
            x = _randn(rng, n).requires_grad_(True)
            f = call(build_graph, x, what=f"build_graph(x) avec x de forme {fmt_shape(x.shape)}")
            f = require_tensor(f, "Le résultat de `build_graph(x)`")
            if f.dim() != 0:
                raise WrongAnswer(
                    f"`f` a la forme {fmt_shape(f.shape)} : c'est un vecteur. Terminez par `.mean()` pour obtenir "
                    "le scalaire demandé."
                )
            if f.grad_fn is None:
                raise WrongAnswer(
                    "`f` n'a pas de `grad_fn` : le graphe de calcul est coupé. Utilisez uniquement des opérations "
                    "PyTorch sur `x` (pas `math.exp`, `.item()`, `.detach()` ni NumPy), hors de `torch.no_grad()`."
                )
            expected = (torch.exp(2 * x.detach()) - x.detach()).mean()
            if not close(f, expected):
                k = scale_factor(f.detach().reshape(1), expected.reshape(1))
                if k is not None and abs(k - n) < 1e-3:
                    raise WrongAnswer(f"`f` vaut {n} fois la valeur attendue : `.sum()` au lieu de `.mean()`.")
                raise WrongAnswer(
                    f"`f` vaut {f.item():.5g} au lieu de {expected.item():.5g} pour x = {fmt_values(x)} : "
                    "vérifiez la formule f(x) = moyenne(exp(2x) − x)."
                )
            got_grad = torch.autograd.grad(f, x, allow_unused=True)[0]
            ref_grad = autograd_gradient(lambda t: (torch.exp(2 * t) - t).mean(), x)
            if got_grad is None or not close(got_grad, ref_grad):
                raise WrongAnswer(
                    "La valeur de `f` est juste, mais une partie du calcul ne remonte pas jusqu'à `x` "
                    "(`.detach()`, `.data` ou constante recopiée) : le gradient de `f` par rapport à `x` est faux."
                )
            first_graph = first_graph or (f, x)
        self._check_path(path, *first_graph)
        return "`f` est bien construit (valeur et gradient justes) et `path` suit le graphe de `f` jusqu'à `x`."

    @staticmethod
    def _check_path(path: Any, f: torch.Tensor, x: torch.Tensor) -> None:
        if path is None or path is Ellipsis:
            raise NotAttempted("`path` n'est pas rempli.")
        if not isinstance(path, (list, tuple)) or not all(isinstance(p, str) for p in path) or len(path) < 2:
            raise WrongAnswer("`path` doit être une liste de noms de nœuds, par exemple `['MeanBackward0', ...]`.")
        root = type(f.grad_fn).__name__
        if path[0] != root:
            raise WrongAnswer(
                f"`path` doit commencer par le nœud de `f`, c'est-à-dire `type(f.grad_fn).__name__` "
                f"(ici « {root} »), et non « {path[0]} »."
            )
        node = f.grad_fn
        for name in path[1:]:
            children = [child for child, _ in node.next_functions if child is not None]
            matches = [child for child in children if type(child).__name__ == name]
            if not matches:
                raise WrongAnswer(
                    f"« {name} » n'est pas un enfant de « {type(node).__name__} » : affichez "
                    f"`{type(node).__name__}.next_functions` (via `.next_functions` du nœud) pour voir ses enfants."
                )
            node = matches[-1] if name == "AccumulateGrad" else matches[0]
        if type(node).__name__ != "AccumulateGrad" or node.variable is not x:
            raise WrongAnswer(
                "`path` doit se terminer sur la feuille `x`, dont le nœud s'appelle `AccumulateGrad` : "
                f"votre chemin s'arrête sur « {path[-1]} »."
            )
        if "ExpBackward0" not in path:
            raise WrongAnswer(
                "`path` rejoint bien `x`, mais par le raccourci `− x` : la consigne demande le chemin qui passe "
                "par l'exponentielle (« ExpBackward0 »)."
            )


@register
class HandGradient(Exercise):
    id = "tp1_hand_grad"
    assignment = ASSIGNMENT
    points = 3
    title = "Le gradient du cours, dérivé à la main"
    names = ("grad_z",)
    hints = (
        "Posez y = x + 2 ; z = moyenne(2·y²) = (1/n)·Σ 2·yᵢ². Dérivez par rapport à un seul xᵢ.",
        "La dérivée de 2·y² par rapport à y vaut 4·y, et la moyenne divise par n = `x.numel()` : "
        "n'écrivez pas 3 en dur, `x` n'a pas toujours 3 éléments.",
    )

    def run(self, answers, rng, trials):
        grad_z = answers["grad_z"]
        sizes = (3, 5, 2, 4, 7, 6)
        for trial in range(trials):
            n = sizes[trial % len(sizes)]
            x = _randn(rng, n, scale=2.0)
            with forbid_autograd():
                got = call(grad_z, x.clone(), what=f"grad_z(x) avec x de forme {fmt_shape(x.shape)}")
            expected = autograd_gradient(lambda t: ((t + 2) * (t + 2) * 2).mean(), x)
            compare_hand_gradient(
                got,
                expected,
                x,
                "`grad_z(x)`",
                mistakes=[
                    (
                        lambda t: 4 * (t + 2),
                        "Il manque la division par n : `z` est une **moyenne** sur les n "
                        "éléments de `x`, chaque dérivée partielle est donc divisée par n = `x.numel()`.",
                    ),
                    (
                        lambda t: 2 * (t + 2) ** 2 / t.numel(),
                        "Vous renvoyez les termes de `z` (2·(x+2)²/n), pas leur "
                        "dérivée : dérivez 2·y² par rapport à x.",
                    ),
                ],
                factors={
                    0.5: "Il manque un facteur 2 : la dérivée de y² est 2·y, donc celle de 2·y² est 4·y.",
                    2.0: "Votre gradient est deux fois trop grand : la dérivée de 2·y² est 4·y, pas 8·y.",
                    -1.0: "Le signe est inversé : z croît quand x + 2 s'éloigne de 0.",
                    n / 3: f"Vous divisez par 3, or ici `x` a {n} éléments : la moyenne divise par "
                    "`x.numel()`, pas par une constante.",
                },
            )
        return f"votre formule coïncide avec `x.grad` calculé par autograd sur {trials} entrées aléatoires."


@register
class ChainRule(Exercise):
    id = "tp1_chain_rule"
    assignment = ASSIGNMENT
    points = 3
    title = "Règle de dérivation en chaîne, à la main"
    names = ("grad_g",)
    hints = (
        "g(x) = Σ sin(xᵢ²). Chaque terme ne dépend que de son xᵢ : ∂g/∂xᵢ = (sin(u))' · (u)' avec u = xᵢ².",
        "La dérivée de sin est cos, et celle de u = x² est 2x : le résultat est un produit de deux facteurs.",
    )

    def run(self, answers, rng, trials):
        grad_g = answers["grad_g"]
        for trial in range(trials):
            x = _randn(rng, 3 + trial % 4, scale=1.5)
            with forbid_autograd():
                got = call(grad_g, x.clone(), what=f"grad_g(x) avec x de forme {fmt_shape(x.shape)}")
            expected = autograd_gradient(lambda t: torch.sin(t**2).sum(), x)
            compare_hand_gradient(
                got,
                expected,
                x,
                "`grad_g(x)`",
                mistakes=[
                    (
                        lambda t: torch.cos(t**2),
                        "Vous avez dérivé sin mais oublié la dérivée de la fonction "
                        "intérieure u = x² : la règle de la chaîne multiplie par u' = 2x.",
                    ),
                    (
                        lambda t: 2 * t * torch.cos(t),
                        "Le cosinus doit garder l'argument x² : (sin(u))' = cos(u)·u', "
                        "avec u = x², donc cos(x²), pas cos(x).",
                    ),
                    (
                        lambda t: -2 * t * torch.sin(t**2),
                        "La dérivée de sin est cos (c'est celle de cos qui vaut −sin).",
                    ),
                    (lambda t: torch.sin(t**2), "Vous renvoyez les termes de g, pas leur dérivée."),
                ],
                factors={
                    0.5: "Il manque un facteur 2 : la dérivée de x² est 2x.",
                    -1.0: "Le signe est inversé : la dérivée de sin est +cos.",
                },
            )
        return f"2x·cos(x²) : votre formule coïncide avec autograd sur {trials} entrées aléatoires."


@register
class VectorJacobianProduct(Exercise):
    id = "tp1_vjp"
    assignment = ASSIGNMENT
    points = 3
    title = "`backward(v)` : le produit vecteur-jacobienne"
    names = ("weighted_grad",)
    hints = (
        "`z = two_outputs(x)` a 2 éléments : `z.backward()` sans argument échoue, il faut `z.backward(v)`.",
        "`v` représente ∂L/∂z : il a la forme de la **sortie** `z` (2 éléments), pas celle de l'entrée `x`. "
        "Ici, v = `weights`.",
        "Après `z.backward(v)`, le résultat vᵀ·J est dans `x.grad` : renvoyez-le.",
    )

    def run(self, answers, rng, trials):
        weighted_grad = answers["weighted_grad"]
        for _ in range(trials):
            x = _randn(rng, 3).requires_grad_(True)
            weights = _randn(rng, 2)
            with _recording_backward_gradients() as calls:
                got = call(weighted_grad, x, weights.clone(), what="weighted_grad(x, weights)")
            jacobian = torch.autograd.functional.jacobian(two_outputs, x.detach())
            expected = weights @ jacobian
            got = require_tensor(got, "`weighted_grad(x, weights)`")
            require_shape(got, x.shape, "`weighted_grad(x, weights)`", "vᵀ·J a la forme de l'entrée `x`.")
            if not close(got, expected):
                if close(got, torch.ones(2) @ jacobian):
                    raise WrongAnswer("Vous avez pris v = (1, 1) : c'est `weights` qu'il faut passer à `backward`.")
                if close(got, 2 * expected):
                    raise WrongAnswer(
                        "`x.grad` contient deux fois le bon résultat : `backward` a été appelé deux fois et les "
                        "gradients s'accumulent dans `x.grad`."
                    )
                raise WrongAnswer(
                    f"Vous renvoyez {fmt_values(got)} au lieu de vᵀ·J = {fmt_values(expected)} "
                    "(J, la matrice jacobienne de `two_outputs` en x, calculée par "
                    "`torch.autograd.functional.jacobian`)."
                )
            if not any(g is not None for g in calls):
                raise WrongAnswer(
                    "Le résultat est juste, mais la consigne demande d'appeler `z.backward(v)` directement, sans "
                    "former vous-même la somme pondérée : c'est ce produit vecteur-jacobienne qu'on s'exerce à écrire."
                )
        return "`z.backward(weights)` donne bien vᵀ·J, comparé à la matrice jacobienne explicite."


@register
class Accumulation(Exercise):
    id = "tp1_accumulation"
    assignment = ASSIGNMENT
    points = 2
    title = "Accumulation des gradients et `zero_()`"
    names = ("grads_per_epoch",)
    hints = (
        "Affichez les gradients successifs : ils grandissent à chaque époque. Pourquoi ?",
        "`backward()` **ajoute** le nouveau gradient à `w.grad`. Remettez-le à zéro après l'avoir enregistré : "
        "`w.grad.zero_()`.",
    )

    def run(self, answers, rng, trials):
        grads_per_epoch = answers["grads_per_epoch"]
        for trial in range(trials):
            n, epochs = 4, 3 + trial % 3
            w = _randn(rng, n).requires_grad_(True)
            x = _randn(rng, n)
            history = call(grads_per_epoch, w, x, epochs, what=f"grads_per_epoch(w, x, {epochs})")
            if not isinstance(history, (list, tuple)):
                raise WrongAnswer(
                    f"`grads_per_epoch` doit renvoyer la liste des gradients, pas `{type(history).__name__}`."
                )
            if len(history) != epochs:
                raise WrongAnswer(f"{len(history)} gradients renvoyés pour {epochs} époques : un par époque.")
            history = [require_tensor(h, f"Le gradient de l'époque {k + 1}") for k, h in enumerate(history)]
            expected = autograd_gradient(lambda t, x=x: ((t * x) ** 2).sum(), w)
            if all(close(h, expected) for h in history):
                continue
            if len({id(h) for h in history}) < len(history) or len({h.data_ptr() for h in history}) < len(history):
                raise WrongAnswer(
                    "Plusieurs éléments de la liste sont le même tenseur `w.grad` : `zero_()` le modifie en place. "
                    "Enregistrez une copie, `w.grad.clone()`."
                )
            if all(close(h, (k + 1) * expected) for k, h in enumerate(history)):
                raise WrongAnswer(
                    "Les gradients valent 1, 2, 3… fois le bon gradient : `backward()` les **accumule** dans "
                    "`w.grad`. Remettez-le à zéro à chaque époque avec `w.grad.zero_()`."
                )
            raise WrongAnswer(
                f"Gradients incorrects : attendu {fmt_values(expected)} à chaque époque, obtenu "
                + ", ".join(fmt_values(h) for h in history)
                + "."
            )
        return "le gradient est le même à chaque époque : il est bien remis à zéro."


@register
class NoGradUpdate(Exercise):
    id = "tp1_no_grad"
    assignment = ASSIGNMENT
    points = 3
    title = "Un pas de descente de gradient sous `torch.no_grad()`"
    names = ("descent_step",)
    hints = (
        "La mise à jour w ← w − lr·∇w ne doit pas entrer dans le graphe de calcul : faites-la dans "
        "`with torch.no_grad():`.",
        "Modifiez `w` **en place** (`w -= ...`) : `w = w - ...` crée un nouveau tenseur et laisse le paramètre "
        "d'origine inchangé. Puis remettez le gradient à zéro et renvoyez `w`.",
    )

    def run(self, answers, rng, trials):
        descent_step = answers["descent_step"]
        for trial in range(trials):
            n = 3 + trial % 3
            w = _randn(rng, n).requires_grad_(True)
            target = _randn(rng, n)
            lr = (0.05, 0.1, 0.3)[trial % 3]
            ((w - target) ** 2).sum().backward()
            before, grad, version = w.detach().clone(), w.grad.detach().clone(), w._version
            out = call(descent_step, w, lr, what=f"descent_step(w, lr={lr})")
            if out is None:
                raise WrongAnswer("`descent_step` doit renvoyer `w` (ajoutez `return w`).")
            out = require_tensor(out, "Le résultat de `descent_step`")
            if out is not w:
                if out.grad_fn is not None:
                    raise WrongAnswer(
                        f"Le poids renvoyé a un `grad_fn` (`{type(out.grad_fn).__name__}`) : la mise à jour a été "
                        "enregistrée dans le graphe et le poids n'est plus une feuille. Faites-la dans "
                        "`with torch.no_grad():`, en place (`w -= lr * w.grad`)."
                    )
                raise WrongAnswer(
                    "Vous renvoyez un nouveau tenseur : `w = w - ...` ne modifie pas le paramètre d'origine (et le "
                    "nouveau ne suit plus les gradients). Modifiez `w` en place : `w -= lr * w.grad`."
                )
            if not w.requires_grad:
                raise WrongAnswer(
                    "`w` ne suit plus les gradients : ne changez pas `requires_grad` pendant la mise à jour."
                )
            expected = before - lr * grad
            if not close(w, expected):
                if close(w, before):
                    raise WrongAnswer("`w` n'a pas changé : appliquez la mise à jour w ← w − lr·w.grad.")
                if close(w, before + lr * grad):
                    raise WrongAnswer("Mauvais signe : il faut **descendre** le gradient, w ← w − lr·w.grad.")
                k = scale_factor(w.detach() - before, -grad)
                if k is not None:
                    raise WrongAnswer(
                        f"Le pas effectif est {k:.4g} au lieu de `lr` = {lr} : utilisez le paramètre `lr` de la "
                        "fonction, sans constante en dur."
                    )
                raise WrongAnswer(
                    f"`w` vaut {fmt_values(w)} au lieu de {fmt_values(expected)} après le pas de descente."
                )
            if w._version == version:
                raise WrongAnswer(
                    "Les valeurs sont justes, mais vous avez modifié `w.data`, ce qui contourne le suivi des "
                    "versions d'autograd et peut donner des gradients faux sans erreur. Utilisez "
                    "`with torch.no_grad(): w -= lr * w.grad`."
                )
            if w.grad is not None and bool(w.grad.abs().sum() > 0):
                raise WrongAnswer(
                    "La mise à jour est juste, mais `w.grad` n'a pas été remis à zéro : au prochain `backward()` "
                    "les gradients s'additionneraient. Ajoutez `w.grad.zero_()`."
                )
        return "mise à jour en place, hors du graphe : `w` reste une feuille sans `grad_fn`, gradient remis à zéro."


@register
class SGDLoop(Exercise):
    id = "tp1_sgd"
    assignment = ASSIGNMENT
    points = 3
    title = "Une boucle d'entraînement avec `torch.optim.SGD`"
    names = ("train_sgd",)
    hints = (
        "Créez l'optimiseur une seule fois, avant la boucle : `optimizer = torch.optim.SGD([w], lr=lr)`.",
        "À chaque époque : `optimizer.zero_grad()`, `loss = loss_fn(w)`, `loss.backward()`, `optimizer.step()`.",
        "Enregistrez la perte avec `loss.item()` : un nombre, pas le tenseur "
        "(qui garderait tout le graphe en mémoire).",
    )

    def run(self, answers, rng, trials):
        train_sgd = answers["train_sgd"]
        for trial in range(trials):
            m, n = 6, 3
            a, b = _randn(rng, m, n), _randn(rng, m)
            hessian_max = float(torch.linalg.eigvalsh(2 / m * a.T @ a).max())
            lr = round(0.5 / hessian_max, 4)
            epochs = 15 + 5 * (trial % 2)

            def loss_fn(w, a=a, b=b):
                return ((a @ w - b) ** 2).mean()

            w = _randn(rng, n).requires_grad_(True)
            start = w.detach().clone()
            steps: list[tuple[torch.optim.Optimizer, torch.Tensor, torch.Tensor | None]] = []

            def record(optimizer, args, kwargs, w=w, steps=steps):
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        if p is w:
                            grad = None if p.grad is None else p.grad.detach().clone()
                            steps.append((optimizer, p.detach().clone(), grad))

            handle = register_optimizer_step_pre_hook(record)
            try:
                losses = call(
                    train_sgd, w, loss_fn, lr, epochs, what=f"train_sgd(w, loss_fn, lr={lr}, n_epochs={epochs})"
                )
            finally:
                handle.remove()
            self._check_steps(steps, w, start, lr, epochs, loss_fn)
            self._check_losses(losses, steps, epochs, loss_fn)
        return "`zero_grad` → propagation avant → `backward` → `step` à chaque époque ; la perte diminue."

    @staticmethod
    def _check_steps(steps, w, start, lr, epochs, loss_fn) -> None:
        if not steps:
            if close(w, start):
                raise WrongAnswer(
                    "`w` n'a pas changé : créez `torch.optim.SGD([w], lr=lr)` et appelez `optimizer.step()` "
                    "à chaque époque."
                )
            raise WrongAnswer("`w` a changé, mais pas par un optimiseur : utilisez `torch.optim.SGD` et `step()`.")
        optimizer = steps[0][0]
        if not isinstance(optimizer, torch.optim.SGD):
            raise WrongAnswer(f"Utilisez `torch.optim.SGD` (ici : `{type(optimizer).__name__}`).")
        used_lr = optimizer.param_groups[0]["lr"]
        if abs(used_lr - lr) > 1e-12:
            raise WrongAnswer(f"L'optimiseur a un taux d'apprentissage de {used_lr} au lieu de `lr` = {lr}.")
        if len(steps) != epochs:
            raise WrongAnswer(
                f"`optimizer.step()` a été appelé {len(steps)} fois pour {epochs} époques : une fois par époque."
            )
        accumulated = torch.zeros_like(start)
        for k, (_, w_k, grad_k) in enumerate(steps):
            expected = autograd_gradient(loss_fn, w_k)
            accumulated = accumulated + expected
            if grad_k is None:
                raise WrongAnswer(
                    f"À l'époque {k + 1}, `w.grad` vaut `None` au moment de `step()` : appelez `loss.backward()` "
                    "avant `optimizer.step()` (et `zero_grad()` avant `backward()`)."
                )
            if not close(grad_k, expected):
                if k > 0 and close(grad_k, accumulated):
                    raise WrongAnswer(
                        "Les gradients s'accumulent d'une époque à l'autre : appelez `optimizer.zero_grad()` "
                        "à chaque époque, avant `loss.backward()`."
                    )
                raise WrongAnswer(
                    f"À l'époque {k + 1}, `w.grad` ne correspond pas au gradient de `loss_fn` en `w` : calculez "
                    "la perte avec `loss_fn(w)` à chaque époque, puis `loss.backward()`."
                )

    @staticmethod
    def _check_losses(losses, steps, epochs, loss_fn) -> None:
        if not isinstance(losses, (list, tuple)):
            raise WrongAnswer(f"`train_sgd` doit renvoyer la liste des pertes, pas `{type(losses).__name__}`.")
        if len(losses) != epochs:
            raise WrongAnswer(f"{len(losses)} pertes renvoyées pour {epochs} époques : une par époque.")
        for k, (loss, (_, w_k, _)) in enumerate(zip(losses, steps, strict=False)):
            if isinstance(loss, torch.Tensor):
                raise WrongAnswer(
                    "Enregistrez les pertes avec `loss.item()` : garder le tenseur `loss` garde aussi tout son graphe "
                    "de calcul en mémoire, époque après époque."
                )
            if not isinstance(loss, (int, float)):
                raise WrongAnswer(f"Chaque perte doit être un nombre, pas `{type(loss).__name__}`.")
            expected = float(loss_fn(w_k))
            if abs(loss - expected) > 1e-4 * max(1.0, abs(expected)):
                raise WrongAnswer(
                    f"La perte enregistrée à l'époque {k + 1} ({loss:.5g}) n'est pas celle des poids de cette "
                    f"époque ({expected:.5g}) : enregistrez `loss.item()` juste après l'avoir calculée."
                )
        if not losses[-1] < losses[0]:
            raise WrongAnswer("La perte n'a pas diminué au cours de l'entraînement.")
