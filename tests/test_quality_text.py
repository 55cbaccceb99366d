"""`normalize` (exact dedup, qa's repeated-question flag, near-copy checks) takes a shorter way
for ASCII text (issue 12: it ran three times per qa record); it must give exactly what the
general NFKC + casefold + whitespace + edge-punctuation rule gives."""

from __future__ import annotations

import random
import string

from synthloom.quality.text import _normalize_any, normalize


def test_ascii_shortcut_equals_the_general_rule() -> None:
    rng = random.Random(12)
    alphabet = [chr(c) for c in range(128)]
    cases = [
        "",
        " ",
        "?!",
        "  Hello,   World!  ",
        "What's the return window?",
        "\x1c\x1dword\x1e\x1f",  # ASCII separators are whitespace to str.split and to \s
        "$100 + tax <= 5%",  # $ + < = are symbols (S*), not punctuation: kept
        "...and so on...",
        "tab\tand\nnewline\r\n",
        string.punctuation + "x" + string.punctuation,
    ]
    cases += [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(20_000)
    ]
    words = ["a", "B", " ", "\t", ".", "?", "-", "$", "_", "'", "\x0b", "Zz", "\x7f"]
    cases += ["".join(rng.choice(words) for _ in range(rng.randrange(12))) for _ in range(20_000)]
    for text in cases:
        assert normalize(text) == _normalize_any(text), repr(text)


def test_non_ascii_text_still_normalised() -> None:
    assert normalize("  ＦＵＬＬ　Width — Straße!! ") == "full width — strasse"
