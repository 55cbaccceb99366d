"""`review-export`: the reviewed set of a review (`synthloom review export`, a recipe step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthloom.review.export import export_review
from synthloom.review.items import RECORDS_FILE
from synthloom.review.server import store_path
from synthloom.review.store import ReviewStore
from synthloom.steps.base import Step

RANKINGS_FILE = "rankings.jsonl"


class ReviewExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="the reviewed run directory or records .jsonl file (its review store is"
        " found beside it)",
        json_schema_extra={"argument": True, "metavar": "RUN_OR_FILE"},
    )
    store: Path | None = Field(
        None, description="the review store, if not the one beside the input"
    )
    out: Path | None = Field(
        None,
        description="a directory for the reviewed set: records.jsonl (approved and edited"
        " records) or rankings.jsonl (human rankings) (in a recipe: the step's directory)",
        json_schema_extra={"required": True},
    )


class ReviewExport(Step):
    """Write the reviewed set: approved/edited records, or rankings that `pairs` reads."""

    name = "review-export"
    command = False  # its command is `synthloom review export`
    Params = ReviewExportParams
    inputs = ("input", "store")
    outputs = ("out",)
    out_dir = True

    params: ReviewExportParams

    def written(self) -> list[tuple[str, str, Path]]:
        out = self.params.out
        if out is None:
            return []
        return [("out", "", out)] + [
            ("out", f" ({name})", out / name)
            for name in (RECORDS_FILE, RANKINGS_FILE, "lineage.json")
        ]

    def check(self) -> None:
        from synthloom.errors import UserError

        if not Path(self.params.input).exists():
            raise UserError(f"{self.params.input}: not found; give the reviewed run or file")
        ReviewStore(store_path(self.params), create=False)

    def run(self) -> dict[str, Any]:
        from synthloom.errors import UserError

        p = self.params
        if p.out is None:
            raise UserError("review-export: give `out`, a directory for the reviewed set")
        self.check()
        store = ReviewStore(store_path(p), create=False)
        return export_review(store, p.out, inputs=[p.input])
