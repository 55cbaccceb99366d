"""Bias audit helpers: which groups (labels, topics, models...) a stage emptied or starved.

A stage (a filter, dedup, the label check of augment) that removes most of one label's
records turns a balanced set into a skewed one without anyone asking for it. `starved`
compares each group's count before and after the stage: a group is *emptied* when it had
records and has none left, and *starved* when the share of its records that survived is less
than half the share that survived for the best-kept group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["TEXT_FIELDS", "group_value", "pick_field", "starved", "starved_warnings"]

# the data field a stage or the report reads when none is named: the first of these a record has
TEXT_FIELDS = (
    "text",
    "response",
    "answer",
    "summary",
    "completion",
    "output",
    "instruction",
    "question",
    "prompt",
)


def pick_field(data: Mapping[str, Any], wanted: str | None, fields: Sequence[str]) -> str | None:
    """`wanted`, or the first of `fields` whose value in `data` is text."""
    if wanted is not None:
        return wanted
    return next((f for f in fields if isinstance(data.get(f), str)), None)


STARVED_RATIO = 0.5  # a group keeping less than half the best group's survival rate


def group_value(data: Mapping[str, Any], field: str) -> str | None:
    """The record's value of `field` as a group name (None when it has none or a list/dict)."""
    value = data.get(field)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).strip()


def starved(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Groups emptied or starved by a stage: name -> (count before, count after)."""
    rates = {g: after.get(g, 0) / n for g, n in before.items() if n > 0}
    if not rates:
        return {}
    best = max(rates.values())
    return {
        g: (before[g], after.get(g, 0))
        for g, rate in rates.items()
        if after.get(g, 0) == 0 or rate < STARVED_RATIO * best
    }


def starved_warnings(
    stage: str,
    field: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    removed_by: Mapping[str, Counter[str]] | None = None,
) -> list[str]:
    """One warning per emptied or starved group, naming what removed its records."""
    found = starved(before, after)
    out = []
    best = max((after.get(g, 0) / n for g, n in before.items() if n), default=0.0)
    for group, (n_before, n_after) in sorted(found.items()):
        causes = (removed_by or {}).get(group, Counter())
        why = ", ".join(f"{c} {n}" for c, n in causes.most_common()) or "not recorded"
        what = "emptied" if n_after == 0 else "starved"
        out.append(
            f"{stage} {what} {field} {group!r}: kept {n_after} of {n_before}"
            f" ({n_after / n_before:.0%}; the best-kept {field} kept {best:.0%}); removed by: {why}"
        )
    return out


def counts_by(records: Iterable[Mapping[str, Any]], field: str) -> Counter[str]:
    """How many records have each value of `data[field]` (records without it are not counted)."""
    counts: Counter[str] = Counter()
    for record in records:
        value = group_value(record.get("data") or {}, field)
        if value is not None:
            counts[value] += 1
    return counts
