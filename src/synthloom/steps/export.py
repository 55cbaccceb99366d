"""`export`: a run's records as training data (a curation step, no model)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloom.errors import UserError
from synthloom.export.card import CardInfo, render
from synthloom.export.formats import SFT, SFTFormat, help_text
from synthloom.export.sft import sft_rows
from synthloom.export.split import check_shares
from synthloom.export.write import planned_files, write_card, write_dataset
from synthloom.outputs import is_dataset_dir
from synthloom.runs import read_records
from synthloom.steps.base import Step
from synthloom.terminal import visible

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


class ExportParams(OutputParams):
    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "SOURCE"},
    )
    format: SFTFormat = Field(
        "messages",
        description="the training format (see the list above: which trainers read each)",
    )
    path: Path = Field(
        ...,
        description="the dataset to write: a .jsonl or .parquet file, or a directory name"
        " without a suffix for a `datasets` save_to_disk directory (written atomically)",
        json_schema_extra={"flag": "--out"},
    )
    system: str | None = Field(
        None,
        description="a system prompt for every row that has none of its own (conversational"
        " formats and alpaca)",
    )
    group_by: str | None = Field(
        None,
        description="a data field whose equal values stay in one split (e.g. prompt_id,"
        " article_id), besides provenance parents",
    )
    include_flagged: bool = Field(False, description="also export records flagged for review")


class Export(Step):
    name = "export"
    Params = ExportParams
    outputs = ("path",)
    datasets = ("path",)
    dataset_dirs = ("path",)

    params: ExportParams

    def written(self) -> list[tuple[str, str, Path]]:
        p = self.params
        return [
            ("path", note, path)
            for note, path in planned_files(p.path, p.split, ids=p.ids, card=p.card)
        ]

    def check(self) -> None:
        next(iter(read_records(self.params.input)), None)
        self._check_format()

    def _check_format(self) -> None:
        p = self.params
        if SFT[p.format].jsonl_only and (p.path.suffix.lower() != ".jsonl"):
            raise UserError(f"--format {p.format}: OpenAI fine-tuning reads .jsonl files only")

    def run(self) -> dict[str, Any]:
        p = self.params
        self._check_format()
        got = sft_rows(
            p.input,
            p.format,
            include_flagged=p.include_flagged,
            system=p.system,
            group_by=p.group_by,
        )
        if not got.rows:
            raise UserError(f"{p.input}: nothing to export ({dict(got.counts)})")
        written = write_dataset(
            got.rows,
            p.path,
            ids=got.ids if p.ids else None,
            groups=got.groups,
            shares=p.split,
            seed=p.seed,
        )
        counts: dict[str, Any] = dict(got.counts)
        counts["rows_out"] = len(got.rows)
        if p.split:
            counts.update({f"rows_{k}": v for k, v in written.rows.items()})
        if p.card:
            origins = Counter(str(i["origin"]) for i in got.ids)
            info = CardInfo(
                title=p.path.name,
                fmt=SFT[p.format],
                written=written,
                out=p.path,
                command=f"synthloom export {p.input} --format {p.format} --out {p.path}",
                sources=[p.input],
                records=got.records,
                counts=counts,
                options=_options(p),
                origins=origins,
            )
            counts["card"] = str(write_card(p.path, render(info)))
        if written.empty:
            counts["empty_splits"] = ", ".join(written.empty)
        if written.stale:
            counts["not_part_of_this_export"] = ", ".join(str(x) for x in written.stale)
        return counts

    def after_cli(self, counts: dict[str, Any]) -> None:
        p = self.params
        where = "datasets directory" if is_dataset_dir(p.path) else "file"
        click.echo(
            visible(f"wrote {counts['rows_out']} {p.format} rows to {p.path} ({where})"), err=True
        )
        super().after_cli({k: v for k, v in counts.items() if k != "rows_out"})


def _options(p: ExportParams) -> dict[str, Any]:
    return {
        "split": p.split,
        "seed": p.seed,
        "group_by": p.group_by,
        "system": p.system,
        "include_flagged": p.include_flagged,
    }


Export.__doc__ = (
    "Export a run as training data: SFT (messages by default), classification or the raw data."
    "\n\nFormats, and which trainers read them (preference data: `synthloom pairs`):\n\n"
    + help_text(SFT)
)
