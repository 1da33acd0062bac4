"""TP3 specifics: hints that do not answer, other correct answers accepted, replayed values refused, and the
checkers' own tools (the engine-order replay, the random expressions) shown to do what they claim.

The generic proofs (reference passes, each typical mistake named with its code, blank « non tentée », nbgrader
scores) are in test_tp_checkers.py and test_nbgrader_grading.py, parametrized over every assignment.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from autograder import check, get_exercise
from autograder.exercise import all_exercises
from autograder.exercises import tp3_retropropagation as tp3
from autograder.scalar_programs import (
    program,
    random_fork,
    random_tree,
    random_values,
    run_on_engine,
    torch_gradients,
    uses,
)
from autograder.verdict import NotAttempted, WrongAnswer
from tests.notebook_tools import answer_namespace, read, release_notebook, source_notebook

TP3 = "tp3_retropropagation"
EXERCISES = [e for e in all_exercises() if e.assignment == TP3]
_SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`]+)`")


@pytest.fixture(scope="module")
def reference():
    return answer_namespace(TP3)


def with_cell(cell_id: str, source: str) -> dict:
    return answer_namespace(TP3, {cell_id: source})


# -- hints teach without answering ----------------------------------------------------------------------------------


def solution_text() -> str:
    return "\n".join(m.group(1) for c in read(source_notebook(TP3)).cells for m in _SOLUTION.finditer(c.source))


def test_no_hint_holds_a_solution_fragment():
    """A code fragment of a hint may name what the released notebook already shows, never what only the solution has."""
    solution = solution_text()
    released = "\n".join(c.source for c in read(release_notebook(TP3)).cells)
    solution_lines = {line.strip() for line in solution.splitlines() if len(line.strip()) > 3}
    problems = []
    for exercise in EXERCISES:
        for hint in exercise.hints:
            for span in _CODE_SPAN.findall(hint):
                if span in solution and span not in released:
                    problems.append(f"{exercise.id} : `{span}` vient de la solution")
            problems += [f"{exercise.id} : ligne de solution « {line} »" for line in solution_lines if line in hint]
    assert not problems, problems


def test_every_question_points_to_its_lesson_section_and_names_its_mistakes():
    lesson = "notebooks/03_retropropagation.ipynb"
    for exercise in EXERCISES:
        path, title = exercise.section
        assert path == lesson and title, exercise.id
        assert title in exercise.hints[-1] and lesson in exercise.hints[-1], exercise.id
        assert len(exercise.hints) >= 2, exercise.id
        assert exercise.mistakes and all(re.fullmatch(r"[a-z_]+", code) for code in exercise.mistakes), exercise.id


# -- other correct answers pass, copies of values do not -------------------------------------------------------------


def test_hand_backward_accepts_tensors_and_another_order_of_computation(reference):
    other = with_cell(
        "tp3_main_intermediaires_answer",
        "def retro_intermediaires(x, y, z):\n"
        "    c = math.tanh(x * y + z)\n"
        "    return torch.tensor(x), torch.tensor(x - x * c * c), x * (1 - c) * (1 + c)\n",
    )
    check("tp3_main_intermediaires", other, seed=4129, trials=20)


def test_replayed_values_fail_on_fresh_inputs(reference):
    seen = {}

    def recording(x, y, z):
        seen[(x, y, z)] = reference["retro_intermediaires"](x, y, z)
        return seen[(x, y, z)]

    check("tp3_main_intermediaires", {"retro_intermediaires": recording})
    replay = {"retro_intermediaires": lambda x, y, z: seen.get((x, y, z), (0.0, 0.0, 0.0))}
    check("tp3_main_intermediaires", replay)  # the inputs of the visible check: passes
    with pytest.raises(WrongAnswer):
        check("tp3_main_intermediaires", replay, seed=4129, trials=20)


def test_division_written_with_the_output_value_passes():
    namespace = with_cell(
        "tp3_moteur_answer",
        "def diviser(a, b):\n"
        "    out = Valeur(a.data / b.data, (a, b), '/')\n"
        "    def _backward():\n"
        "        a.grad += out.grad * (1 / b.data)\n"
        "        b.grad -= out.grad * out.data / b.data\n"
        "    out._backward = _backward\n"
        "    return out\n"
        "Valeur.__truediv__ = diviser\n",
    )
    check("tp3_moteur_division", namespace, seed=6481, trials=20)
    check("tp3_moteur_accumulation", namespace, seed=3307, trials=18)


def test_functions_written_another_way_pass():
    gate = with_cell(
        "tp3_fonction_answer",
        "class PorteSigmoide(torch.autograd.Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, x, y):\n"
        "        ctx.save_for_backward(x, y)\n"
        "        return x / (1 + torch.exp(-y))\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        x, y = ctx.saved_tensors\n"
        "        s = 1 / (1 + torch.exp(-y))\n"
        "        return g * s, g * x * torch.exp(-y) * s**2\n",
    )
    check("tp3_fonction", gate, seed=5099, trials=16)
    fixed = with_cell(
        "tp3_fonction_corrigee_answer",
        "class Normaliser(NormaliserBoguee):\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        x, norme = ctx.saved_tensors\n"
        "        return g / norme - x * (x @ g) / norme**3\n",
    )
    check("tp3_fonction_corrigee", fixed, seed=7717, trials=16)


def test_a_function_whose_forward_is_written_but_backward_is_not_is_not_attempted():
    half = with_cell(
        "tp3_fonction_answer",
        "class PorteSigmoide(torch.autograd.Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, x, y):\n"
        "        return x * torch.sigmoid(y)\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        raise NotImplementedError()\n",
    )
    with pytest.raises(NotAttempted):
        check("tp3_fonction", half)


def test_a_plain_function_is_not_taken_for_a_custom_function():
    namespace = with_cell(
        "tp3_fonction_answer",
        "class PorteSigmoide:\n    @staticmethod\n    def apply(x, y):\n        return x * torch.sigmoid(y)\n",
    )
    with pytest.raises(WrongAnswer, match="n'est pas une `torch.autograd.Function` sur mesure"):
        check("tp3_fonction", namespace)


def test_gradcheck_confirms_a_wrong_backward_in_the_message():
    wrong = with_cell(
        "tp3_fonction_corrigee_answer",
        "class Normaliser(NormaliserBoguee):\n    pass\n",
    )
    with pytest.raises(WrongAnswer) as failure:
        check("tp3_fonction_corrigee", wrong)
    assert "`torch.autograd.gradcheck` échoue aussi" in failure.value.message
    assert failure.value.code == "bogue_non_corrige"


# -- the checkers' tools --------------------------------------------------------------------------------------------


def test_engine_order_is_replayed_from_the_graph_not_written_down():
    x = torch.randn(3, requires_grad=True)
    assert tp3.engine_order(torch.exp(torch.sin(x)).sum()) == ["SumBackward0", "ExpBackward0", "SinBackward0"]
    w = torch.randn(3, requires_grad=True)
    order = tp3.engine_order(tp3.replay_expression(x, w))
    assert order.count("MulBackward0") == 1 and order.index("MulBackward0") > order.index("ExpBackward0")


def test_hand_graph_gradients_equal_finite_differences():
    x, y, z, h = 0.7, -1.3, 0.4, 1e-6

    def loss(x, y, z):
        return math.tanh(x * y + z) * x

    ref = tp3.hand_graph(x, y, z)
    for name, shift in (("dx", (h, 0, 0)), ("dy", (0, h, 0)), ("dz", (0, 0, h))):
        plus = loss(*(v + s for v, s in zip((x, y, z), shift, strict=True)))
        minus = loss(*(v - s for v, s in zip((x, y, z), shift, strict=True)))
        assert abs((plus - minus) / (2 * h) - ref[name]) < 1e-6


def test_random_trees_have_no_fork_and_a_division_and_forks_share_a_divided_variable():
    rng = torch.Generator().manual_seed(11)
    for _ in range(50):
        tree = random_tree(rng, depth=3)
        assert "div" in repr(tree) and set(uses(tree).values()) == {1}
    for trial in range(12):
        fork = random_fork(rng, trial)
        assert max(uses(fork).values()) > 1 and "div" in repr(fork)


def test_a_correct_engine_matches_torch_and_the_split_program_sums_to_the_shared_one(reference):
    rng = torch.Generator().manual_seed(5)
    for trial in range(30):
        expr = random_tree(rng, depth=3) if trial % 2 else random_fork(rng, trial)
        values = random_values(rng, expr)
        value, expected = torch_gradients(expr, values)
        instructions, leaf_of = program(expr, values)
        got = run_on_engine(reference["Valeur"], instructions)
        assert math.isclose(got["valeur"], value, rel_tol=1e-9)
        for grad, var in zip(got["grads"], leaf_of, strict=True):
            assert math.isclose(grad, expected[var], rel_tol=1e-7, abs_tol=1e-12)


def test_points_and_questions():
    assert {e.id: e.points for e in EXERCISES} == {
        "tp3_main_intermediaires": 3,
        "tp3_main_feuilles": 3,
        "tp3_ordre": 2,
        "tp3_moteur_division": 3,
        "tp3_moteur_accumulation": 2,
        "tp3_fonction": 4,
        "tp3_fonction_corrigee": 3,
    }
    assert get_exercise("tp3_ordre").names == ("ordre_prevu",)


def test_a_copy_of_lesson_cells_earns_at_most_a_quarter_of_the_points():
    from tests.fixtures.tp3_retropropagation_wrong_answers import LESSON_COPY, LESSON_COPY_MAX

    namespace = answer_namespace(TP3, LESSON_COPY)
    earned = 0
    for exercise in EXERCISES:
        try:
            check(exercise.id, namespace)
        except (WrongAnswer, NotAttempted):
            continue
        earned += exercise.points
    assert earned <= LESSON_COPY_MAX, earned
