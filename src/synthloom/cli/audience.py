from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from synthloom.cli.common import model_options, run_from_cli
from synthloom.errors import UserError
from synthloom.settings import ModelSettings, validation_message
from synthloom.tasks.audience import DEFAULT_AUDIENCES, AudienceParams, AudienceTask, split_list


@click.command()
@click.option("--topics", help="Comma-separated topics, or a file with one per line.")
@click.option(
    "--instructions",
    type=click.Path(path_type=Path),
    help="Instructions: a .txt file (one per line), or .jsonl/.csv/run with 'instruction'.",
)
@click.option(
    "--audiences",
    help="Comma-separated readers, or a file with one per line."
    f" [default: {'; '.join(DEFAULT_AUDIENCES)}, unless --personas is given]",
)
@click.option(
    "--personas",
    help='Comma-separated writers (e.g. "a patient kindergarten teacher"), or a file.',
)
@click.option(
    "-n",
    "--samples",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Responses per combination.",
)
@click.option("--length", help='How long each answer should be, e.g. "one short paragraph".')
@model_options
def audience(
    topics: str | None,
    instructions: Path | None,
    audiences: str | None,
    personas: str | None,
    samples: int,
    length: str | None,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """Instructions and responses written for an audience and/or in a persona's voice, for
    every topic (or instruction) crossed with every audience and persona."""
    if bool(topics) == bool(instructions):
        raise UserError("give exactly one of --topics LIST|FILE or --instructions FILE")
    try:
        params = AudienceParams(
            topics=split_list(topics) if topics else None,
            instructions=instructions,
            audiences=split_list(audiences) if audiences else None,
            personas=split_list(personas) if personas else None,
            samples=samples,
            length=length,
        )
    except ValidationError as exc:
        raise UserError(f"option {validation_message(exc)}") from None
    run_from_cli("audience", AudienceTask(params), settings, out)
