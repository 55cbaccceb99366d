"""`dedup`: drop exact and near-duplicate records of a run (a curation step, no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthloom.errors import UserError
from synthloom.quality.filter_run import dedup_records, dedup_target
from synthloom.runs import read_records
from synthloom.steps.base import Step


class DedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "SOURCE"},
    )
    field: str = Field(..., description="the data field to compare, e.g. question")
    near: bool = Field(
        True,
        description="also drop near duplicates (MinHash over word 5-grams, about 0.75 Jaccard);"
        " --exact-only drops exact duplicates only",
        json_schema_extra={"negative": "--exact-only"},
    )
    min_words: int = Field(0, ge=0, description="also drop texts shorter than this many words")
    out: Path | None = Field(
        None,
        description="output: a .jsonl file, or a directory that gets records.jsonl"
        " (in a recipe: the step's directory unless given)",
        json_schema_extra={"required": True},
    )


class Dedup(Step):
    """Drop exact and near-duplicate records of a run (keeps the first of each)."""

    name = "dedup"
    Params = DedupParams
    out_dir = True

    params: DedupParams

    def written(self) -> list[tuple[str, str, Path]]:
        out = self.params.out
        if out is None:
            return []
        target = dedup_target(out)
        return [("out", "", out)] + ([("out", "", target)] if target != out else [])

    def check(self) -> None:
        next(iter(read_records(self.params.input)), None)

    def run(self) -> dict[str, Any]:
        p = self.params
        if p.out is None:  # the command requires --out; a recipe gives the step's directory
            raise UserError("dedup: give `out`, a .jsonl file or a directory")
        counts = dedup_records(p.input, p.out, field=p.field, near=p.near, min_words=p.min_words)
        return dict(counts)
