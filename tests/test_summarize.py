"""Summaries: K candidates per article with lengths/styles crossed and cycled, grouped by
article so a judge can rank them; truncation is counted; bad input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.preference.store import load_responses
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.summarize import SummarizeParams, SummarizeTask, truncate
from synthloom.testing.stub_server import StubServer

ARTICLE = (
    "The town library opened a new reading room on Monday. The room has forty seats and"
    " large windows. It is open every day from nine in the morning until six in the evening."
    " Children under twelve must come with an adult. The library hopes more students will"
    " study there during the exam season."
)


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def run(task: SummarizeTask, settings: ModelSettings, tmp_path: Path) -> Any:
    return run_task(
        task, settings, tmp_path / "run", show_progress=False, cache=tmp_path / "c.sqlite"
    )


@pytest.mark.embedded
def test_embedded_run(tmp_path: Path) -> None:
    doc = tmp_path / "library.txt"
    doc.write_text(ARTICLE)
    params = SummarizeParams(input=doc, k=2, lengths=["one sentence"])
    settings = ModelSettings(backend="embedded", slots=2, max_tokens=160)
    summary = run(SummarizeTask(params), settings, tmp_path)
    assert summary.units_ok == 2
    recs = records(tmp_path / "run")
    assert sorted(r["data"]["candidate"] for r in recs) == [0, 1]
    for r in recs:
        d = r["data"]
        assert d["summary"] and d["response"] == d["summary"]
        assert d["group"] == d["article_id"] == "library.txt" and d["article"] == ARTICLE
        assert d["prompt"] == d["instruction"] and ARTICLE in d["prompt"]
        assert "Length: one sentence." in d["prompt"]
        assert (
            r["provenance"]["backend"] == "embedded" and r["provenance"]["template"] == "summarize"
        )


def test_lengths_styles_cycle_and_group_for_judge(tmp_path: Path) -> None:
    data = tmp_path / "news.jsonl"
    rows = [
        {"doc": "a1", "headline": "Library", "body": ARTICLE},
        {"doc": "a2", "headline": "Long", "body": "Word after word. " * 100},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = SummarizeParams(
        input=data,
        text_column="body",
        id_column="doc",
        title_column="headline",
        k=5,
        lengths=["one sentence", "about 50 words"],
        styles=["neutral", "technical"],
        max_chars=400,
    )
    with StubServer() as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        summary = run(SummarizeTask(params), settings, tmp_path)
    assert summary.counters["articles_truncated"] == 1
    recs = sorted(
        records(tmp_path / "run"), key=lambda r: (r["data"]["group"], r["data"]["candidate"])
    )
    assert len(recs) == 10
    a1 = [r["data"] for r in recs if r["data"]["group"] == "a1"]
    assert [(d["length"], d["style"]) for d in a1] == [
        ("one sentence", "neutral"),
        ("one sentence", "technical"),
        ("about 50 words", "neutral"),
        ("about 50 words", "technical"),
        ("one sentence", "neutral"),
    ]
    assert [d["response_id"] for d in a1] == ["A", "B", "C", "D", "E"]
    assert len({d["prompt"] for d in a1}) == 1  # one shared prompt per article
    assert "Length:" not in a1[0]["prompt"] and "Length: about 50 words." in a1[2]["instruction"]
    assert "Title: Library" in a1[0]["prompt"]
    long = [r["data"] for r in recs if r["data"]["group"] == "a2"][0]
    assert long["truncated"] and len(long["article"]) <= 400 < long["article_chars"]
    # a judge reads the run directly: five responses for each of the two articles
    groups = load_responses(tmp_path / "run")
    assert {g: sorted(p.responses) for g, p in groups.items()} == {
        "a1": ["A", "B", "C", "D", "E"],
        "a2": ["A", "B", "C", "D", "E"],
    }


def test_directory_of_articles(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "one.md").write_text("# One\n\n" + ARTICLE)
    (docs / "sub" / "two.txt").write_text(ARTICLE)
    (docs / "skip.json").write_text("{}")
    task = SummarizeTask(SummarizeParams(input=docs, k=1))
    assert [a.id for a in task.articles] == ["one.md", "sub/two.txt"]


def test_truncate_at_sentence_end() -> None:
    text = "First sentence here. Second one is longer than the limit allows."
    assert truncate(text, 30) == "First sentence here."
    assert truncate(text, 1000) == text


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
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "fine"}\n{"body": "wrong column"}\n')
    line = one_line_error(capsys, ["summarize", "--input", str(data)], out)
    assert "a.jsonl:2" in line and "'text'" in line

    data.write_text('{"text": "x", "id": "same"}\n{"text": "y", "id": "same"}\n')
    line = one_line_error(capsys, ["summarize", "--input", str(data), "--id-column", "id"], out)
    assert "a.jsonl:2" in line and "duplicate" in line

    doc = tmp_path / "empty.txt"
    doc.write_text(" \n")
    assert "empty" in one_line_error(capsys, ["summarize", "--input", str(doc)], out)

    doc.write_bytes("caf\xe9\n".encode("latin-1"))
    line = one_line_error(capsys, ["summarize", "--input", str(doc)], out)
    assert "empty.txt:1" in line and "UTF-8" in line

    line = one_line_error(capsys, ["summarize", "--input", str(data), "--lengths", " , "], out)
    assert "lengths" in line


def test_export_keeps_each_candidates_length_and_one_article(tmp_path: Path) -> None:
    """Exported SFT rows: the article once and the candidate's own length and style target, so
    a "one sentence" and a "three sentences" summary never share a prompt (they did: the
    shared prompt, which holds the article, was followed by the article again)."""
    doc = tmp_path / "library.txt"
    doc.write_text(ARTICLE)
    params = SummarizeParams(input=doc, k=2, lengths=["one sentence", "three sentences"])
    with StubServer() as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        assert run(SummarizeTask(params), settings, tmp_path).units_ok == 2
    out = tmp_path / "sft.jsonl"
    main(["export", str(tmp_path / "run"), "--format", "messages", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    prompts = {}
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        user = row["messages"][0]["content"]
        assert user.count(ARTICLE) == 1
        assert "Style: neutral and factual." in user
        (length,) = [x for x in params.lengths if f"Length: {x}." in user]
        prompts[length] = user
    assert set(prompts) == {"one sentence", "three sentences"}
    assert prompts["one sentence"] != prompts["three sentences"]


def test_export_of_a_record_without_its_instruction() -> None:
    """A hand-made record (no `instruction`) gets its prompt rebuilt from its fields."""
    data = {"title": "Library", "article": ARTICLE, "summary": "A new reading room opened."}
    data |= {"length": "one sentence", "style": "technical"}
    (t,) = SummarizeTask.turns(data)
    assert t.prompt.count(ARTICLE) == 1 and t.response == data["summary"]
    assert "Title: Library" in t.prompt and "Length: one sentence." in t.prompt
    assert "Style: technical, keeping" in t.prompt
