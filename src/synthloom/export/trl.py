"""Writers for TRL dataset types: preference (DPO), reward pairs with margin, unpaired (KTO),
and OpenAI's preference fine-tuning rows.

Rows carry exactly the columns TRL documents; ids and provenance go to an optional sidecar.
Conversational rows (lists of {role, content} messages) are the default: TRL applies the
chat template to them; the standard (string) rows are for base models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthloom.outputs import atomic_file, write_jsonl_atomic
from synthloom.preference.types import KTOItem, PreferenceItem

Message = dict[str, str]
Row = dict[str, Any]


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


def to_trl_preference(items: Sequence[PreferenceItem], conversational: bool = True) -> list[Row]:
    """Rows ``{"prompt", "chosen", "rejected"}`` (explicit-prompt preference type)."""
    return [
        {
            "prompt": _prompt(it.prompt, it.system, conversational, i),
            "chosen": _completion(it.chosen, conversational),
            "rejected": _completion(it.rejected, conversational),
        }
        for i, it in enumerate(items)
    ]


def to_trl_reward(items: Sequence[PreferenceItem], conversational: bool = True) -> list[Row]:
    """Preference rows plus a float ``margin`` column (RewardTrainer's optional margin)."""
    rows = to_trl_preference(items, conversational)
    for i, (row, it) in enumerate(zip(rows, items, strict=True)):
        if it.margin is None:
            raise ValueError(f"item {i} (prompt {it.prompt_id!r}) has no margin")
        row["margin"] = float(it.margin)
    return rows


def to_trl_kto(items: Sequence[KTOItem], conversational: bool = True) -> list[Row]:
    """Rows ``{"prompt", "completion", "label"}`` (unpaired preference type)."""
    return [
        {
            "prompt": _prompt(it.prompt, it.system, conversational, i),
            "completion": _completion(it.completion, conversational),
            "label": bool(it.label),
        }
        for i, it in enumerate(items)
    ]


def to_openai_preference(items: Sequence[PreferenceItem]) -> list[Row]:
    """OpenAI's preference (DPO) fine-tuning rows: ``{"input": {"messages"},
    "preferred_output", "non_preferred_output"}``, one assistant message each."""
    return [
        {
            "input": {"messages": _prompt(it.prompt, it.system, True, i)},
            "preferred_output": _completion(it.chosen, True),
            "non_preferred_output": _completion(it.rejected, True),
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
    """``out/dpo.parquet`` -> ``out/dpo.parquet.ids.jsonl``: named after the whole file name,
    so ``dpo.jsonl`` and ``dpo.parquet`` side by side never share one."""
    p = Path(path)
    return p.with_name(f"{p.name}.ids.jsonl")


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
    conversational: bool = True,
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
    conversational: bool = True,
    include_ids: bool = False,
) -> list[Path]:
    """Write a TRL unpaired-preference (KTO) dataset; returns written paths."""
    rows = to_trl_kto(items, conversational)
    return write_rows(rows, path, id_rows(items) if include_ids else None)
