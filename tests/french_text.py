"""The French text students and instructors read, extracted for checking, and the checks themselves.

Where the text comes from: markdown cells of the lessons (``notebooks/``) and of the TPs (``source/``;
``release/`` is generated from it), French string literals of the package (``ast``: constants and the
literal parts of f-strings, docstrings left out), the HTML feedback template, and the help of every
``autograder`` sub-command. What is checked: spelling with hunspell's French dictionary plus the short
project word list, the typographic convention (``autograder.typography``), the headings outline and the
text description that follows every figure.
"""

from __future__ import annotations

import ast
import html
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tests.notebook_tools import ASSIGNMENTS, LESSONS, ROOT, source_notebook

PACKAGE = ROOT / "autograder"
TEMPLATES = PACKAGE / "templates"
WORD_LIST = Path(__file__).with_name("mots_du_projet.txt")
DICTIONARY = "fr_FR"


@dataclass(frozen=True)
class Passage:
    """A piece of French text and where a reader finds it (file and cell, line or command)."""

    where: str
    text: str


# -- where the notebooks are -------------------------------------------------------------------
def course_notebooks() -> list[Path]:
    """Every lesson and every TP source notebook (release/ is generated from source/)."""
    return LESSONS + [source_notebook(a) for a in ASSIGNMENTS]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def markdown_cells(path: Path) -> Iterator[tuple[int, str, str]]:
    """(index, id, source) of each markdown cell."""
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            yield index, cell.get("id", "?"), cell.source


def notebook_passages(path: Path) -> list[Passage]:
    return [
        Passage(f"{relative(path)}, cellule {i} ({cell_id})", source) for i, cell_id, source in markdown_cells(path)
    ]


# -- prose for the spell-checker ---------------------------------------------------------------
_FENCED = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.DOTALL | re.MULTILINE)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LATEX = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.DOTALL)
_LINK_TARGET = re.compile(r"\]\([^)\s]*\)")
_URL = re.compile(r"(?:https?|file)://\S+|\bwww\.\S+")
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|em|strong|code|pre|kbd|span|div|p|br|hr|img|details|summary|sub|sup|small|ul|ol|li|"
    r"table|thead|tbody|tr|td|th|h[1-6]|html|head|body|meta|title|link|style|script)\b[^<>]*>|<!--.*?-->",
    re.IGNORECASE | re.DOTALL,
)
# A foreign term is set in italics, *mini-batch*: an italic span with no French marker is left out.
_FOREIGN_ITALICS = re.compile(r"(?<![*\w])\*(?!\*)([^*\n]+?)\*(?![*\w])")
_EMPHASIS = re.compile(r"(?<!\w)_+|_+(?!\w)|\*+|~~")
_EDGE_PUNCTUATION = "«»“”\"'’()[]{}<>,;:!?.…*|"


def _is_not_prose(core: str) -> bool:
    """Identifiers, numbers, paths and math: `x.grad`, tp1_vjp, 2x, f'(x), x², ∂z/∂y, λmax, id,nom…"""
    if not core or core.startswith("-"):
        return True
    if re.search(r"[_/\\=+<>@#$%^&|~`]|\(|\)|\[|\]|\w[.,:]\w", core):
        return True
    for char in core:
        if char in "'’-·":
            continue
        category = unicodedata.category(char)
        if category[0] != "L" or category == "Lm" or not unicodedata.name(char, "").startswith("LATIN"):
            return True
    return False


def prose_words(text: str) -> str:
    """Keep the words of ``text`` that a French dictionary must know, line by line; the rest goes.

    Left out: fenced code, code spans, LaTeX, URLs and link targets, HTML tags, emoji, numbers,
    identifiers (``_``, ``()``, ``.``), command-line options, paths and math.
    """
    for pattern in (_FENCED, _CODE_SPAN, _LATEX, _LINK_TARGET, _URL, _HTML_TAG):
        text = pattern.sub(lambda m: "\n" * m.group().count("\n") or " ", text)
    text = _FOREIGN_ITALICS.sub(lambda m: m.group() if _FRENCH_MARKERS.search(m.group(1)) else " ", text)
    text = _EMPHASIS.sub(" ", html.unescape(text))
    lines = []
    for line in text.split("\n"):
        chunks = re.split(r"[\s\u00a0\u202f]+", line)
        # A chunk that starts with a dot is a file extension (.ipynb) or a method (.grad).
        # A chunk that holds "()" is a call, `backward()`.
        cores = (c.strip(_EDGE_PUNCTUATION) for c in chunks if not re.match(r"[(«\[]*\.\w", c) and "()" not in c)
        lines.append(" ".join(core for core in cores if not _is_not_prose(core)))
    return "\n".join(lines)


# -- hunspell -----------------------------------------------------------------------------------
def hunspell_missing() -> str | None:
    """None when hunspell and its French dictionary work; otherwise, in French, what is missing."""
    if shutil.which("hunspell") is None:
        return "hunspell est introuvable (paquets Debian « hunspell » et « hunspell-fr »)"
    probe = subprocess.run(
        ["hunspell", "-d", DICTIONARY, "-l"], input="maison\n", capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0 or "Can't open" in probe.stderr or probe.stdout.strip():
        return f"le dictionnaire français {DICTIONARY} de hunspell est introuvable (paquet Debian « hunspell-fr »)"
    return None


def project_words() -> list[str]:
    return [w.strip() for w in WORD_LIST.read_text(encoding="utf-8").splitlines() if w.strip()]


def _personal_dictionary(folder: Path) -> Path:
    """The project words for hunspell. A word is inflected like « gradient » (plural, « l'… », « d'… »)
    unless its line names another model word, as in ``rétropropager/propager`` for a verb."""
    path = folder / "mots.dic"
    entries = (word if "/" in word else f"{word}/gradient" for word in project_words())
    path.write_text("".join(f"{entry}\n" for entry in entries), encoding="utf-8")
    return path


def unknown_words(passages: Iterable[Passage]) -> list[tuple[str, str]]:
    """(where, word) for every word that hunspell's French dictionary and the project list do not know.

    One hunspell process lists the unknown words of the whole batch (``-l``, no suggestions: fast);
    each one is then traced back to the lines of prose that contain it.
    """
    lines = [
        (passage.where, line) for passage in passages for line in prose_words(passage.text).splitlines() if line.strip()
    ]
    if not lines:
        return []
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            ["hunspell", "-d", DICTIONARY, "-p", str(_personal_dictionary(Path(folder))), "-i", "utf-8", "-l"],
            input="".join(line + "\n" for _, line in lines),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=True,
        )
    unknown = set(result.stdout.split())
    found = []
    for where, line in lines:
        for token in re.findall(r"[\w'’·-]+", line):
            candidates = {token, token.strip("'’-·")}
            found += [(where, word) for word in sorted(candidates & unknown)]
    return list(dict.fromkeys(found))


# -- package messages ---------------------------------------------------------------------------
_FRENCH_MARKERS = re.compile(
    r"[àâçéèêëîïôûùüÿœ]|\b(?:le|la|les|un|une|des|du|de|et|est|pas|pour|avec|dans|sur|vous|votre|vos|ne|n'|qu'|d'|l'|"
    r"aucun|aucune|ou|au|aux|ce|cette|sont|par|sans|ici)\b",
    re.IGNORECASE,
)
PLACEHOLDER = "\ue001"  # stands for a {value} of an f-string


def _docstring_nodes(tree: ast.AST) -> set[int]:
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                nodes.add(id(first.value))
    return nodes


def is_french_prose(text: str) -> bool:
    """At least two words and a French marker (accent or function word): not an identifier, a path,
    a format spec, a regex, nor a deliberately English message such as a copy of Python's own errors."""
    words = re.findall(r"[^\W\d_]{2,}", text.replace(PLACEHOLDER, " "))
    return len(words) >= 2 and bool(_FRENCH_MARKERS.search(text))


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_strings(path: Path) -> list[Passage]:
    """French prose literals of a module: str constants and f-strings ({value} → placeholder)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstring_nodes(tree)
    inside_fstring: set[int] = set()
    passages = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for sub in ast.walk(node):
                inside_fstring.add(id(sub))
            text = "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or id(node) in inside_fstring:
                continue
            text = node.value
        else:
            continue
        if is_french_prose(text):
            passages.append(Passage(f"{relative(path)}:{node.lineno}", text))
    return sorted(passages, key=lambda p: (p.where.split(":")[0], int(p.where.split(":")[1])))


def package_passages() -> list[Passage]:
    return [passage for path in package_modules() for passage in module_strings(path)]


# -- feedback template --------------------------------------------------------------------------
_TEMPLATE_CODE = re.compile(
    r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|<style\b.*?</style>|<script\b.*?</script>|<!--.*?-->", re.DOTALL
)


def template_passages() -> list[Passage]:
    """The text of each template line, Jinja, CSS, scripts, comments and HTML tags left out."""
    passages = []
    for path in sorted(TEMPLATES.rglob("*.j2")):
        source = path.read_text(encoding="utf-8")
        # Blank the code but keep the newlines, so that line numbers stay right.
        text = _TEMPLATE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)
        text = re.sub(r"<[A-Za-z/!][^<>]*>", lambda m: " " * len(m.group()), text)
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                passages.append(Passage(f"{relative(path)}:{number}", html.unescape(line.strip())))
    return passages


# -- headings and figures -----------------------------------------------------------------------
_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")


def headings(source: str) -> list[tuple[int, str]]:
    """(level, text) of the ATX headings of a markdown cell, fenced code left out."""
    found = []
    for line in _FENCED.sub("", source).splitlines():
        match = _HEADING.match(line)
        if match:
            found.append((len(match.group(1)), (match.group(2) or "").strip()))
    return found


def outline_problems(path: Path) -> list[str]:
    """One level-1 heading, in the first markdown cell; no skipped level; no empty heading; no two
    headings with the same text at the same level under the same parent."""
    problems = []
    cells = list(markdown_cells(path))
    level_ones = [(i, text) for i, _, source in cells for level, text in headings(source) if level == 1]
    if len(level_ones) != 1:
        problems.append(f"{len(level_ones)} titres de niveau 1 (« # ») au lieu d'un seul : {level_ones}")
    first = cells[0] if cells else None
    if first is None or not headings(first[2]) or headings(first[2])[0][0] != 1:
        problems.append("la première cellule de texte ne commence pas par le titre de niveau 1 (« # »)")
    previous = 0
    parents: list[str] = []  # the heading text at each level above the current one
    seen: set[tuple[tuple[str, ...], int, str]] = set()
    for index, _, source in cells:
        for level, text in headings(source):
            where = f"cellule {index}, « {'#' * level} {text} »"
            if not text:
                problems.append(f"{where} : titre vide")
            if level > previous + 1:
                problems.append(f"{where} : niveau {level} directement après un niveau {previous} (niveau sauté)")
            parents = parents[: level - 1]
            key = (tuple(parents), level, text.casefold())
            if key in seen:
                problems.append(f"{where} : même titre, au même niveau, sous le même parent")
            seen.add(key)
            parents += [""] * (level - 1 - len(parents)) + [text]
            previous = level
    return problems


# A code cell draws a figure when it calls matplotlib (plt., ax., fig), draw_graph, or a course
# widget that plots (an *_explorer(...) or a plot...(...) function).
_DRAWS = re.compile(
    r"^(?!\s*#).*?(?:\b(?:plt|ax|axes|axs|fig)\.\w|\bdraw_graph\(|\b\w*explorer\(|\b\w*plot\w*\(|\.imshow\(|\.hist\()",
    re.MULTILINE,
)
FIGURE_PREFIX = "*Figure\u00a0:"


def draws_figure(source: str) -> bool:
    lines = (re.sub(r"#.*", "", line) for line in source.splitlines() if not re.match(r"\s*(import|from)\s", line))
    code = "\n".join(lines)
    code = re.sub(r"^\s*def .*$", "", code, flags=re.MULTILINE)
    return bool(_DRAWS.search(code))


def figure_problems(path: Path) -> list[str]:
    """Every code cell that draws is immediately followed by a markdown cell starting with « *Figure : »."""
    cells = nbformat.read(path, as_version=4).cells
    problems = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not draws_figure(cell.source):
            continue
        following = cells[index + 1] if index + 1 < len(cells) else None
        if following is None or following.cell_type != "markdown":
            problems.append(
                f"cellule {index} ({cell.get('id')}) dessine une figure mais n'est pas suivie de sa description"
            )
        elif not following.source.lstrip().startswith(FIGURE_PREFIX):
            problems.append(
                f"cellule {index + 1} ({following.get('id')}) suit une figure et doit commencer par "
                f"« {FIGURE_PREFIX} » (U+00A0 avant les deux-points), pas « {following.source[:30]}… »"
            )
        elif len(prose_words(following.source).split()) < 12:
            problems.append(f"cellule {index + 1} ({following.get('id')}) : description de figure trop courte")
    return problems
