"""Text normalisation shared by the quality tools and the tasks: plain Python, so importing it
costs nothing (synthloom.quality.dedup, which re-exports these, needs numpy and rapidfuzz)."""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


# ASCII characters `_is_edge_junk` strips: whitespace and Unicode punctuation (P*); for ASCII
# text NFKC changes nothing and casefold is lower(), so `normalize` takes a shorter way there
_ASCII_EDGE = "".join(chr(c) for c in range(128) if _is_edge_junk(chr(c)))


def normalize(text: str) -> str:
    """NFKC + casefold, collapse whitespace, strip punctuation/space at both ends."""
    if text.isascii():  # the same result, ~10x faster (tests/test_quality_text.py)
        return " ".join(text.lower().split()).strip(_ASCII_EDGE)
    return _normalize_any(text)


def _normalize_any(text: str) -> str:
    text = _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def words(text: str) -> list[str]:
    """Casefolded word tokens (``\\w+`` runs); the tokenizer shared by all quality tools."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
