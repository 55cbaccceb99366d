from __future__ import annotations

from pathlib import Path

import click

from synthloom.cli.common import model_options, run_from_cli
from synthloom.settings import ModelSettings
from synthloom.tasks.self_instruct import SelfInstructParams, SelfInstructTask


@click.command("self-instruct")
@click.option(
    "--seeds",
    type=click.Path(path_type=Path),
    help="Seed tasks: JSONL in the Self-Instruct format (default: a small shipped set).",
)
@click.option(
    "-n",
    "--num-instructions",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="New tasks to keep.",
)
@click.option(
    "--per-call",
    type=click.IntRange(1, 50),
    default=8,
    show_default=True,
    help="New instructions asked for per call (Alpaca asks for 20; small models do better with few).",
)
@click.option(
    "--batch",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Generation calls per round.",
)
@click.option(
    "--max-rounds",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Stop after this many rounds even if fewer tasks were kept (the shortfall is reported).",
)
@click.option(
    "--classify",
    type=click.Choice(["model", "keywords"]),
    default="model",
    show_default=True,
    help="Decide whether a task is classification by asking the model, or by keywords.",
)
@model_options
def self_instruct(
    seeds: Path | None,
    num_instructions: int,
    per_call: int,
    batch: int,
    max_rounds: int,
    classify: str,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """New instruction-following tasks bootstrapped from seed tasks (Self-Instruct)."""
    params = SelfInstructParams(
        seeds=seeds,
        num_instructions=num_instructions,
        per_call=per_call,
        batch=batch,
        max_rounds=max_rounds,
        classify=classify,  # type: ignore[arg-type]  # click.Choice guarantees the literal
    )
    run_from_cli("self-instruct", SelfInstructTask(params), settings, out)
