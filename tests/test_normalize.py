"""Level 1: normalization and keyword matching, pure functions."""

from __future__ import annotations

import pytest

from bot.locales import KeywordIndex, normalize, runs


@pytest.mark.parametrize(("raw", "expected"), [
    ("Hi", "hi"),
    ("  HOLA!!! ", "hola"),
    ("¡Hola!", "hola"),
    ("Hola 👋🏽", "hola"),
    ("👋 Hi ❤️", "hi"),
    ("Ｈｉ", "hi"),  # full-width Latin
    ("ﾊｲ", "ハイ"),  # half-width katakana
    ("ﻣﺮﺣﺒﺎ", "مرحبا"),  # Arabic presentation forms
    ("مرحـــبا", "مرحبا"),  # tatweel
    ("مَرْحَبًا", "مرحبا"),  # harakat
    ("नमस्ते", "नमस्ते"),  # Devanagari signs are letters, not diacritics to drop
    ("Hi   there", "hi there"),
    ("ARRÊT", "arrêt"),
])
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_runs() -> None:
    assert runs("hiii") == ("hi", (1, 3))
    assert runs("hallo") == ("halo", (1, 1, 2, 1))


def test_elongation_matches_but_shortening_does_not() -> None:
    index = KeywordIndex()
    index.add("Hallo", "de")
    index.add("Hi", "en")
    index.add("安安", "zh_Hant")
    assert index.lookup("hallooo") == ["de"]
    assert index.lookup("hiiii") == ["en"]
    assert index.lookup("halo") == []  # fewer letters: another word
    assert index.lookup("安") == []
    assert index.lookup("安安安") == ["zh_Hant"]
    assert index.lookup("hill") == []
    assert index.lookup("high") == []


def test_exact_match_wins_over_elongation() -> None:
    index = KeywordIndex()
    index.add("Halo", "id")
    index.add("Hallo", "de")
    assert index.lookup("hallo") == ["de"]
    assert index.lookup("halo") == ["id"]
