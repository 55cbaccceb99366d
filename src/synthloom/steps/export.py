"""`export`: a run's records as training data (a curation step, no model)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from synthloom.errors import UserError
from synthloom.export.card import CardInfo, render
from synthloom.export.formats import PREFERENCE, SFT, AnyFormat, help_text
from synthloom.export.sft import sft_rows
from synthloom.export.write import OutputParams, planned_files, write_card, write_dataset
from synthloom.outputs import is_dataset_dir
from synthloom.preference.rankings import AggregateMethod, PairMode
from synthloom.runs import read_records
from synthloom.steps.base import Step
from synthloom.steps.pairs import Pairs, PairsParams
from synthloom.terminal import visible


class ExportParams(OutputParams):
    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "SOURCE"},
    )
    format: AnyFormat = Field(
        "messages",
        description="the training format (see the list above: which trainers read each);"
        " a preference format reads --rankings, as `synthloom pairs` does",
    )
    rankings: list[Path] = Field(
        [],
        description="preference formats: a rankings file of SOURCE's responses (repeatable):"
        " a judge run's rankings.jsonl and/or people's",
        json_schema_extra={"multiple": True},
    )
    mode: PairMode = Field(
        "all", description="preference formats: which pairs (all, best_worst, best_random)"
    )
    aggregate: AggregateMethod = Field(
        "borda", description="preference formats: how several annotators' rankings combine"
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
    inputs = ("input", "rankings")
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
        pairs = self._pairs()
        if pairs is not None:
            pairs.check()
            return
        next(iter(read_records(self.params.input)), None)
        self._check_format()

    def _check_format(self) -> None:
        p = self.params
        if SFT[p.format].jsonl_only and (p.path.suffix.lower() != ".jsonl"):
            raise UserError(f"--format {p.format}: OpenAI fine-tuning reads .jsonl files only")
        if p.rankings:
            raise UserError(f"--rankings: --format {p.format} is no preference format; drop it")

    def _pairs(self) -> Pairs | None:
        """A preference format: the `pairs` step over SOURCE's responses and the rankings."""
        p = self.params
        if p.format not in PREFERENCE:
            return None
        if not p.rankings:
            raise UserError(
                f"--format {p.format} makes pairs from rankings: give --rankings FILE (a judge"
                " run's rankings.jsonl or people's, from `synthloom review export`)"
            )
        if p.group_by or p.include_flagged:
            raise UserError(
                "--group-by and --include-flagged are for SFT formats (pairs group by prompt)"
            )
        values = p.model_dump(
            include=set(OutputParams.model_fields)
            | {"rankings", "mode", "aggregate", "format", "system"}
        )
        return Pairs(PairsParams(responses=p.input, out=p.path, **values))

    def run(self) -> dict[str, Any]:
        p = self.params
        pairs = self._pairs()
        if pairs is not None:
            counts = pairs.run()
            return {"rows_out": counts["rows"], **{k: v for k, v in counts.items() if k != "rows"}}
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
        pairs = self._pairs()
        if pairs is not None:
            pairs.after_cli({**counts, "rows": counts["rows_out"]})
            return
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
    "Export a run as training data: SFT (messages by default), classification, preference"
    " pairs (from --rankings of a responses run) or the raw data."
    "\n\nFormats, and which trainers read them:\n\n" + help_text(SFT) + "\n\n"
    "Preference formats (SOURCE: a responses run or file; with --rankings, as `synthloom"
    " pairs` makes them):\n\n" + help_text(PREFERENCE)
)
