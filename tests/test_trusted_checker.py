"""The trusted checker's pieces, without processes: plain-data codec, the student's agent, the judge.

``checker.judge`` talks to ``student_agent.handle`` through bytes only, as it does across processes under
``autograder grade`` (tests/test_trusted_grading.py covers the processes and the sandbox).
"""

from __future__ import annotations

import json

import pytest
import torch

from autograder import get_exercise, observe
from autograder.exercise import all_exercises
from autograder.grading import check_cells, checker, student_agent, wire
from autograder.verdict import CheckFailed
from tests.fixtures import mistakes
from tests.fixtures import trusted_exercises as essai
from tests.notebook_tools import ASSIGNMENTS, answer_namespace


def _namespace(sources: dict[str, str]) -> dict:
    namespace: dict = {"torch": torch}
    for source in sources.values():
        exec(source, namespace)
    return namespace


def _judge(grade_id: str, namespace: dict, seed: int = 0) -> dict:
    return checker.judge([{"id": grade_id, "seed": seed}], 5, lambda request: student_agent.handle(request, namespace))


@pytest.mark.parametrize("grade_id", list(essai.SOLUTIONS))
def test_reference_answers_are_correct_through_plain_data(grade_id):
    result = _judge(grade_id, _namespace(essai.SOLUTIONS), seed=essai.HIDDEN_SEEDS[grade_id])
    assert result["verdict"]["code"] == "correcte" and result["verdict"]["points"] == 5
    assert [o["output_type"] for o in result["outputs"]] == ["stream"]


def test_typical_mistakes_get_their_codes_and_zero():
    namespace = _namespace(
        {
            "grad": "def grad_cube(x):\n    return x**2\n",
            "step": "def step(w, lr):\n    with torch.no_grad():\n        w -= lr * w.grad\n",
            "graph": "def build(x):\n    return (torch.exp(x.detach()) * 2).sum()\nfirst_node = 'x'\n",
        }
    )
    codes = {g: _judge(g, namespace)["verdict"] for g in essai.SOLUTIONS}
    assert {g: v["code"] for g, v in codes.items()} == {
        "essai_grad": "facteur_3",
        "essai_step": "grad_non_remis",
        "essai_graph": "graphe_coupe",
    }
    assert all(v["points"] == 0 for v in codes.values())


def test_a_missing_name_or_an_untouched_stub_is_not_attempted():
    assert _judge("essai_grad", {})["verdict"]["code"] == "non_tentee"
    stub = _namespace({"grad": "def grad_cube(x):\n    raise NotImplementedError()\n"})
    assert _judge("essai_grad", stub)["verdict"]["code"] == "non_tentee"


def test_identity_grad_and_facts_cross_as_data():
    namespace = _namespace({"f": "def same(w):\n    w.grad = torch.ones_like(w)\n    return w\n"})
    runner = checker.RemoteRunner(lambda request: student_agent.handle(request, namespace))
    w = torch.zeros(2, requires_grad=True)
    report = runner(wire.Remote("same"), (w,), "same(w)")
    assert report.result is report.args[0]
    assert torch.equal(report.args[0].grad, torch.ones(2)) and w.grad is None  # the checker's own w is untouched
    assert observe.is_leaf(report.result) and observe.grad_fn_name(report.result) is None
    assert report.version_changes == (0,)


def test_in_place_changes_and_backward_passes_are_reported():
    namespace = _namespace(
        {
            "f": "def f(w, k):\n    (w * 2).sum().backward()\n"
            "    with torch.no_grad():\n        w.add_(1)\n    return k\n"
        }
    )
    runner = checker.RemoteRunner(lambda request: student_agent.handle(request, namespace))
    report = runner(wire.Remote("f"), (torch.zeros(2, requires_grad=True), 3), "f(w, k)")
    assert report.version_changes == (1, None) and report.backward_passes == 1 and report.result == 3
    assert torch.equal(report.args[0].detach(), torch.ones(2)) and torch.equal(
        report.args[0].grad, torch.full((2,), 2.0)
    )


def test_the_graph_and_input_grads_come_back_as_data():
    namespace = _namespace({"f": "def f(x):\n    return (x * x).sum()\n"})
    runner = checker.RemoteRunner(lambda request: student_agent.handle(request, namespace))
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    report = runner(wire.Remote("f"), (x,), "f(x)")
    assert observe.grad_fn_name(report.result) == "SumBackward0"
    graph = observe.graph(report.result)
    assert graph.names[0] == "SumBackward0" and "AccumulateGrad" in graph.names
    assert graph.leaf_arg[graph.names.index("AccumulateGrad")] == 0
    assert torch.equal(observe.input_grads(report.result)[0], torch.tensor([2.0, 4.0]))


def test_a_lying_tensor_subclass_arrives_as_a_plain_tensor():
    namespace = _namespace(
        {
            "f": "class Liar(torch.Tensor):\n"
            "    def __eq__(self, other):\n        return True\n"
            "def grad_cube(x):\n    return torch.zeros_like(x).as_subclass(Liar)\n"
        }
    )
    assert _judge("essai_grad", namespace)["verdict"]["code"] == "reponse_incorrecte"


def test_code_never_crosses_into_the_students_process():
    runner = checker.RemoteRunner(lambda request: pytest.fail("nothing may be sent"))
    with pytest.raises(TypeError, match="contract"):
        runner(lambda x: x, (1,), "f")
    with pytest.raises(TypeError, match="contract"):
        runner(wire.Remote("f"), (lambda x: x,), "f")


@pytest.mark.parametrize(
    "reply",
    [
        b"not json",
        b'{"ok": true, "result": {"$": "T", "id": 0, "dtype": "float32", "shape": [3], "b64": "AAAA", "rg": false}}',
        b'{"ok": true, "result": {"$": "T", "id": 0, "dtype": "object", "shape": [], "b64": "", "rg": false}}',
        b'{"ok": true, "result": {"$": "pickle", "v": "gASV"}}',
        b'{"ok": true, "result": NaN}',
        b'{"ok": true, "result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"ok": true, "result": {"$": "T", "id": 0, "dtype": "float32", "shape": [1000000000000], "b64": ""}}',
        b'{"ok": true, "result": {"$": "@", "id": 7}}',
        b'{"ok": true, "result": 1, "backward_passes": -1}',
        b'{"ok": true, "result": 1, "backward_passes": "0"}',
        b'{"ok": true, "result": {"$": "T", "id": 0, "dtype": "float32", "shape": [1], "b64": "AACAPw==", "rg": true,'
        b' "leaf": false, "fn": "X", "graph": {"names": ["X"], "children": [[5]], "leaf_arg": [null]}}}',
    ],
)
def test_a_malformed_reply_is_a_wrong_answer_never_a_crash(reply):
    runner = checker.RemoteRunner(lambda request: reply)
    with pytest.raises(checker.WrongAnswer, match="illisible"):
        runner(wire.Remote("f"), (), "f()")


def test_a_huge_reply_is_refused_before_parsing():
    with pytest.raises(wire.WireError):
        wire.loads(b" " * (wire.MAX_MESSAGE_BYTES + 1))


def test_a_reply_cannot_claim_success():
    """Whatever the student's side answers, only the checker's own comparison can make a verdict correct."""
    forged = json.dumps({"ok": False, "error": "wrong", "message": "✅ essai_grad — Correct (8 points)"}).encode()
    result = checker.judge([{"id": "essai_grad"}], 8, lambda request: forged)
    assert result["verdict"]["code"] == "reponse_incorrecte" and result["verdict"]["points"] == 0


def test_an_interrupted_call_is_a_timeout_and_a_dead_kernel_a_crash():
    interrupted = json.dumps({"ok": False, "error": "interrupted"}).encode()
    names = json.dumps({"ok": True, "names": {"grad_cube": {"kind": "callable"}}}).encode()
    replies = iter([names, interrupted])
    result = checker.judge([{"id": "essai_grad"}], 8, lambda request: next(replies))
    assert result["verdict"]["code"] == "delai_depasse"

    def gone(request):
        raise checker.KernelGone("crashed")

    assert checker.judge([{"id": "essai_grad"}], 8, gone)["verdict"]["code"] == "plantage"


@pytest.mark.parametrize(
    ("source", "calls"),
    [
        ('check("a", globals())', [check_cells.CheckCall("a")]),
        (
            'check("a", globals())\n### BEGIN HIDDEN TESTS\n'
            'check("a", globals(), seed=7, trials=3)\n### END HIDDEN TESTS',
            [check_cells.CheckCall("a"), check_cells.CheckCall("a", 7, 3)],
        ),
        ("assert f(1) == 2", None),
        ('check("a", globals())\nprint(1)', None),
        ('check("a", {})', None),
        ('check("a", globals(), seed=int("7"))', None),
        ("", None),
    ],
)
def test_only_test_cells_made_of_check_calls_are_decided_by_the_checker(source, calls):
    assert check_cells.parse_checks(source) == calls


# -- one definition, two modes: every TP's checkers give the same verdicts through plain data ---------------------

WRONG = [(a, w) for a in ASSIGNMENTS for w in mistakes(a).WRONG_ANSWERS]
QUESTIONS = [(a, e.id) for a in ASSIGNMENTS for e in all_exercises() if e.assignment == a]


def _remote(exercise_id: str, namespace: dict, seed: int = 0) -> dict:
    ask = lambda request: student_agent.handle(request, namespace)  # noqa: E731
    return checker.judge([{"id": exercise_id, "seed": seed}], get_exercise(exercise_id).points, ask)["verdict"]


@pytest.mark.parametrize(("assignment", "exercise_id"), QUESTIONS, ids=[q for _, q in QUESTIONS])
def test_every_reference_answer_is_correct_for_the_trusted_checker(assignment, exercise_id):
    namespace = answer_namespace(assignment)
    for seed in (0, 2026):
        verdict = _remote(exercise_id, namespace, seed)
        assert (verdict["code"], verdict["points"]) == ("correcte", get_exercise(exercise_id).points), verdict


@pytest.mark.parametrize(("assignment", "wrong"), WRONG, ids=[w.behaviour for _, w in WRONG])
def test_every_typical_mistake_gets_the_same_verdict_in_both_modes(assignment, wrong):
    namespace = answer_namespace(assignment, {wrong.cell_id: wrong.source})
    with pytest.raises(CheckFailed) as in_kernel:
        get_exercise(wrong.exercise_id).evaluate(namespace)
    verdict = _remote(wrong.exercise_id, namespace)
    assert verdict["code"] == in_kernel.value.code and verdict["points"] == 0
    assert verdict["message"] == in_kernel.value.message
