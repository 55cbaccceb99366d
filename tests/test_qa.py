"""The first real job: topic -> Q&A pairs, and Q&A grounded in document chunks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synthloom.llm.embedded import EmbeddedBackend
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.sources import chunk_text
from synthloom.tasks.qa import QAParams, QATask
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom

EMBEDDED = ModelSettings(backend="embedded", slots=4, seed=0)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.embedded
def test_topic_qa_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = run_task(
        QATask(QAParams(topic="product returns", n=4)),
        EMBEDDED,
        out,
        show_progress=False,
        cache=tmp_path / "c.sqlite",
    )
    rows = _rows(out)
    assert summary.units_ok + summary.units_failed == 4
    assert len(rows) == summary.units_ok >= 3  # a 135M model may fail a unit; never silently
    for r in rows:
        assert r["data"]["question"].strip() and r["data"]["answer"].strip()
        p = r["provenance"]
        assert p["backend"] == "embedded" and p["model"].endswith(".gguf")
        assert p["template"] == "qa_topic" and len(p["template_hash"]) == 12
        assert p["seed"] == 0 and p["call_keys"] and p["created_at"] > 0
    assert summary.completion_tokens > 0

    # same job again: everything from the cache, nothing written twice
    again = run_task(
        QATask(QAParams(topic="product returns", n=4)),
        EMBEDDED,
        out,
        show_progress=False,
        cache=tmp_path / "c.sqlite",
    )
    assert again.requests == 0 and again.cache_hits >= summary.units_ok
    assert again.records_new == 0 and len(_rows(out)) == len(rows)


@pytest.mark.embedded
def test_a_second_run_in_one_process_uses_the_loaded_model() -> None:
    # the model is loaded once per process and settings, and a run's end does not destroy it
    # (xllamacpp's destructor can hang for good: synthloom.llm.embedded._LOADED)
    first, second, other = (EmbeddedBackend(slots=n) for n in (2, 2, 1))

    async def use(backend: EmbeddedBackend) -> tuple[object, str]:
        await backend.start()
        try:
            server = backend._server
            body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8}
            return server, (await backend.complete(body, 60)).text
        finally:
            await backend.close()

    (a, _), (b, text), (c, _) = (asyncio.run(use(x)) for x in (first, second, other))
    assert a is b and a is not c  # the same settings share one; other slots load another
    assert text.strip()  # the kept model still answers after the first run closed


DOC = """Returns policy

Items can be returned within 30 days of delivery. The item must be unused and in its
original packaging. Refunds go back to the original payment method within 5 business days.

Exchanges

To exchange an item for another size, start a return and place a new order. Gift cards
cannot be returned or exchanged. Shipping costs are refunded only if the item was faulty.
"""


@pytest.mark.embedded
def test_docs_qa_keeps_source_file_and_chunk(tmp_path: Path) -> None:
    doc = tmp_path / "policy.md"
    doc.write_text(DOC)
    out = tmp_path / "run"
    summary = run_task(
        QATask(QAParams(from_docs=doc, n=1, chunk_size=250, chunk_overlap=60)),
        EMBEDDED,
        out,
        show_progress=False,
        cache=tmp_path / "c.sqlite",
    )
    rows = _rows(out)
    chunks = chunk_text(DOC, str(doc), 250, 60)
    assert len(chunks) >= 2
    assert summary.units_ok + summary.units_failed == len(chunks)
    assert rows
    for r in rows:
        src = r["data"]["source"]
        assert src["file"] == str(doc)
        assert r["data"]["context"] == chunks[src["chunk"]].text
        assert DOC[src["start"] : src["end"]].strip() == r["data"]["context"]


def test_chunks_overlap_and_cover_the_text() -> None:
    text = " ".join(f"word{i}." for i in range(600))
    chunks = chunk_text(text, "t", size=500, overlap=100)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # overlap
        assert a.end - b.start <= 100 + 10
        assert text[b.start - 1].isspace()  # chunks start at a word


def test_cli_qa_against_openai_compatible_server(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with StubServer() as server:
        result = synthloom(
            "qa",
            "--topic",
            "product returns",
            "-n",
            "5",
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "stub",
            "--out",
            str(out),
        )
    assert result.returncode == 0, result.stderr
    rows = _rows(out)
    assert len(rows) == 5
    assert all(set(r["data"]) == {"question", "answer", "topic"} for r in rows)
    assert "5 ok, 0 failed" in result.stderr  # the summary
