from __future__ import annotations

from pathlib import Path

import click

from synthloom.cli.common import model_options, run_from_cli
from synthloom.cli.responses import first_error
from synthloom.errors import UserError
from synthloom.preference.dataset import RANKINGS_FILE
from synthloom.settings import ModelSettings
from synthloom.tasks.judge import ASPECTS, JudgeParams, JudgeTask


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A responses run directory, or a .jsonl/.csv with prompt_id, prompt, response_id, "
    "response (group/prompt/response also accepted).",
)
@click.option(
    "--mode",
    type=click.Choice(["rate", "pairwise"]),
    default="rate",
    show_default=True,
    help="rate: 1-5 per aspect for each response; pairwise: every pair judged in both orders.",
)
@click.option(
    "--aspects",
    default=",".join(ASPECTS),
    show_default=True,
    help="Comma-separated criteria the judge uses.",
)
@click.option(
    "--rationale-chars",
    type=click.IntRange(10, 4000),
    default=400,
    show_default=True,
    help="Longest rationale the judge may write (shorter is faster).",
)
@model_options
def judge(
    input_path: Path,
    mode: str,
    aspects: str,
    rationale_chars: int,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """Rank each prompt's responses with a judge model (the main model options)."""
    try:
        params = JudgeParams(
            input=input_path,
            mode=mode,  # type: ignore[arg-type]
            aspects=[a.strip() for a in aspects.split(",") if a.strip()],
            rationale_chars=rationale_chars,
        )
    except ValueError as exc:
        raise UserError(f"--aspects: {first_error(exc)}") from None
    task = JudgeTask(params)
    summary = run_from_cli("judge", task, settings, out)
    click.echo(f"rankings: {summary.out / RANKINGS_FILE}", err=True)
