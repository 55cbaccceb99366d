from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from synthloom.export.trl import sidecar_path
from synthloom.preference.dataset import FORMATS, check_pairs_output, preference_data_from_files
from synthloom.terminal import visible


@click.command()
@click.option(
    "--responses",
    "responses_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A responses run directory, or a .jsonl/.csv with prompt_id, prompt, response_id, response.",
)
@click.option(
    "--rankings",
    "rankings_paths",
    type=click.Path(path_type=Path),
    multiple=True,
    required=True,
    help="A rankings file (repeatable): a judge run's rankings.jsonl and/or people's.",
)
@click.option(
    "--mode",
    type=click.Choice(["all", "best_worst", "best_random"]),
    default="all",
    show_default=True,
    help="all: every pair the ranking orders; best_worst / best_random: one pair per prompt.",
)
@click.option(
    "--aggregate",
    "aggregate_method",
    type=click.Choice(["borda", "mean_rank"]),
    default="borda",
    show_default=True,
    help="How several annotators' rankings of one prompt are combined.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="dpo",
    show_default=True,
    help="TRL dataset type (kto: best tier desirable, worst undesirable; --mode is ignored).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output file, .jsonl or .parquet (written atomically).",
)
@click.option(
    "--ids/--no-ids",
    default=True,
    show_default=True,
    help="Also write <out stem>.ids.jsonl: prompt/response ids and provenance per row.",
)
def pairs(
    responses_path: Path,
    rankings_paths: tuple[Path, ...],
    mode: Any,
    aggregate_method: Any,
    fmt: Any,
    out: Path,
    ids: bool,
) -> None:
    """Turn rankings of responses into chosen/rejected pairs (no model calls)."""
    check_pairs_output(out, responses_path, rankings_paths, ids=ids)
    data = preference_data_from_files(
        responses_path, rankings_paths, mode=mode, aggregate_method=aggregate_method, fmt=fmt
    )
    data.write(out, include_ids=ids)
    s = data.summary
    unit = "rows" if fmt.startswith("kto") else "pairs"
    extra = f" (+ {sidecar_path(out)})" if ids else ""
    lines = [
        f"wrote {len(data.rows)} {fmt} {unit} to {out}{extra}",
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
        f" {s['aggregated_prompts']} prompt(s) aggregated ({aggregate_method})",
        _agreement(s["mean_kendall_tau"], s["krippendorff_alpha"]),
    ]
    click.echo("\n".join(visible(line) for line in lines))


def _agreement(tau: float | None, alpha: float | None) -> str:
    if tau is None and alpha is None:
        return "agreement: n/a (needs 2+ annotators on a prompt)"
    return f"agreement: mean Kendall tau {_num(tau)}, Krippendorff alpha {_num(alpha)}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
