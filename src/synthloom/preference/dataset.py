"""Responses + rankings -> preference datasets (the model-free half of the preference loop).

Responses: a `responses` run (or its records.jsonl), or any JSONL/CSV with the columns
`prompt_id`, `prompt`, `response_id`, `response`. `group` is accepted for `prompt_id` (as
summarize runs write it); missing `response_id`s are lettered A, B, C... per prompt in file order,
and a missing `prompt_id` is derived from the prompt text (`prompt_key`).

Rankings store: JSONL (or CSV) rows, one per (prompt, annotator)::

    {"prompt_id": "p1", "annotator": "alice", "annotator_kind": "human", "order": "D > B = A > C"}

`order` is a string (best first, `=` ties) or tiers as lists (`[["D"], ["B", "A"], ["C"]]`);
`annotator_kind` is "human" (default) or "judge"; a missing annotator defaults to the file's
stem; optional `scores` ({response_id: number}, higher is better) keeps margins for reward
data. `synthloom judge` writes this format; people write it by hand or with the review app.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from synthloom.errors import UserError
from synthloom.export.trl import (
    PreferenceItem,
    RankedPrompt,
    id_rows,
    kto_items,
    preference_items,
    to_trl_kto,
    to_trl_preference,
    to_trl_reward,
    write_jsonl_atomic,
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
from synthloom.records import stable_id
from synthloom.sources import read_inputs, read_table

ExportFormat = Literal["dpo", "dpo-conversational", "reward", "kto", "kto-conversational"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
RANKINGS_FILE = "rankings.jsonl"


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


def _text(row: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def load_responses(path: Path) -> dict[str, PromptResponses]:
    """Responses grouped by prompt id, in file order; errors name file:line."""
    groups: dict[str, PromptResponses] = {}
    for row in read_inputs(path):
        where = f"{row.path}:{row.line}"
        prompt = _text(row.data, ("prompt",))
        response = _text(row.data, ("response",))
        if prompt is None or response is None:
            have = ", ".join(sorted(row.data)) or "none"
            raise UserError(
                f"{where}: need non-empty 'prompt' and 'response' columns (columns here: {have})"
            )
        pid = _text(row.data, ("prompt_id", "group")) or prompt_key(prompt)
        group = groups.setdefault(pid, PromptResponses(pid, prompt, where=where))
        if group.prompt != prompt:
            raise UserError(
                f"{where}: prompt {pid!r} has a different prompt text than {group.where}"
            )
        rid = _text(row.data, ("response_id",)) or response_letter(len(group.responses))
        if rid in group.responses:
            raise UserError(f"{where}: prompt {pid!r} has response id {rid!r} twice")
        group.responses[rid] = response
        group.record_ids[rid] = row.record_id
    return groups


# -- rankings store -------------------------------------------------------------------------


def format_order(order: Sequence[Sequence[str]]) -> str:
    """[["D"], ["B", "A"], ["C"]] -> "D > B = A > C"."""
    return " > ".join(" = ".join(tier) for tier in order)


def ranking_row(ranking: Ranking) -> dict[str, Any]:
    """A rankings-store row for `ranking` (scores kept when it has them)."""
    row: dict[str, Any] = {
        "prompt_id": ranking.prompt_id,
        "annotator": ranking.annotator,
        "annotator_kind": ranking.annotator_kind,
        "order": format_order(ranking.order),
    }
    if ranking.scores is not None:
        row["scores"] = ranking.scores
    return row


def write_rankings(rankings: Iterable[Ranking], path: Path) -> Path:
    """Write a rankings file atomically (temp file + rename)."""
    return write_jsonl_atomic((ranking_row(r) for r in rankings), path)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _tiers(order: Any) -> list[list[str]]:
    if not isinstance(order, list):
        raise ValueError(
            f"'order' must be a string like 'D > B = A > C' or a list of tiers, got {order!r}"
        )
    tiers: list[list[str]] = []
    for tier in order:
        if isinstance(tier, str):
            tiers.append([tier])
        elif isinstance(tier, list) and all(isinstance(x, str) for x in tier):
            tiers.append([x.strip() for x in tier])
        else:
            raise ValueError(f"each tier in 'order' must be a list of response ids, got {tier!r}")
    return tiers


def ranking_from_row(row: Mapping[str, Any], default_annotator: str) -> Ranking:
    """Parse one rankings-store row; raises ValueError with a one-line message."""
    pid = row.get("prompt_id")
    if pid is None or not str(pid).strip():
        raise ValueError("missing 'prompt_id'")
    if row.get("order") in (None, ""):
        raise ValueError("missing 'order'")
    annotator = str(row.get("annotator") or default_annotator)
    kind = row.get("annotator_kind") or "human"
    if kind not in ("human", "judge"):
        raise ValueError(f"'annotator_kind' must be 'human' or 'judge', got {kind!r}")
    order = row["order"]
    scores = row.get("scores") or None
    if scores is not None and not isinstance(scores, dict):
        raise ValueError("'scores' must be an object {response_id: number}")
    try:
        if isinstance(order, str):
            parsed = Ranking.from_string(
                order, prompt_id=str(pid), annotator=annotator, annotator_kind=kind
            )
            tiers = parsed.order
        else:
            tiers = _tiers(order)
        return Ranking(
            prompt_id=str(pid),
            annotator=annotator,
            annotator_kind=kind,
            order=tiers,
            scores=scores,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(_one_line(exc)) from None


def load_rankings(
    paths: Iterable[Path], responses: Mapping[str, PromptResponses] | None = None
) -> list[Ranking]:
    """Read rankings files; with `responses`, check prompt and response ids exist.

    Every problem is a UserError naming file:line (unknown prompt or response id, malformed
    order, one annotator ranking a prompt twice)."""
    return [ranking for ranking, _ in load_rankings_placed(paths, responses)]


def load_rankings_placed(
    paths: Iterable[Path], responses: Mapping[str, PromptResponses] | None = None
) -> list[tuple[Ranking, str]]:
    """`load_rankings`, each ranking with the file:line it came from."""
    out: list[tuple[Ranking, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        if path.is_dir():  # a judge run directory
            path = path / RANKINGS_FILE
        for line, row in read_table(path):
            where = f"{path}:{line}"
            try:
                ranking = ranking_from_row(row, path.stem)
            except ValueError as exc:
                raise UserError(f"{where}: {exc}") from None
            if responses is not None:
                known = responses.get(ranking.prompt_id)
                if known is None:
                    raise UserError(
                        f"{where}: unknown prompt_id {ranking.prompt_id!r}; it is not in the responses"
                    )
                unknown = [rid for rid in ranking.ids if rid not in known.responses]
                if unknown:
                    raise UserError(
                        f"{where}: unknown response id(s) {', '.join(unknown)} for prompt"
                        f" {ranking.prompt_id!r}; known: {', '.join(known.responses)}"
                    )
            key = (ranking.prompt_id, ranking.annotator)
            if key in seen:
                raise UserError(
                    f"{where}: annotator {ranking.annotator!r} already ranked prompt"
                    f" {ranking.prompt_id!r} at {seen[key]}"
                )
            seen[key] = where
            out.append((ranking, where))
    return out


# -- building datasets --------------------------------------------------------------------


@dataclass
class PreferenceData:
    """TRL rows, their id/provenance sidecar rows, and a summary of what was made."""

    rows: list[dict[str, Any]]
    ids: list[dict[str, Any]]
    summary: dict[str, Any]

    def write(self, out: Path, *, include_ids: bool = True) -> list[Path]:
        """Write rows atomically as .jsonl or .parquet (plus `<stem>.ids.jsonl`)."""
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
    fmt: ExportFormat = "dpo",
) -> PreferenceData:
    """Aggregate rankings per prompt, turn them into pairs (or KTO rows) with texts.

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
            ranked.append(RankedPrompt(pid, group.prompt, group.responses, one))
    unknown = sorted(set(by_prompt) - set(responses))
    if unknown:
        raise ValueError(f"rankings for unknown prompt ids {unknown}")
    conversational = fmt.endswith("-conversational")
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
    rows = (to_trl_reward if fmt == "reward" else to_trl_preference)(items, conversational)
    return PreferenceData(rows, id_rows(items), summary)


def preference_data_from_files(
    responses: Path,
    rankings: Sequence[Path],
    *,
    mode: PairMode = "all",
    aggregate_method: AggregateMethod = "borda",
    fmt: ExportFormat = "dpo",
) -> PreferenceData:
    """load_responses + load_rankings + build_preference_data (for recipes and Python).

    Rankings that give no pair at all (each ranks fewer than two responses, or ties them all)
    are a UserError naming the ranking's file:line and the reason: an empty dataset file
    written with exit 0 looked like success."""
    groups = load_responses(responses)
    placed = load_rankings_placed(rankings, groups)
    data = build_preference_data(
        groups, [r for r, _ in placed], mode=mode, aggregate_method=aggregate_method, fmt=fmt
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
