"""Reading user inputs: documents (txt/md), JSONL and CSV files, with one-line errors.

Every error names the file (and line where there is one) and says how to fix it.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from synthloom.errors import UserError
from synthloom.records import parse_json

DOC_SUFFIXES = (".txt", ".md", ".markdown")


def _raise_csv_field_limit() -> int:
    """Let CSV cells be as large as the platform allows (the default is 128 KiB, and a longer
    cell, e.g. a whole article, raised "field larger than field limit"). The limit is a C long:
    sys.maxsize overflows where a long is 32 bits, so step down until it fits."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return limit
        except OverflowError:
            limit //= 2


CSV_FIELD_LIMIT = _raise_csv_field_limit()  # every CSV reader in synthloom goes through here


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a file") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8"
        ) from None
    if not text.strip():
        raise UserError(f"{path}: file is empty")
    return text


def find_documents(path: Path) -> list[Path]:
    """A .txt/.md file, or every such file under a directory (sorted)."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
    if not files:
        raise UserError(f"{path}: no .txt or .md files in this directory")
    return files


@dataclass(frozen=True)
class Chunk:
    file: str
    index: int
    start: int  # character offsets into the file's text
    end: int
    text: str


def chunk_text(text: str, file: str, size: int = 1500, overlap: int = 200) -> list[Chunk]:
    """Split on paragraph, then sentence, then word boundaries into chunks of about `size`
    characters; each chunk starts `overlap` characters (at a word boundary) before the end of
    the previous one, so a fact cut by a boundary is whole in one of them."""
    if overlap >= size:
        raise UserError(f"chunk overlap ({overlap}) must be smaller than chunk size ({size})")
    chunks: list[Chunk] = []
    n = len(text)
    start = _skip_space(text, 0)
    while start < n:
        end = min(n, start + size)
        if end < n:
            end = _boundary(text, start + size // 2, end)
        piece = text[start:end].strip()
        if piece:
            chunks.append(Chunk(file, len(chunks), start, end, piece))
        if end >= n:
            break
        nxt = max(start + 1, end - overlap)
        # move forward to the start of a word
        while nxt < end and not text[nxt - 1].isspace():
            nxt += 1
        start = _skip_space(text, nxt if nxt < end else end)
    return chunks


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _boundary(text: str, lo: int, hi: int) -> int:
    window = text[lo:hi]
    for pattern in (r"\n\s*\n", r"[.!?][\"')\]]*\s", r"\s"):
        matches = list(re.finditer(pattern, window))
        if matches:
            return lo + matches[-1].end()
    return hi


def load_documents(path: Path, size: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for file in find_documents(path):
        chunks.extend(chunk_text(read_text(file), str(file), size, overlap))
    return chunks


def read_table(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a .jsonl or .csv file as (line number, row), read as they are used: memory
    does not grow with the file. Errors name the file and line."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise UserError(f"{path}: unsupported file type {suffix!r}; use .jsonl or .csv")
    try:
        f = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a file") from None
    lines = _Lines(path, f)
    with f:
        if suffix in (".csv", ".tsv"):
            reader = csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ",")
            for i, row in enumerate(reader, start=2):
                yield i, dict(row)
        else:
            for i, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = parse_json(line)  # (orjson: a rerun reads its input twice)
                except ValueError as exc:
                    raise UserError(
                        f"{path}:{i}: invalid JSON ({exc.msg}); one object per line"
                    ) from None
                if not isinstance(row, dict):
                    raise UserError(f"{path}:{i}: expected a JSON object per line")
                yield i, row
    if not lines.content:
        raise UserError(f"{path}: file is empty")


def _utf8_error(path: Path) -> UserError:
    """The one-line error for the first byte of `path` that is not UTF-8 (read by lines: the
    decoder reads ahead, so where it failed is not where the bad byte is)."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return UserError(
                    f"{path}:{number}: not UTF-8 text (bad byte at offset"
                    f" {offset + exc.start}); convert it to UTF-8"
                )
            offset += len(raw)
    return UserError(f"{path}: not UTF-8 text; convert it to UTF-8")


class _Lines:
    """The lines of a text file (line breaks as `str.splitlines` makes them, for JSON), with a
    one-line error for bytes that are not UTF-8, and whether any line had content."""

    def __init__(self, path: Path, f: IO[str]) -> None:
        self.path, self.f, self.content, self.line = path, f, False, 0

    def __iter__(self) -> Iterator[str]:
        path, f = self.path, self.f
        while True:
            try:
                raw = f.readline()
            except UnicodeDecodeError:
                raise _utf8_error(path) from None
            if not raw:
                return
            self.line += 1
            if not self.content and raw.strip():
                self.content = True
            yield raw.rstrip("\r\n")


def require_columns(path: Path, line: int, row: dict[str, Any], columns: list[str]) -> None:
    for col in columns:
        value = row.get(col)
        if value is None or (isinstance(value, str) and not value.strip()):
            have = ", ".join(sorted(row)) or "none"
            raise UserError(
                f"{path}:{line}: missing or empty column {col!r} (columns here: {have});"
                " choose the column with the matching option"
            )


@dataclass(frozen=True)
class InputRow:
    """One input row: its data, where it came from, and the record id if it is a synthloom record."""

    path: Path
    line: int
    data: dict[str, Any]
    record_id: str | None


def read_inputs(path: Path, columns: list[str] | None = None) -> list[InputRow]:
    """Rows of a .jsonl/.csv file, or of a synthloom run (`records.jsonl` or its directory).

    synthloom records are unwrapped to their `data` and keep their id, so outputs can name
    their parents. `columns` must be present and non-empty in every row. (A list: for large
    inputs, `Inputs` streams them instead.)"""
    return list(Inputs(path, columns))


def iter_inputs(path: Path, columns: list[str] | None = None) -> Iterator[InputRow]:
    """The rows of `read_inputs`, one at a time (no row count check)."""
    if path.is_dir():
        path = path / "records.jsonl"
    for line, row in read_table(path):
        record_id = None
        if isinstance(row.get("data"), dict) and "id" in row and "task" in row:
            record_id, row = str(row["id"]), row["data"]
        if columns:
            require_columns(path, line, row, columns)
        yield InputRow(path, line, row, record_id)


class Inputs:
    """The input rows of a file, checked once in full when made (every row read, `columns`
    present, `check(row)` raising UserError for a bad one, and counted), then read again each
    time they are iterated: a task can go over millions of rows in constant memory, and a user
    mistake on the last line is still reported before any model call."""

    def __init__(
        self,
        path: Path,
        columns: list[str] | None = None,
        check: Callable[[InputRow], None] | None = None,
    ) -> None:
        self.path, self.columns = path, columns
        count = 0
        for row in iter_inputs(path, columns):
            if check is not None:
                check(row)
            count += 1
        if not count:
            shown = path / "records.jsonl" if path.is_dir() else path
            raise UserError(f"{shown}: no rows")
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[InputRow]:
        return iter_inputs(self.path, self.columns)
