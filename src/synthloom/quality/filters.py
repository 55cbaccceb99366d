"""Heuristic record filters: each rule says why a text fails it, or None when it passes.

The `filter` step (synthloom.steps.filter) applies them to a run's records and counts what
each one removed; they are plain functions so a task or a test can use one on its own.

- length: fewer/more words or characters than asked
- blocklist: a listed word or phrase, whole words, any case
- refusal: a refusal or apology instead of an answer ("As an AI...", "I'm sorry, but I can't")
- language: the text is confidently in another language (py3langid; texts under
  `LANGUAGE_MIN_WORDS` words are not judged: too short to tell)
- cut_off: the model stopped at its token limit (finish reason "length" in the record's
  provenance, notes or data). synthloom's own tasks never keep a cut-off answer (the engine
  asks again, and Self-Instruct drops the cut-off last item of a list), so this rule is for
  records made elsewhere that say how the model finished
- empty / echo: nothing but punctuation or space, or a near copy of the record's prompt
- score: a judge score below a threshold (see tasks/score.py)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from synthloom.quality.dedup import is_near_copy, normalize, words

__all__ = [
    "LANGUAGE_MIN_WORDS",
    "blocklist_matcher",
    "cut_off",
    "echo_of_prompt",
    "language_of",
    "length_reason",
    "refusal",
]

# A refusal or disclaimer anywhere, or an apology that opens the text.
_ANYWHERE = [
    r"as an ai\b",
    r"as an? (?:ai )?(?:large )?language model",
    r"i(?:'m| am) (?:just )?an ai\b",
    r"i (?:can ?not|can't|won't|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:help|assist|provide|fulfil|fulfill|comply|create|generate|write|do that|answer)",
    r"i(?: do not|'m not| am not| don't) (?:have (?:access|the ability|personal)|able to browse)",
    r"(?:against|violates?) (?:my|the) (?:guidelines|policies|programming)",
]
_OPENING = [
    r"(?:i'?m|i am) (?:so |very |really )?sorry",
    r"(?:my )?apologies",
    r"i apologi[sz]e",
    r"sorry,? (?:but )?i",
    r"unfortunately,? i (?:can ?not|can't|am unable|'m unable)",
]
_REFUSAL_ANYWHERE = re.compile("|".join(f"(?:{p})" for p in _ANYWHERE))
_REFUSAL_OPENING = re.compile("|".join(f"(?:{p})" for p in _OPENING))
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
LANGUAGE_MIN_WORDS = 4  # shorter texts are not judged by the language check
LANGUAGE_MIN_PROB = 0.9  # py3langid's normalised probability needed to call it another language


def length_reason(
    text: str,
    *,
    min_words: int = 0,
    max_words: int | None = None,
    min_chars: int = 0,
    max_chars: int | None = None,
) -> str | None:
    """`too_short` / `too_long` with the count, or None."""
    n_words, n_chars = len(text.split()), len(text.strip())
    if n_words < min_words:
        return f"too_short: {n_words} words < {min_words}"
    if n_chars < min_chars:
        return f"too_short: {n_chars} characters < {min_chars}"
    if max_words is not None and n_words > max_words:
        return f"too_long: {n_words} words > {max_words}"
    if max_chars is not None and n_chars > max_chars:
        return f"too_long: {n_chars} characters > {max_chars}"
    return None


def blocklist_matcher(terms: Iterable[str]) -> Callable[[str], str | None]:
    """A function giving the first listed term in a text (whole words, any case), or None."""
    cleaned = sorted({" ".join(words(t)) for t in terms} - {""}, key=len, reverse=True)
    if not cleaned:
        return lambda text: None
    body = "|".join(r"\s+".join(re.escape(w) for w in t.split()) for t in cleaned)
    pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)")

    def match(text: str) -> str | None:
        found = pattern.search(" ".join(words(text)))
        return found.group(0) if found else None

    return match


def refusal(text: str) -> str | None:
    """The refusal or apology phrase found (case-insensitive), or None."""
    low = text.translate(_APOSTROPHES).casefold()
    found = _REFUSAL_ANYWHERE.search(low)
    if found is None:
        found = _REFUSAL_OPENING.match(low.lstrip(" \t\n\"'*-"))
    return found.group(0) if found else None


@cache
def _identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:  # pragma: no cover - depends on the install
        from synthloom.errors import UserError

        raise UserError(
            "the language check needs py3langid: pip install 'synthloom[lang]'"
        ) from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_of(text: str) -> tuple[str, float] | None:
    """(ISO 639-1 code, probability) from py3langid, or None for a text too short to tell."""
    if len(words(text)) < LANGUAGE_MIN_WORDS:
        return None
    code, prob = _identifier().classify(text)
    return str(code), float(prob)


def cut_off(record: Mapping[str, Any]) -> bool:
    """The model stopped at its token limit: finish reason "length" in the record's
    provenance (`finish_reason`, kept by tasks that accept cut answers), notes or data."""
    places = (record.get("provenance") or {}, record.get("notes") or {}, record.get("data") or {})
    return any(isinstance(p, dict) and p.get("finish_reason") == "length" for p in places)


def echo_of_prompt(text: str, prompt: str, threshold: float = 0.9) -> bool:
    """The answer only repeats its prompt (a near copy, or the prompt with nothing added)."""
    a, b = normalize(text), normalize(prompt)
    if not a or not b:
        return False
    return a == b or is_near_copy(text, prompt, threshold)
