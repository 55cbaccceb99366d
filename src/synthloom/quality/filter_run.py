"""Curation stages over a run's records (the `dedup` and `filter` steps): read a run, decide
record by record, write the kept records, the removed ones and the stage's own account.

Every stage writes three files (for `out` a directory: `records.jsonl`, `removed.jsonl`,
`stage.json` in it; for `out` a file `x.jsonl`: `x.jsonl`, `x.removed.jsonl`, `x.stage.json`):

- the kept records, unchanged;
- every removed record with `removed_by` (the rule), `detail` and, for duplicates,
  `duplicate_of` (the kept record's id and text, or the reference file:line it repeats);
- `stage.json`: the step, its input, its counts (`records_in`, one `dropped_<rule>` per rule,
  `records_out`), the counts of each watched group (e.g. label) before and after, and
  warnings for the groups it emptied or starved. `synthloom report` follows these files back
  to the generating run to show the counts through each stage.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.outputs import check_not_input, write_atomic
from synthloom.quality.audit import TEXT_FIELDS, group_value, pick_field, starved_warnings
from synthloom.quality.dedup import DEFAULT_THRESHOLD, ExactDedup, near_finder
from synthloom.runs import read_records
from synthloom.sources import read_inputs

PROMPT_FIELDS = ("prompt", "question", "instruction", "original_text", "input")
STAGE_FILE = "stage.json"


def dedup_target(out: Path) -> Path:
    """The file a stage writes: `out` if it is a .jsonl file, else `out/records.jsonl`."""
    return out / "records.jsonl" if out.suffix != ".jsonl" else out


def sidecar(target: Path, kind: str) -> Path:
    """`removed.jsonl` / `stage.json` beside a stage's records file."""
    suffix = ".jsonl" if kind == "removed" else ".json"
    if target.name == "records.jsonl":
        return target.with_name(kind + suffix)
    return target.with_name(f"{target.stem}.{kind}{suffix}")


def stage_files(out: Path) -> list[Path]:
    """Every file a stage writing to `out` writes."""
    target = dedup_target(out)
    return [target, sidecar(target, "removed"), sidecar(target, "stage")]


@dataclass
class Stage:
    """What one curation stage decided, record by record, and the files it writes."""

    name: str
    source: Path
    out: Path
    watch: Sequence[str] = ()
    counts: Counter[str] = field(default_factory=Counter)
    kept: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    before: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    after: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lost: dict[str, dict[str, Counter[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in stage_files(self.out):
            check_not_input(path, [self.source])

    def seen(self, record: dict[str, Any]) -> None:
        self.counts["records_in"] += 1
        for f in self.watch:
            if (value := group_value(record.get("data") or {}, f)) is not None:
                self.before[f][value] += 1

    def keep(self, record: dict[str, Any]) -> None:
        self.kept.append(record)
        for f in self.watch:
            if (value := group_value(record.get("data") or {}, f)) is not None:
                self.after[f][value] += 1

    def remove(self, record: dict[str, Any], rule: str, detail: str = "", **extra: Any) -> None:
        self.counts[f"dropped_{rule}"] += 1
        self.removed.append({**record, "removed_by": rule, "detail": detail, **extra})
        for f in self.watch:
            if (value := group_value(record.get("data") or {}, f)) is not None:
                self.lost[f][value][rule] += 1

    def warnings(self) -> list[str]:
        found = []
        for f in self.watch:
            found += starved_warnings(self.name, f, self.before[f], self.after[f], self.lost[f])
        return found

    def write(self) -> dict[str, Any]:
        """Write the three files; return the counts (with `warnings` when there are any)."""
        target = dedup_target(self.out)
        self.counts["records_out"] = len(self.kept)
        warnings = self.warnings()
        write_atomic(target, "".join(_line(r) for r in self.kept))
        write_atomic(sidecar(target, "removed"), "".join(_line(r) for r in self.removed))
        stage = {
            "step": self.name,
            "input": str(self.source),
            "counts": dict(self.counts),
            "groups": {
                f: {"before": dict(self.before[f]), "after": dict(self.after[f])}
                for f in self.watch
                if self.before[f]
            },
            "warnings": warnings,
            **self.extra,
        }
        write_atomic(sidecar(target, "stage"), json.dumps(stage, indent=2, ensure_ascii=True))
        result: dict[str, Any] = dict(self.counts)
        if warnings:
            result["warnings"] = warnings
        return result


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=True) + "\n"


def _text(source: Path, line: int, record: dict[str, Any], field: str | None, option: str) -> str:
    data = record.get("data") or {}
    text = data.get(field) if field else None
    if not isinstance(text, str):
        have = ", ".join(k for k, v in data.items() if isinstance(v, str)) or "none"
        name = f"text field {field!r}" if field else "text field"
        raise UserError(
            f"{source}:{line}: record has no {name} (text fields here: {have}); choose {option}"
        )
    return text


@dataclass(frozen=True)
class Reference:
    """Reference texts (e.g. an evaluation set) that kept records must not repeat."""

    texts: list[str]
    where: list[str]  # file:line of each

    @classmethod
    def read(cls, paths: Sequence[Path], field: str | None) -> Reference:
        texts, where = [], []
        for path in paths:
            for row in read_inputs(path):
                name = pick_field(row.data, field, TEXT_FIELDS)
                value = row.data.get(name) if name else None
                if not isinstance(value, str):
                    raise UserError(
                        f"{row.path}:{row.line}: reference row has no text field"
                        f" {name or ''!r}; choose --reference-field"
                    )
                texts.append(value)
                where.append(f"{row.path}:{row.line}")
        return cls(texts, where)


def dedup_records(
    source: Path,
    out: Path,
    *,
    field: str | None,
    near: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    ngram: int = 5,
    min_words: int = 0,
    include_flagged: bool = False,
    reference: Sequence[Path] = (),
    reference_field: str | None = None,
    watch: Sequence[str] = ("label",),
    semantic: Callable[[list[str], list[str]], list[tuple[int, bool, float] | None]] | None = None,
) -> dict[str, Any]:
    """Keep the first of each exact (normalized) and, if `near`, near-duplicate `data[field]`
    (MinHash LSH over word `ngram`-grams, confirmed at shingle Jaccard >= `threshold`); drop
    texts under `min_words` words and texts that repeat a `reference` text (exactly or near).
    `semantic` (optional) finds duplicates by meaning among what is left. Writes the stage's
    files (see the module docstring) and returns its counts."""
    stage = Stage("dedup", source, out, watch)
    ref = Reference.read(reference, reference_field or field) if reference else None
    ref_digests: dict[bytes, int] = {}
    for i, text in enumerate(ref.texts if ref else ()):
        ref_digests.setdefault(ExactDedup.digest(text), i)
    exact: dict[bytes, dict[str, Any]] = {}
    candidates: list[tuple[dict[str, Any], str]] = []
    for line, record in read_records(source):
        stage.seen(record)
        if record.get("status", "ok") != "ok" and not include_flagged:
            stage.remove(record, "flagged", "flagged for review (--include-flagged keeps it)")
            continue
        text = _text(
            source, line, record, pick_field(record["data"], field, TEXT_FIELDS), "--field"
        )
        digest = ExactDedup.digest(text)
        if len(text.split()) < min_words:
            stage.remove(record, "too_short", f"{len(text.split())} words < {min_words}")
        elif ref is not None and digest in ref_digests:
            i = ref_digests[digest]
            stage.remove(record, "reference_exact", "", duplicate_of=_ref_pointer(ref, i, 1.0))
        elif digest in exact:
            kept = exact[digest]
            stage.remove(record, "exact_duplicate", "", duplicate_of=_pointer(kept, field, 1.0))
        else:
            exact[digest] = record
            candidates.append((record, text))
    matches: list[Any] = [None] * len(candidates)
    if near and candidates:
        finder = near_finder()(ngram=ngram, threshold=threshold)
        matches = finder.find([t for _, t in candidates], ref.texts if ref else ())
        stage.extra["near"] = {
            "ngram": ngram,
            "threshold": threshold,
            "rows": finder.rows,
            "bands": finder.bands,
        }
    survivors = []
    for (record, text), match in zip(candidates, matches, strict=True):
        if match is None:
            survivors.append((record, text))
        elif match.reference:
            pointer = _ref_pointer(ref, match.index, match.jaccard)  # type: ignore[arg-type]
            stage.remove(
                record, "reference_near", f"Jaccard {match.jaccard:.2f}", duplicate_of=pointer
            )
        else:
            kept = candidates[match.index][0]
            stage.remove(
                record,
                "near_duplicate",
                f"Jaccard {match.jaccard:.2f}",
                duplicate_of=_pointer(kept, field, match.jaccard),
            )
    if semantic is not None and survivors:
        found = semantic([t for _, t in survivors], ref.texts if ref else [])
        for (record, _), hit in zip(survivors, found, strict=True):
            if hit is None:
                stage.keep(record)
                continue
            index, in_ref, cosine = hit
            if in_ref:
                pointer = _ref_pointer(ref, index, cosine)  # type: ignore[arg-type]
                stage.remove(
                    record, "reference_semantic", f"cosine {cosine:.3f}", duplicate_of=pointer
                )
            else:
                kept = survivors[index][0]
                pointer = _pointer(kept, field, cosine)
                stage.remove(
                    record, "semantic_duplicate", f"cosine {cosine:.3f}", duplicate_of=pointer
                )
    else:
        for record, _ in survivors:
            stage.keep(record)
    return stage.write()


def _pointer(kept: dict[str, Any], field: str | None, score: float) -> dict[str, Any]:
    name = pick_field(kept.get("data") or {}, field, TEXT_FIELDS)
    text = (kept.get("data") or {}).get(name, "") if name else ""
    return {"id": kept.get("id"), "text": text, "similarity": round(score, 4)}


def _ref_pointer(ref: Reference, index: int, score: float) -> dict[str, Any]:
    return {"reference": ref.where[index], "text": ref.texts[index], "similarity": round(score, 4)}
