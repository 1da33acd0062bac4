"""Verdicts that look like feedback: a coloured box with the question's title, the explanation, the hint and a link
to the lesson section, plus the same verdict as plain text; and when a check raises instead of showing it."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from autograder import mode
from autograder.exercise import all_exercises, get_exercise
from autograder.verdict import NotAttempted, WrongAnswer
from autograder.verdict_box import VerdictBox, _heading_cell, _plain, section_link
from tests.notebook_tools import ROOT, read

LESSON = "notebooks/01_calcul_de_gradients.ipynb"
SECTION = (LESSON, "Règle de dérivation en chaîne, matrice jacobienne et `backward(v)`")


def failure(kind=WrongAnswer):
    wrong = kind("`v` doit avoir la forme de `z` : (2,) et non (3,) <pas du HTML>", "tp1_vjp", code="forme_de_v")
    wrong.hint = 'tapez `hint("tp1_vjp")` pour un indice.'
    wrong.title = "`backward(v)` : le produit vecteur-jacobienne"
    wrong.section = SECTION
    return wrong


def visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).replace("\u00a0", " ")


def test_plain_text_has_the_label_title_explanation_hint_and_section():
    text = failure().render().replace("\u00a0", " ")
    lines = text.splitlines()
    assert lines[0] == "❌ tp1_vjp — Réponse incorrecte · `backward(v)` : le produit vecteur-jacobienne"
    assert "`v` doit avoir la forme de `z`" in lines[1]
    assert lines[2] == '   💡 Indice : tapez `hint("tp1_vjp")` pour un indice.'
    assert lines[3] == f"   📖 À relire dans la leçon : « {SECTION[1]} » ({LESSON})"


@pytest.mark.parametrize(
    ("kind", "icon", "label"),
    [(WrongAnswer, "❌", "Réponse incorrecte"), (NotAttempted, "⬜", "Question non tentée")],
)
def test_box_says_in_words_what_its_colour_says(kind, icon, label):
    box = VerdictBox.from_failure(failure(kind))
    markup = box._repr_html_()
    shown = visible_text(markup)
    assert f"{icon} {label} — backward(v) : le produit vecteur-jacobienne" in shown
    assert f'aria-label="Verdict de tp1_vjp\u00a0: {label}"' in markup
    assert '<span aria-hidden="true">' + icon in markup  # the label, not the emoji, is what a screen reader says
    assert "<pas du HTML>" not in markup and "&lt;pas du HTML&gt;" in markup
    assert "<code>v</code>" in markup
    assert 'Indice : tapez hint("tp1_vjp") pour un indice.' in shown
    assert f"À relire dans la leçon : « {SECTION[1].replace('`', '')} » ({LESSON})" in shown
    assert box.text() == failure(kind).render()


def test_each_kind_has_its_own_colour():
    borders = {
        kind: re.search(r"border-left:6px solid (#\w+)", VerdictBox(kind, "q", "m")._repr_html_()).group(1)
        for kind in ("correct", "incorrect", "not_attempted")
    }
    assert len(set(borders.values())) == 3


def test_success_box_shows_points_and_title():
    box = VerdictBox("correct", "tp1_vjp", "bravo", "Le titre", points=3)
    assert box.text().replace("\u00a0", " ").startswith("✅ tp1_vjp — Correct (3 points) · Le titre\n   bravo")
    assert "(tp1_vjp, 3 points)" in visible_text(box._repr_html_())
    assert "À relire" not in box.text()


def test_section_link_points_at_the_heading_cell_from_the_kernels_folder(monkeypatch):
    cell_id = next(c.id for c in read(ROOT / LESSON).cells if c.cell_type == "markdown" and "## 5." in c.source)
    assert section_link(SECTION, start=ROOT / "release" / "tp1_gradients") == f"../../{LESSON}#cell-id={cell_id}"
    monkeypatch.chdir(ROOT / "notebooks")  # a lesson's kernel: the link stays in the lesson's folder
    markup = VerdictBox.from_failure(failure())._repr_html_()
    assert f'<a href="{Path(LESSON).name}#cell-id={cell_id}"' in markup


def test_section_link_is_left_out_when_the_lesson_is_not_there(tmp_path):
    assert section_link(SECTION, start=tmp_path) is None
    assert section_link((LESSON, "Un titre qui n'existe pas"), start=ROOT) == LESSON
    assert _heading_cell(str(ROOT / LESSON), 0, _plain("Un titre qui n'existe pas")) is None


@pytest.mark.parametrize("exercise", [e for e in all_exercises() if e.section], ids=lambda e: e.id)
def test_every_section_names_a_heading_of_its_lesson(exercise):
    path, title = exercise.section
    assert path.startswith("notebooks/") and path.endswith(".ipynb"), exercise.section
    if not (ROOT / path).is_file():
        pytest.skip(f"{path} n'est pas encore dans le dépôt")
    assert _heading_cell(str(ROOT / path), 0, _plain(title)), f"{exercise.id} : aucun titre « {title} » dans {path}"


def test_outside_a_kernel_a_failing_check_raises_and_prints_nothing(capsys):
    assert not mode.interactive()
    with pytest.raises(NotAttempted) as raised:
        get_exercise("tp1_vjp").check({})
    assert capsys.readouterr().out == ""
    assert raised.value.title == get_exercise("tp1_vjp").title


def test_grading_is_read_from_the_environment_the_process_started_with(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(mode, "_AT_START", "autograde")
    assert mode.grading()
    monkeypatch.setattr(mode, "_AT_START", "")
    assert not mode.grading()
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    assert mode.grading()
