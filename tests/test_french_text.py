"""French text quality: spelling (hunspell-fr + the project word list), the typographic convention,
the headings outline and the text description of every figure, over every lesson, every TP source,
every French message of the package, the feedback template and the help of the command line.

A problem fails with its location (file and cell, line or command) and the word or excerpt. The
checkers are first shown to catch planted mistakes and to accept the correct forms.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import nbformat
import pytest

from autograder.exercise import all_exercises
from autograder.typography import french_spacing, typography_problems
from autograder.verdict import NotAttempted, WrongAnswer, success
from tests.french_text import (
    PLACEHOLDER,
    Passage,
    course_notebooks,
    figure_problems,
    hunspell_missing,
    notebook_passages,
    outline_problems,
    package_passages,
    project_words,
    prose_words,
    relative,
    template_passages,
    unknown_words,
)

MISSING = hunspell_missing()
needs_hunspell = pytest.mark.skipif(
    MISSING is not None and not os.environ.get("CI"), reason=f"vérification orthographique impossible : {MISSING}"
)
NOTEBOOKS = course_notebooks()


def report(problems: list[str]) -> str:
    return "\n".join(problems)


def misspelled(passages: list[Passage]) -> list[str]:
    return [f"{where} : « {word} »" for where, word in unknown_words(passages)]


# -- the tools are there in CI ------------------------------------------------------------------
def test_ci_has_hunspell_and_the_french_dictionary():
    """`make test` installs hunspell and hunspell-fr: in CI the spelling is checked, never skipped."""
    if not os.environ.get("CI"):
        pytest.skip("hors CI : hunspell peut manquer sur une machine de développement")
    assert MISSING is None, MISSING


# -- the spell-checker catches what it must and accepts what it must -----------------------------
@needs_hunspell
def test_spell_checker_catches_planted_misspellings_with_their_location():
    passages = [
        Passage("planté.md, cellule 3", "La cellule est éxécutée puis le tenseur référencie sa feuille."),
        Passage("planté.py:12", "Le gradient est calculé pendant la rétropropagation."),
    ]
    assert unknown_words(passages) == [("planté.md, cellule 3", "éxécutée"), ("planté.md, cellule 3", "référencie")]


@needs_hunspell
def test_spell_checker_rejects_english_outside_code_and_accepts_it_inside():
    outside = [Passage("a", "Pendant le backward pass, PyTorch remplit le gradient.")]
    inside = [Passage("b", "Pendant `backward()`, PyTorch remplit `x.grad` ; voir `grad_fn`.")]
    assert {word for _, word in unknown_words(outside)} == {"backward", "pass"}
    assert unknown_words(inside) == []


@needs_hunspell
def test_foreign_terms_in_italics_are_left_out_but_french_italics_are_checked():
    assert prose_words("un *mini-batch*, la *stochastic gradient descent*") == "un la"
    assert prose_words("*Figure : le graphe* et *la fonction de perte*") == "Figure le graphe et la fonction de perte"


def test_spell_checker_accepts_apostrophes_hyphens_and_project_words():
    text = (
        "L’apprentissage, c’est-à-dire l'apprentissage, peut-être aujourd’hui ; qu'autograd et l’EQM "
        "rétropropagent les gradients d'un notebook JupyterLab."
    )
    assert unknown_words([Passage("a", text)]) == []


@needs_hunspell
def test_spell_checker_requires_the_right_case_of_project_words():
    text = "Le cours utilise pytorch, puis Pytorch ; Nbgrader en début de phrase est permis."
    assert unknown_words([Passage("a", text)]) == [("a", "pytorch"), ("a", "Pytorch")]


def test_prose_leaves_out_code_latex_urls_html_numbers_and_identifiers():
    text = (
        "Voir `z.backward()` et $\\frac{\\partial z}{\\partial x}$ sur https://pytorch.org/docs ou "
        "[la documentation](https://pytorch.org). <details><summary>Solution</summary> 3,5 fois x² ; "
        "tp1_vjp, x.grad, f'(x), ∂z/∂y, λmax, 🙂 et --sans-isolation.\n```python\ndef f(x):\n    return x\n```"
    )
    assert prose_words(text).split() == ["Voir", "et", "sur", "ou", "la", "documentation", "Solution", "fois", "et"]


# -- the project word list ----------------------------------------------------------------------
@needs_hunspell
def test_project_word_list_is_short_sorted_and_only_holds_words_the_dictionary_lacks():
    words = project_words()
    assert len(words) < 60
    assert words == sorted(words, key=str.casefold), "liste non triée"
    assert len(set(words)) == len(words), "doublons"
    bare = [word.split("/")[0] for word in words]
    result = subprocess.run(
        ["hunspell", "-d", "fr_FR", "-l"], input="\n".join(bare), capture_output=True, text=True, check=True
    )
    assert set(result.stdout.split()) == set(bare), "mots déjà connus du dictionnaire français"


# -- spelling everywhere ------------------------------------------------------------------------
@needs_hunspell
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=relative)
def test_notebook_markdown_is_spelled_right(notebook):
    problems = misspelled(notebook_passages(notebook))
    assert not problems, "Mots inconnus (écrivez-les en français, ou en `code` s'ils sont du code) :\n" + report(
        problems
    )


@needs_hunspell
def test_package_messages_are_spelled_right():
    problems = misspelled(package_passages())
    assert not problems, "Mots inconnus dans les messages du paquet :\n" + report(problems)


@needs_hunspell
def test_feedback_template_is_spelled_right():
    problems = misspelled(template_passages())
    assert not problems, "Mots inconnus dans le modèle des retours :\n" + report(problems)


_HELP_SCRIPT = """
import sys
from autograder.cli import main

for command in sys.argv[1:]:
    try:
        main([*command.split(), "--help"])
    except SystemExit:
        pass
    print("\\f", flush=True)
"""


def command_names() -> list[str]:
    from autograder.cli import build_parser

    parser = build_parser()
    return [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]


@cache
def cli_help() -> tuple[tuple[str, str], ...]:
    """(command, help text) of `autograder --help` and of each sub-command's `--help`.

    The command line runs in a subprocess, as a user would run it; one process serves every
    sub-command, so that torch is imported once.
    """
    commands = ["", *command_names()]
    result = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT, *commands],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="100"),
        timeout=120,
        check=True,
    )
    helps = result.stdout.split("\f\n")[: len(commands)]
    assert len(helps) == len(commands) and all(h.startswith("utilisation") for h in helps), result.stdout
    return tuple(
        (f"autograder {command} --help".replace("  ", " "), text) for command, text in zip(commands, helps, strict=True)
    )


def cli_passages() -> list[Passage]:
    """The help, line by line; the sub-command names (identifiers, like `verifier`) in code font."""
    names = re.compile(r"\b(" + "|".join(map(re.escape, command_names())) + r")\b")
    return [
        Passage(f"{command}, ligne {number}", names.sub(r"`\1`", line))
        for command, text in cli_help()
        for number, line in enumerate(text.splitlines(), start=1)
    ]


@needs_hunspell
def test_cli_help_is_spelled_right():
    assert len(cli_help()) >= 2
    problems = misspelled(cli_passages())
    assert not problems, "Mots inconnus dans l'aide de la commande :\n" + report(problems)


# -- the typographic convention -----------------------------------------------------------------
def test_typography_checker_catches_planted_mistakes():
    assert typography_problems("Prérequis : les tenseurs")  # plain space before the colon
    assert typography_problems("Prérequis: les tenseurs")  # no space at all
    assert typography_problems("un « mot » entre guillemets")
    assert typography_problems('un "mot" entre guillemets droits')
    assert typography_problems("un <<mot>> entre chevrons")
    assert typography_problems("un taux de 0.5 dans la prose")
    assert typography_problems("voir `x.grad` : la valeur")  # the space after a code span counts too
    assert typography_problems("Prêt ? Oui !")


def test_typography_checker_accepts_the_convention_and_leaves_code_alone():
    nbsp = "\u00a0"
    good = [
        f"Prérequis{nbsp}: les tenseurs{nbsp}; un «{nbsp}mot{nbsp}» entre guillemets{nbsp}! Prêt{nbsp}?",
        "Un taux de 0,5 dans la prose, `lr=0.5` dans le code, depuis PyTorch 2.0 et Ubuntu 24.04.",
        'Le code `print("a : b")` et $f : x \\mapsto x^2$ et https://example.org/a?b=1 restent tels quels.',
        "```python\nx = {'a': 0.5}\n```",
        f"Note&nbsp;: 3 et **Prérequis{nbsp}:** les dérivées.",
    ]
    for text in good:
        assert typography_problems(text) == [], text


def test_french_spacing_output_passes_the_checker():
    raw = "Attention : « mot » ici ; vraiment ? Oui ! Voir `a : b`."
    assert typography_problems(raw)
    assert typography_problems(french_spacing(raw)) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=relative)
def test_notebook_markdown_follows_the_typographic_convention(notebook):
    problems = [
        f"{p.where} : {problem}" for p in notebook_passages(notebook) for problem in typography_problems(p.text)
    ]
    assert not problems, "Convention typographique (README) :\n" + report(problems)


def rendered(passage: Passage) -> str:
    """A raw message as a student reads it: a value in place of each {…}, through french_spacing."""
    return french_spacing(passage.text.replace(PLACEHOLDER, "valeur"))


def test_package_messages_as_rendered_follow_the_typographic_convention():
    problems = [f"{p.where} : {problem}" for p in package_passages() for problem in typography_problems(rendered(p))]
    assert not problems, "Convention typographique dans les messages du paquet :\n" + report(problems)


def test_every_verdict_renders_with_french_spacing():
    """Whatever the message, a verdict, a success and a hint reach the student typeset."""
    problems = []
    for passage in package_passages():
        text = passage.text.replace(PLACEHOLDER, "valeur")
        for verdict in (
            WrongAnswer(text, "q1", hint=text).render(),
            NotAttempted(text, "q1").render(),
            success("q1", text, 2),
        ):
            problems += [f"{passage.where} : {p}" for p in typography_problems(verdict, decimals=False)]
    for exercise in all_exercises():
        shown = exercise.hints_shown
        try:
            for _ in exercise.hints or [None]:
                problems += [f"indice de {exercise.id} : {p}" for p in typography_problems(exercise.next_hint())]
        finally:
            exercise.hints_shown = shown
    assert not problems, report(problems)


def test_cli_prints_hints_and_lists_with_french_spacing(capsys):
    from autograder.cli import main

    for exercise in all_exercises():
        assert main(["indices", exercise.id]) == 0
    assert main(["exercices"]) == 0
    out = capsys.readouterr().out
    assert "Indice" in out
    assert typography_problems(out, decimals=False) == []


def test_cli_help_follows_the_typographic_convention():
    problems = [f"{p.where} : {problem}" for p in cli_passages() for problem in typography_problems(p.text)]
    assert not problems, report(problems)


def test_feedback_template_follows_the_typographic_convention():
    problems = [f"{p.where} : {problem}" for p in template_passages() for problem in typography_problems(p.text)]
    assert not problems, report(problems)


# -- headings outline ---------------------------------------------------------------------------
def write_notebook(path: Path, *cells: tuple[str, str]) -> Path:
    makers = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nbformat.write(nbformat.v4.new_notebook(cells=[makers[kind](source) for kind, source in cells]), path)
    return path


def test_outline_checker_catches_planted_problems(tmp_path):
    bad = write_notebook(
        tmp_path / "mauvais.ipynb",
        ("markdown", "Introduction sans titre"),
        ("markdown", "# Premier titre\n\n#### Niveau sauté"),
        ("code", "# a comment, not a heading\nx = 1"),
        ("markdown", "## Partie\n\n### Exercice\n\n### Exercice\n\n## \n\n# Second titre"),
    )
    problems = report(outline_problems(bad))
    for expected in ("2 titres de niveau 1", "première cellule", "niveau sauté", "même titre", "titre vide"):
        assert expected in problems, problems


def test_outline_checker_accepts_a_clean_outline(tmp_path):
    good = write_notebook(
        tmp_path / "bon.ipynb",
        ("markdown", "# Titre\n\nIntroduction."),
        ("code", "# a comment\nx = 1"),
        ("markdown", "## Partie 1\n\n### Exercice 1\n\n```python\n# not a heading\n```"),
        ("markdown", "## Partie 2\n\n### Exercice 1"),  # same text, other parent: fine
    )
    assert outline_problems(good) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=relative)
def test_notebook_headings_form_a_clean_outline(notebook):
    problems = outline_problems(notebook)
    assert not problems, report(problems)


# -- figures carry a text description -----------------------------------------------------------
DESCRIPTION = (
    "*Figure\u00a0: la courbe de la perte en fonction de l'époque, en échelle logarithmique ; "
    "elle décroît rapidement puis se stabilise.*"
)


def test_figure_checker_catches_a_figure_without_description(tmp_path):
    bad = write_notebook(
        tmp_path / "mauvais.ipynb",
        ("code", "plt.plot(losses)"),
        ("markdown", "La perte diminue."),
        ("code", "draw_graph(z)"),
        ("code", "fig, ax = plt.subplots()\nax.plot([1, 2])"),
        ("markdown", "*Figure : sans espace insécable, et trop courte.*"),
        ("code", "learning_rate_explorer()"),
    )
    problems = figure_problems(bad)
    assert [p.split(" ")[1] for p in problems] == ["1", "2", "4", "5"], problems


def test_figure_checker_accepts_described_figures_and_ignores_other_cells(tmp_path):
    good = write_notebook(
        tmp_path / "bon.ipynb",
        ("code", "import matplotlib.pyplot as plt\nx = 1  # plt.plot would draw"),
        ("code", "plt.plot(losses)"),
        ("markdown", DESCRIPTION),
        ("code", "graph_explorer()"),
        ("markdown", DESCRIPTION),
    )
    assert figure_problems(good) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=relative)
def test_every_figure_is_followed_by_its_text_description(notebook):
    problems = figure_problems(notebook)
    assert not problems, report(problems)
