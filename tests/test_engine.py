"""The request engine against a local OpenAI-compatible server that injects failures."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from synthloom.errors import BackendFatal
from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import CallFailed, Engine
from synthloom.llm.limits import AdaptiveConcurrency
from synthloom.llm.openai_http import OpenAIBackend
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.qa import QAParams, QATask
from synthloom.testing.stub_server import Faults, StubServer


class Answer(BaseModel):
    title: str
    score: int


async def _engine(url: str, cache: ResponseCache, **kw: object) -> tuple[Engine, OpenAIBackend]:
    backend = OpenAIBackend(url, "stub", api_key_env=None)
    await backend.start()
    kw.setdefault("backoff_base", 0.01)
    return Engine(backend, cache, **kw), backend  # type: ignore[arg-type]


def test_structured_output_parsed_and_cached(tmp_path: Path, stub: StubServer) -> None:
    async def go() -> tuple[object, object, int, int]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(stub.base_url, cache, concurrency=4)
        first = await engine.complete([{"role": "user", "content": "rate it"}], schema=Answer)
        second = await engine.complete([{"role": "user", "content": "rate it"}], schema=Answer)
        await backend.close()
        cache.close()
        return first, second, engine.stats.requests, engine.stats.cache_hits

    first, second, requests, hits = asyncio.run(go())
    assert isinstance(first.value, Answer)  # type: ignore[attr-defined]
    assert first.value == second.value  # type: ignore[attr-defined]
    assert (requests, hits) == (1, 1)
    assert stub.stats.completed == 1

    # a new process (new cache object, same file) pays nothing either
    async def again() -> tuple[int, int]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(stub.base_url, cache, concurrency=4)
        await engine.complete([{"role": "user", "content": "rate it"}], schema=Answer)
        await backend.close()
        cache.close()
        return engine.stats.requests, engine.stats.cache_hits

    assert asyncio.run(again()) == (0, 1)
    assert stub.stats.completed == 1


def test_two_endpoints_serving_one_model_name_do_not_share_answers(
    tmp_path: Path, stub: StubServer
) -> None:
    """A teacher and a student both called "stub" on different servers: each is asked."""

    async def ask(url: str) -> int:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(url, cache)
        await engine.complete([{"role": "user", "content": "same prompt"}])
        await backend.close()
        cache.close()
        return engine.stats.requests

    with StubServer() as other:
        assert asyncio.run(ask(stub.base_url)) == 1
        assert asyncio.run(ask(other.base_url)) == 1
        assert asyncio.run(ask(stub.base_url)) == 0  # each endpoint's answer is cached
        assert stub.stats.completed == other.stats.completed == 1


def test_invalid_output_is_retried_with_new_seed_then_reported(
    tmp_path: Path, stub: StubServer
) -> None:
    seeds: list[int] = []

    def responder(body: dict) -> str:
        seeds.append(body["seed"])
        return "not json at all"

    stub.configure(responder=responder)

    async def go() -> Engine:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(stub.base_url, cache)
        with pytest.raises(CallFailed) as err:
            await engine.complete(
                [{"role": "user", "content": "x"}], schema=Answer, parse_attempts=3
            )
        assert err.value.cause == "invalid_output"
        await backend.close()
        cache.close()
        return engine

    engine = asyncio.run(go())
    assert len(seeds) == 3 and len(set(seeds)) == 3
    assert engine.stats.invalid_outputs == 3
    assert engine.stats.failures["invalid_output"] == 1


class Bounded(BaseModel):
    answer: str = Field(max_length=40)


def test_answer_cut_at_the_schema_length_limit_is_retried_then_reported(
    tmp_path: Path, stub: StubServer
) -> None:
    """Constrained decoding closes a string at maxLength mid-word; that is not an answer."""
    answers = iter(["x" * 40, "A complete answer.", "y" * 40, "y" * 40, "y" * 40])
    stub.configure(responder=lambda body: json.dumps({"answer": next(answers)}))

    async def go() -> tuple[str, str, Engine]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(stub.base_url, cache)
        msgs = [{"role": "user", "content": "x"}]
        ok = await engine.complete(msgs, schema=Bounded, parse_attempts=3)
        with pytest.raises(CallFailed) as err:
            await engine.complete(msgs, schema=Bounded, parse_attempts=3, sample=1)
        await backend.close()
        cache.close()
        return ok.value.answer, err.value.detail, engine

    answer, detail, engine = asyncio.run(go())
    assert answer == "A complete answer."  # the 40-character one was asked again
    assert "answer: cut off at its 40-character limit" in detail
    assert engine.stats.invalid_outputs == 4 and engine.stats.failures["invalid_output"] == 1


def test_retry_after_is_honoured_and_concurrency_backs_off(
    tmp_path: Path, stub: StubServer
) -> None:
    stub.configure(faults=Faults(rate=1.0, kinds=("429",), retry_after=0.2))

    async def go() -> tuple[float, Engine]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(stub.base_url, cache, concurrency=8, max_retries=2)
        start = time.monotonic()
        with pytest.raises(CallFailed) as err:
            await engine.complete([{"role": "user", "content": "x"}])
        elapsed = time.monotonic() - start
        assert err.value.cause == "http_429"
        await backend.close()
        cache.close()
        return elapsed, engine

    elapsed, engine = asyncio.run(go())
    assert elapsed >= 0.4  # two retries, each no sooner than Retry-After
    assert stub.stats.requests == 3
    # A stated wait pauses new calls (issue 12); it does not cut the concurrency.
    assert engine.limiter.pauses == 3 and engine.limiter.limit == 8


def test_overload_without_a_stated_time_lowers_concurrency(
    tmp_path: Path, stub: StubServer
) -> None:
    stub.configure(faults=Faults(rate=1.0, kinds=("429",), retry_after=None))

    async def go() -> Engine:
        cache = ResponseCache(tmp_path / "c.sqlite")
        engine, backend = await _engine(stub.base_url, cache, concurrency=8, max_retries=1)
        with pytest.raises(CallFailed):
            await engine.complete([{"role": "user", "content": "x"}])
        await backend.close()
        cache.close()
        return engine

    engine = asyncio.run(go())
    assert engine.limiter.limit < 8 and engine.limiter.cuts >= 1 and engine.limiter.pauses == 0


def test_adaptive_concurrency_grows_back_after_success() -> None:
    async def go() -> AdaptiveConcurrency:
        lim = AdaptiveConcurrency(16, cut_cooldown=0.0)
        await lim.acquire()
        lim.release(ok=False, overload=True)
        assert lim.limit == 8
        for _ in range(200):
            await lim.acquire()
            lim.release(ok=True)
        return lim

    assert asyncio.run(go()).limit == 16


def test_adaptive_concurrency_bounds_in_flight() -> None:
    async def go() -> int:
        lim = AdaptiveConcurrency(3)
        peak = 0

        async def job() -> None:
            nonlocal peak
            await lim.acquire()
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0)
            lim.release(ok=True)

        await asyncio.gather(*(job() for _ in range(50)))
        return peak

    assert asyncio.run(go()) == 3


def test_bad_api_key_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_KEY", "wrong")
    with StubServer(api_key="right") as server:
        backend = OpenAIBackend(server.base_url, "stub", api_key_env="STUB_KEY")

        async def go() -> None:
            await backend.start()
            try:
                await backend.preflight()
            finally:
                await backend.close()

        with pytest.raises(BackendFatal, match="rejected the API key"):
            asyncio.run(go())


def test_thirty_percent_faults_every_unit_accounted_for(tmp_path: Path) -> None:
    """30% of attempts fail (429 + Retry-After, 500, 503, slow past the timeout, malformed
    JSON) and 10% of requests always fail: every unit is a record or a reported failure with
    its cause, nothing is duplicated, no completed call is paid twice, and counts add up."""
    faults = Faults(
        rate=0.3,
        kinds=("429", "500", "503", "slow", "malformed"),
        retry_after=0.05,
        slow_seconds=2.0,
        permanent=0.1,
    )
    n = 60
    with StubServer(faults=faults, seed=1) as server:
        settings = ModelSettings(
            backend="openai",
            base_url=server.base_url,
            model="stub",
            concurrency=16,
            timeout=0.5,
            max_retries=8,
            retry_backoff=0.02,
        )
        out = tmp_path / "run"
        summary = run_task(
            QATask(QAParams(topic="product returns", n=n)),
            settings,
            out,
            show_progress=False,
            cache=tmp_path / "c.sqlite",
        )
        stats = server.stats
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert summary.units_ok + summary.units_failed == n
    assert len(records) == summary.units_ok == summary.records_new
    assert len(failures) == summary.units_failed
    assert len({r["id"] for r in records}) == len(records)
    assert summary.units_failed >= 1 and summary.units_ok >= n // 2
    assert all(
        f["cause"] in {"http_429", "http_500", "http_503", "timeout", "malformed_response"}
        for f in failures
    )
    assert sum(summary.failures.values()) == summary.units_failed
    assert summary.retries > 0
    assert max(stats.completed_hashes.values()) == 1  # no answered call was requested again
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["summary"]["units_ok"] == summary.units_ok
