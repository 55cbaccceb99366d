from __future__ import annotations

from pathlib import Path

import click

from synthloom.cli.common import model_options, run_from_cli
from synthloom.settings import ModelSettings
from synthloom.tasks.evol import EvolParams, EvolTask


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="Instructions: a .jsonl/.csv file or a synthloom run directory (default: shipped seeds).",
)
@click.option(
    "--instruction-column",
    default="instruction",
    show_default=True,
    help="Column (or record field) holding the instruction.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Evolution rounds; each round evolves every instruction once.",
)
@model_options
def evol(
    input_path: Path | None,
    instruction_column: str,
    rounds: int,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """Harder, more varied instructions with answers, evolved round by round (Evol-Instruct)."""
    params = EvolParams(input=input_path, instruction_column=instruction_column, rounds=rounds)
    run_from_cli("evol", EvolTask(params), settings, out)
