"""Commands that curate and export without calling a model."""

from __future__ import annotations

from pathlib import Path

import click

from synthloom.export.sft import FORMATS, export_records
from synthloom.quality.filter_run import dedup_records
from synthloom.terminal import visible


def _print_counts(counts: dict[str, int]) -> None:
    line = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
    click.echo(visible(line), err=True)  # a count's name can hold a task name from the file


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--field", required=True, help="The data field to compare, e.g. question.")
@click.option("--exact-only", is_flag=True, help="Skip near-duplicate (MinHash) detection.")
@click.option(
    "--min-words",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Also drop texts shorter than this many words.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Output .jsonl file or directory."
)
def dedup(source: Path, field: str, exact_only: bool, min_words: int, out: Path) -> None:
    """Drop exact and near-duplicate records of a run (keeps the first of each)."""
    _print_counts(dedup_records(source, out, field=field, near=not exact_only, min_words=min_words))


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="A .jsonl or .parquet file."
)
@click.option("--include-flagged", is_flag=True, help="Also export records flagged for review.")
def export(source: Path, fmt: str, out: Path, include_flagged: bool) -> None:
    """Export a run as SFT training data (Alpaca, ShareGPT, messages, prompt-completion)."""
    _print_counts(export_records(source, out, fmt, include_flagged=include_flagged))
