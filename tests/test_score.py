"""Judge scoring of any records: scores on named criteria with a rationale become fields that
the filter step (--min-score) and the report use; the records keep their parents and export
as their own task's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.score import ScoreParams, ScoreTask
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom


def judge(body: dict[str, Any]) -> str:
    """Rates texts holding "bad" 1 on every criterion, others 4 (fluency 5)."""
    user = body["messages"][-1]["content"]
    text = user.split("Text:")[1]
    low = "bad" in text
    return json.dumps(
        {"rationale": "short reason", "quality": 1 if low else 4, "label_fit": 1 if low else 5}
    )


def write_run(path: Path) -> Path:
    rows = [
        {"prompt": "Say hello", "response": "Hello there, nice to meet you."},
        {"prompt": "Say goodbye", "response": "A bad and garbled answer"},
    ]
    path.write_text(
        "".join(
            json.dumps(
                {"id": f"r{i}", "task": "distill", "status": ["ok", "flagged"][i], "data": d}
            )
            + "\n"
            for i, d in enumerate(rows)
        )
    )
    return path


def test_score_then_filter_by_score(tmp_path: Path) -> None:
    source = write_run(tmp_path / "in.jsonl")
    out = tmp_path / "scored"
    with StubServer(responder=judge, record=True) as server:
        params = ScoreParams(input=source, criteria=["quality", "label_fit"])
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="judge-m")
        summary = run_task(ScoreTask(params), settings, out, show_progress=False)
        prompt = server.bodies[0]["messages"][-1]["content"]
    assert summary.counters["records_scored"] == 2
    assert "Say hello" in prompt or "Say goodbye" in prompt  # the prompt is shown as context
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    by_parent = {r["provenance"]["parents"][0]: r for r in records}
    good, bad = by_parent["r0"]["data"], by_parent["r1"]["data"]
    assert good["scores"] == {"quality": 4, "label_fit": 5} and good["score"] == 4.5
    assert bad["scores"] == {"quality": 1, "label_fit": 1} and bad["score"] == 1.0
    assert good["score_rationale"] == "short reason" and good["judge"] == "judge-m"
    assert good["response"] == "Hello there, nice to meet you." and good["scored_task"] == "distill"
    assert by_parent["r1"]["status"] == "flagged"  # a flagged record stays flagged
    kept = tmp_path / "kept.jsonl"
    result = synthloom("filter", str(out), "--min-score", "3", "--out", str(kept))
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["data"]["response"] for x in kept.read_text().splitlines()] == [
        "Hello there, nice to meet you."
    ]
    sft = tmp_path / "sft.jsonl"
    result = synthloom("export", str(kept), "--format", "messages", "--out", str(sft))
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(x) for x in sft.read_text().splitlines()]
    assert row["messages"][-1]["content"] == "Hello there, nice to meet you."


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        (["made_up"], "needs a description"),
        (["Quality"], "lowercase"),
        (["quality", "quality"], "repeat"),
    ],
)
def test_bad_criteria(criteria: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        ScoreParams(input=tmp_path / "x.jsonl", criteria=criteria)


def test_ten_point_scale_and_custom_criterion(tmp_path: Path) -> None:
    source = write_run(tmp_path / "in.jsonl")
    task = ScoreTask(ScoreParams(input=source, criteria=["tone=is it polite?"], scale=10))
    schema = task.schema.model_json_schema()
    assert schema["properties"]["tone"]["enum"] == list(range(1, 11))
    assert task.criteria == [{"name": "tone", "description": "is it polite?"}]


def test_the_review_app_orders_scored_records_by_their_score(tmp_path: Path) -> None:
    from synthloom.review.items import load_items

    source = tmp_path / "scored.jsonl"
    rows = [{"text": "a", "score": 2.5}, {"text": "b", "score": 4}, {"text": "c"}]
    source.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "task": "score", "data": d}) + "\n"
            for i, d in enumerate(rows)
        )
    )
    _, items = load_items(source)
    assert [item.score for item in items] == [2.5, 4.0, None]
