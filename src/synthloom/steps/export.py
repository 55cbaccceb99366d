"""`export`: a run's records as SFT training data (a curation step, no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthloom.export.sft import SFTFormat, export_records
from synthloom.runs import read_records
from synthloom.steps.base import Step


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "SOURCE"},
    )
    format: SFTFormat = Field(
        ...,
        description="the training format (data: each record's data as it is)",
    )
    path: Path = Field(
        ...,
        description="the dataset file to write: .jsonl or .parquet (written atomically)",
        json_schema_extra={"flag": "--out"},
    )
    include_flagged: bool = Field(False, description="also export records flagged for review")


class Export(Step):
    """Export a run as SFT training data (Alpaca, ShareGPT, messages, prompt-completion)."""

    name = "export"
    Params = ExportParams
    outputs = ("path",)
    datasets = ("path",)

    params: ExportParams

    def check(self) -> None:
        next(iter(read_records(self.params.input)), None)

    def run(self) -> dict[str, Any]:
        p = self.params
        counts = export_records(p.input, p.path, p.format, include_flagged=p.include_flagged)
        return dict(counts)
