"""`pairs`: rankings of responses -> a TRL preference dataset (chosen/rejected pairs, reward
pairs with margins, or KTO rows); no model calls."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from synthloom.errors import UserError
from synthloom.export.card import CardInfo, render
from synthloom.export.formats import PREFERENCE, help_text
from synthloom.export.pairs import DEFAULT_FORMAT, ExportFormat, preference_data_from_files
from synthloom.export.write import OutputParams, planned_files, write_card, write_dataset
from synthloom.preference.rankings import AggregateMethod, PairMode
from synthloom.steps.base import Step
from synthloom.terminal import visible


class PairsParams(OutputParams):
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
        DEFAULT_FORMAT,
        description="the dataset type (see the list above; kto: best tier desirable, worst"
        " undesirable, --mode is ignored)",
    )
    system: str | None = Field(
        None, description="a system prompt for every row (conversational formats only)"
    )
    out: Path = Field(
        ...,
        description="output: a .jsonl or .parquet file, or a directory name without a suffix"
        " for a `datasets` save_to_disk directory (written atomically)",
    )


class Pairs(Step):
    name = "pairs"
    Params = PairsParams
    inputs = ("responses", "rankings")
    datasets = ("out",)
    dataset_dirs = ("out",)

    params: PairsParams

    def written(self) -> list[tuple[str, str, Path]]:
        p = self.params
        return [
            ("out", note, path)
            for note, path in planned_files(p.out, p.split, ids=p.ids, card=p.card)
        ]

    def _data(self) -> Any:
        p = self.params
        if PREFERENCE[p.format].jsonl_only and p.out.suffix.lower() != ".jsonl":
            raise UserError(f"--format {p.format}: OpenAI fine-tuning reads .jsonl files only")
        return preference_data_from_files(
            p.responses,
            p.rankings,
            mode=p.mode,
            aggregate_method=p.aggregate,
            fmt=p.format,
            system=p.system,
        )

    def check(self) -> None:
        self._data()

    def run(self) -> dict[str, Any]:
        self.check_outputs()  # also when called from Python: never over an input
        p = self.params
        data = self._data()
        written = write_dataset(
            data.rows,
            p.out,
            ids=data.ids if p.ids else None,
            groups=data.groups,
            shares=p.split,
            seed=p.seed,
        )
        counts: dict[str, Any] = {**data.summary, "rows": len(data.rows)}
        if p.split:
            counts.update({f"rows_{k}": v for k, v in written.rows.items()})
        counts["files"] = [str(f) for f in [*written.files, *written.ids_files]]
        if p.card:
            counts["card"] = str(write_card(p.out, render(self._card(data.summary, written))))
        return counts

    def _card(self, summary: dict[str, Any], written: Any) -> CardInfo:
        p = self.params
        from_run = (p.responses / "records.jsonl").is_file()
        rows = sum(written.rows.values())
        origin = "synthetic" if from_run else "from a responses file (origin not recorded)"
        agreement = _agreement(summary["mean_kendall_tau"], summary["krippendorff_alpha"])
        body = "\n".join(
            [
                f"- prompts ranked: {summary['prompts_in']} ({summary['prompts_without_ranking']}"
                " more without a ranking)",
                f"- rankings: {summary['rankings']} by {summary['annotators']} annotator(s);"
                f" {summary['aggregated_prompts']} prompt(s) aggregated ({p.aggregate})",
                f"- {agreement}",
                f"- pairs: mode `{p.mode}`; prompts whose responses all tie give no pair"
                f" ({summary['all_tie_prompts']}), nor prompts ranking fewer than 2 responses"
                f" ({summary['too_few_responses']})",
                "- rankings read from: " + ", ".join(f"`{r}`" for r in p.rankings),
            ]
        )
        return CardInfo(
            title=p.out.name,
            fmt=PREFERENCE[p.format],
            written=written,
            out=p.out,
            command=f"synthloom pairs --responses {p.responses} --format {p.format} --out {p.out}",
            sources=[p.responses, *p.rankings],
            counts={},
            options={"split": p.split, "seed": p.seed, "system": p.system},
            origins=Counter({origin: rows}),
            sections=[("Rankings", body)],
        )

    def after_cli(self, counts: dict[str, Any]) -> None:
        p, s = self.params, counts
        unit = "rows" if p.format.startswith("kto") else "pairs"
        data = [f for f in s["files"] if not f.endswith(".ids.jsonl")] or [str(p.out)]
        others = [f for f in s["files"] if f not in data] + ([s["card"]] if "card" in s else [])
        extra = f" (+ {', '.join(others)})" if others else ""
        lines = [
            f"wrote {s['rows']} {p.format} {unit} to {', '.join(data)}{extra}",
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


Pairs.__doc__ = (
    "Turn rankings of responses into chosen/rejected pairs (no model calls)."
    "\n\nFormats, and which trainers read them:\n\n" + help_text(PREFERENCE)
)
