"""Responses + rankings -> a TRL preference dataset: what the `pairs` step writes.

Rankings are aggregated per prompt (several annotators combined, their agreement reported),
turned into chosen/rejected pairs (or KTO rows) with their texts, and written in the TRL
dataset types of `synthloom.export.trl`, with an ids/provenance sidecar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.export.formats import PREFERENCE, PreferenceFormat
from synthloom.export.trl import (
    id_rows,
    to_openai_preference,
    to_trl_kto,
    to_trl_preference,
    to_trl_reward,
    write_rows,
)
from synthloom.preference.rankings import (
    AggregateMethod,
    PairMode,
    Ranking,
    aggregate,
    agreement_report,
    collect_pairs,
)
from synthloom.preference.store import format_order, load_rankings_placed, load_responses
from synthloom.preference.types import (
    PreferenceItem,
    PromptResponses,
    RankedPrompt,
    kto_items,
    preference_items,
)

ExportFormat = PreferenceFormat
FORMATS: tuple[str, ...] = tuple(PREFERENCE)
DEFAULT_FORMAT: PreferenceFormat = "dpo-conversational"


@dataclass
class PreferenceData:
    """TRL rows, their id/provenance sidecar rows, and a summary of what was made."""

    rows: list[dict[str, Any]]
    ids: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def groups(self) -> list[str]:
        """The split group of each row: its prompt (a prompt's pairs stay in one split)."""
        return [str(i.get("prompt_id")) for i in self.ids]

    def write(self, out: Path, *, include_ids: bool = True) -> list[Path]:
        """Write rows atomically as .jsonl or .parquet (plus `<name>.ids.jsonl`)."""
        return write_rows(self.rows, out, self.ids if include_ids else None)


def _with_records(item: PreferenceItem, group: PromptResponses) -> PreferenceItem:
    prov = dict(item.provenance)
    for side, rid in (("chosen", item.chosen_id), ("rejected", item.rejected_id)):
        record = group.record_ids.get(rid or "")
        if record:
            prov[f"{side}_record"] = record
    return dataclasses.replace(item, provenance=prov)


def build_preference_data(
    responses: Mapping[str, PromptResponses],
    rankings: Sequence[Ranking],
    *,
    mode: PairMode = "all",
    aggregate_method: AggregateMethod = "borda",
    fmt: ExportFormat = DEFAULT_FORMAT,
    system: str | None = None,
) -> PreferenceData:
    """Aggregate rankings per prompt, turn them into pairs (or KTO rows) with texts.
    `system` is the system prompt of every row (conversational formats only).

    Ties never give a pair; prompts whose responses all tie, or with fewer than two ranked
    responses, are counted in the summary. Several annotators of one prompt are combined
    with `aggregate_method`, and their agreement is reported."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    by_prompt: dict[str, list[Ranking]] = {}
    for r in rankings:
        by_prompt.setdefault(r.prompt_id, []).append(r)
    ranked: list[RankedPrompt] = []
    for pid, group in responses.items():  # responses' order makes the output order stable
        if pid in by_prompt:
            rs = by_prompt[pid]
            one = rs[0] if len(rs) == 1 else aggregate(rs, aggregate_method)
            ranked.append(RankedPrompt(pid, group.prompt, group.responses, one, system))
    unknown = sorted(set(by_prompt) - set(responses))
    if unknown:
        raise ValueError(f"rankings for unknown prompt ids {unknown}")
    conversational = PREFERENCE[fmt].conversational
    if system and not conversational:
        raise UserError(
            f"--system: the {fmt} format holds no system prompt; use {fmt}-conversational"
        )
    agreement = agreement_report(rankings)
    summary: dict[str, Any] = {
        "format": fmt,
        "prompts_in": len(ranked),
        "prompts_without_ranking": len(responses) - len(ranked),
        "rankings": len(rankings),
        "annotators": len({r.annotator for r in rankings}),
        "aggregated_prompts": sum(len(rs) > 1 for rs in by_prompt.values()),
        "mean_kendall_tau": agreement["mean_kendall_tau"],
        "krippendorff_alpha": agreement["krippendorff_alpha"],
    }
    if fmt.startswith("kto"):
        kto, kstats = kto_items(ranked)
        summary.update(kstats.as_dict())
        summary["pairs_out"] = 0
        return PreferenceData(to_trl_kto(kto, conversational), id_rows(kto), summary)
    pairs_by_prompt, stats = collect_pairs([rp.ranking for rp in ranked], mode)
    items = [
        _with_records(item, responses[rp.prompt_id])
        for rp in ranked
        for item in preference_items(rp, pairs_by_prompt[rp.prompt_id])
    ]
    summary.update(stats.as_dict())
    summary["mode"] = mode
    if fmt == "openai-dpo":
        rows = to_openai_preference(items)
    elif fmt.startswith("reward"):
        rows = to_trl_reward(items, conversational)
    else:
        rows = to_trl_preference(items, conversational)
    return PreferenceData(rows, id_rows(items), summary)


def preference_data_from_files(
    responses: Path,
    rankings: Sequence[Path],
    *,
    mode: PairMode = "all",
    aggregate_method: AggregateMethod = "borda",
    fmt: ExportFormat = DEFAULT_FORMAT,
    system: str | None = None,
) -> PreferenceData:
    """load_responses + load_rankings + build_preference_data (for recipes and Python).

    Rankings that give no pair at all (each ranks fewer than two responses, or ties them all)
    are a UserError naming the ranking's file:line and the reason: an empty dataset file
    written with exit 0 looked like success."""
    groups = load_responses(responses)
    placed = load_rankings_placed(rankings, groups)
    data = build_preference_data(
        groups,
        [r for r, _ in placed],
        mode=mode,
        aggregate_method=aggregate_method,
        fmt=fmt,
        system=system,
    )
    if not data.rows:
        raise UserError(_why_no_pairs(groups, placed))
    return data


def _why_no_pairs(
    groups: Mapping[str, PromptResponses], placed: Sequence[tuple[Ranking, str]]
) -> str:
    """Why no ranked prompt gives a pair, at the first ranking of the first such prompt."""
    by_prompt: dict[str, list[tuple[Ranking, str]]] = {}
    for ranking, where in placed:
        by_prompt.setdefault(ranking.prompt_id, []).append((ranking, where))
    reasons: list[str] = []
    for pid, group in groups.items():  # responses' order, as the output would have been
        if pid not in by_prompt:
            continue
        ranking, where = by_prompt[pid][0]
        ids = sorted({rid for r, _ in by_prompt[pid] for rid in r.ids})
        if len(ids) < 2:
            have = len(group.responses)
            note = (
                f"the responses have only {have} for it"
                if have < 2
                else f"it has {have}: {', '.join(group.responses)}"
            )
            reasons.append(
                f"{where}: ranks only {len(ids)} response ({', '.join(ids)}) of prompt {pid!r};"
                f" a pair needs 2 ({note})"
            )
        else:
            reasons.append(
                f"{where}: ranks every response of prompt {pid!r} equal"
                f" ({format_order(ranking.order)}); a pair needs one ranked above another"
            )
    more = f"; {len(reasons) - 1} more prompt(s) give no pair either" if len(reasons) > 1 else ""
    first = reasons[0] if reasons else "the rankings give no pair"
    return f"{first}{more}; nothing written"
