"""End to end, as students meet the course: `make lab` serves JupyterLab, Chromium (Debian's) shows it.

One JupyterLab server and one browser for the whole module. Each lesson of ``notebooks/`` is run from the
« Exécution » menu; each TP of ``release/`` gets a right answer, then a wrong one, typed into a question.
A screenshot of every notebook lands in ``tests/artifacts/screenshots/`` (ignored by git), for a person to look at.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import browser_tools as bt
from tests import notebook_tools as nt
from tests.fixtures import mistakes
from tests.notebook_tools import ROOT

AVAILABLE, REASON = bt.browser_status()
LESSONS = [p.relative_to(ROOT).as_posix() for p in nt.LESSONS]
TPS = [nt.release_notebook(a).relative_to(ROOT).as_posix() for a in nt.ASSIGNMENTS]

needs_browser = pytest.mark.skipif(not AVAILABLE, reason=f"test dans le navigateur impossible : {REASON}")
pytestmark = pytest.mark.browser


def test_ci_has_a_browser():
    """`make test` installs Chromium: in CI the browser tests run, they are never skipped."""
    if not os.environ.get("CI"):
        pytest.skip("hors CI : Chromium peut manquer sur une machine de développement")
    assert AVAILABLE, REASON


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = bt.start_lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(bt.CHROMIUM), args=bt.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=bt.VIEWPORT, locale="en-US")  # French must come from the course
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def stem(relative: str) -> str:
    return Path(relative).stem


# --- the landing page ------------------------------------------------------------------------------------------


@needs_browser
def test_make_lab_opens_the_sommaire_in_french(lab, page):
    """The page `make lab` asks the browser to open is the sommaire, in a French JupyterLab."""
    (opener,) = (lab.root.parent / "profil" / "runtime").glob("jpserver-file-to-run-*-open.html")
    page.goto(opener.as_uri())
    page.wait_for_selector(f"{bt.PANEL} .jp-Notebook .jp-Cell")
    assert page.locator(".lm-TabBar-tab.jp-mod-current").inner_text().strip() == "00_sommaire.ipynb"
    assert page.locator(f"{bt.PANEL} h1").first.inner_text().startswith("Dérivation automatique avec PyTorch")
    bar = bt.menu_bar(page)
    for title in ("Fichier", "Édition", "Affichage", "Exécution", "Noyau", "Aide"):
        assert title in bar, bar
    assert not {"File", "Edit", "Run", "Kernel", "Help"} & set(bar), bar
    bt.screenshot(page, "00_sommaire")

    # A link of the sommaire opens its notebook in a new tab.
    page.locator(f"{bt.PANEL} .jp-RenderedMarkdown a", has_text="Calcul de gradients avec Autograd").first.click()
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:has-text('01_calcul_de_gradients.ipynb')")


@needs_browser
def test_instructor_extensions_are_not_in_the_students_way(lab, page):
    bt.open_notebook(page, lab, "notebooks/00_sommaire.ipynb")
    assert "Nbgrader" not in bt.menu_bar(page)
    page.keyboard.press("Control+Shift+c")  # command palette
    palette = page.locator("#command-palette input")
    palette.fill("formgrader")
    assert page.locator("#command-palette .lm-CommandPalette-item").count() == 0
    assert lab.status("formgrader") == 404
    assert lab.status("courses") == 404
    assert lab.status("assignments") == 404


# --- lessons ---------------------------------------------------------------------------------------------------


@needs_browser
@pytest.mark.parametrize("lesson", LESSONS, ids=stem)
def test_lesson_runs_in_lab_and_its_widgets_respond(lab, page, lesson):
    bt.open_notebook(page, lab, lesson)
    bt.run_all(page)
    bt.save(page)

    # Every code cell ran; errors only where the lesson shows one on purpose.
    saved = bt.saved_notebook(lab, lesson)
    code = [c for c in saved.cells if c.cell_type == "code"]
    unexpected = [
        (c.id, o.ename, o.evalue)
        for c in code
        for o in c.outputs
        if o.output_type == "error" and "raises-exception" not in c.metadata.get("tags", [])
    ]
    assert not unexpected
    not_run = [c.id for c in code if c.execution_count is None]
    assert not not_run, f"« Exécuter toutes les cellules » s'est arrêté avant {not_run}"

    # Every widget output is rendered by the ipywidgets extension of JupyterLab.
    expected = sum(bt.WIDGET_MIME in o.get("data", {}) for c in code for o in c.outputs)
    notebook_text = page.locator(f"{bt.PANEL} .jp-Notebook").inner_text()
    assert "Error displaying widget" not in notebook_text
    assert page.locator(bt.WIDGET_OUTPUTS).count() >= expected

    # Acting on a widget (slider, text field, choice) changes what it shows.
    for index in range(page.locator(bt.WIDGET_OUTPUTS).count()):
        before = bt.widget_states(page)[index]
        action = bt.nudge_widget(page, index)
        if not action:
            continue
        deadline = time.monotonic() + 30
        while bt.widget_states(page)[index] == before and time.monotonic() < deadline:
            page.wait_for_timeout(300)
        assert bt.widget_states(page)[index] != before, f"widget {index} de {lesson} : {action}, rien n'a changé"
    # A step-by-step widget (the backward replay): « Suivant » moves to the next node, shown in its text and image.
    for index in range(page.locator(bt.WIDGET_OUTPUTS).count()):
        button = page.locator(bt.WIDGET_OUTPUTS).nth(index).locator("button", has_text="Suivant")
        if not button.count():
            continue
        before = bt.widget_states(page)[index]
        button.first.click()
        deadline = time.monotonic() + 30
        while bt.widget_states(page)[index] == before and time.monotonic() < deadline:
            page.wait_for_timeout(300)
        after = bt.widget_states(page)[index]
        assert after != before, f"widget {index} de {lesson} : « Suivant » cliqué, rien n'a changé"
        assert "le moteur exécute" in after and after.split("data:")[0] != before.split("data:")[0], after[:300]
    bt.wait_idle(page)
    bt.screenshot(page, stem(lesson))


# --- TPs -------------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    grade_id: str
    cells: list[int]  # indices of the cells to run, in order: setup, answers, then the check cell
    right: dict[int, str]  # answer cell index -> source
    wrong: dict[int, str]
    expected: str  # fragment of the French explanation of the wrong answer


def question_plan(tp: str) -> Plan:
    """A question of the TP and how to answer it, right then wrong.

    The question is the first one of the TP's ``NBGRADER_CASES``; the right answer comes from the solution block
    of ``source/``, the wrong one from the TP's typical mistakes (other answer cells of the question stay right).
    """
    assignment = Path(tp).parent.name
    cases = mistakes(assignment)
    grade_id, behaviour = next(iter(cases.NBGRADER_CASES.items()))
    wrong = next(w for w in cases.WRONG_ANSWERS if w.behaviour == behaviour)
    release = nt.read(ROOT / tp)
    solutions = nt.solutions(assignment)
    grade_index = next(i for i, c in enumerate(release.cells) if nt.nbgrader_meta(c).get("grade_id") == grade_id)
    previous_grade = max(
        (i for i, c in enumerate(release.cells[:grade_index]) if nt.nbgrader_meta(c).get("grade")), default=-1
    )
    run, right, mistaken = [], {}, {}
    for index, c in enumerate(release.cells[:grade_index]):
        meta = nt.nbgrader_meta(c)
        if c.cell_type != "code":
            continue
        if meta.get("solution") and index > previous_grade:
            run.append(index)
            right[index] = solutions[c.id]
            mistaken[index] = wrong.source if c.id == wrong.cell_id else solutions[c.id]
        elif meta.get("locked") and not meta.get("grade") and not meta.get("solution"):
            run.append(index)
    assert wrong.cell_id in {release.cells[i].id for i in right}, wrong
    return Plan(grade_id, [*run, grade_index], right, mistaken, wrong.expected)


def answer_and_check(page, cells: list[int], sources: dict[int, str]) -> str:
    for index, source in sources.items():
        bt.set_source(page, index, source)
        assert bt.editor_text(page, index).strip() == source.strip(), "le texte tapé a été modifié par l'éditeur"
    for index in cells:
        bt.run_cell(page, index)
    return bt.output_text(page, cells[-1])


@needs_browser
@pytest.mark.parametrize("tp", TPS, ids=stem)
def test_tp_question_answers_in_french_in_lab(lab, page, tp):
    plan = question_plan(tp)
    bt.open_notebook(page, lab, tp)

    # The verdict box: icon and label, then the explanation (code spans in code font, so without backquotes).
    verdict = answer_and_check(page, plan.cells, plan.right)
    assert "✅ Correct" in verdict and f"({plan.grade_id}, " in verdict, verdict

    verdict = answer_and_check(page, plan.cells, plan.wrong)
    assert "❌ Réponse incorrecte" in verdict, verdict
    assert plan.expected.replace("\u00a0", " ").replace("`", "") in verdict, verdict
    bt.screenshot(page, stem(tp))


@needs_browser
def test_blank_tp_restarted_and_run_whole_reaches_its_last_cell(lab, page):
    """The TPs' promise: « Redémarrer le noyau et Exécuter toutes les cellules… » on a blank TP runs every cell; each
    question shows a grey ⬜ box instead of stopping the run, and its link leads to the lesson."""
    tp = TPS[0]
    bt.open_notebook(page, lab, tp)
    bt.restart_and_run_all(page)
    bt.save(page)

    code = [c for c in bt.saved_notebook(lab, tp).cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), [c.id for c in code if not c.execution_count]
    assert not [c.id for c in code for o in c.outputs if o.output_type == "error"]
    boxes = page.locator(f"{bt.PANEL} .autograder-verdict-not_attempted")
    questions = sum(bool(nt.nbgrader_meta(c).get("grade")) for c in code)
    assert boxes.count() == questions
    for index in range(questions):
        assert boxes.nth(index).is_visible()
        assert "Question non tentée" in boxes.nth(index).inner_text().replace("\u00a0", " ")
    bt.screenshot(page, f"{stem(tp)}_tout_executer")

    links = page.locator(f"{bt.PANEL} .autograder-verdict a")
    if links.count():  # the questions name their lesson section (Exercise.section)
        lesson = Path(links.first.get_attribute("href").split("?")[0].split("#")[0]).name
        links.first.click()
        page.wait_for_selector(f".lm-TabBar-tab.jp-mod-current:has-text('{lesson}')")


@needs_browser
def test_validate_button_checks_a_tp(lab, page):
    """nbgrader's student extension: « Validate » in the notebook toolbar runs the TP and answers in a dialog."""
    bt.open_notebook(page, lab, TPS[0])
    button = page.locator(f"{bt.PANEL} .jp-Toolbar .validate-button")
    assert button.count() == 1
    button.click()
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=180_000)
    text = dialog.inner_text().replace("\u00a0", " ")
    # nbgrader's dialog (in English: nbgrader is not translated) quotes our checkers' French verdicts.
    assert "Validation Results" in text, text
    assert "Question non tentée" in text, text
    bt.window_screenshot(page, f"{stem(TPS[0])}_validate")
