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
