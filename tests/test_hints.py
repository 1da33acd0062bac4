"""Hints that teach without answering: for every graded exercise, no hint gives a solution line, the argument to pass
or the answer's value, and the last hint sends the student back to the lesson section.

What counts as the solution: the lines of the question's answer cells in ``source/`` that the student version does
not show (``notebook_tools.solutions()`` minus the release stub). Code is compared token by token, so spacing does
not matter. A hint's code is what it writes between backquotes.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.exercise import all_exercises
from tests.notebook_tools import nbgrader_meta, read, release_notebook, solutions, source_notebook

GRADED = [e for e in all_exercises() if e.assignment is not None]
MIN_SHARED_TOKENS = 3
_TOKEN = re.compile(
    r"""[rbfu]?'[^'\n]*'|[rbfu]?"[^"\n]*"|\d+(?:\.\d*)?(?:e-?\d+)?|[^\W\d]\w*|\*\*=?|//=?|->|[-+*/@%<>!=]=|\S"""
)
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?(?![\w])")


def tokens(code: str) -> list[str]:
    """Python-like tokens of a line of code, comments dropped (so whitespace never matters)."""
    found = []
    for token in _TOKEN.findall(code):
        if token == "#":
            break
        found.append(token)
    return found


def code_fragments(hint: str) -> list[str]:
    return [fragment.strip("`").strip() for fragment in _CODE.findall(hint)]


def longest_shared_run(a: list[str], b: list[str]) -> list[str]:
    """The longest run of consecutive tokens found in both ``a`` and ``b``."""
    best, end = 0, 0
    previous = [0] * (len(b) + 1)
    for i, x in enumerate(a, 1):
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                if current[j] > best:
                    best, end = current[j], i
        previous = current
    return a[end - best : end]


def shares_code(fragment: list[str], line: list[str]) -> bool:
    """An expression in common: two names joined by an operator, a call or an index (« X @ w », « x.numel() »,
    « w.grad.zero_() »), not a mere name (« x.grad ») or a method alone (« .mean() »)."""
    run = longest_shared_run(fragment, line)
    names = sum(t[0].isalpha() or t[0] == "_" for t in run)
    operators = [t for t in run if not (t[0].isalnum() or t[0] in "_.'\"")]
    return len(run) >= MIN_SHARED_TOKENS and names >= 2 and bool(operators)


@dataclass
class Question:
    """What a hint must not give away, and what the student already sees."""

    solution_lines: list[str]  # answer lines hidden from the student
    arguments: set[str]  # argument lists of calls on those lines, spaces removed
    values: set[str]  # literal values written on those lines that the statement does not show


def question(exercise) -> Question:
    source = read(source_notebook(exercise.assignment)).cells
    release = {c.id: c for c in read(release_notebook(exercise.assignment)).cells}
    reference = solutions(exercise.assignment)
    grade_index = next(i for i, c in enumerate(source) if nbgrader_meta(c).get("grade_id") == exercise.id)
    # The question's cells follow the previous test cell; a question checked on an earlier question's answer cell
    # (« Questions 4 et 5 ») reaches back to it.
    grades = [i for i in range(grade_index) if nbgrader_meta(source[i]).get("grade")]
    start = (grades.pop() if grades else -1) + 1
    while grades and not any(nbgrader_meta(c).get("solution") for c in source[start:grade_index]):
        start = grades.pop() + 1
    cells = source[start:grade_index]
    public = "\n".join(release[c.id].source for c in cells if c.id in release)

    lines, arguments, values = [], set(), set()
    for cell in cells:
        if cell.cell_type != "code" or not nbgrader_meta(cell).get("solution"):
            continue
        code = reference[cell.id]
        shown = Counter(line.strip() for line in release[cell.id].source.splitlines())
        hidden_numbers = set()
        for number, line in enumerate(code.splitlines(), 1):
            if shown[line.strip()]:
                shown[line.strip()] -= 1
            elif tokens(line):
                lines.append(line.strip())
                hidden_numbers.add(number)
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) not in hidden_numbers:
                continue
            if isinstance(node, ast.Call) and (node.args or node.keywords):
                parts = [ast.get_source_segment(code, a) or "" for a in [*node.args, *node.keywords]]
                arguments.add("".join("".join(parts).split()))
            elif isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value is not None:
                value = node.value
                if (
                    isinstance(value, (int, float))
                    and value not in (0, 1)
                    and str(value) not in _public_numbers(public)
                ):
                    values.add(_number_text(value))
                elif isinstance(value, str) and len(value) >= 3 and value not in public:
                    values.add(value)
    return Question(lines, arguments, values)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _public_numbers(text: str) -> set[str]:
    return {_number_text(float(n.replace(",", "."))) for n in _NUMBER.findall(text)}


def giveaways(exercise) -> list[str]:
    """French descriptions of what the exercise's hints give away."""
    q = question(exercise)
    problems = []
    for number, hint in enumerate(exercise.hints, 1):
        for fragment in code_fragments(hint):
            found = tokens(fragment)
            for line in q.solution_lines:
                if shares_code(found, tokens(line)):
                    problems.append(f"indice {number} : « {fragment} » reprend la ligne de solution « {line} »")
            if "".join(fragment.split()) in q.arguments:
                problems.append(f"indice {number} : « {fragment} » est l'argument à passer dans la solution")
        numbers = _public_numbers(hint)
        for value in q.values:
            if value in numbers or (not value[0].isdigit() and value in hint):
                problems.append(f"indice {number} : donne la valeur « {value} » de la réponse")
    return problems


def points_to_the_lesson(exercise) -> str | None:
    """None when the last hint names the exercise's section or its lesson; otherwise what is wrong."""
    if not exercise.section:
        return "l'exercice n'a pas de `section` (la leçon à relire)"
    if not exercise.hints:
        return "l'exercice n'a pas d'indice"
    path, title = exercise.section
    last = " ".join(re.sub(r"[`*]", "", exercise.hints[-1]).split()).casefold()
    wanted = " ".join(re.sub(r"[`*]", "", title).split()).casefold()
    if wanted in last or Path(path).stem.casefold() in last:
        return None
    return f"le dernier indice ne renvoie pas à la section « {title} » de {path}"


@pytest.mark.parametrize("exercise", GRADED, ids=lambda e: e.id)
def test_hints_do_not_give_the_answer_away(exercise):
    if not source_notebook(exercise.assignment).exists():
        pytest.fail(f"{exercise.id} : {source_notebook(exercise.assignment)} n'existe pas")
    problems = giveaways(exercise)
    assert not problems, f"{exercise.id} :\n" + "\n".join(problems)


@pytest.mark.parametrize("exercise", GRADED, ids=lambda e: e.id)
def test_last_hint_sends_back_to_the_lesson_section(exercise):
    problem = points_to_the_lesson(exercise)
    assert problem is None, f"{exercise.id} : {problem}"


# -- the detector itself catches what it must and lets concepts through -------------------------------------------
def test_detector_catches_a_solution_line_an_argument_and_a_value(monkeypatch):
    fake = Question(
        solution_lines=[
            "with torch.no_grad():",
            "w -= lr * w.grad",
            "z.backward(weights)",
            "return torch.exp(x).mean()",
        ],
        arguments={"weights", "lr*w.grad"},
        values={"4", "MeanBackward0"},
    )
    monkeypatch.setattr(sys.modules[__name__], "question", lambda exercise: fake)

    class Hinted:
        hints = (
            "Faites la mise à jour `w-=lr*w.grad` sous `torch.no_grad()`.",  # a solution line, spaces changed
            "Ici, v = `weights`.",  # the argument to pass
            "La dérivée vaut 4·y ; le premier nœud est « MeanBackward0 ».",  # the answer's values
            "Un tenseur obtenu sous `no_grad` n'entre pas dans le graphe : relisez la leçon.",  # a concept
            "N'utilisez que des opérations PyTorch (`torch.exp`, `.mean()`) : elles restent dans le graphe.",
        )

    problems = giveaways(Hinted)
    assert any(p.startswith("indice 1 : « w-=lr*w.grad » reprend") for p in problems), problems
    assert any(p.startswith("indice 2 : « weights » est l'argument") for p in problems), problems
    assert {p for p in problems if p.startswith("indice 3")} == {
        "indice 3 : donne la valeur « 4 » de la réponse",
        "indice 3 : donne la valeur « MeanBackward0 » de la réponse",
    }
    assert not [p for p in problems if p.startswith(("indice 4", "indice 5"))]
