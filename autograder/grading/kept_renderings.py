"""Renderings kept per text: most of a feedback page is the release's text, the same in every copy.

A feedback process renders a page per copy; the Markdown, the highlighted code and the cleaned HTML of the
release's cells come out the same every time. ``kept(render)`` remembers ``render``'s result per arguments
(pure functions of their text only), for texts up to ``SHORT_TEXT`` characters: a student's long output
or pasted data is rendered each time, not kept.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

SHORT_TEXT = 64 * 1024
KEPT = 4096  # renderings per function (the cells of a few TPs), least recently used dropped first


def kept(render: Callable[..., str]) -> Callable[..., str]:
    """``render(text, *keys)``, remembered per arguments when ``text`` is short (``keys`` must be hashable)."""
    remembered = lru_cache(maxsize=KEPT)(render)

    def call(text: str, *keys: Any) -> str:
        return remembered(text, *keys) if len(text) <= SHORT_TEXT else render(text, *keys)

    return call
