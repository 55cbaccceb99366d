"""`pairs`: rankings of responses -> a TRL preference dataset (chosen/rejected pairs, reward
pairs with margins, or KTO rows); no model calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field

from synthloom.export.pairs import ExportFormat, preference_data_from_files
from synthloom.export.trl import sidecar_path
from synthloom.preference.rankings import AggregateMethod, PairMode
from synthloom.steps.base import Step
from synthloom.terminal import visible


class PairsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    responses: Path = Field(
        ...,
        description="a responses run directory, or a .jsonl/.csv with prompt_id, prompt,"
        " response_id, response",
    )
    rankings: list[Path] = Field(
        ...,
        min_length=1,
        description="a rankings file (repeatable): a judge run's rankings.jsonl and/or people's",
        json_schema_extra={"multiple": True},
    )
    mode: PairMode = Field(
        "all",
        description="which pairs: every pair the ranking orders (all), or one per prompt"
        " (best_worst, best_random)",
    )
    aggregate: AggregateMethod = Field(
        "borda", description="how several annotators' rankings of one prompt are combined"
    )
    format: ExportFormat = Field(
        "dpo",
        description="TRL dataset type (kto: best tier desirable, worst undesirable; --mode is"
        " ignored)",
    )
    out: Path = Field(..., description="output file, .jsonl or .parquet (written atomically)")
    ids: bool = Field(
        True,
        description="also write <out stem>.ids.jsonl: prompt/response ids and provenance per row",
    )


class Pairs(Step):
    """Turn rankings of responses into chosen/rejected pairs (no model calls)."""

    name = "pairs"
    Params = PairsParams
    inputs = ("responses", "rankings")
    datasets = ("out",)

    params: PairsParams

    def written(self) -> list[tuple[str, str, Path]]:
        out = self.params.out
        ids = [("out", " (its ids file)", sidecar_path(out))] if self.params.ids else []
        return [("out", "", out), *ids]

    def _data(self) -> Any:
        p = self.params
        return preference_data_from_files(
            p.responses, p.rankings, mode=p.mode, aggregate_method=p.aggregate, fmt=p.format
        )

    def check(self) -> None:
        self._data()

    def run(self) -> dict[str, Any]:
        self.check_outputs()  # also when called from Python: never over an input
        data = self._data()
        data.write(self.params.out, include_ids=self.params.ids)
        return {**data.summary, "rows": len(data.rows)}

    def after_cli(self, counts: dict[str, Any]) -> None:
        p, s = self.params, counts
        unit = "rows" if p.format.startswith("kto") else "pairs"
        extra = f" (+ {sidecar_path(p.out)})" if p.ids else ""
        lines = [
            f"wrote {s['rows']} {p.format} {unit} to {p.out}{extra}",
            f"prompts in: {s['prompts_in']} ({s['prompts_without_ranking']} more without a ranking)",
        ]
        if unit == "pairs":
            lines.append(f"pairs out: {s['pairs_out']} (mode {s['mode']})")
        else:
            lines.append(
                f"rows out: {s['rows_out']} ({s['desirable']} desirable, {s['undesirable']}"
                f" undesirable, {s['middle_excluded']} middle-tier responses left out)"
            )
        lines += [
            f"all-tie prompts (no pair): {s['all_tie_prompts']}",
            f"prompts ranking <2 responses (no pair): {s['too_few_responses']}",
            f"rankings: {s['rankings']} by {s['annotators']} annotator(s);"
            f" {s['aggregated_prompts']} prompt(s) aggregated ({p.aggregate})",
            _agreement(s["mean_kendall_tau"], s["krippendorff_alpha"]),
        ]
        click.echo("\n".join(visible(line) for line in lines))


def _agreement(tau: float | None, alpha: float | None) -> str:
    if tau is None and alpha is None:
        return "agreement: n/a (needs 2+ annotators on a prompt)"
    return f"agreement: mean Kendall tau {_num(tau)}, Krippendorff alpha {_num(alpha)}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
