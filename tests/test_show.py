"""`synthloom show`: untrusted text never reaches the terminal as control characters (piped or
on a terminal), and records, failures and exported rows are each shown with their fields."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import synthloom

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
LINK = "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\"
BELL = "\x07"
CSI8 = "\x9b31m"  # the 8-bit CSI: a C1 control many terminals obey
EVIL = f"start{CLEAR}{TITLE}{LINK}{BELL}{CSI8}end"


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _evil_records(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "records.jsonl",
        [
            {
                "id": f"id{CLEAR}{BELL}",
                "task": f"qa{TITLE}",
                "status": f"ok{CSI8}",
                "data": {f"question{TITLE}": EVIL, f"answer\n{LINK}": "two\nlines\tand a tab"},
            }
        ],
    )


def _raw_show(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`synthloom show` with stdout kept as raw bytes (no decoding, no newline translation)."""
    return subprocess.run(
        [sys.executable, "-m", "synthloom", "show", *args],
        capture_output=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=60,
    )


def _assert_no_controls(out: bytes) -> None:
    for bad in (b"\x1b", b"\x07", "\x9b".encode(), b"\r"):
        assert bad not in out, (bad, out)


def test_escape_sequences_in_text_ids_and_field_names_are_shown_not_obeyed(
    tmp_path: Path,
) -> None:
    _evil_records(tmp_path)
    result = _raw_show(str(tmp_path))
    assert result.returncode == 0, result.stderr
    _assert_no_controls(result.stdout)
    out = result.stdout.decode("utf-8")
    # made visible, in the record text, the id, task, status and field names
    assert r"start\x1b[2J\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x1b\click here" in out
    assert r"\x07\x9b31mend" in out
    assert r"qa\x1b]0;pwned\x07 id\x1b[2J\x07 (ok\x9b31m)" in out
    assert r"question\x1b]0;pwned\x07" in out
    # a newline in a field name is shown as \n (one line per name); in a value it stays
    assert r"answer\n\x1b]8;;https://evil.example/" in out
    assert "two" in out and "lines\tand a tab" not in out  # wrapped onto its own line
    assert re.search(r"│ two\s*│\n.*│ lines", out), out


def test_escape_sequences_are_not_obeyed_on_a_terminal_either(tmp_path: Path) -> None:
    """On a terminal rich adds its own styling (SGR colour codes); nothing else gets through."""
    _evil_records(tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthloom", "show", str(tmp_path)],
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "400", "TERM": "xterm-256color"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    out = b"".join(chunks)
    assert rb"start\x1b[2J" in out  # the text arrived, made visible
    styling = re.compile(rb"\x1b\[[0-9;]*m")  # select graphic rendition: colours, bold
    _assert_no_controls(styling.sub(b"", out).replace(b"\r\n", b"\n"))


def test_an_error_line_shows_control_characters_visibly(tmp_path: Path) -> None:
    missing = tmp_path / f"gone{CLEAR}{TITLE}"
    result = _raw_show(str(missing))
    assert result.returncode == 2
    _assert_no_controls(result.stderr)
    err = result.stderr.decode("utf-8")
    assert err.count("\n") == 1 and r"gone\x1b[2J\x1b]0;pwned\x07: not found" in err


def test_failures_file_shows_unit_cause_and_detail(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "failures.jsonl",
        [
            {"unit": "doc1#0", "cause": "invalid_output", "detail": "not JSON: {oops"},
            {"unit": "doc2#3", "cause": "http_500", "detail": f"server said {CLEAR}", "tries": 6},
        ],
    )
    result = synthloom("show", str(path), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "None" not in out
    assert "failed unit doc1#0 (invalid_output)" in out and "not JSON: {oops" in out
    assert "failed unit doc2#3 (http_500)" in out and r"server said \x1b[2J" in out
    assert re.search(r"tries\s*│ 6", out)


def test_export_files_show_their_rows(tmp_path: Path) -> None:
    messages = _write(
        tmp_path / "sft.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is 2+2?"},
                    {"role": "assistant", "content": "4"},
                ]
            },
            {"prompt": "Capital of France?", "completion": "Paris"},
        ],
    )
    result = synthloom("show", str(messages), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "None" not in out
    assert "sft.jsonl:1" in out and "sft.jsonl:2" in out
    assert re.search(r"messages system\s*│ Be brief\.", out)
    assert re.search(r"messages user\s*│ What is 2\+2\?", out)
    assert re.search(r"messages assistant\s*│ 4", out)
    assert re.search(r"prompt\s*│ Capital of France\?", out)
    assert re.search(r"completion\s*│ Paris", out)

    dpo = _write(
        tmp_path / "dpo.jsonl",
        [{"prompt": "Say hi", "chosen": "Hello!", "rejected": f"go away{BELL}"}],
    )
    result = synthloom("show", str(dpo), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "None" not in result.stdout and "\x07" not in result.stdout
    for pattern in (r"prompt\s*│ Say hi", r"chosen\s*│ Hello!", r"rejected\s*│ go away\\x07"):
        assert re.search(pattern, result.stdout), result.stdout


def test_parquet_export_is_shown(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([{"instruction": "Add 1+1", "output": "2"}]), path)
    result = synthloom("show", str(path), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "train.parquet row 1" in result.stdout
    assert re.search(r"instruction\s*│ Add 1\+1", result.stdout)
    assert re.search(r"output\s*│ 2", result.stdout)


def test_a_non_json_line_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dpo.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n<html>\n")
    result = synthloom("show", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"synthloom: error: {path}:2: not a JSON record"
    directory = tmp_path / "empty-dir"
    directory.mkdir()
    result = synthloom("show", str(directory))
    assert result.returncode == 2 and "no records.jsonl" in result.stderr
    assert result.stderr.count("\n") == 1
