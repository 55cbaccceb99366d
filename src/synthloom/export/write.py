"""Write a dataset: JSONL, Parquet or a `datasets` directory, optionally split, with side files.

The output is named by `out`:
    sft.jsonl / sft.parquet   one file; with a split, one per split beside it, named
                              sft.train.jsonl, sft.validation.jsonl, sft.test.jsonl (the
                              names `datasets` recognises as splits)
    sft                       (no suffix) a `datasets` DatasetDict written by save_to_disk,
                              one split per requested split ("train" alone without a split);
                              `load_from_disk` reads it back
Side files are named after the whole data file name, so `dpo.jsonl` and `dpo.parquet` side
by side never share one: `dpo.parquet.ids.jsonl` (ids and provenance per row, row for row),
and the dataset card `dpo.parquet.README.md` (README.md inside a `datasets` directory).
Every file is written atomically; a `datasets` directory is built beside its target and
renamed onto it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloom.errors import UserError
from synthloom.export.split import SPLIT_NAMES, assign, check_shares
from synthloom.export.trl import sidecar_path, write_rows
from synthloom.outputs import is_dataset_dir, write_atomic

Row = dict[str, Any]
CARD = "README.md"


ids_path = sidecar_path  # `dpo.parquet` -> `dpo.parquet.ids.jsonl`


def card_path(out: Path) -> Path:
    """The dataset card: README.md inside a `datasets` directory, else `<name>.README.md`."""
    return out / CARD if is_dataset_dir(out) else out.with_name(f"{out.name}.{CARD}")


def split_path(out: Path, split: str) -> Path:
    """`sft.jsonl` -> `sft.train.jsonl`."""
    return out.with_name(f"{out.stem}.{split}{out.suffix}")


def split_names(shares: Sequence[float] | None) -> list[str]:
    if not shares:
        return []
    return [name for name, share in zip(SPLIT_NAMES, shares, strict=False) if share > 0]


def planned_files(
    out: Path, shares: Sequence[float] | None, *, ids: bool, card: bool
) -> list[tuple[str, Path]]:
    """Every path a write may create: (a note for messages, the path)."""
    files: list[tuple[str, Path]] = []
    if is_dataset_dir(out):
        files.append(("", out))
    else:
        names = split_names(shares)
        data = [split_path(out, s) for s in names] if names else [out]
        for path in data:
            files.append(("" if path == out else f" ({path.name})", path))
            if ids:
                files.append((" (its ids file)", ids_path(path)))
    if card:
        files.append((" (its dataset card)", card_path(out)))
    return files


@dataclass
class Written:
    """What a write made: rows per split, the files, and splits left empty."""

    rows: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)  # split files of an earlier write, kept
    ids_files: list[Path] = field(default_factory=list)


def write_dataset(
    rows: Sequence[Row],
    out: Path,
    *,
    ids: Sequence[Row] | None = None,
    groups: Sequence[str] | None = None,
    shares: Sequence[float] | None = None,
    seed: int = 0,
) -> Written:
    """Write `rows` (and their `ids` side rows) to `out`, split by `shares` with whole
    `groups` in one split. Empty splits are not written (and said so)."""
    if ids is not None and len(ids) != len(rows):
        raise ValueError(f"{len(ids)} id rows for {len(rows)} data rows")
    keys = list(groups) if groups is not None else [str(i) for i in range(len(rows))]
    where = assign(keys, shares, seed) if shares else ["train"] * len(rows)
    names = split_names(shares) or ["train"]
    parts: dict[str, tuple[list[Row], list[Row]]] = {name: ([], []) for name in names}
    for i, (row, split) in enumerate(zip(rows, where, strict=True)):
        parts[split][0].append(row)
        if ids is not None:
            parts[split][1].append({**ids[i], "row": len(parts[split][1]), "split": split})
    written = Written(rows={name: len(part[0]) for name, part in parts.items()})
    written.empty = [name for name, n in written.rows.items() if n == 0]
    if is_dataset_dir(out):
        _save_to_disk(out, parts, ids is not None, written)
        return written
    for name, (data, id_rows) in parts.items():
        path = split_path(out, name) if shares else out
        if not data:
            continue
        write_rows(data, path, id_rows if ids is not None else None)
        written.files.append(path)
        if ids is not None:
            written.ids_files.append(ids_path(path))
    if shares:
        others = [split_path(out, s) for s in SPLIT_NAMES if s not in parts or s in written.empty]
        written.stale = [p for p in [out, *others] if p.exists()]
    else:
        written.stale = [p for p in (split_path(out, s) for s in SPLIT_NAMES) if p.exists()]
    return written


def _save_to_disk(
    out: Path, parts: dict[str, tuple[list[Row], list[Row]]], with_ids: bool, written: Written
) -> None:
    """A DatasetDict built in a directory beside `out`, then renamed onto it (an earlier
    `datasets` directory there is replaced whole)."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            "a `datasets` directory needs datasets: pip install 'synthloom[hf]'"
        ) from None
    datasets.disable_progress_bars()  # a bar per split on stderr says nothing here
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        built = datasets.DatasetDict(
            {
                name: datasets.Dataset.from_list(list(data))
                for name, (data, _) in parts.items()
                if data
            }
        )
        built.save_to_disk(str(tmp))
        if with_ids:
            for name, (data, id_rows) in parts.items():
                if data:
                    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in id_rows)
                    write_atomic(tmp / f"{name}.ids.jsonl", text)
                    written.ids_files.append(out / f"{name}.ids.jsonl")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}.tmp")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)  # the earlier directory back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    written.files.append(out)


def write_card(out: Path, text: str) -> Path:
    path = card_path(out)
    write_atomic(path, text)
    return path


SPLIT_HELP = (
    "train,validation[,test] shares adding up to 1, e.g. 0.8,0.1,0.1: one file per split"
    " (sft.train.jsonl, ...; splits of a `datasets` directory); rows derived from one original"
    " stay in one split"
)


class OutputParams(BaseModel):
    """The output options every dataset-writing step shares (export, pairs, mix)."""

    model_config = ConfigDict(extra="forbid")

    split: list[float] | None = Field(None, description=SPLIT_HELP)
    seed: int = Field(0, description="the seed of the split (and of mix's sampling)")
    ids: bool = Field(
        True,
        description="also write <file>.ids.jsonl beside each data file: ids and provenance per row",
    )
    card: bool = Field(
        True,
        description="also write the dataset card: <file>.README.md (README.md inside a"
        " `datasets` directory)",
    )

    @field_validator("split")
    @classmethod
    def _shares(cls, value: list[float] | None) -> list[float] | None:
        return list(check_shares(value)) if value is not None else None
