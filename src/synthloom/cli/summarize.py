from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from synthloom.cli.common import model_options, run_from_cli
from synthloom.errors import UserError
from synthloom.settings import ModelSettings, validation_message
from synthloom.tasks.summarize import STYLE_HINTS, SummarizeParams, SummarizeTask


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Articles: a .txt/.md file or a directory of them (one article per file), or a"
    " .jsonl/.csv file or previous run (one per row).",
)
@click.option("--text-column", default="text", show_default=True, help="Column with the text.")
@click.option("--id-column", help="Column with the article id (default: file:line).")
@click.option("--title-column", help="Column with the article title.")
@click.option(
    "-k",
    "k",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Candidate summaries per article.",
)
@click.option(
    "--lengths",
    default="three sentences",
    show_default=True,
    help='Comma-separated target lengths, e.g. "one sentence,about 50 words,a bullet list of 3".',
)
@click.option(
    "--styles",
    default="neutral",
    show_default=True,
    help=f"Comma-separated styles ({', '.join(STYLE_HINTS)}, or your own words).",
)
@click.option(
    "--max-chars",
    type=click.IntRange(200),
    default=6000,
    show_default=True,
    help="Longer articles are truncated (and counted).",
)
@model_options
def summarize(
    input_path: Path,
    text_column: str,
    id_column: str | None,
    title_column: str | None,
    k: int,
    lengths: str,
    styles: str,
    max_chars: int,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """K candidate summaries per article, lengths and styles crossed and cycled across the K,
    ready for human review or a judge (the K candidates of an article share data.group)."""
    try:
        params = SummarizeParams(
            input=input_path,
            text_column=text_column,
            id_column=id_column,
            title_column=title_column,
            k=k,
            lengths=_items(lengths),
            styles=_items(styles),
            max_chars=max_chars,
        )
    except ValidationError as exc:
        raise UserError(f"option {validation_message(exc)}") from None
    run_from_cli("summarize", SummarizeTask(params), settings, out)
