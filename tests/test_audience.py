"""Audience/persona control: topics or instructions crossed with audiences and personas;
instructions for topics come from a template; bad input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.audience import DEFAULT_AUDIENCES, AudienceParams, AudienceTask, split_list
from synthloom.testing.stub_server import StubServer


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.embedded
def test_embedded_run(tmp_path: Path) -> None:
    # a topic run is the same code path (see below, on the stub); a one-sentence instruction
    # keeps the tiny model's answers short
    path = tmp_path / "instructions.txt"
    path.write_text("Say what rain is in one short sentence.\n")
    params = AudienceParams(instructions=path, audiences=["a 5-year-old", "an expert"])
    summary = run_task(
        AudienceTask(params),
        ModelSettings(backend="embedded", slots=2, max_tokens=200),
        tmp_path / "run",
        show_progress=False,
        cache=tmp_path / "c.sqlite",
    )
    assert summary.units_ok == 2
    recs = records(tmp_path / "run")
    by_audience = {r["data"]["audience"]: r["data"] for r in recs}
    assert by_audience["a 5-year-old"]["instruction"] == (
        "Say what rain is in one short sentence. Write for a 5-year-old."
    )
    assert by_audience["an expert"]["instruction"].endswith("Write for an expert.")
    for r in recs:
        d = r["data"]
        assert d["response"] and d["topic"] is None and d["persona"] is None
        assert d["base_instruction"] == "Say what rain is in one short sentence."
        assert d["source"] == {"file": str(path), "line": 1}
        assert r["provenance"]["backend"] == "embedded" and r["provenance"]["call_keys"]
        assert r["provenance"]["template"] == "audience"


def test_cross_topics_audiences_personas(tmp_path: Path) -> None:
    params = AudienceParams(
        topics=["tides", "inflation"],
        audiences=["a 5-year-old", "an expert"],
        personas=["a patient kindergarten teacher", "a pirate"],
    )
    seen: list[dict[str, Any]] = []

    def record_body(body: dict[str, Any]) -> None:
        seen.append(body)

    with StubServer(responder=record_body) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        run_task(AudienceTask(params), settings, tmp_path / "run", show_progress=False)
    recs = records(tmp_path / "run")
    combos = {(r["data"]["topic"], r["data"]["audience"], r["data"]["persona"]) for r in recs}
    assert len(recs) == len(combos) == 8
    system = [b["messages"][0]["content"] for b in seen]
    assert any("You are a pirate." in s and "an expert" in s for s in system)
    assert {b["messages"][-1]["content"] for b in seen} == {
        f"Explain {t} to {a}."
        for t in ("tides", "inflation")
        for a in ("a 5-year-old", "an expert")
    }


def test_defaults_and_personas_only() -> None:
    task = AudienceTask(AudienceParams(topics=["x"]))
    assert task.pairs == [(a, None) for a in DEFAULT_AUDIENCES]
    task = AudienceTask(AudienceParams(topics=["x"], personas=["a chef"]))
    assert task.pairs == [(None, "a chef")]
    assert task.subjects[0].instruction(None) == "Explain x."


def test_instructions_file(tmp_path: Path) -> None:
    path = tmp_path / "instructions.txt"
    path.write_text("Describe the water cycle\n\nWhy do leaves fall?\n")
    task = AudienceTask(AudienceParams(instructions=path, audiences=["a child"]))
    assert [s.instruction("a child") for s in task.subjects] == [
        "Describe the water cycle. Write for a child.",
        "Why do leaves fall? Write for a child.",
    ]
    assert task.subjects[1].source == {"file": str(path), "line": 3}


def test_split_list(tmp_path: Path) -> None:
    assert split_list("a, b ,,c") == ["a", "b", "c"]
    path = tmp_path / "aud.txt"
    path.write_text("a 5-year-old\n\nan expert, with a PhD\n")
    assert split_list(str(path)) == ["a 5-year-old", "an expert, with a PhD"]


def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], out: Path) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(out)])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert not out.exists(), "output written despite the error"
    return lines[0]


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert "exactly one" in one_line_error(capsys, ["audience"], out)
    line = one_line_error(capsys, ["audience", "--topics", str(tmp_path / "missing.txt")], out)
    assert "missing.txt" in line and "not found" in line

    data = tmp_path / "i.jsonl"
    data.write_text('{"instruction": "ok"}\n{"prompt": "wrong"}\n')
    line = one_line_error(capsys, ["audience", "--instructions", str(data)], out)
    assert "i.jsonl:2" in line and "'instruction'" in line

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "empty" in one_line_error(capsys, ["audience", "--instructions", str(empty)], out)

    empty.write_bytes("caf\xe9\n".encode("latin-1"))
    line = one_line_error(capsys, ["audience", "--instructions", str(empty)], out)
    assert "empty.txt:1" in line and "UTF-8" in line

    line = one_line_error(capsys, ["audience", "--topics", "x", "--audiences", " , "], out)
    assert "audiences" in line
