"""The command line: help, and bad input giving one clear line, exit 2, and no output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom


def _one_line_error(result, out: Path) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists(), "output written despite the error"
    return lines[0]


def test_help_lists_commands() -> None:
    result = synthloom("--help")
    assert result.returncode == 0
    assert "qa" in result.stdout


def test_unknown_option(tmp_path: Path) -> None:
    out = tmp_path / "out"
    line = _one_line_error(synthloom("qa", "--topic", "x", "--bogus", "--out", str(out)), out)
    assert "--bogus" in line


def test_missing_docs_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    line = _one_line_error(
        synthloom("qa", "--from-docs", str(tmp_path / "nope"), "--out", str(out)), out
    )
    assert "nope" in line and "no such file" in line


def test_empty_file(tmp_path: Path) -> None:
    doc = tmp_path / "empty.md"
    doc.write_text("  \n")
    out = tmp_path / "out"
    line = _one_line_error(synthloom("qa", "--from-docs", str(doc), "--out", str(out)), out)
    assert "empty.md" in line and "empty" in line


def test_non_utf8_file(tmp_path: Path) -> None:
    doc = tmp_path / "latin1.txt"
    doc.write_bytes("Caf\xe9 au lait\nline two\n".encode("latin-1"))
    out = tmp_path / "out"
    line = _one_line_error(synthloom("qa", "--from-docs", str(doc), "--out", str(out)), out)
    assert "latin1.txt:1" in line and "UTF-8" in line


def test_unreachable_endpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = synthloom(
        "qa",
        "--topic",
        "x",
        "--backend",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--out",
        str(out),
    )
    line = _one_line_error(result, out)
    assert "cannot reach http://127.0.0.1:9/v1" in line


def test_bad_api_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with StubServer(api_key="right") as server:
        result = synthloom(
            "qa",
            "--topic",
            "x",
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--api-key-env",
            "MY_KEY",
            "--out",
            str(out),
            env={"MY_KEY": "wrong"},
        )
    line = _one_line_error(result, out)
    assert "rejected the API key" in line and "MY_KEY" in line
    assert "wrong" not in result.stderr  # the key itself is never printed


def test_missing_api_key_variable(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = synthloom(
        "qa",
        "--topic",
        "x",
        "--backend",
        "openai",
        "--api-key-env",
        "NOT_SET_ANYWHERE",
        "--out",
        str(out),
    )
    assert "NOT_SET_ANYWHERE is not set" in _one_line_error(result, out)


def test_config_file_sets_defaults_and_rejects_unknown_keys(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = tmp_path / "synthloom.yaml"
    bad.write_text("backend: openai\nconcurrencyy: 4\n")
    line = _one_line_error(
        synthloom("--config", str(bad), "qa", "--topic", "x", "--out", str(out)), out
    )
    assert "synthloom.yaml" in line and "concurrencyy" in line

    with StubServer() as server:
        good = tmp_path / "good.yaml"
        good.write_text(
            f"backend: openai\nbase_url: {server.base_url}\nmodel: stub\nconcurrency: 2\n"
        )
        result = synthloom(
            "--config", str(good), "qa", "--topic", "x", "-n", "3", "--out", str(out)
        )
        assert result.returncode == 0, result.stderr
        assert server.stats.completed == 3  # the config pointed the run at this server
    assert len((out / "records.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("args", [["qa"], ["qa", "--topic", "x", "--from-docs", "."]])
def test_qa_needs_exactly_one_source(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "out"
    _one_line_error(synthloom(*args, "--out", str(out)), out)


def test_show_prints_records_literally_and_marks_cut_text(tmp_path: Path) -> None:
    long = "word " * 140  # 700 characters: shown up to 600, the rest counted
    rows = [
        {"id": "a1", "task": "qa", "status": "ok", "data": {"question": "[bold red]hi[/]"}},
        {"id": "b2", "task": "qa", "status": "flagged", "data": {"answer": long}},
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    result = synthloom("show", str(tmp_path), "-n", "2", env={"COLUMNS": "2000"})
    assert result.returncode == 0, result.stderr
    assert "[bold red]hi[/]" in result.stdout  # generated text is not rich markup
    assert "qa b2 (flagged)" in result.stdout
    assert "… [100 more characters in the file]" in result.stdout

    bad = synthloom("show", str(tmp_path), "-n", "5")
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == f"synthloom: error: {path}:3: not a JSON record"
    )
