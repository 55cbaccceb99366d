"""Writers for TRL dataset types: preference (DPO), reward pairs with margin, unpaired (KTO).

Rows carry exactly the columns TRL documents; ids and provenance go to an optional sidecar.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthloom.outputs import atomic_file
from synthloom.preference.rankings import Pair, Ranking

Message = dict[str, str]
Row = dict[str, Any]


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


def _prompt(prompt: str, system: str | None, conversational: bool, index: int) -> Any:
    if conversational:
        head = [{"role": "system", "content": system}] if system is not None else []
        return [*head, {"role": "user", "content": prompt}]
    if system is not None:
        raise ValueError(
            f"item {index} has a system prompt, which the standard (string) format cannot hold; "
            "use conversational=True"
        )
    return prompt


def _completion(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def to_trl_preference(items: Sequence[PreferenceItem], conversational: bool = False) -> list[Row]:
    """Rows ``{"prompt", "chosen", "rejected"}`` (explicit-prompt preference type)."""
    return [
        {
            "prompt": _prompt(it.prompt, it.system, conversational, i),
            "chosen": _completion(it.chosen, conversational),
            "rejected": _completion(it.rejected, conversational),
        }
        for i, it in enumerate(items)
    ]


def to_trl_reward(items: Sequence[PreferenceItem], conversational: bool = False) -> list[Row]:
    """Preference rows plus a float ``margin`` column (RewardTrainer's optional margin)."""
    rows = to_trl_preference(items, conversational)
    for i, (row, it) in enumerate(zip(rows, items, strict=True)):
        if it.margin is None:
            raise ValueError(f"item {i} (prompt {it.prompt_id!r}) has no margin")
        row["margin"] = float(it.margin)
    return rows


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


def to_trl_kto(items: Sequence[KTOItem], conversational: bool = False) -> list[Row]:
    """Rows ``{"prompt", "completion", "label"}`` (unpaired preference type)."""
    return [
        {
            "prompt": _prompt(it.prompt, it.system, conversational, i),
            "completion": _completion(it.completion, conversational),
            "label": bool(it.label),
        }
        for i, it in enumerate(items)
    ]


def id_rows(items: Sequence[PreferenceItem | KTOItem]) -> list[Row]:
    """Sidecar rows mapping each exported row index to its ids and provenance."""
    out: list[Row] = []
    for i, it in enumerate(items):
        if isinstance(it, PreferenceItem):
            row: Row = {
                "row": i,
                "prompt_id": it.prompt_id,
                "chosen_id": it.chosen_id,
                "rejected_id": it.rejected_id,
                "margin": it.margin,
                "provenance": dict(it.provenance),
            }
        else:
            row = {"row": i, "prompt_id": it.prompt_id, "response_id": it.response_id}
        out.append(row)
    return out


def write_jsonl_atomic(rows: Iterable[Row], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line (UTF-8) via a temp file and ``os.replace``."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    return atomic_file(path, write)


def write_parquet_atomic(rows: Sequence[Row], path: str | os.PathLike[str]) -> Path:
    """Write rows as a Parquet table via a temp file and ``os.replace`` (needs pyarrow)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        from synthloom.errors import UserError

        raise UserError("Parquet output needs pyarrow: pip install 'synthloom[hf]'") from None

    table = pa.Table.from_pylist(list(rows))
    return atomic_file(path, lambda tmp: pq.write_table(table, tmp))


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``out/train.jsonl`` -> ``out/train.ids.jsonl``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.ids.jsonl")


def write_rows(
    rows: Sequence[Row],
    path: str | os.PathLike[str],
    ids: Sequence[Row] | None = None,
) -> list[Path]:
    """Write rows as JSONL or Parquet (by suffix), plus the ids sidecar if given."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"unsupported extension {suffix!r}; use .jsonl or .parquet")
    if ids is not None and len(ids) != len(rows):
        raise ValueError(f"{len(ids)} id rows for {len(rows)} data rows")
    writer = write_parquet_atomic if suffix == ".parquet" else write_jsonl_atomic
    written = [writer(rows, path)]
    if ids is not None:
        written.append(write_jsonl_atomic(ids, sidecar_path(path)))
    return written


def export_preference(
    items: Sequence[PreferenceItem],
    path: str | os.PathLike[str],
    *,
    conversational: bool = False,
    with_margin: bool = False,
    include_ids: bool = False,
) -> list[Path]:
    """Write a TRL preference (or, with margin, reward) dataset; returns written paths."""
    rows = (to_trl_reward if with_margin else to_trl_preference)(items, conversational)
    return write_rows(rows, path, id_rows(items) if include_ids else None)


def export_kto(
    items: Sequence[KTOItem],
    path: str | os.PathLike[str],
    *,
    conversational: bool = False,
    include_ids: bool = False,
) -> list[Path]:
    """Write a TRL unpaired-preference (KTO) dataset; returns written paths."""
    rows = to_trl_kto(items, conversational)
    return write_rows(rows, path, id_rows(items) if include_ids else None)
