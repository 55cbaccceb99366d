"""The preference loop's data: prompts with their responses, ranked prompts, and what
rankings become (chosen/rejected pairs with their texts, KTO's labelled completions).

No I/O here: the files these come from and go to are `synthloom.preference.store`
(responses and rankings) and `synthloom.export.trl` (TRL datasets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from synthloom.preference.rankings import Pair, Ranking
from synthloom.records import stable_id

RANKINGS_FILE = "rankings.jsonl"  # what a judge run (or a review export) writes beside records


def prompt_key(prompt: str) -> str:
    """The prompt id used when the input has none: stable, derived from the text."""
    return stable_id("prompt", prompt)[:12]


def response_letter(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA" (spreadsheet-style)."""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(65 + rest) + out
    return out


@dataclass
class PromptResponses:
    """One prompt and its responses (by response id, in file order)."""

    prompt_id: str
    prompt: str
    responses: dict[str, str] = field(default_factory=dict)
    record_ids: dict[str, str | None] = field(default_factory=dict)  # response id -> record id
    where: str = ""  # file:line of the first row


@dataclass(frozen=True, slots=True)
class PreferenceItem:
    """One chosen/rejected pair with its texts, margin and provenance."""

    prompt: str
    chosen: str
    rejected: str
    system: str | None = None
    margin: float | None = None
    prompt_id: str | None = None
    chosen_id: str | None = None
    rejected_id: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RankedPrompt:
    """A prompt, its responses by id, and one (possibly aggregated) ranking of them."""

    prompt_id: str
    prompt: str
    responses: Mapping[str, str]
    ranking: Ranking
    system: str | None = None

    def text(self, response_id: str) -> str:
        """Response text by id, with an error naming the prompt if missing."""
        try:
            return self.responses[response_id]
        except KeyError:
            raise KeyError(f"prompt {self.prompt_id!r} has no response {response_id!r}") from None


@dataclass(frozen=True, slots=True)
class KTOItem:
    """One completion labelled desirable (True) or undesirable (False)."""

    prompt: str
    completion: str
    label: bool
    system: str | None = None
    prompt_id: str | None = None
    response_id: str | None = None


@dataclass(slots=True)
class KTOStats:
    """Counters for building KTO rows from rankings."""

    prompts_in: int = 0
    rows_out: int = 0
    desirable: int = 0
    undesirable: int = 0
    all_tie_prompts: int = 0
    too_few_responses: int = 0
    middle_excluded: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict for logs and manifests."""
        return asdict(self)


def preference_items(ranked: RankedPrompt, pairs: Iterable[Pair]) -> list[PreferenceItem]:
    """Attach texts to pairs of one prompt."""
    return [
        PreferenceItem(
            prompt=ranked.prompt,
            chosen=ranked.text(p.chosen_id),
            rejected=ranked.text(p.rejected_id),
            system=ranked.system,
            margin=p.margin,
            prompt_id=ranked.prompt_id,
            chosen_id=p.chosen_id,
            rejected_id=p.rejected_id,
            provenance={"annotator": ranked.ranking.annotator},
        )
        for p in pairs
    ]


def kto_items(
    prompts: Iterable[RankedPrompt], threshold: float | None = None
) -> tuple[list[KTOItem], KTOStats]:
    """Unpaired items from rankings: top tier desirable, bottom tier undesirable.

    Middle tiers are dropped unless ``threshold`` (0 < t <= 1) is given; then every tier is
    kept and labelled desirable iff its relative position (0 = best, 1 = worst) is below t.
    Prompts whose responses all tie, or with fewer than two responses, are skipped and counted.
    """
    if threshold is not None and not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    items: list[KTOItem] = []
    stats = KTOStats()
    seen: set[str] = set()
    for rp in prompts:
        if rp.prompt_id in seen:
            raise ValueError(f"several rankings for prompt {rp.prompt_id!r}; aggregate() first")
        seen.add(rp.prompt_id)
        stats.prompts_in += 1
        order = rp.ranking.order
        if len(rp.ranking.ids) < 2:
            stats.too_few_responses += 1
            continue
        if len(order) < 2:
            stats.all_tie_prompts += 1
            continue
        last = len(order) - 1
        for i, tier in enumerate(order):
            if threshold is None and 0 < i < last:
                stats.middle_excluded += len(tier)
                continue
            label = i == 0 if threshold is None else i / last < threshold
            for rid in tier:
                items.append(KTOItem(rp.prompt, rp.text(rid), label, rp.system, rp.prompt_id, rid))
                stats.desirable += label
                stats.undesirable += not label
    stats.rows_out = len(items)
    return items, stats
