"""TP1 « Calcul de gradients avec Autograd »: the graded exercises (20 points).

Three points apply a lesson cell as it stands (``tp1_graph``, ``tp1_hand_grad``); the other seventeen ask for
transfer: a path through a graph with a fork, a gradient predicted by hand through a fork and a ``detach``, a
vector-Jacobian product whose ``v`` must be derived, an intermediate gradient, two backward passes through one
graph, a Hessian-vector product, and a bug to find in a training loop drawn per student.

Every reference is computed with autograd at check time on fresh random inputs, so nothing here gives an answer
away: the package ships to students. Checkers follow the contract of ``autograder.observe``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from autograder import observe
from autograder.exercise import Exercise, register
from autograder.exercises.lesson1 import LESSON, SECTION_BACKWARD, SECTION_HIGHER, SECTION_VJP
from autograder.hand_derivation import hand_derivation_required
from autograder.tensor_checks import (
    autograd_gradient,
    close,
    compare_hand_gradient,
    fmt_shape,
    fmt_values,
    require_shape,
    require_tensor,
)
from autograder.typography import french_spacing
from autograder.verdict import NotAttempted, WrongAnswer

ASSIGNMENT = "tp1_gradients"

SECTION_TRACKING = (LESSON, "1. Suivre un tenseur\u00a0: `requires_grad=True`")
SECTION_LEAVES = (LESSON, "Feuilles et nœuds intermédiaires")
SECTION_DETACH = (LESSON, "`detach()` au milieu d'un calcul\u00a0: un «\u00a0stop-gradient\u00a0»")
SECTION_TWICE = (LESSON, "Appeler `backward()` deux fois sur le même graphe")
SECTION_TRAINING = (LESSON, "Un vrai entraînement")
# How the last hint names each section: its title without code spans.
SECTION_NAMES = {
    SECTION_TRACKING[1]: "1. Suivre un tenseur",
    SECTION_BACKWARD[1]: "2. Rétropropagation",
    SECTION_LEAVES[1]: "Feuilles et nœuds intermédiaires",
    SECTION_VJP[1]: "5. Règle de dérivation en chaîne, matrice jacobienne",
    SECTION_DETACH[1]: "6. Arrêter le suivi des gradients (au milieu d'un calcul)",
    SECTION_TWICE[1]: "7. Les gradients s'accumulent (deux rétropropagations dans le même graphe)",
    SECTION_TRAINING[1]: "7. Les gradients s'accumulent (un vrai entraînement)",
    SECTION_HIGHER[1]: "8. Dérivées d'ordre supérieur",
}


def reread(section: tuple[str, str]) -> str:
    """The last hint of a question: the lesson section to reread, named without code (hints share no code
    fragment with a solution)."""
    return f"Relisez dans la leçon 1 ({section[0]}) la section « {SECTION_NAMES[section[1]]} »."


# -- functions given to students (imported in the TP's setup cell) --------------------------------------------------
def two_outputs(x: torch.Tensor) -> torch.Tensor:
    """The function ℝ³ → ℝ² of the vector-Jacobian question (given to students)."""
    return torch.stack([x[0] * x[1] + x[2] ** 2, torch.sin(x[0]) - 3 * x[2]])


def stop_and_fork(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The computation of the prediction question: a ``detach()`` and a variable used twice (given to students)."""
    u = x * a
    s = u.detach()
    y = u * s + torch.exp(x) * x
    return y.sum()


def energy(x: torch.Tensor) -> torch.Tensor:
    """The scalar function of the Hessian-vector question (given to students)."""
    return (x[:-1] ** 2 * x[1:]).sum() + torch.sin(x).sum()


def _randn(rng: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=rng) * scale


def _with_code(failure: WrongAnswer, rules: dict[str, str], notes: dict[str, str] | None = None) -> WrongAnswer:
    """Give a ``WrongAnswer`` raised by ``observe.run`` (a PyTorch error explained) the code of its typical mistake,
    and the sentence of ``notes`` that ties the error to that mistake."""
    for fragment, code in rules.items():
        if fragment in failure.message:
            failure.code = code
            if notes and code in notes:
                failure.message = f"{failure.message} {notes[code]}"
            break
    return failure


# French explanations of PyTorch errors (autograder.pytorch_errors) that name a typical mistake.
SHAPE_MISMATCH = "doit avoir la forme de la **sortie**"
NO_GRAD_FN = "n'a pas de `grad_fn`"
LEAF_IN_PLACE = "Modification en place d'une feuille"
GRAD_IS_NONE = "`.grad` vaut `None`"
SECOND_BACKWARD = "Vous rétropropagez deux fois dans le même graphe"
SCALAR_ONLY = "n'est possible que sur un scalaire"


# ---------------------------------------------------------------------------------------------------------------
# Q1 — build a graph (apply) and Q2 — its path through the fork (transfer)
# ---------------------------------------------------------------------------------------------------------------
def _graph_function(t: torch.Tensor) -> torch.Tensor:
    return (torch.exp(2 * t) - t).mean()


@register
class BuildGraph(Exercise):
    id = "tp1_graph"
    assignment = ASSIGNMENT
    points = 1
    title = "Construire un graphe de calcul"
    names = ("build_graph",)
    section = SECTION_TRACKING
    mistakes = {
        "graphe_coupe": "calcul fait hors de PyTorch : le graphe de calcul est coupé",
        "graphe_partiellement_coupe": "une partie du calcul ne remonte pas jusqu'à `x`",
        "somme_au_lieu_de_moyenne": "somme au lieu de la moyenne",
        "pas_un_scalaire": "résultat non scalaire",
    }
    hints = (
        "Une valeur calculée hors de PyTorch (module math, nombre Python, NumPy) n'a pas de nœud dans le graphe : "
        "restez sur des tenseurs du début à la fin.",
        "Le résultat doit être un scalaire, et la formule fait une moyenne, pas une somme.",
        reread(SECTION_TRACKING),
    )

    def run(self, answers, rng, trials):
        build_graph = answers["build_graph"]
        for trial in range(trials):
            n = 2 + trial % 4
            x = _randn(rng, n).requires_grad_(True)
            f = observe.call(build_graph, x, what=f"build_graph(x) avec x de forme {fmt_shape(x.shape)}")
            f = require_tensor(f, "Le résultat de `build_graph(x)`")
            if f.dim() != 0:
                raise WrongAnswer(
                    f"`f` a la forme {fmt_shape(f.shape)} : c'est un vecteur, or f(x) est une moyenne, un scalaire.",
                    code="pas_un_scalaire",
                )
            if observe.grad_fn_name(f) is None:
                raise WrongAnswer(
                    "`f` n'a pas de `grad_fn` : le graphe de calcul est coupé. Utilisez uniquement des opérations "
                    "PyTorch sur `x` (pas `math.exp`, `.item()`, `.detach()` ni NumPy), hors de `torch.no_grad()`.",
                    code="graphe_coupe",
                )
            expected = _graph_function(x.detach())
            if not close(f, expected):
                if close(f, expected * n):
                    raise WrongAnswer(
                        f"`f` vaut {n} fois la valeur attendue : une somme au lieu d'une moyenne.",
                        code="somme_au_lieu_de_moyenne",
                    )
                raise WrongAnswer(
                    f"`f` vaut {float(f):.5g} au lieu de {float(expected):.5g} pour x = {fmt_values(x)} : "
                    "vérifiez la formule f(x) = moyenne(exp(2x) − x)."
                )
            (got_grad,) = observe.input_grads(f)
            if got_grad is None or not close(got_grad, autograd_gradient(_graph_function, x)):
                raise WrongAnswer(
                    "La valeur de `f` est juste, mais une partie du calcul ne remonte pas jusqu'à `x` "
                    "(`.detach()`, `.data` ou constante recopiée) : le gradient de `f` par rapport à `x` est faux.",
                    code="graphe_partiellement_coupe",
                )
        return "`f` a la bonne valeur et le bon gradient : tout le calcul est dans le graphe."


def _follow(graph: observe.Graph, path: list[str]) -> str | None:
    """Why ``path`` is not a path of ``graph`` from its root to a leaf argument (None when it is one)."""
    if not graph.names:
        return "pas de graphe"
    if path[0] != graph.names[0]:
        return "racine"
    frontier = {0}
    for name in path[1:]:
        nxt = {c for node in frontier for c in graph.children[node] if graph.names[c] == name}
        if not nxt:
            return f"enfant:{name}:{graph.names[min(frontier)]}"
        frontier = nxt
    if not any(graph.names[n] == "AccumulateGrad" and graph.leaf_arg[n] == 0 for n in frontier):
        return "feuille"
    return None


@register
class GraphPath(Exercise):
    id = "tp1_path"
    assignment = ASSIGNMENT
    points = 2
    title = "Un chemin dans le graphe, à travers la fourche"
    names = ("path", "build_graph")
    section = SECTION_TRACKING
    mistakes = {
        "pas_une_liste": "`path` n'est pas une liste de noms de nœuds",
        "racine_fausse": "le chemin ne part pas du nœud de `f`",
        "enfant_inexistant": "un nœud du chemin n'est pas un enfant du précédent",
        "pas_jusqu_a_la_feuille": "le chemin ne s'arrête pas sur la feuille `x`",
        "chemin_raccourci": "le chemin direct au lieu de celui qui passe par l'exponentielle",
    }
    hints = (
        "Le premier nom est celui du nœud de la sortie ; chaque nom suivant doit figurer parmi les enfants du "
        "précédent, que l'on lit sur le nœud lui-même.",
        "x sert deux fois dans f : la feuille est donc atteinte par deux chemins, et un seul traverse l'exponentielle.",
        reread(SECTION_TRACKING),
    )

    def run(self, answers, rng, trials):
        path = answers["path"]
        if path is None or path is Ellipsis:
            raise NotAttempted("`path` n'est pas rempli.")
        if not isinstance(path, (list, tuple)) or len(path) < 2 or not all(isinstance(p, str) for p in path):
            raise WrongAnswer(
                "`path` doit être une liste de noms de nœuds (des chaînes de caractères), de la sortie à la feuille.",
                code="pas_une_liste",
            )
        path = list(path)
        x = _randn(rng, 3).requires_grad_(True)
        reference = observe.graph_of(_graph_function(x), (x,))
        # The path is judged on the graph the checker builds itself: a graph reported by the student's process is
        # only their word (it could be forged). Theirs only explains a path that follows a differently written f.
        own_graph = None
        try:
            f = observe.call(answers["build_graph"], x, what="build_graph(x)")
            if isinstance(f, torch.Tensor) and f.dim() == 0 and close(f, _graph_function(x.detach())):
                own_graph = observe.graph(f)
        except (WrongAnswer, NotImplementedError):
            pass
        problems = [_follow(reference, path)]
        if problems[0] is not None and own_graph is not None and own_graph.names != reference.names:
            if _follow(own_graph, path) is None:
                raise WrongAnswer(
                    "Votre chemin suit le graphe de votre `f`, mais ce `f` n'est pas écrit comme celui de l'énoncé : "
                    "il ne donne pas les mêmes nœuds. Écrivez `f` avec les opérations de la formule, dans son ordre, "
                    "puis explorez de nouveau son graphe.",
                    code="enfant_inexistant",
                )
        if None in problems:
            if "ExpBackward0" not in path:
                raise WrongAnswer(
                    "`path` rejoint bien `x`, mais par le chemin direct (le « − x ») : la consigne demande le chemin "
                    "qui passe par l'exponentielle.",
                    code="chemin_raccourci",
                )
            return "votre chemin descend de la sortie jusqu'à la feuille `x` en traversant l'exponentielle."
        problem = problems[-1]
        if problem == "racine":
            raise WrongAnswer(
                f"`path` doit commencer par le nœud de `f` lui-même (« {reference.names[0]} »), et non « {path[0]} ».",
                code="racine_fausse",
            )
        if problem.startswith("enfant:"):
            _, name, parent = problem.split(":")
            raise WrongAnswer(
                f"« {name} » n'est pas un enfant de « {parent} » : affichez l'attribut `next_functions` du nœud "
                f"« {parent} » pour voir ses enfants.",
                code="enfant_inexistant",
            )
        raise WrongAnswer(
            f"`path` doit se terminer sur la feuille `x`, dont le nœud s'appelle `AccumulateGrad` : votre chemin "
            f"s'arrête sur « {path[-1]} ».",
            code="pas_jusqu_a_la_feuille",
        )


# ---------------------------------------------------------------------------------------------------------------
# Q3 — the lesson's gradient, by hand, for any n (apply)
# ---------------------------------------------------------------------------------------------------------------
def _hand_derived(func: Any, x: torch.Tensor, *args: Any, what: str, inputs: str = "`x`") -> Any:
    """Call a function that must derive a gradient by hand; any backward pass inside it is refused."""
    report = observe.run(func, x.clone(), *args, what=what)
    if report.backward_passes:
        raise WrongAnswer(hand_derivation_required(inputs), code="autograd_utilise")
    return report.result


@register
class HandGradient(Exercise):
    id = "tp1_hand_grad"
    assignment = ASSIGNMENT
    points = 2
    title = "Le gradient de la leçon, pour un nombre quelconque d'éléments"
    names = ("grad_z",)
    section = SECTION_BACKWARD
    mistakes = {
        "division_par_3": "la moyenne divisée par 3 en dur",
        "oubli_moyenne": "la division par le nombre d'éléments oubliée",
        "facteur_faux": "un facteur constant faux",
        "termes_au_lieu_de_derivee": "les termes de `z` au lieu de leur dérivée",
        "autograd_utilise": "autograd utilisé au lieu d'une dérivée à la main",
    }
    hints = (
        "Dérivez un seul terme de la moyenne par rapport à un seul xᵢ : les autres termes ne dépendent pas de xᵢ.",
        "Le nombre d'éléments de x change d'un appel à l'autre : votre formule doit le lire sur x, pas le supposer.",
        reread(SECTION_BACKWARD),
    )

    def run(self, answers, rng, trials):
        grad_z = answers["grad_z"]
        sizes = (3, 5, 2, 4, 7, 6)
        for trial in range(trials):
            n = sizes[trial % len(sizes)]
            x = _randn(rng, n, scale=2.0)
            what = f"grad_z(x) avec x de forme {fmt_shape(x.shape)}"
            got = _hand_derived(grad_z, x, what=what)
            expected = autograd_gradient(lambda t: ((t + 2) * (t + 2) * 2).mean(), x)
            compare_hand_gradient(
                got,
                expected,
                x,
                "`grad_z(x)`",
                mistakes=[
                    (
                        lambda t: 4 * (t + 2),
                        "oubli_moyenne",
                        "Il manque la division par n : `z` est une **moyenne** sur les n éléments de `x`, chaque "
                        "dérivée partielle est donc divisée par n.",
                    ),
                    (
                        lambda t: 2 * (t + 2) ** 2 / t.numel(),
                        "termes_au_lieu_de_derivee",
                        "Vous renvoyez les termes de `z` (2·(x+2)²/n), pas leur dérivée.",
                    ),
                ],
                factors={
                    0.5: ("facteur_faux", "Il manque un facteur 2 : la dérivée de y² est 2·y."),
                    2.0: ("facteur_faux", "Votre gradient est deux fois trop grand."),
                    -1.0: ("facteur_faux", "Le signe est inversé : z croît quand x + 2 s'éloigne de 0."),
                    n / 3: (
                        "division_par_3",
                        f"Vous divisez par 3, or ici `x` a {n} éléments : la moyenne de la leçon portait sur 3 "
                        "éléments, la vôtre sur tous ceux de `x`.",
                    ),
                },
                factor_code="facteur_faux",
            )
        return f"votre formule coïncide avec `x.grad` calculé par autograd sur {trials} entrées de tailles variées."


# ---------------------------------------------------------------------------------------------------------------
# Q4 — predict x.grad through a detach and a fork (transfer)
# ---------------------------------------------------------------------------------------------------------------
@register
class PredictThroughDetach(Exercise):
    id = "tp1_predict"
    assignment = ASSIGNMENT
    points = 3
    title = "Prédire `x.grad` à travers un `detach()` et une fourche"
    names = ("predicted_grad",)
    section = SECTION_DETACH
    mistakes = {
        "detach_ignore": "le tenseur détaché dérivé comme s'il était suivi",
        "detach_coupe_tout": "tout le terme qui contient le tenseur détaché supprimé",
        "regle_du_produit": "un des deux chemins du produit exp(x)·x oublié",
        "valeur_au_lieu_de_gradient": "la valeur du calcul au lieu de son gradient",
        "autograd_utilise": "autograd utilisé au lieu d'une prédiction à la main",
    }
    hints = (
        "Écrivez y élément par élément : deux termes, et un seul d'entre eux fait intervenir le tenseur détaché.",
        "Pour autograd, un tenseur détaché garde sa valeur mais ne transmet aucun gradient : c'est une constante "
        "dans la dérivation, même si sa valeur dépend de x.",
        "Dans le second terme, x apparaît deux fois : les contributions des deux chemins s'additionnent.",
        reread(SECTION_DETACH),
    )

    def run(self, answers, rng, trials):
        predicted_grad = answers["predicted_grad"]
        for trial in range(trials):
            n = 3 + trial % 4
            x, a = _randn(rng, n), _randn(rng, n, scale=1.5)
            what = f"predicted_grad(x, a) avec x et a de forme {fmt_shape(x.shape)}"
            got = _hand_derived(predicted_grad, x, a.clone(), what=what, inputs="`x` et `a`")
            expected = autograd_gradient(lambda t, a=a: stop_and_fork(t, a), x)
            compare_hand_gradient(
                got,
                expected,
                x,
                "`predicted_grad(x, a)`",
                mistakes=[
                    (
                        lambda t, a=a: 2 * a * a * t + torch.exp(t) * (1 + t),
                        "detach_ignore",
                        "Vous dérivez u·s comme u², avec deux chemins vers `x` : or `s = u.detach()` est une "
                        "constante pour autograd. Seul le facteur `u` transmet un gradient.",
                    ),
                    (
                        lambda t: torch.exp(t) * (1 + t),
                        "detach_coupe_tout",
                        "Vous avez supprimé tout le terme u·s : `detach()` ne coupe que le chemin qui passe par `s`, "
                        "le facteur `u` reste relié à `x`.",
                    ),
                    (
                        lambda t, a=a: a * a * t + torch.exp(t),
                        "regle_du_produit",
                        "Dans exp(x)·x, il manque le chemin du facteur x : la dérivée d'un produit a deux termes.",
                    ),
                    (
                        lambda t, a=a: a * a * t + torch.exp(t) * t,
                        "regle_du_produit",
                        "Dans exp(x)·x, il manque le chemin qui passe par l'exponentielle : la dérivée d'un produit "
                        "a deux termes.",
                    ),
                    (
                        lambda t, a=a: (t * a) ** 2 + torch.exp(t) * t,
                        "valeur_au_lieu_de_gradient",
                        "Vous renvoyez les termes de y, pas le gradient de leur somme par rapport à `x`.",
                    ),
                ],
            )
        return "votre prédiction coïncide avec `x.grad` : `detach()` ne laisse passer que le chemin direct."


# ---------------------------------------------------------------------------------------------------------------
# Q5 — backward(v) with a v to derive (transfer)
# ---------------------------------------------------------------------------------------------------------------
@register
class VectorJacobianProduct(Exercise):
    id = "tp1_vjp"
    assignment = ASSIGNMENT
    points = 3
    title = "`backward(v)` : trouver le bon `v`"
    names = ("vjp_grad",)
    section = SECTION_VJP
    mistakes = {
        "v_forme_entree": "`v` de la forme de l'entrée au lieu de celle de la sortie",
        "v_sans_derivee": "`v` égal aux coefficients de la perte, sans dériver z²",
        "v_faux": "`v` qui n'est pas la dérivée de la perte par rapport à `z`",
        "perte_scalaire_au_lieu_de_v": "perte scalaire rétropropagée au lieu de `z.backward(v)`",
        "gradients_accumules": "plusieurs rétropropagations accumulées dans `x.grad`",
        "v_absent": "`backward()` sans `v` sur une sortie qui n'est pas un scalaire",
    }
    hints = (
        "v contient la dérivée de la perte par rapport à chaque élément de la sortie : dérivez L par rapport à zⱼ, "
        "à la main, en traitant les autres zₖ comme des constantes.",
        "Dans cette perte, chaque zⱼ apparaît au carré : sa dérivée dépend donc encore de la valeur de zⱼ.",
        "Le vecteur que reçoit la rétropropagation a la forme de la sortie, pas celle de l'entrée.",
        reread(SECTION_VJP),
    )

    def run(self, answers, rng, trials):
        vjp_grad = answers["vjp_grad"]
        for _ in range(trials):
            x = _randn(rng, 3).requires_grad_(True)
            c = _randn(rng, 2)
            try:
                report = observe.run(vjp_grad, x, c.clone(), what="vjp_grad(x, c)")
            except WrongAnswer as failure:
                raise _with_code(failure, {SHAPE_MISMATCH: "v_forme_entree", SCALAR_ONLY: "v_absent"}) from None
            z = two_outputs(x.detach())
            jacobian = torch.autograd.functional.jacobian(two_outputs, x.detach())
            right_v = 2 * c * z
            expected = right_v @ jacobian
            vectors = [g for g in report.backward_gradients if g is not None]
            got = require_tensor(report.result, "`vjp_grad(x, c)`")
            require_shape(got, x.shape, "`vjp_grad(x, c)`", "vᵀ·J a la forme de l'entrée `x`.")
            if not vectors:
                raise WrongAnswer(
                    "Aucun `backward` n'a reçu de vecteur `v` : vous avez rétropropagé une perte scalaire (ou utilisé "
                    "`torch.autograd.grad`). La consigne demande d'appeler `z.backward(v)` avec le `v` que vous avez "
                    "dérivé, sans former la perte vous-même.",
                    code="perte_scalaire_au_lieu_de_v",
                )
            v = vectors[0]
            if isinstance(v, (tuple, list)):
                v = v[0]
            if isinstance(v, torch.Tensor) and v.shape == z.shape and not close(v, right_v):
                if close(v, c):
                    raise WrongAnswer(
                        "Votre `v` vaut `c` : c'est la dérivée de Σ cⱼ·zⱼ, pas de Σ cⱼ·zⱼ². Dérivez zⱼ² par "
                        "rapport à zⱼ.",
                        code="v_sans_derivee",
                    )
                raise WrongAnswer(
                    f"Votre `v` vaut {fmt_values(v)}, or ∂L/∂z vaut {fmt_values(right_v)} ici : refaites la "
                    "dérivée de L par rapport à chaque zⱼ.",
                    code="v_faux",
                )
            if not close(got, expected):
                if close(got, 2 * expected) or len(report.backward_gradients) > 1:
                    raise WrongAnswer(
                        "`x.grad` contient la somme de plusieurs rétropropagations : les gradients s'accumulent. "
                        "Une seule rétropropagation suffit.",
                        code="gradients_accumules",
                    )
                raise WrongAnswer(
                    f"Vous renvoyez {fmt_values(got)} au lieu de ∂L/∂x = {fmt_values(expected)}.", code="v_faux"
                )
        return "`z.backward(v)` avec v = ∂L/∂z donne bien ∂L/∂x, comparé à la matrice jacobienne explicite."


# ---------------------------------------------------------------------------------------------------------------
# Q6 — the gradient of an intermediate node (transfer: leaves vs non-leaves)
# ---------------------------------------------------------------------------------------------------------------
@register
class IntermediateGradient(Exercise):
    id = "tp1_leaf"
    assignment = ASSIGNMENT
    points = 2
    title = "Le gradient d'un nœud intermédiaire"
    names = ("node_and_leaf_grads",)
    section = SECTION_LEAVES
    mistakes = {
        "oubli_retain_grad": "gradient d'un nœud intermédiaire non demandé avant la rétropropagation",
        "gradients_inverses": "les deux gradients inversés",
        "gradients_accumules": "plusieurs rétropropagations accumulées",
        "pas_un_couple": "pas un couple de deux tenseurs",
    }
    hints = (
        "Après la rétropropagation, seules les feuilles gardent leur gradient : pour un nœud intermédiaire, il "
        "faut le demander, et avant la rétropropagation.",
        "Si le gradient de h vaut None, PyTorch l'a signalé par un avertissement : lisez-le jusqu'au bout.",
        reread(SECTION_LEAVES),
    )

    def run(self, answers, rng, trials):
        func = answers["node_and_leaf_grads"]
        for trial in range(trials):
            n = 3 + trial % 3
            x = _randn(rng, n).requires_grad_(True)
            result = observe.call(func, x, what=f"node_and_leaf_grads(x) avec x de forme {fmt_shape(x.shape)}")
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise WrongAnswer(
                    "`node_and_leaf_grads` doit renvoyer un couple : (gradient par rapport à `h`, gradient par "
                    "rapport à `x`).",
                    code="pas_un_couple",
                )
            h_grad, x_grad = result
            h = torch.tanh(x.detach())
            expected_h = 2 * h / n
            expected_x = expected_h * (1 - h**2)
            if h_grad is None:
                raise WrongAnswer(
                    "Le gradient par rapport à `h` vaut `None` : `h` n'est pas une feuille, `backward()` ne remplit "
                    "pas son `.grad` à moins de le demander **avant** la rétropropagation.",
                    code="oubli_retain_grad",
                )
            h_grad = require_tensor(h_grad, "Le gradient par rapport à `h`")
            x_grad = require_tensor(x_grad, "Le gradient par rapport à `x`")
            if close(h_grad, expected_x) and close(x_grad, expected_h):
                raise WrongAnswer("Les deux gradients sont inversés.", code="gradients_inverses")
            for got, expected, name in ((h_grad, expected_h, "`h`"), (x_grad, expected_x, "`x`")):
                if close(got, expected):
                    continue
                if close(got, 2 * expected):
                    raise WrongAnswer(
                        f"Le gradient par rapport à {name} vaut le double du bon : deux rétropropagations se sont "
                        "accumulées.",
                        code="gradients_accumules",
                    )
                raise WrongAnswer(
                    f"Le gradient par rapport à {name} vaut {fmt_values(got)} au lieu de {fmt_values(expected)}."
                )
        return "le gradient du nœud intermédiaire `h` et celui de la feuille `x` sont justes."


# ---------------------------------------------------------------------------------------------------------------
# Q7 — two losses, one forward pass: retain_graph and accumulation (transfer)
# ---------------------------------------------------------------------------------------------------------------
def _two_losses(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.sin(t) * t
    return h.sum(), (h**2).mean()


@register
class TwoBackwardPasses(Exercise):
    id = "tp1_retain_graph"
    assignment = ASSIGNMENT
    points = 2
    title = "Deux pertes, une seule propagation avant"
    names = ("two_losses_grads",)
    section = SECTION_TWICE
    mistakes = {
        "oubli_retain_graph": "graphe libéré après la première rétropropagation",
        "oubli_remise_a_zero": "le second gradient ajouté au premier",
        "sans_copie": "le premier gradient enregistré sans copie, puis modifié",
        "pas_un_couple": "pas un couple de deux tenseurs",
    }
    hints = (
        "La seconde rétropropagation repasse par les mêmes nœuds : les valeurs qu'ils avaient sauvegardées "
        "doivent encore exister à ce moment-là.",
        "Entre les deux rétropropagations, pensez à l'endroit où le second gradient va s'ajouter, et à ce que "
        "devient un tenseur que vous modifiez en place alors que vous l'avez déjà mis de côté.",
        reread(SECTION_TWICE),
    )

    def run(self, answers, rng, trials):
        func = answers["two_losses_grads"]
        for trial in range(trials):
            n = 3 + trial % 3
            x = _randn(rng, n).requires_grad_(True)
            try:
                result = observe.call(func, x, what=f"two_losses_grads(x) avec x de forme {fmt_shape(x.shape)}")
            except WrongAnswer as failure:
                raise _with_code(failure, {SECOND_BACKWARD: "oubli_retain_graph"}) from None
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise WrongAnswer(
                    "`two_losses_grads` doit renvoyer un couple : (gradient de `loss_a`, gradient de `loss_b`).",
                    code="pas_un_couple",
                )
            grad_a = require_tensor(result[0], "Le gradient de `loss_a`")
            grad_b = require_tensor(result[1], "Le gradient de `loss_b`")
            expected_a = autograd_gradient(lambda t: _two_losses(t)[0], x)
            expected_b = autograd_gradient(lambda t: _two_losses(t)[1], x)
            if close(grad_a, expected_a) and close(grad_b, expected_b):
                continue
            if close(grad_b, expected_a + expected_b):
                if close(grad_a, grad_b):
                    raise WrongAnswer(
                        "Les deux gradients renvoyés sont le même tenseur `x.grad`, qui contient à la fin la somme des "
                        "deux : mettez de côté une **copie** du premier, puis remettez `x.grad` à zéro.",
                        code="sans_copie",
                    )
                raise WrongAnswer(
                    "Le second gradient contient aussi le premier : `backward()` **ajoute** au contenu de `x.grad`. "
                    "Remettez-le à zéro entre les deux rétropropagations.",
                    code="oubli_remise_a_zero",
                )
            if close(grad_a, grad_b):
                raise WrongAnswer(
                    "Les deux gradients renvoyés sont égaux : le premier a été modifié après coup. Mettez de côté "
                    "une **copie** du premier gradient.",
                    code="sans_copie",
                )
            raise WrongAnswer(
                f"Gradients incorrects : attendu {fmt_values(expected_a)} puis {fmt_values(expected_b)}, obtenu "
                f"{fmt_values(grad_a)} puis {fmt_values(grad_b)}."
            )
        return "deux rétropropagations dans le même graphe, sans mélanger leurs gradients."


# ---------------------------------------------------------------------------------------------------------------
# Q8 — a Hessian-vector product with create_graph (transfer)
# ---------------------------------------------------------------------------------------------------------------
@register
class HessianVectorProduct(Exercise):
    id = "tp1_hvp"
    assignment = ASSIGNMENT
    points = 2
    title = "Un produit hessienne-vecteur"
    names = ("hvp",)
    section = SECTION_HIGHER
    mistakes = {
        "oubli_create_graph": "gradient calculé sans graphe, impossible à dériver",
        "gradient_au_lieu_de_hvp": "le gradient au lieu du produit hessienne-vecteur",
        "v_oublie": "le vecteur `v` oublié",
        "accumulation_dans_grad": "gradient et produit hessienne-vecteur additionnés dans `x.grad`",
        "hessienne_complete": "la matrice hessienne complète au lieu de son produit par `v`",
    }
    hints = (
        "H·v est le gradient, par rapport à x, du produit scalaire entre le gradient de la fonction et v (v fixé).",
        "Pour dériver un gradient, son calcul doit lui-même avoir été enregistré dans un graphe : c'est une option "
        "du premier calcul de gradient.",
        reread(SECTION_HIGHER),
    )

    def run(self, answers, rng, trials):
        hvp = answers["hvp"]
        for trial in range(trials):
            n = 3 + trial % 3
            x = _randn(rng, n).requires_grad_(True)
            v = _randn(rng, n)
            what = f"hvp(x, v) avec x et v de forme {fmt_shape(x.shape)}"
            try:
                got = observe.call(hvp, x, v.clone(), what=what)
            except WrongAnswer as failure:
                if NO_GRAD_FN in failure.message:
                    raise WrongAnswer(
                        "Le gradient obtenu au premier appel n'a pas de `grad_fn` : son calcul n'a pas été enregistré, "
                        "on ne peut donc pas le dériver une seconde fois. Une option du premier appel le permet.",
                        code="oubli_create_graph",
                    ) from None
                raise
            if isinstance(got, (tuple, list)) and len(got) == 1:
                got = got[0]
            got = require_tensor(got, f"`{what.split(' avec')[0]}`")
            point = x.detach()
            hessian = torch.autograd.functional.hessian(energy, point)
            expected = hessian @ v
            gradient = autograd_gradient(energy, point)
            if got.shape == hessian.shape:
                raise WrongAnswer(
                    f"Vous renvoyez une matrice {fmt_shape(got.shape)} : H·v est un vecteur, de la forme de `x`. "
                    "Inutile de construire la hessienne : dérivez un produit scalaire.",
                    code="hessienne_complete",
                )
            require_shape(got, x.shape, "`hvp(x, v)`", "H·v a la forme de `x`.")
            if close(got, expected):
                continue
            if close(got, gradient):
                raise WrongAnswer(
                    "Vous renvoyez le gradient de la fonction, pas sa dérivée dans la direction `v` : dérivez encore "
                    "une fois.",
                    code="gradient_au_lieu_de_hvp",
                )
            if close(got, gradient + expected):
                raise WrongAnswer(
                    "Vous renvoyez gradient + H·v : la seconde rétropropagation s'est **ajoutée** à la première dans "
                    "`x.grad`. Récupérez les dérivées sans passer par `x.grad`.",
                    code="accumulation_dans_grad",
                )
            if close(got, hessian @ torch.ones(n)):
                raise WrongAnswer(
                    "Vous renvoyez H·(1, …, 1) : le vecteur `v` n'intervient pas dans votre calcul.", code="v_oublie"
                )
            raise WrongAnswer(
                f"Vous renvoyez {fmt_values(got)} au lieu de H·v = {fmt_values(expected)} (H calculée par "
                "`torch.autograd.functional.hessian`)."
            )
        return "H·v juste, sans construire la matrice hessienne."


# ---------------------------------------------------------------------------------------------------------------
# Q9 — « trouvez le bug »: a training loop with one bug drawn per student (transfer)
# ---------------------------------------------------------------------------------------------------------------
# The key is the student's own identifier, written in the notebook (IDENTIFIANT): it is in the submitted copy, so
# the grading re-derives the same variant, whoever runs it. The catalogue below ships to students; it shows the
# buggy loops only (the checker's reference is a plain gradient descent computed at check time).
def _mse(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ((X @ w - y) ** 2).mean()


BUGS: tuple[dict[str, Any], ...] = (
    {
        "code": "oubli_zero_grad",
        "loss": _mse,
        "source": """\
def train(X, y, w, lr, n_steps):
    optimizer = torch.optim.SGD([w], lr=lr)
    losses = []
    for step in range(n_steps):
        loss = ((X @ w - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
""",
    },
    {
        "code": "zero_grad_mal_place",
        "loss": lambda X, y, w: _mse(X, y, w) + 0.1 * (w**2).sum(),
        "source": """\
def train(X, y, w, lr, n_steps):
    optimizer = torch.optim.SGD([w], lr=lr)
    losses = []
    for step in range(n_steps):
        loss = ((X @ w - y) ** 2).mean() + 0.1 * (w ** 2).sum()
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        losses.append(loss.item())
    return losses
""",
    },
    {
        "code": "optimiseur_sur_copie",
        "loss": lambda X, y, w: 0.5 * _mse(X, y, w),
        "source": """\
def train(X, y, w, lr, n_steps):
    optimizer = torch.optim.SGD([w.detach().clone().requires_grad_(True)], lr=lr)
    losses = []
    for step in range(n_steps):
        optimizer.zero_grad()
        loss = 0.5 * ((X @ w - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
""",
    },
    {
        "code": "mise_a_jour_hors_no_grad",
        "loss": lambda X, y, w: _mse(X, y, w) + 0.01 * (w**4).sum(),
        "source": """\
def train(X, y, w, lr, n_steps):
    losses = []
    for step in range(n_steps):
        loss = ((X @ w - y) ** 2).mean() + 0.01 * (w ** 4).sum()
        loss.backward()
        w -= lr * w.grad
        w.grad.zero_()
        losses.append(loss.item())
    return losses
""",
    },
    {
        "code": "reaffectation_w",
        "loss": lambda X, y, w: torch.log(1 + (X @ w - y) ** 2).mean(),
        "source": """\
def train(X, y, w, lr, n_steps):
    losses = []
    for step in range(n_steps):
        loss = torch.log(1 + (X @ w - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w = w - lr * w.grad
        w.grad.zero_()
        losses.append(loss.item())
    return losses
""",
    },
    {
        "code": "v_forme_entree",
        "loss": lambda X, y, w: ((X @ w - y).abs() ** 3).mean(),
        "source": """\
def train(X, y, w, lr, n_steps):
    optimizer = torch.optim.SGD([w], lr=lr)
    losses = []
    for step in range(n_steps):
        optimizer.zero_grad()
        errors = (X @ w - y).abs() ** 3
        errors.backward(torch.ones_like(w))
        optimizer.step()
        losses.append(errors.mean().item())
    return losses
""",
    },
)

PLACEHOLDER_KEYS = ("", "votre identifiant")


def bug_variant(key: str) -> int:
    """The index in ``BUGS`` of the bug drawn for a student, from their identifier (case and spaces ignored)."""
    digest = hashlib.sha256(key.strip().lower().encode("utf-8")).hexdigest()
    return int(digest, 16) % len(BUGS)


def _valid_key(key: Any) -> bool:
    return isinstance(key, str) and key.strip().lower() not in PLACEHOLDER_KEYS


def montrer_le_bug(identifiant: Any) -> None:
    """Print the buggy training function drawn for this identifier (the « trouvez le bug » question)."""
    if not _valid_key(identifiant):
        print(
            "⬜ Écrivez d'abord votre identifiant (numéro d'étudiant ou nom d'utilisateur) dans `IDENTIFIANT`, "
            "entre guillemets, exécutez cette cellule-là, puis celle-ci."
        )
        return
    bug = BUGS[bug_variant(identifiant)]
    print(french_spacing(f"Votre version de `train` (identifiant « {identifiant.strip()} ») :\n"))
    print(bug["source"])


def _descend(loss, X, y, w0, lr, n_steps, *, accumulate=False, scale=1.0):
    """Plain gradient descent on ``loss``: the final weights and the losses before each step."""
    w = w0.detach().clone()
    total = torch.zeros_like(w)
    losses = []
    for _ in range(n_steps):
        leaf = w.clone().requires_grad_(True)
        value = loss(X, y, leaf)
        value.backward()
        total = total + leaf.grad if accumulate else leaf.grad
        losses.append(float(value))
        w = w - lr * scale * total
    return w, losses


def _sum_loss(loss):
    """The loss whose gradient ``errors.backward(ones)`` computes: the sum of the terms instead of their mean."""

    def summed(X, y, w):
        return loss(X, y, w) * X.shape[0]

    return summed


@register
class FindTheBug(Exercise):
    id = "tp1_bug"
    assignment = ASSIGNMENT
    points = 3
    title = "Trouvez le bug"
    names = ("IDENTIFIANT", "train")
    section = SECTION_TRAINING
    mistakes = {
        "oubli_zero_grad": "oubli de remettre les gradients à zéro à chaque pas",
        "zero_grad_mal_place": "remise à zéro entre `backward()` et `step()`",
        "optimiseur_sur_copie": "optimiseur construit sur une copie des poids",
        "mise_a_jour_hors_no_grad": "mise à jour en place d'une feuille hors de `torch.no_grad()`",
        "reaffectation_w": "`w = w - …` : un nouveau tenseur au lieu d'une mise à jour en place",
        "v_forme_entree": "`backward(v)` avec un `v` de la forme de l'entrée",
        "gradient_de_la_somme": "gradient de la somme au lieu de celui de la moyenne",
        "perte_changee": "fonction de perte modifiée",
        "pertes_tenseurs": "pertes enregistrées comme tenseurs",
        "pertes_mal_enregistrees": "pertes enregistrées au mauvais moment",
    }
    hints = (
        "Exécutez votre version sur un petit exemple et affichez les pertes et les poids à chaque pas : "
        "qu'attendiez-vous, qu'obtenez-vous ?",
        "Reprenez l'ordre d'un pas d'entraînement de la leçon et comparez-le, ligne à ligne, à votre version : "
        "chaque ligne doit agir sur le bon tenseur, au bon moment, et ne changer que ce qui est prévu.",
        "Ne réécrivez pas tout : la perte de votre version est la bonne, seule une ligne (ou deux) est en cause.",
        reread(SECTION_TRAINING),
    )

    def run(self, answers, rng, trials):
        key, train = answers["IDENTIFIANT"], answers["train"]
        if not _valid_key(key):
            raise NotAttempted("`IDENTIFIANT` n'est pas rempli : écrivez votre identifiant entre guillemets.")
        bug = BUGS[bug_variant(key)]
        loss = bug["loss"]
        for trial in range(trials):
            m, d = 8, 3
            X, y = _randn(rng, m, d), _randn(rng, m)
            w0 = _randn(rng, d, scale=0.5)
            lr, n_steps = (0.05, 0.1, 0.02)[trial % 3], 4 + trial % 3
            w = w0.clone().requires_grad_(True)
            what = f"train(X, y, w, lr={lr}, n_steps={n_steps})"
            try:
                report = observe.run(train, X, y, w, lr, n_steps, what=what)
            except WrongAnswer as failure:
                raise _with_code(
                    failure,
                    {
                        LEAF_IN_PLACE: "mise_a_jour_hors_no_grad",
                        SHAPE_MISMATCH: "v_forme_entree",
                        GRAD_IS_NONE: "reaffectation_w",
                        NO_GRAD_FN: "reaffectation_w",
                        "non-leaf": "optimiseur_sur_copie",
                    },
                    {
                        "reaffectation_w": "Dans une boucle d'entraînement, c'est le signe que `w` a été remplacé par "
                        "un nouveau tenseur (`w = w - …`) au lieu d'être modifié en place.",
                        "optimiseur_sur_copie": "L'optimiseur doit recevoir le `w` reçu en argument, pas une copie.",
                    },
                ) from None
            w_after, losses = report.args[2], report.result
            self._check_losses_type(losses, n_steps)
            w_right, losses_right = _descend(loss, X, y, w0, lr, n_steps)
            if close(w_after, w_right):
                if not w_after.requires_grad or not observe.is_leaf(w_after):
                    raise WrongAnswer(
                        "`w` a les bonnes valeurs mais n'est plus une feuille qui suit les gradients : la mise à "
                        "jour doit le modifier en place, hors du graphe.",
                        code="reaffectation_w",
                    )
                if not all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(losses, losses_right, strict=True)):
                    raise WrongAnswer(
                        "`w` est bien entraîné, mais les pertes renvoyées ne sont pas celles calculées avant "
                        "chaque pas.",
                        code="pertes_mal_enregistrees",
                    )
                continue
            self._diagnose(report, w_after, w0, loss, X, y, lr, n_steps)
        return f"votre `train` corrigé entraîne `w` comme une descente de gradient exacte ({trials} essais)."

    @staticmethod
    def _check_losses_type(losses, n_steps):
        if not isinstance(losses, (list, tuple)):
            raise WrongAnswer(f"`train` doit renvoyer la liste des pertes, pas `{type(losses).__name__}`.")
        if any(isinstance(v, torch.Tensor) for v in losses):
            raise WrongAnswer(
                "Les pertes renvoyées sont des tenseurs : gardez des nombres Python (un tenseur garde tout son graphe "
                "de calcul en mémoire).",
                code="pertes_tenseurs",
            )
        if len(losses) != n_steps or not all(isinstance(v, (int, float)) for v in losses):
            raise WrongAnswer(f"`train` doit renvoyer {n_steps} pertes (des nombres), une par pas.")

    @staticmethod
    def _diagnose(report, w_after, w0, loss, X, y, lr, n_steps):
        if close(w_after, w0):
            if report.optimizer_steps and w_after.grad is None:
                raise WrongAnswer(
                    "`w` n'a pas bougé : au moment de `step()`, les gradients venaient d'être effacés. La remise à "
                    "zéro se place avant `backward()`, jamais entre `backward()` et `step()`.",
                    code="zero_grad_mal_place",
                )
            if report.optimizer_steps:
                raise WrongAnswer(
                    "`w` n'a pas bougé alors que l'optimiseur a fait ses pas : il met à jour un autre tenseur que le "
                    "`w` reçu en argument (une copie).",
                    code="optimiseur_sur_copie",
                )
            raise WrongAnswer(
                "`w` n'a pas bougé : la mise à jour crée un nouveau tenseur au lieu de modifier `w` en place.",
                code="reaffectation_w",
            )
        if close(w_after, _descend(loss, X, y, w0, lr, n_steps, accumulate=True)[0]):
            raise WrongAnswer(
                "Les gradients s'accumulent d'un pas à l'autre : `backward()` **ajoute** au contenu de `w.grad`, il "
                "faut le remettre à zéro à chaque pas.",
                code="oubli_zero_grad",
            )
        if close(w_after, _descend(_sum_loss(loss), X, y, w0, lr, n_steps)[0]):
            raise WrongAnswer(
                "`w` suit le gradient de la **somme** des erreurs, pas de leur moyenne : le `v` passé à `backward` "
                "doit être ∂(perte)/∂(erreurs), pas un vecteur de uns.",
                code="gradient_de_la_somme",
            )
        for other in BUGS:
            if other["loss"] is not loss and close(w_after, _descend(other["loss"], X, y, w0, lr, n_steps)[0]):
                raise WrongAnswer(
                    "Votre `train` minimise une autre fonction de perte que celle de votre version : corrigez le bug "
                    "sans changer la perte.",
                    code="perte_changee",
                )
        raise WrongAnswer(
            f"Après {n_steps} pas, `w` vaut {fmt_values(w_after)} au lieu de "
            f"{fmt_values(_descend(loss, X, y, w0, lr, n_steps)[0])}."
        )
