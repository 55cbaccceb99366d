"""Dedup and filter a run's records into a new records file (a curation step)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from synthloom.outputs import check_not_input, write_atomic
from synthloom.quality.dedup import ExactDedup, NearDedup
from synthloom.runs import read_records


def dedup_target(out: Path) -> Path:
    """The file a dedup writes: `out` if it is a .jsonl file, else `out/records.jsonl`."""
    return out / "records.jsonl" if out.suffix != ".jsonl" else out


def dedup_records(
    source: Path,
    out: Path,
    *,
    field: str,
    near: bool = True,
    min_words: int = 0,
    include_flagged: bool = False,
) -> Counter[str]:
    """Keep the first of each exact (normalized) and, if `near`, near-duplicate (MinHash over
    word 5-grams, ~0.75 Jaccard) `data[field]`; drop texts under `min_words` words.
    Writes kept records to `out` (a .jsonl file, or `out/records.jsonl` for a directory),
    which may not be the source, its directory, or a run directory's own file."""
    target = dedup_target(out)
    check_not_input(out, [source])
    check_not_input(target, [source])
    exact, nearly = ExactDedup(), NearDedup() if near else None
    counts: Counter[str] = Counter()
    kept: list[str] = []
    for line, record in read_records(source):
        counts["records_in"] += 1
        if record.get("status", "ok") != "ok" and not include_flagged:
            counts["dropped_flagged"] += 1
            continue
        text = record["data"].get(field)
        if not isinstance(text, str):
            from synthloom.errors import UserError

            raise UserError(f"{source}:{line}: record has no text field {field!r}; choose --field")
        if len(text.split()) < min_words:
            counts["dropped_too_short"] += 1
        elif exact.seen(text):
            counts["dropped_exact_duplicate"] += 1
        elif nearly is not None and nearly.check_and_add(record["id"], text) is not None:
            counts["dropped_near_duplicate"] += 1
        else:
            kept.append(json.dumps(record, ensure_ascii=True))
    write_atomic(target, "".join(x + "\n" for x in kept))
    counts["records_out"] = len(kept)
    return counts
