"""Numbers and spacing written the French way, as every verdict and widget shows them."""

from __future__ import annotations

import math

import pytest

from autograder.typography import NBSP, french_number, french_spacing


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (0.5, 4, "0,5"),
        (2.0, 4, "2"),
        (0.77123, 2, "0,77"),
        (1.9e7, 2, "1,9 × 10^7"),
        (3e-5, 3, "3 × 10^-5"),
        (math.inf, 3, "l'infini"),
        (-math.inf, 3, "moins l'infini"),
        (math.nan, 3, "`nan` (pas un nombre)"),
    ],
)
def test_french_number(value, digits, expected):
    assert french_number(value, digits) == expected


def test_french_spacing_leaves_code_alone():
    assert french_spacing("Perte : `a : b` « ok »") == f"Perte{NBSP}: `a : b` «{NBSP}ok{NBSP}»"


def test_french_spacing_leaves_markdown_images_alone():
    assert french_spacing("Voir ![le graphe](g.png) ici !") == f"Voir ![le graphe](g.png) ici{NBSP}!"
