"""French typographic spacing, applied to every message a student reads, and its checker.

Convention (documented in the README): a no-break space (U+00A0) before « : ; ! ? » and inside
« guillemets »; French quotation marks « … », never straight double quotes; decimal comma in prose
(0,5), point in code. Code, LaTeX, URLs and HTML tags are left untouched.
"""

from __future__ import annotations

import html
import math
import re

NBSP = "\u00a0"
# Code blocks, code spans and LaTeX are left as they are.
_PROTECTED = re.compile(r"(```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$)", re.DOTALL)
# « ! » right before « [ » is markdown's image syntax (« ![description](image.png) »), not punctuation.
_BEFORE = re.compile(r"[ \u202f]([:;?»]|!(?!\[))")
_AFTER = re.compile(r"«[ \u202f]")


def _fix(text: str) -> str:
    text = _BEFORE.sub(NBSP + r"\1", text)
    return _AFTER.sub("«" + NBSP, text)


def french_spacing(text: str) -> str:
    """Replace plain spaces by no-break spaces where French typography wants them (outside code)."""
    parts = _PROTECTED.split(text)
    # re.split with one group alternates: text, protected, text, protected, ...
    return "".join(part if i % 2 else _fix(part) for i, part in enumerate(parts))


# -- checker -----------------------------------------------------------------------------------
# What the checker leaves out besides code and LaTeX: URLs and HTML tags (entities are read as characters).
_HTML_TAG = (
    r"</?(?:a|b|i|em|strong|code|pre|kbd|span|div|p|br|hr|img|details|summary|sub|sup|small|ul|ol|li|"
    r"table|thead|tbody|tr|td|th|h[1-6]|html|head|body|meta|title|link|style|script)\b[^<>]*>|<!.*?>"
)
_CHECK_PROTECTED = re.compile(_PROTECTED.pattern + r"|(?:https?|file)://[^\s)>\]]+|" + _HTML_TAG, re.DOTALL)
_ENTITY = re.compile(r"&#?\w+;")
CODE = "\ue000"  # stands for a protected part, so that « `x` : » is still checked
_WORDLIKE = r"[\w)\]*" + CODE + "]"
_RULES = [
    (_BEFORE, "espace ordinaire avant « {0} » au lieu d'une espace insécable"),
    (_AFTER, "espace ordinaire après « « » au lieu d'une espace insécable"),
    (re.compile(rf"(?<={_WORDLIKE})(?:[;!?»]|:(?!\d))"), "espace insécable manquante avant « {0} »"),
    (re.compile(rf"«(?={_WORDLIKE}|[(«])"), "espace insécable manquante après « « »"),
    (re.compile(r'"'), 'guillemets droits `"` : écrivez « … »'),
    (re.compile(r"<<|>>"), "« {0} » au lieu de guillemets « … »"),
]
# 0.5 in prose is a decimal point; not a version number after a name (« PyTorch 2.0 », « Ubuntu 24.04 »).
_DECIMAL_POINT = re.compile(r"(?<![\w.,])\d+\.\d+(?![\w.])")
_VERSION = re.compile(r"\b[A-Z][\w-]*[ \u00a0]$")


def _problem(description: str, prose: str, match: re.Match[str]) -> str:
    """The description (typeset) and the offending excerpt (as it is, with its plain spaces)."""
    excerpt = prose[max(0, match.start() - 20) : match.end() + 20].replace(CODE, "`…`").replace("\n", " ")
    return f"{french_spacing(description)}{NBSP}: «{NBSP}{excerpt.strip()}{NBSP}»"


def typography_problems(text: str, *, decimals: bool = True) -> list[str]:
    """French descriptions of the departures from the convention in ``text`` (outside code and LaTeX).

    ``decimals=False`` skips the decimal-comma rule, for text whose numbers are values printed by
    Python (a verdict quotes them as the student's own outputs show them).
    """
    prose = _CHECK_PROTECTED.sub(CODE, _ENTITY.sub(lambda m: html.unescape(m.group()), text))
    problems = []
    for pattern, description in _RULES:
        for match in pattern.finditer(prose):
            what = match.group().strip(" \u202f")
            problems.append(_problem(description.format(what), prose, match))
    if decimals:
        for match in _DECIMAL_POINT.finditer(prose):
            if not _VERSION.search(prose[: match.start()]):
                found = match.group()
                advice = (
                    f"point décimal dans la prose : écrivez {found.replace('.', ',')} (ou `{found}` si c'est du code)"
                )
                problems.append(_problem(advice, prose, match))
    return list(dict.fromkeys(problems))


def french_number(value: float, digits: int = 4) -> str:
    """A number in French prose: ``digits`` significant digits, decimal comma, powers of ten written out,
    infinity and not-a-number spelled out."""
    if math.isnan(value):
        return "`nan` (pas un nombre)"
    if math.isinf(value):
        return "l'infini" if value > 0 else "moins l'infini"
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa} × 10^{int(exponent)}"
    return text.replace(".", ",")
