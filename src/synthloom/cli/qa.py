from __future__ import annotations

from pathlib import Path

import click

from synthloom.cli.common import model_options, run_from_cli
from synthloom.errors import UserError
from synthloom.settings import ModelSettings
from synthloom.tasks.qa import QAParams, QATask


@click.command()
@click.option("--topic", help='What the questions are about, e.g. "product returns".')
@click.option(
    "--from-docs",
    "docs",
    type=click.Path(path_type=Path),
    help="A .txt/.md file or a directory of them.",
)
@click.option(
    "-n",
    "--num",
    "n",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Pairs for the topic, or per document chunk.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(200),
    default=1500,
    show_default=True,
    help="Characters per document chunk.",
)
@click.option(
    "--chunk-overlap",
    type=click.IntRange(0),
    default=200,
    show_default=True,
    help="Characters shared by neighbouring chunks.",
)
@model_options
def qa(
    topic: str | None,
    docs: Path | None,
    n: int,
    chunk_size: int,
    chunk_overlap: int,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """Question/answer pairs about a topic, or grounded in documents."""
    if bool(topic) == bool(docs):
        raise UserError("give exactly one of --topic TEXT or --from-docs PATH")
    params = QAParams(
        topic=topic, from_docs=docs, n=n, chunk_size=chunk_size, chunk_overlap=chunk_overlap
    )
    task = QATask(params)
    run_from_cli("qa", task, settings, out)
