"""`synthloom show`: the first rows of a run, a failures file or an exported dataset.

What is shown is what is in the file: generated text is never rich markup, and every control
character or escape sequence is made visible (`synthloom.terminal.visible`), piped or not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from synthloom.errors import UserError
from synthloom.terminal import visible

SHOWN_CHARS = 600  # per field; longer text is cut on screen (never in the files)


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("-n", "--limit", type=click.IntRange(1), default=10, show_default=True)
def show(run: Path, limit: int) -> None:
    """Print the first records of a run directory (or a records .jsonl file), the units of a
    failures.jsonl, or the rows of an exported .jsonl (or .parquet) dataset."""
    path = _file(run)
    console = Console()
    shown = 0
    for where, row in _rows(path, limit):
        title, table = _table(where, row)
        console.print(Text(visible(title), style="bold"))  # a line of its own: never wrapped
        console.print(table)  # to the table's width
        shown += 1
    if shown == 0:
        click.echo(visible(f"{path}: no rows"), err=True)


def _file(run: Path) -> Path:
    if run.is_dir():
        path = run / "records.jsonl"
        if not path.is_file():
            raise UserError(
                f"{run}: not a run directory (no records.jsonl); give a run directory or a"
                " .jsonl file"
            )
        return path
    if not run.is_file():
        raise UserError(f"{run}: not found; give a run directory or a .jsonl file")
    return run


def _rows(path: Path, limit: int) -> Iterator[tuple[str, Any]]:
    """(file:line, parsed row) for the first `limit` non-blank rows."""
    if path.suffix.lower() == ".parquet":
        yield from _parquet_rows(path, limit)
        return
    count = 0
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            if count >= limit:
                return
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path}:{i}: not UTF-8 text; show reads .jsonl files") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{i}: not a JSON record") from None
            count += 1
            yield f"{path.name}:{i}", row


def _parquet_rows(path: Path, limit: int) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("showing Parquet needs pyarrow: pip install 'synthloom[hf]'") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    for i, row in enumerate(table.slice(0, limit).to_pylist()):
        yield f"{path.name} row {i + 1}", row


def _table(where: str, row: Any) -> tuple[str, Table]:
    """One row as a title (what kind of row it is) and a two-column table of its fields."""
    if isinstance(row, dict) and "id" in row and isinstance(row.get("data"), dict):
        title = f"{row.get('task')} {row.get('id')} ({row.get('status')})"
        fields: list[tuple[str, Any]] = list(row["data"].items())
    elif isinstance(row, dict) and "unit" in row and "cause" in row:
        title = f"failed unit {row['unit']} ({row['cause']})"
        fields = [(k, v) for k, v in row.items() if k not in ("unit", "cause")]
    elif isinstance(row, dict):
        title = where
        fields = []
        for key, value in row.items():
            fields += _message_fields(key, value) or [(key, value)]
    else:
        title, fields = where, [("value", row)]
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in fields:
        table.add_row(Text(visible(key)), Text(_shown(value)))  # Text(): never markup
    return title, table


def _message_fields(key: str, value: Any) -> list[tuple[str, Any]]:
    """A chat column (OpenAI/TRL messages, ShareGPT conversations) as one field per turn,
    e.g. `messages user`; [] if `value` is not a list of turns."""
    if not isinstance(value, list) or not value:
        return []
    turns = []
    for turn in value:
        if not isinstance(turn, dict):
            return []
        role = turn.get("role", turn.get("from"))
        text = turn.get("content", turn.get("value"))
        if not isinstance(role, str) or text is None:
            return []
        turns.append((f"{key} {role}", text))
    return turns


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > SHOWN_CHARS:
        more = len(text) - SHOWN_CHARS
        text = f"{text[:SHOWN_CHARS]}… [{more} more characters in the file]"
    return visible(text, multiline=True)
