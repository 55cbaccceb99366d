from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from synthloom.errors import UserError

SHOWN_CHARS = 600  # per field; longer text is cut on screen (never in the files)


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("-n", "--limit", type=click.IntRange(1), default=10, show_default=True)
def show(run: Path, limit: int) -> None:
    """Print the first records of a run directory (or a records .jsonl file)."""
    path = run / "records.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise UserError(f"{path}: not found; give a run directory or a records .jsonl file")
    console = Console()
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            try:
                record = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{i + 1}: not a JSON record") from None
            table = Table(
                show_header=False,
                title=f"{record.get('task')} {record.get('id')} ({record.get('status')})",
                title_justify="left",
            )
            table.add_column(style="bold")
            table.add_column()
            for key, value in (record.get("data") or {}).items():
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                if len(shown) > SHOWN_CHARS:
                    more = len(shown) - SHOWN_CHARS
                    shown = f"{shown[:SHOWN_CHARS]}… [{more} more characters in the file]"
                table.add_row(key, Text(shown))  # Text(): generated text is never markup
            console.print(table)
