"""TP3 « La rétropropagation »: the graded exercises (20 points), all on transfer.

- a hand backward pass on a graph the lesson does not work (intermediate gradients, then the leaves);
- the order in which PyTorch's engine runs the nodes of a graph with a fork, replayed by the checker itself;
- a new operation (division) for the mini autograd engine `Valeur` given in the TP: its local derivatives, then the
  accumulation (``+=``) at forks, checked on random expressions against torch and against the engine itself;
- a custom ``torch.autograd.Function`` with two inputs, and a buggy one (a forgotten fork) to fix.

Every reference is computed at check time (autograd, float64, fresh random inputs); the few wrong formulas below
only recognise typical mistakes to name them. Checkers follow the contract of ``autograder.observe``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from autograder import observe
from autograder.exercise import Exercise, register
from autograder.hand_derivation import hand_derivation_required
from autograder.scalar_programs import (
    gradients_by_variable,
    program,
    random_fork,
    random_tree,
    random_values,
    run_on_engine,
    text,
    torch_gradients,
    uses,
    variables,
)
from autograder.tensor_checks import close, fmt_shape, fmt_values, require_tensor
from autograder.verdict import WrongAnswer

ASSIGNMENT = "tp3_retropropagation"
LESSON = "notebooks/03_retropropagation.ipynb"
SECTION_BY_HAND = "2. Un exemple à la main, nœud par nœud"
SECTION_PATTERNS = "Quatre motifs à reconnaître"
SECTION_REPLAY = "3. Rejouer la vraie rétropropagation de PyTorch"
SECTION_ENGINE = "4. Écrire son propre moteur de rétropropagation"
SECTION_ENGINE_BUGS = "Les bogues classiques d'un moteur"
SECTION_FUNCTION = "6. Une fonction sur mesure : `torch.autograd.Function`"


def reread(section: str) -> str:
    """The last hint of a question: the lesson section to reread."""
    return f"Relisez la section « {section} » de la leçon 3 (`{LESSON}`)."


def _normal(rng: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=rng, dtype=torch.float64)


def _near(got: float, expected: float) -> bool:
    return math.isfinite(got) and abs(got - expected) <= 1e-6 + 1e-4 * abs(expected)


def _numbers(value: Any, count: int, what: str, names: str) -> list[float]:
    """``count`` numbers returned as a tuple or list (Python numbers or one-element tensors)."""
    if not isinstance(value, (tuple, list)) or len(value) != count:
        raise WrongAnswer(f"{what} doit renvoyer {count} nombres, dans l'ordre {names}, par exemple `return {names}`.")
    numbers = []
    for item in value:
        if isinstance(item, torch.Tensor) and item.numel() == 1:
            item = float(item.detach())
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise WrongAnswer(f"{what} doit renvoyer des nombres, pas un objet de type `{type(item).__name__}`.")
        numbers.append(float(item))
    return numbers


# -- Questions 1 and 2: a hand backward pass on a new graph ------------------------------------------------------


def hand_graph(x: float, y: float, z: float) -> dict[str, float]:
    """Forward values and autograd's gradients of the graph of questions 1 and 2 (given in the statement)."""
    leaves = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in zip("xyz", (x, y, z), strict=True)
    }
    a = leaves["x"] * leaves["y"]
    b = a + leaves["z"]
    c = torch.tanh(b)
    loss = c * leaves["x"]
    for t in (a, b, c):
        t.retain_grad()
    loss.backward()
    found = {f"d{k}": float(t.grad) for k, t in {"a": a, "b": b, "c": c, **leaves}.items()}
    return {**found, "a": float(a), "b": float(b), "c": float(c)}


def _hand_inputs(rng: torch.Generator) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in _normal(rng, 3) * 1.2)
    return x, y, z


@register
class HandIntermediates(Exercise):
    id = "tp3_main_intermediaires"
    assignment = ASSIGNMENT
    points = 3
    title = "Rétropropagation à la main : les gradients intermédiaires"
    names = ("retro_intermediaires",)
    section = (LESSON, SECTION_BY_HAND)
    mistakes = {
        "autograd_utilise": "autograd appelé au lieu d'une dérivation à la main",
        "facteur_non_echange": "gradient d'un facteur pris égal à lui-même (la multiplication échange)",
        "oubli_gradient_amont": "dérivée locale sans le gradient amont",
        "derivee_tanh_fausse": "dérivée locale de `tanh` fausse",
        "addition_ne_recopie_pas": "addition qui ne transmet pas le gradient amont tel quel",
    }
    hints = (
        "Remontez le graphe depuis `L`, un nœud à la fois : le gradient d'un nœud est le gradient reçu de son "
        "utilisateur (l'amont) multiplié par la dérivée locale de l'opération qui relie les deux.",
        "Une multiplication envoie à chaque facteur le gradient amont multiplié par **l'autre** facteur ; une "
        "addition le transmet tel quel à chacune de ses entrées.",
        "La dérivée locale de tanh s'écrit simplement avec la valeur de sortie du nœud, déjà calculée pendant la "
        "propagation avant.",
        reread(SECTION_BY_HAND),
    )

    def run(self, answers, rng, trials):
        function = answers["retro_intermediaires"]
        for _ in range(trials):
            x, y, z = _hand_inputs(rng)
            report = observe.run(function, x, y, z, what=f"retro_intermediaires({x:.3g}, {y:.3g}, {z:.3g})")
            if report.backward_passes:
                raise WrongAnswer(hand_derivation_required("`x`, `y`, `z`", "autograd"), code="autograd_utilise")
            dc, db, da = _numbers(report.result, 3, "`retro_intermediaires`", "dL_dc, dL_db, dL_da")
            ref = hand_graph(x, y, z)
            where = f"pour x = {x:.4g}, y = {y:.4g}, z = {z:.4g}"
            # Each gradient is judged from the student's own upstream value: one mistake is named once.
            if not _near(dc, ref["dc"]):
                if _near(dc, ref["c"]):
                    raise WrongAnswer(
                        f"∂L/∂c est faux {where} : vous avez pris c lui-même. L = c·x est une multiplication, qui "
                        "**échange** : le gradient envoyé à un facteur contient l'autre facteur.",
                        code="facteur_non_echange",
                    )
                raise WrongAnswer(
                    f"∂L/∂c vaut {dc:.4g} au lieu de {ref['dc']:.4g} {where} : partez de ∂L/∂L = 1 et de L = c·x.",
                )
            local_tanh = 1 - ref["c"] ** 2
            if not _near(db, dc * local_tanh):
                if _near(db, local_tanh):
                    raise WrongAnswer(
                        f"∂L/∂b est faux {where} : vous donnez la dérivée locale de tanh seule. Le gradient de b est "
                        "le gradient **amont** ∂L/∂c multiplié par cette dérivée locale.",
                        code="oubli_gradient_amont",
                    )
                raise WrongAnswer(
                    f"∂L/∂b vaut {db:.4g} {where}, ce qui ne correspond pas à ∂L/∂c (votre valeur) multiplié par la "
                    "dérivée de tanh en b : revoyez cette dérivée locale (elle s'écrit avec c = tanh(b)).",
                    code="derivee_tanh_fausse",
                )
            if not _near(da, db):
                raise WrongAnswer(
                    f"∂L/∂a vaut {da:.4g} alors que ∂L/∂b vaut {db:.4g} {where} : b = a + z est une addition, "
                    "dont la dérivée locale par rapport à chaque entrée vaut 1. Elle transmet (distribue) le gradient "
                    "amont tel quel, sans le partager ni le multiplier.",
                    code="addition_ne_recopie_pas",
                )
        return f"∂L/∂c, ∂L/∂b et ∂L/∂a coïncident avec autograd (`retain_grad()`) sur {trials} entrées aléatoires."


@register
class HandLeaves(Exercise):
    id = "tp3_main_feuilles"
    assignment = ASSIGNMENT
    points = 3
    title = "Rétropropagation à la main : les gradients des feuilles"
    names = ("retro_feuilles",)
    section = (LESSON, SECTION_PATTERNS)
    mistakes = {
        "autograd_utilise": "autograd appelé au lieu d'une dérivation à la main",
        "addition_ne_recopie_pas": "addition qui ne transmet pas le gradient amont tel quel",
        "facteur_non_echange": "gradient d'un facteur pris égal à lui-même (la multiplication échange)",
        "embranchement_oublie": "une seule des deux branches d'un embranchement",
        "embranchement_multiplie": "contributions d'un embranchement multipliées au lieu d'être additionnées",
    }
    hints = (
        "Cherchez, pour chaque feuille, **tous** les nœuds qui l'utilisent : combien de flèches partent de x dans "
        "le graphe ?",
        "Le long d'une flèche, la contribution est le gradient du nœud utilisateur multiplié par la dérivée "
        "locale ; quand plusieurs flèches partent d'une même valeur, que fait-on de leurs contributions ?",
        reread(SECTION_PATTERNS),
    )

    def run(self, answers, rng, trials):
        function = answers["retro_feuilles"]
        for _ in range(trials):
            x, y, z = _hand_inputs(rng)
            ref = hand_graph(x, y, z)
            upstream = (ref["dc"], ref["db"], ref["da"])
            report = observe.run(
                function, x, y, z, *upstream, what=f"retro_feuilles({x:.3g}, {y:.3g}, {z:.3g}, dL_dc, dL_db, dL_da)"
            )
            if report.backward_passes:
                raise WrongAnswer(hand_derivation_required("`x`, `y`, `z`", "autograd"), code="autograd_utilise")
            dx, dy, dz = _numbers(report.result, 3, "`retro_feuilles`", "dL_dx, dL_dy, dL_dz")
            where = f"pour x = {x:.4g}, y = {y:.4g}, z = {z:.4g}"
            da, c = ref["da"], ref["c"]
            if not _near(dz, ref["dz"]):
                raise WrongAnswer(
                    f"∂L/∂z vaut {dz:.4g} au lieu de {ref['dz']:.4g} {where} : z n'entre que dans l'addition "
                    "b = a + z, qui transmet son gradient amont tel quel.",
                    code="addition_ne_recopie_pas",
                )
            if not _near(dy, ref["dy"]):
                raise WrongAnswer(
                    f"∂L/∂y vaut {dy:.4g} au lieu de {ref['dy']:.4g} {where} : dans a = x·y, la multiplication "
                    "**échange** : le gradient envoyé à y contient l'autre facteur, pas y.",
                    code="facteur_non_echange",
                )
            if not _near(dx, ref["dx"]):
                if _near(dx, da * y) or _near(dx, c):
                    raise WrongAnswer(
                        f"∂L/∂x vaut {dx:.4g} au lieu de {ref['dx']:.4g} {where} : x est utilisé **deux fois** "
                        "(dans a = x·y et dans L = c·x). C'est un embranchement : vous n'avez suivi qu'une des deux "
                        "branches.",
                        code="embranchement_oublie",
                    )
                if _near(dx, da * y * c):
                    raise WrongAnswer(
                        f"∂L/∂x vaut {dx:.4g} au lieu de {ref['dx']:.4g} {where} : vous avez bien vu les deux "
                        "branches de l'embranchement en x, mais leurs contributions s'**additionnent**, elles ne se "
                        "multiplient pas.",
                        code="embranchement_multiplie",
                    )
                if _near(dx, da * x + c):
                    raise WrongAnswer(
                        f"∂L/∂x vaut {dx:.4g} au lieu de {ref['dx']:.4g} {where} : dans a = x·y, la multiplication "
                        "**échange** : le gradient envoyé à x contient l'autre facteur, pas x.",
                        code="facteur_non_echange",
                    )
                raise WrongAnswer(
                    f"∂L/∂x vaut {dx:.4g} au lieu de {ref['dx']:.4g} {where} : listez les nœuds qui utilisent x, "
                    "puis la contribution de chacun."
                )
        return (
            f"∂L/∂x, ∂L/∂y et ∂L/∂z coïncident avec autograd sur {trials} entrées aléatoires ; "
            "l'embranchement en x est bien sommé."
        )


# -- Question 3: the order of the engine --------------------------------------------------------------------------


def replay_expression(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The expression of question 3 (given in the statement)."""
    h = x * w
    e = torch.exp(h)
    s = torch.sin(e)
    return (s + h).sum()


def engine_order(loss: torch.Tensor) -> list[str]:
    """Names of the nodes of the checker's own graph, in the order the engine runs them (leaves left out)."""
    order: list[str] = []
    seen: set[Any] = set()
    stack = [loss.grad_fn]
    handles = []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        if name != "AccumulateGrad":
            handles.append(node.register_prehook(lambda grads, name=name: order.append(name)))
        stack.extend(child for child, _ in node.next_functions)
    try:
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    return order


@register
class EngineOrder(Exercise):
    id = "tp3_ordre"
    assignment = ASSIGNMENT
    points = 2
    title = "Prédire l'ordre de la rétropropagation de PyTorch"
    names = ("ordre_prevu",)
    section = (LESSON, SECTION_REPLAY)
    mistakes = {
        "ordre_propagation_avant": "ordre de la propagation avant au lieu de la rétropropagation",
        "noeud_partage_en_double": "nœud partagé exécuté une fois par utilisation",
        "noeud_partage_trop_tot": "nœud partagé exécuté avant d'avoir reçu toutes ses contributions",
        "noeud_inconnu": "nom qui n'est pas un nœud du graphe",
        "noeud_manquant": "nœud oublié",
    }
    hints = (
        "Dessinez le graphe de `L` sur papier, puis demandez-vous, pour chaque nœud : de combien de nœuds "
        "reçoit-il un gradient ?",
        "Le moteur n'exécute un nœud qu'une fois, quand **tous** les gradients qu'il attend sont arrivés.",
        "Pour vérifier après avoir prédit : un crochet (`register_prehook`) sur chaque nœud enregistre l'ordre réel.",
        reread(SECTION_REPLAY),
    )

    def run(self, answers, rng, trials):
        given = observe.call(answers["ordre_prevu"], what="ordre_prevu()")
        if not isinstance(given, (list, tuple)) or not all(isinstance(name, str) for name in given):
            raise WrongAnswer(
                "`ordre_prevu()` doit renvoyer une liste de noms de nœuds, des chaînes comme `'SumBackward0'`.",
                code="noeud_inconnu",
            )
        given = [name for name in given if name != "AccumulateGrad"]  # the leaves may be listed or not
        for trial in range(trials):
            n = 1 + trial % 4
            x, w = (_normal(rng, n).requires_grad_(True) for _ in range(2))
            truth = engine_order(replay_expression(x, w))
            if given == truth:
                continue
            unknown = [name for name in given if name not in truth]
            if unknown:
                raise WrongAnswer(
                    f"« {unknown[0]} » n'est pas un nœud du graphe de `L` : affichez `L.grad_fn` puis les "
                    "`.next_functions` de chaque nœud pour lire leurs noms.",
                    code="noeud_inconnu",
                )
            if given == truth[::-1]:
                raise WrongAnswer(
                    "Vous donnez l'ordre de la propagation **avant** (des entrées vers `L`) : la rétropropagation "
                    "part de `L` et remonte vers les feuilles.",
                    code="ordre_propagation_avant",
                )
            repeated = [name for name in set(given) if given.count(name) > truth.count(name)]
            if repeated:
                raise WrongAnswer(
                    f"« {repeated[0]} » apparaît {given.count(repeated[0])} fois : le moteur exécute chaque nœud "
                    "**une seule fois**, même quand sa sortie sert à plusieurs endroits. Il additionne d'abord les "
                    "gradients reçus.",
                    code="noeud_partage_en_double",
                )
            missing = [name for name in truth if name not in given]
            if missing:
                raise WrongAnswer(
                    f"Il manque un nœud : le graphe de `L` en compte {len(truth)} (sans les feuilles), votre liste "
                    f"{len(given)}.",
                    code="noeud_manquant",
                )
            raise WrongAnswer(
                "Les nœuds sont les bons, mais pas leur ordre : un nœud dont la sortie sert deux fois attend les "
                "gradients de **ses deux** utilisateurs avant d'être exécuté, il ne passe donc pas dès le premier.",
                code="noeud_partage_trop_tot",
            )
        return "c'est bien l'ordre dans lequel le moteur de PyTorch a exécuté les nœuds (rejoué avec des crochets)."


# -- Questions 4 and 5: a new operation for the `Valeur` engine -------------------------------------------------


def _engine(answers: dict[str, Any], instructions: list[list[Any]], expr_text: str) -> dict[str, Any]:
    result = observe.call(
        run_on_engine, answers["Valeur"], instructions, what=f"votre moteur `Valeur` sur l'expression {expr_text}"
    )
    leaves = sum(1 for instruction in instructions if instruction[0] == "feuille")
    if not isinstance(result, dict) or len(result.get("grads", ())) != leaves:
        raise WrongAnswer("Votre moteur `Valeur` ne renvoie pas un gradient par feuille.")
    return result


@register
class EngineDivision(Exercise):
    id = "tp3_moteur_division"
    assignment = ASSIGNMENT
    points = 3
    title = "Le moteur `Valeur` : les dérivées locales de la division"
    names = ("Valeur",)
    section = (LESSON, SECTION_ENGINE)
    mistakes = {
        "derivees_echangees": "dérivées locales du numérateur et du dénominateur échangées",
        "oubli_gradient_amont": "dérivée locale sans le gradient amont",
        "signe_denominateur": "signe de la dérivée par rapport au dénominateur",
        "carre_oublie": "dérivée de 1/b prise égale à −1/b",
        "derivee_manquante": "une des deux entrées ne reçoit pas de gradient",
        "derivee_locale_fausse": "dérivée locale de la division fausse",
    }
    hints = (
        "Le nœud q = a / b a deux entrées : écrivez séparément ∂q/∂a (b fixé) et ∂q/∂b (a fixé), comme deux "
        "dérivées d'une fonction d'une seule variable.",
        "Regardez comment `__mul__` du moteur met à jour les gradients de ses deux entrées : votre `_backward` suit "
        "le même modèle, avec d'autres dérivées locales.",
        "Chaque contribution est le gradient de la sortie (le gradient amont) multiplié par une dérivée locale.",
        reread(SECTION_ENGINE),
    )

    def run(self, answers, rng, trials):
        # A probe that names the mistake: (a / b) · c, so that the upstream gradient of the division is c ≠ 1.
        probe = ("mul", ("div", ("var", 0), ("var", 1)), ("var", 2))
        values = random_values(rng, probe)
        a, b, c = values[0], values[1], values[2]
        instructions, _ = program(probe, values)
        got = _engine(answers, instructions, "(a / b) · c")["grads"]
        self._diagnose(got[0], got[1], a, b, c)
        for _ in range(trials):
            expr = random_tree(rng, depth=3)
            values = random_values(rng, expr)
            value, expected = torch_gradients(expr, values)
            instructions, leaf_of = program(expr, values)
            result = _engine(answers, instructions, text(expr))
            got_by_var = gradients_by_variable(result["grads"], leaf_of)
            for var, g in got_by_var.items():
                if not _near(g, expected[var]):
                    shown = ", ".join(f"{'abcdefgh'[v]} = {values[v]:.3g}" for v in variables(expr))
                    raise WrongAnswer(
                        f"Sur l'expression {text(expr)} avec {shown}, votre moteur donne ∂/∂{'abcdefgh'[var]} = "
                        f"{g:.4g}, PyTorch donne {expected[var]:.4g}.",
                        code="derivee_locale_fausse",
                    )
        return f"vos dérivées locales de la division coïncident avec PyTorch sur {trials} expressions aléatoires."

    @staticmethod
    def _diagnose(ga: float, gb: float, a: float, b: float, c: float) -> None:
        da, db = c / b, -c * a / b**2
        if _near(ga, da) and _near(gb, db):
            return
        where = f"Sur (a / b) · c avec a = {a:.3g}, b = {b:.3g}, c = {c:.3g}, le gradient amont de la division vaut c"
        if _near(ga, db) and _near(gb, da):
            raise WrongAnswer(
                f"{where} ; vos gradients de a et de b sont échangés : relisez quelle dérivée locale va à quelle "
                "entrée (a est le numérateur, b le dénominateur).",
                code="derivees_echangees",
            )
        if _near(ga, 1 / b) or _near(gb, -a / b**2):
            raise WrongAnswer(
                f"{where} ; vos gradients valent les dérivées locales seules. Chaque contribution doit être multipliée "
                "par le gradient amont, `out.grad`.",
                code="oubli_gradient_amont",
            )
        if _near(ga, da) and _near(gb, -db):
            raise WrongAnswer(
                f"{where} ; ∂/∂b a le mauvais signe : quand le dénominateur augmente, un quotient positif diminue.",
                code="signe_denominateur",
            )
        if _near(ga, da) and _near(gb, -c * a / b):
            raise WrongAnswer(
                f"{where} ; ∂/∂b est faux : la dérivée de 1/b n'est pas −1/b, revoyez la puissance de b.",
                code="carre_oublie",
            )
        if _near(ga, 0.0) != _near(gb, 0.0) and (_near(ga, da) or _near(gb, db)):
            missing = "a" if _near(ga, 0.0) else "b"
            raise WrongAnswer(
                f"{where} ; {missing} ne reçoit aucun gradient : `_backward` doit mettre à jour le gradient des "
                "**deux** entrées de la division.",
                code="derivee_manquante",
            )
        raise WrongAnswer(
            f"{where} ; votre moteur donne ∂/∂a = {ga:.4g} et ∂/∂b = {gb:.4g}, PyTorch donne {da:.4g} et {db:.4g}.",
            code="derivee_locale_fausse",
        )


@register
class EngineAccumulation(Exercise):
    id = "tp3_moteur_accumulation"
    assignment = ASSIGNMENT
    points = 2
    title = "Le moteur `Valeur` : accumuler les gradients aux embranchements"
    names = ("Valeur",)
    section = (LESSON, SECTION_ENGINE_BUGS)
    mistakes = {"egal_au_lieu_de_plus_egal": "`=` au lieu de `+=` : une contribution écrase l'autre"}
    hints = (
        "Essayez votre moteur sur `a / a` : que devrait valoir la dérivée de a / a par rapport à a ? Et que donne "
        "votre moteur ?",
        "Quand une valeur sert à plusieurs nœuds, chaque nœud lui envoie une contribution pendant la "
        "rétropropagation. Que devient la première quand la seconde arrive ?",
        reread(SECTION_ENGINE_BUGS),
    )

    def run(self, answers, rng, trials):
        for trial in range(trials):
            expr = random_fork(rng, trial)
            values = random_values(rng, expr)
            shared, shared_leaves = program(expr, values, shared=True)
            split, split_leaves = program(expr, values, shared=False)
            got = gradients_by_variable(_engine(answers, shared, text(expr))["grads"], shared_leaves)
            # The same expression with one leaf per use, on the student's own engine: what each use contributes.
            parts = gradients_by_variable(_engine(answers, split, text(expr))["grads"], split_leaves)
            for var, count in uses(expr).items():
                if count > 1 and not _near(got[var], parts[var]):
                    name = "abcdefgh"[var]
                    raise WrongAnswer(
                        f"Sur {text(expr)}, {name} est utilisé {count} fois. Avec une feuille par utilisation, "
                        f"votre moteur donne des contributions dont la somme vaut {parts[var]:.4g} ; mais avec une "
                        f"seule feuille {name}, il donne {got[var]:.4g} : une contribution en a écrasé une autre. "
                        "Dans `_backward`, un gradient s'**accumule** (`+=`), il ne s'affecte pas (`=`).",
                        code="egal_au_lieu_de_plus_egal",
                    )
        return "aux embranchements, votre moteur additionne bien les contributions de chaque utilisation."


# -- Questions 6 and 7: custom autograd Functions ------------------------------------------------------------------


@observe.student_side
def weighted_apply(function_class: Any, weights: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """``function_class.apply(*inputs) * weights``: the gradients reaching the inputs then carry ``weights`` as
    upstream gradient, so a backward that ignores its ``grad_output`` is seen."""
    return function_class.apply(*inputs) * weights


@observe.student_side
def backward_error(function_class: Any, *inputs: torch.Tensor) -> str | None:
    """The error raised by backpropagating through ``function_class`` (``'Type: message'``), or None."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    try:
        function_class.apply(*leaves).sum().backward()
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - the student's error, described as data
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


@observe.student_side
def gradcheck_passes(function_class: Any, *inputs: torch.Tensor) -> bool | None:
    """``torch.autograd.gradcheck`` on the student's Function, in float64 (None when it cannot run)."""
    leaves = tuple(t.detach().double().clone().requires_grad_(True) for t in inputs)
    try:
        return bool(torch.autograd.gradcheck(function_class.apply, leaves, raise_exception=False))
    except Exception:  # noqa: BLE001 - only a hint for the student
        return None


_WRONG_COUNT = re.compile(r"incorrect number of gradients \(expected (\d+), got (\d+)\)")


class _FunctionExercise(Exercise):
    """Shared checks of a custom Function: it is one, its forward is right, its backward raises nothing."""

    class_name: str

    def _apply(self, answers, weights, inputs, what):
        report = observe.run(weighted_apply, answers[self.class_name], weights, *inputs, what=what)
        result = require_tensor(report.result, f"Le résultat de `{self.class_name}.apply`")
        nodes = observe.graph(result).names
        if not any(name.endswith("Backward") for name in nodes):  # a custom Function's node: <Name>Backward
            raise WrongAnswer(
                f"`{self.class_name}` n'est pas une `torch.autograd.Function` sur mesure : sa sortie n'a pas de nœud "
                f"`{self.class_name}Backward` dans le graphe. Gardez la classe, héritez de `torch.autograd.Function`."
            )
        grads = observe.input_grads(result)[2:]
        if any(g is None for g in grads):
            error = observe.call(backward_error, answers[self.class_name], *inputs, what=f"{self.class_name}.backward")
            count = _WRONG_COUNT.search(error or "")
            if count:
                raise WrongAnswer(
                    f"Votre `backward` renvoie {count.group(2)} gradient(s), mais `forward` reçoit {count.group(1)} "
                    "entrée(s) : il en faut un par entrée de `forward`, dans le même ordre.",
                    code="nombre_de_gradients",
                )
            if error:
                raise WrongAnswer(
                    f"La rétropropagation à travers `{self.class_name}` échoue : `{error}`.", code="backward_plante"
                )
            raise WrongAnswer(
                "Votre `backward` renvoie `None` pour une entrée qui demande un gradient : il doit renvoyer un "
                "tenseur par entrée de `forward`.",
                code="nombre_de_gradients",
            )
        return result, grads

    def _fail(self, answers, inputs, message, code):
        passes = observe.call(gradcheck_passes, answers[self.class_name], *inputs, what="gradcheck")
        if passes is False:
            message += (
                " (`torch.autograd.gradcheck` échoue aussi sur votre fonction : essayez-le dans la cellule d'essai.)"
            )
        raise WrongAnswer(message, code=code)


@register
class SigmoidGate(_FunctionExercise):
    id = "tp3_fonction"
    assignment = ASSIGNMENT
    points = 4
    title = "Une `torch.autograd.Function` à deux entrées"
    names = ("PorteSigmoide",)
    class_name = "PorteSigmoide"
    section = (LESSON, SECTION_FUNCTION)
    mistakes = {
        "propagation_avant_fausse": "valeur de la propagation avant fausse",
        "nombre_de_gradients": "pas un gradient par entrée de `forward`",
        "backward_plante": "erreur pendant la rétropropagation",
        "oubli_gradient_amont": "`grad_output` ignoré",
        "gradients_echanges": "gradients renvoyés dans le mauvais ordre",
        "facteur_non_echange": "facteur x oublié dans ∂f/∂y",
        "derivee_sigmoide_fausse": "dérivée de la sigmoïde fausse",
    }
    hints = (
        "Écrivez d'abord les deux dérivées partielles de f(x, y) = x·σ(y), élément par élément, sur papier ; "
        "la dérivée de σ s'exprime avec σ elle-même.",
        "`backward` reçoit le gradient amont (celui de la perte par rapport à la sortie) et renvoie un gradient "
        "par entrée de `forward`, dans le même ordre : chacun est le gradient amont multiplié par une dérivée locale.",
        "Gardez dans `ctx` ce dont `backward` aura besoin, puis testez votre classe avec "
        "`torch.autograd.gradcheck` sur des tenseurs `float64`.",
        reread(SECTION_FUNCTION),
    )

    def run(self, answers, rng, trials):
        for trial in range(trials):
            shape = ((4,), (2, 3), (5,), (3, 2))[trial % 4]
            x, y = (_normal(rng, *shape).requires_grad_(True) for _ in range(2))
            weights = _normal(rng, *shape)
            result, (gx, gy) = self._apply(
                answers, weights, (x, y), f"PorteSigmoide.apply(x, y), forme {fmt_shape(shape)}"
            )
            s = torch.sigmoid(y.detach())
            xd = x.detach()
            if not close(result, xd * s * weights):
                raise WrongAnswer(
                    f"La propagation avant est fausse : pour x = {fmt_values(xd)} et y = {fmt_values(y)}, "
                    "`forward` doit renvoyer x·σ(y) élément par élément.",
                    code="propagation_avant_fausse",
                )
            leaves = (xd.clone().requires_grad_(True), y.detach().clone().requires_grad_(True))
            (leaves[0] * torch.sigmoid(leaves[1]) * weights).sum().backward()
            rx, ry = leaves[0].grad, leaves[1].grad
            if close(gx, rx) and close(gy, ry):
                continue
            if gx.shape == ry.shape and close(gx, ry) and close(gy, rx):
                self._fail(
                    answers,
                    (x, y),
                    "Vos deux gradients sont justes mais renvoyés dans le mauvais ordre : `backward` renvoie le "
                    "gradient de chaque entrée dans l'ordre des arguments de `forward`.",
                    "gradients_echanges",
                )
            if close(gx, s) and close(gy, xd * s * (1 - s)):
                self._fail(
                    answers,
                    (x, y),
                    "Vos gradients valent les dérivées locales seules : ils ne tiennent pas compte du gradient amont "
                    "que `backward` reçoit en argument (ici, le vérificateur multiplie la sortie par des poids "
                    "aléatoires, donc ce gradient amont n'est pas 1).",
                    "oubli_gradient_amont",
                )
            if close(gx, rx) and close(gy, weights * s * (1 - s)):
                self._fail(
                    answers,
                    (x, y),
                    "∂f/∂x est juste, mais il manque un facteur dans ∂f/∂y : f = x·σ(y) est un **produit**, et la "
                    "dérivée par rapport à y garde l'autre facteur, x.",
                    "facteur_non_echange",
                )
            if close(gx, rx):
                self._fail(
                    answers,
                    (x, y),
                    f"∂f/∂x est juste, mais ∂f/∂y est faux : pour y = {fmt_values(y)}, vous renvoyez {fmt_values(gy)} "
                    f"au lieu de {fmt_values(ry)}. Revoyez la dérivée de σ.",
                    "derivee_sigmoide_fausse",
                )
            self._fail(
                answers,
                (x, y),
                f"Les gradients renvoyés par `backward` sont faux : pour ∂/∂x, {fmt_values(gx)} au lieu de "
                f"{fmt_values(rx)}.",
                "reponse_incorrecte",
            )
        return (
            f"les gradients de votre `backward` coïncident avec autograd sur {trials} entrées `float64`, "
            "avec un gradient amont aléatoire."
        )


@register
class FixNormalize(_FunctionExercise):
    id = "tp3_fonction_corrigee"
    assignment = ASSIGNMENT
    points = 3
    title = "Trouver et corriger le bogue d'une `Function` sur mesure"
    names = ("Normaliser",)
    class_name = "Normaliser"
    section = (LESSON, SECTION_FUNCTION)
    mistakes = {
        "nombre_de_gradients": "pas un gradient par entrée de `forward`",
        "backward_plante": "erreur pendant la rétropropagation",
        "propagation_avant_modifiee": "propagation avant modifiée",
        "bogue_non_corrige": "branche de l'embranchement par la norme toujours oubliée",
        "signe_terme_norme": "signe de la contribution de la norme",
        "facteur_terme_norme": "facteur de la contribution de la norme",
        "produit_scalaire_oublie": "produit élément par élément au lieu d'un produit scalaire",
    }
    hints = (
        "Lancez `torch.autograd.gradcheck` sur `NormaliserBoguee.apply` : il confirme qu'il y a un bogue. Puis "
        "comparez, sur un petit exemple, le gradient de la version boguée avec celui qu'autograd calcule sur la "
        "même formule écrite avec des opérations ordinaires.",
        "Dans x / ‖x‖, combien de fois x apparaît-il ? La version boguée traite ‖x‖ comme une constante.",
        "La contribution qui manque passe par la norme : dérivez ‖x‖ = √(Σ xⱼ²) par rapport à un xᵢ, puis "
        "demandez-vous comment le gradient amont, un vecteur, arrive jusqu'à ce nombre ‖x‖.",
        reread(SECTION_FUNCTION),
    )

    def run(self, answers, rng, trials):
        for trial in range(trials):
            n = 2 + trial % 5
            x = _normal(rng, n).requires_grad_(True)
            weights = _normal(rng, n)
            result, (got,) = self._apply(answers, weights, (x,), f"Normaliser.apply(x), forme {fmt_shape((n,))}")
            xd = x.detach()
            norm = xd.norm()
            u = xd / norm
            if not close(result, u * weights):
                raise WrongAnswer(
                    "La propagation avant a changé : elle est donnée (x / ‖x‖), seul `backward` est à corriger.",
                    code="propagation_avant_modifiee",
                )
            leaf = xd.clone().requires_grad_(True)
            ((leaf / leaf.norm()) * weights).sum().backward()
            expected = leaf.grad
            if close(got, expected):
                continue
            direct = weights / norm
            through_norm = u * torch.dot(u, weights) / norm
            if close(got, direct):
                self._fail(
                    answers,
                    (x,),
                    "C'est toujours le bogue de départ : votre `backward` ne suit que la branche directe de x. Or x "
                    "apparaît deux fois dans x / ‖x‖ (un embranchement) : il manque la contribution qui passe par la "
                    "norme.",
                    "bogue_non_corrige",
                )
            if close(got, direct - u * u * weights / norm):
                self._fail(
                    answers,
                    (x,),
                    "La contribution de la norme est calculée élément par élément : chaque composante de la sortie "
                    "dépend de ‖x‖, donc de **toutes** les composantes de x ; le gradient amont y arrive par un "
                    "produit scalaire (une somme), pas par un produit élément par élément.",
                    "produit_scalaire_oublie",
                )
            gap = direct - got
            denom = float(torch.dot(through_norm, through_norm))
            k = float(torch.dot(gap, through_norm)) / denom if denom > 1e-12 else None
            if k is not None and close(gap, k * through_norm):
                if abs(k + 1) < 1e-3:
                    self._fail(
                        answers,
                        (x,),
                        "Vous avez ajouté la contribution de la norme avec le mauvais signe : quand x grandit dans "
                        "sa propre direction, x / ‖x‖ ne change pas.",
                        "signe_terme_norme",
                    )
                self._fail(
                    answers,
                    (x,),
                    f"La contribution de la norme a la bonne direction mais vaut {k:.3g} fois ce qu'il faut : revoyez "
                    "les puissances de ‖x‖ (le gradient de 1/‖x‖ par rapport à x).",
                    "facteur_terme_norme",
                )
            self._fail(
                answers,
                (x,),
                f"Pour x = {fmt_values(xd)}, votre `backward` renvoie {fmt_values(got)} au lieu de "
                f"{fmt_values(expected)}.",
                "reponse_incorrecte",
            )
        return f"votre `backward` corrigé coïncide avec autograd sur {trials} vecteurs `float64` de tailles variées."
