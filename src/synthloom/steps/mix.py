"""`mix`: real and synthetic training rows mixed to a synthetic share, by phase (no model)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from synthloom.export.card import CardInfo, render
from synthloom.export.formats import ALL, Format
from synthloom.export.mix import PHASES, Phase, mix_rows
from synthloom.export.write import OutputParams, planned_files, write_card, write_dataset
from synthloom.steps.base import Step
from synthloom.terminal import visible


class MixParams(OutputParams):
    real: Path = Field(..., description="real (human-made) rows: a .jsonl or .parquet file")
    synthetic: Path = Field(
        ...,
        description="synthetic rows of the same format, e.g. a synthloom export (its"
        " <file>.ids.jsonl, if there, gives each row's origin and provenance)",
    )
    phase: Phase = Field(
        ...,
        description="the training phase, whose preset says which synthetic share it tolerates: "
        + ", ".join(f"{k} {v.tolerated:g}" for k, v in PHASES.items()),
    )
    share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the synthetic share to reach (to within one row), sampling down the side"
        " in excess; without it and --cap every row is kept",
    )
    cap: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the most synthetic share: synthetic rows are sampled down only above it",
    )
    warn_above: float | None = Field(
        None,
        ge=0,
        le=1,
        description="warn above this synthetic share instead of the phase's preset",
    )
    out: Path = Field(
        ...,
        description="output: a .jsonl or .parquet file, or a directory name without a suffix"
        " for a `datasets` save_to_disk directory (written atomically)",
    )


class Mix(Step):
    name = "mix"
    Params = MixParams
    inputs = ("real", "synthetic")
    datasets = ("out",)
    dataset_dirs = ("out",)

    params: MixParams

    def written(self) -> list[tuple[str, str, Path]]:
        p = self.params
        # rows carry their provenance: no ids side file
        return [
            ("out", n, path) for n, path in planned_files(p.out, p.split, ids=False, card=p.card)
        ]

    def check(self) -> None:
        from synthloom.export.mix import read_rows

        for path in (self.params.real, self.params.synthetic):
            read_rows(path)

    def run(self) -> dict[str, Any]:
        self.check_outputs()
        p = self.params
        mixed = mix_rows(
            p.real,
            p.synthetic,
            phase=p.phase,
            share=p.share,
            cap=p.cap,
            warn_above=p.warn_above,
            seed=p.seed,
        )
        written = write_dataset(mixed.rows, p.out, groups=mixed.groups, shares=p.split, seed=p.seed)
        counts = dict(mixed.counts)
        counts["rows_out"] = len(mixed.rows)
        if p.split:
            counts.update({f"rows_{k}": v for k, v in written.rows.items()})
        if p.card:
            counts["card"] = str(
                write_card(p.out, render(self._card(mixed, mixed.warnings, written)))
            )
        if mixed.warnings:
            counts["warnings"] = mixed.warnings
        return counts

    def _card(self, mixed: Any, warnings: list[str], written: Any) -> CardInfo:
        p = self.params
        counts = mixed.counts
        # the records behind the rows, as far as the inputs' ids files say
        records = [
            {"task": r["provenance"]["task"], "provenance": r["provenance"]}
            for r in mixed.rows
            if r["provenance"].get("record_id")
        ]
        preset = PHASES[p.phase]
        body = "\n".join(
            [
                f"- phase: `{p.phase}`, which tolerates a synthetic share up to"
                f" {counts['tolerated_share']:g}"
                + (" (set by --warn-above)" if p.warn_above is not None else f" ({preset.why})"),
                "- asked: "
                + (
                    f"share {p.share:g}"
                    if p.share is not None
                    else f"cap {p.cap:g}"
                    if p.cap is not None
                    else "every row"
                ),
                f"- real rows: {counts['real_in']} in, {counts['real_out']} kept;"
                f" synthetic rows: {counts['synthetic_in']} in, {counts['synthetic_out']} kept"
                f" (seed {p.seed})",
                f"- real from `{p.real}`, synthetic from `{p.synthetic}`; every row has `origin`"
                " and `provenance` (file, row, record id, task, model, template)",
            ]
        )
        return CardInfo(
            title=p.out.name,
            fmt=_format_of(p.synthetic),
            written=written,
            out=p.out,
            command=f"synthloom mix --real {p.real} --synthetic {p.synthetic} --phase {p.phase}"
            + (f" --share {p.share:g}" if p.share is not None else "")
            + f" --out {p.out}",
            sources=[p.real, p.synthetic],
            records=records,
            origins=Counter({"real": counts["real_out"], "synthetic": counts["synthetic_out"]}),
            options={"split": p.split, "seed": p.seed},
            sections=[("Mix", body)],
            warnings=warnings,
        )

    def after_cli(self, counts: dict[str, Any]) -> None:
        shown = {k: v for k, v in counts.items() if k not in ("warnings", "rows_by_file")}
        super().after_cli(shown)
        for warning in counts.get("warnings", []):
            click.echo(visible(f"warning: {warning}"), err=True)


def _format_of(path: Path) -> Format:
    """The format whose columns the rows have (a generic one if none matches)."""
    from synthloom.export.mix import read_rows

    row = read_rows(path)[0]
    columns = set(row) - {"origin", "provenance"}
    conversational = any(isinstance(v, list) for v in row.values())
    for fmt in ALL.values():
        if fmt.conversational != conversational and fmt.name != "openai-dpo":
            continue
        if fmt.columns and set(fmt.columns) <= columns <= set(fmt.columns) | set(fmt.optional):
            return fmt
    return Format("rows", "data", tuple(sorted(columns)), False, "the rows as given", "")


Mix.__doc__ = (
    "Mix real and synthetic rows to a synthetic share, warning above what the phase tolerates."
    "\n\nEvery row gets `origin` (real or synthetic) and `provenance`. Phase presets (the"
    " synthetic share above which mix warns; --warn-above sets your own):\n\n\b\n"
    + "\n".join(f"{k}: {v.tolerated:g} ({v.why})" for k, v in PHASES.items())
)
