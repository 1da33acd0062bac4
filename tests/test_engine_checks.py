"""The engine checker of lesson 3 (« micrograd en français »): each classic engine bug carries its own mistake
code, the codes are declared by the exercise, and the wrong-traversal simulations really are wrong."""

from __future__ import annotations

import pytest
import torch

from autograder import get_exercise
from autograder.engine_checks import ENGINE_MISTAKES, random_expression, simulate, torch_reference
from autograder.verdict import WrongAnswer
from tests.fixtures import lesson3_practice as fixture


@pytest.mark.parametrize("mistake", fixture.MISTAKES, ids=[m.behaviour for m in fixture.MISTAKES])
def test_each_engine_bug_has_its_declared_mistake_code(mistake):
    exercise = get_exercise(mistake.exercise_id)
    with pytest.raises(WrongAnswer) as caught:
        exercise.run(dict(mistake.answers), torch.Generator().manual_seed(0), 3)
    assert caught.value.code == fixture.CODES[mistake.behaviour]
    assert caught.value.code in exercise.mistakes
    if mistake.exercise_id.startswith("l3_valeur"):
        assert set(exercise.mistakes) <= set(ENGINE_MISTAKES)


def test_every_classic_bug_of_the_issue_is_named():
    named = {fixture.CODES[m.behaviour] for m in fixture.MISTAKES}
    for code in (
        "egal_au_lieu_de_plus_egal",
        "meme_entree_deux_fois",
        "ordre_non_topologique",
        "oubli_graine",
        "oubli_gradient_amont",
    ):
        assert code in named


@pytest.mark.parametrize("seed", range(5))
def test_wrong_traversals_differ_from_pytorch_on_the_fixed_probe_but_not_on_a_chain(seed):
    leaves, ops = [0.7, -0.8], [("mul", 0, 1), ("add", 2, 0), ("mul", 2, 3), ("mul", 4, 4)]
    right = torch_reference(leaves, ops)["grad"]
    for variant in ("not_reversed", "no_visited", "preorder"):
        assert simulate(leaves, ops, variant) != pytest.approx(right)
    chain = [("mul", 0, 1), ("add", 2, 1)]  # no shared intermediate node: only the reversed order matters
    assert simulate(leaves, chain, "preorder") == pytest.approx(torch_reference(leaves, chain)["grad"])


def test_random_expressions_are_reproducible_and_stay_finite():
    first = [
        random_expression(torch.Generator().manual_seed(s), ("add", "mul", "pow", "tanh", "exp")) for s in range(50)
    ]
    again = [
        random_expression(torch.Generator().manual_seed(s), ("add", "mul", "pow", "tanh", "exp")) for s in range(50)
    ]
    assert first == again
    for leaves, ops in first:
        reference = torch_reference(leaves, ops)
        assert all(abs(v) < 1e6 for v in reference["data"] + reference["grad"])
