"""User mistakes and traps that used to end as "internal error" or silently wrong (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import synthloom


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr
    return lines[0]


# -- large CSV cells --------------------------------------------------------------------------


def test_csv_cell_of_200_kib_is_read(tmp_path: Path) -> None:
    """The csv module's default limit is 128 KiB; a fresh process must read a 200 KiB cell."""
    long = "word " * (200 * 1024 // 5)
    responses = tmp_path / "responses.csv"
    responses.write_text(
        "prompt_id,prompt,response_id,response\n"
        f'p1,Say something long,A,"{long}"\n'
        "p1,Say something long,B,short\n"
    )
    rankings = tmp_path / "rankings.jsonl"
    rankings.write_text(json.dumps({"prompt_id": "p1", "annotator": "h", "order": "A > B"}) + "\n")
    out = tmp_path / "dpo.jsonl"
    args = ["--responses", str(responses), "--rankings", str(rankings), "--out", str(out)]
    result = synthloom("pairs", *args)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["chosen"] == long and row["rejected"] == "short"


# -- credentials in the base URL --------------------------------------------------------------


def test_credentials_in_base_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    url = "http://alice:s3cret-pw@127.0.0.1:9/v1"
    result = synthloom(
        "qa", "--topic", "returns", "-n", "1", "--backend", "openai", "--base-url", url,
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "--api-key-env" in line and "user name or password" in line
    assert "s3cret" not in result.stderr + result.stdout
    assert not out.exists()


def test_credentials_in_config_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "synthloom.yaml").write_text(
        "backend: openai\nbase_url: https://bob:hunter2@api.example.com/v1\n"
    )
    result = synthloom("qa", "--topic", "returns", "-n", "1", cwd=tmp_path)
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "synthloom.yaml" in line and "user name or password" in line
    assert "hunter2" not in result.stderr
