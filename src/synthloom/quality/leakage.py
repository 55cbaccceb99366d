"""Template leakage: generated text that shows the prompt rather than the task.

Three signs, each a flag on a record (the report counts and lists them; the `filter` step can
drop them):

- placeholder brackets a model left unfilled: `[product_name]`, `[NAME]`, `<name>`, `{name}`;
- text copied from the prompt itself: a run of `COPY_WORDS` words that appears in the literal
  text of the record's own template (Jinja tags removed) or in an example sentence that a
  synthloom prompt showed (`PROMPT_EXAMPLES`, kept so that older runs are checked too);
- an opening repeated across many records: the first `OPENING_WORDS` words shared by at least
  `OPENING_SHARE` of the records (and at least `OPENING_MIN` of them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache

from synthloom.quality.dedup import words
from synthloom.templates import PROMPTS_DIR

__all__ = [
    "OPENING_WORDS",
    "copied_prompt_text",
    "opening",
    "placeholders",
    "repeated_openings",
    "template_phrases",
    "template_source",
]

COPY_WORDS = 6
OPENING_WORDS = 3
OPENING_SHARE = 0.1
OPENING_MIN = 3
# Example sentences earlier synthloom prompts showed the model (augment's style demos): a
# record holding one was copied from the prompt, whichever version made it.
PROMPT_EXAMPLES = (
    "This product broke after one day.",
    "The item stopped working within 24 hours.",
    "Regrettably, the product ceased to function after a single day of use.",
    "Ugh, this thing died on me after literally one day.",
    "Dead within a day.",
    "This product broke after one day: the power button stopped responding the next morning.",
)
_PLACEHOLDER_WORDS = (
    "name|product|company|brand|date|time|location|city|country|place|user|username|your|"
    "insert|item|number|email|phone|address|topic|title|person|customer|store|service|"
    "team|amount|price|link|url|x|y|z"
)
_PLACEHOLDER = re.compile(
    r"\[\s*(?:[A-Za-z]+_[A-Za-z_]+|[A-Z]{2,}(?:[ _][A-Z]+)*|"
    rf"(?:(?:[A-Za-z]+[ _])*(?i:{_PLACEHOLDER_WORDS})(?:[ _][A-Za-z]+)*))\s*\]"
    rf"|<\s*(?:[a-z]+_[a-z_]+|(?i:{_PLACEHOLDER_WORDS})(?:[ _][a-z]+)*)\s*>"
    r"|\{\{?\s*[A-Za-z_][A-Za-z0-9_]*\s*\}?\}"
)
_JINJA = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.S)


def placeholders(text: str) -> list[str]:
    """Unfilled placeholders in the text, e.g. ["[product_name]", "<name>"]."""
    return [m.group(0) for m in _PLACEHOLDER.finditer(text)]


def _grams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def template_source(name: str) -> str:
    """The source of the shipped prompt template `name` ("" if there is none by that name)."""
    path = PROMPTS_DIR / f"{name}.jinja"
    if not name or "/" in name or not path.is_file():
        return ""
    return path.read_text(encoding="utf-8")


@cache
def template_phrases(source: str, n: int = COPY_WORDS) -> frozenset[tuple[str, ...]]:
    """Word n-grams of a template's literal text (Jinja tags, variables, comments removed),
    each line on its own, plus those of `PROMPT_EXAMPLES`."""
    grams: set[tuple[str, ...]] = set()
    for line in [*_JINJA.sub("\n", source).splitlines(), *PROMPT_EXAMPLES]:
        toks = words(line)
        grams |= _grams(toks, n) if len(toks) >= n else ({tuple(toks)} if len(toks) >= 4 else set())
    return frozenset(grams)


def copied_prompt_text(text: str, phrases: frozenset[tuple[str, ...]], n: int = COPY_WORDS) -> str:
    """The first phrase of the prompt (see `template_phrases`) the text holds, or ""."""
    toks = words(text)
    for i in range(len(toks)):
        for size in {n, *range(4, n)}:
            gram = tuple(toks[i : i + size])
            if len(gram) == size and gram in phrases:
                return " ".join(gram)
    return ""


def opening(text: str, n: int = OPENING_WORDS) -> str:
    """The first `n` words, lowercased ("" for a text of fewer words)."""
    toks = words(text)
    return " ".join(toks[:n]) if len(toks) >= n else ""


def repeated_openings(
    texts: Iterable[str],
    *,
    n: int = OPENING_WORDS,
    share: float = OPENING_SHARE,
    minimum: int = OPENING_MIN,
) -> dict[str, int]:
    """Openings (first `n` words) shared by at least `share` of the texts and at least
    `minimum` of them: opening -> count, most common first."""
    counts = Counter(opening(t, n) for t in texts)
    total = sum(counts.values())
    counts.pop("", None)
    floor = max(minimum, share * total)
    return {o: c for o, c in counts.most_common() if c >= floor}
