"""Tests for the OpenAI-compatible stub server used by engine tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, Field

from synthloom.testing.stub_server import Faults, StubServer, body_hash, start_stub_process


class Level(StrEnum):
    easy = "easy"
    hard = "hard"


class Step(BaseModel):
    text: str = Field(min_length=30, max_length=60)
    weight: float = Field(gt=0, le=1)


class Problem(BaseModel):
    question: str
    level: Level
    score: int = Field(ge=3, le=7)
    steps: list[Step] = Field(min_length=2)
    hint: str | None = None
    tags: list[str]
    solved: bool


def chat_body(text: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def call(url: str, body: dict[str, Any], key: str | None = None) -> tuple[int, Any, str]:
    """POST ``body`` (GET when it is empty); return (status, headers, text)."""

    async def go() -> tuple[int, Any, str]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            method = "POST" if body else "GET"
            async with session.request(method, url, json=body or None) as resp:
                return resp.status, resp.headers, await resp.text()

    return asyncio.run(go())


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as srv:
        yield srv


def test_schema_response_validates(server: StubServer) -> None:
    schema = Problem.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "problem", "schema": schema}}
    texts = set()
    for i in range(5):
        status, _, text = call(
            f"{server.base_url}/chat/completions", chat_body(f"q{i}", response_format=fmt)
        )
        assert status == 200
        data = json.loads(text)
        assert data["object"] == "chat.completion"
        assert data["choices"][0]["finish_reason"] == "stop"
        problem = Problem.model_validate_json(data["choices"][0]["message"]["content"])
        assert 3 <= problem.score <= 7 and len(problem.steps) >= 2
        texts.add(problem.question)
    assert len(texts) == 5  # different requests give different texts


def test_plain_text_is_deterministic(server: StubServer) -> None:
    url = f"{server.base_url}/chat/completions"
    first = json.loads(call(url, chat_body())[2])
    second = json.loads(call(url, chat_body())[2])
    content = first["choices"][0]["message"]["content"]
    assert content == second["choices"][0]["message"]["content"]
    assert content.startswith(f"Stub answer {body_hash(chat_body())[:8]}: What is")
    usage = first["usage"]
    assert usage["prompt_tokens"] == 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_json_object_and_responder(server: StubServer) -> None:
    url = f"{server.base_url}/chat/completions"
    data = json.loads(call(url, chat_body(response_format={"type": "json_object"}))[2])
    assert "text" in json.loads(data["choices"][0]["message"]["content"])
    server.configure(responder=lambda body: "scripted" if "script" in str(body) else None)
    assert (
        json.loads(call(url, chat_body("script me"))[2])["choices"][0]["message"]["content"]
        == "scripted"
    )
    assert (
        "Stub answer"
        in json.loads(call(url, chat_body("other"))[2])["choices"][0]["message"]["content"]
    )


def test_api_key(server: StubServer) -> None:
    server.configure(api_key="secret")
    for url, body in [
        (f"{server.base_url}/chat/completions", chat_body()),
        (f"{server.base_url}/models", {}),
    ]:
        status, _, text = call(url, body, key="wrong")
        assert status == 401
        assert json.loads(text)["error"]["code"] == "invalid_api_key"
        assert call(url, body)[0] == 401
        assert call(url, body, key="secret")[0] == 200
    assert server.stats.unauthorized == 2


def test_models(server: StubServer) -> None:
    status, _, text = call(f"{server.base_url}/models", {})
    assert status == 200
    assert json.loads(text) == {"object": "list", "data": [{"id": "stub-model", "object": "model"}]}


def test_429_has_retry_after(server: StubServer) -> None:
    server.configure(faults=Faults(rate=1.0, kinds=("429",), retry_after=2))
    status, headers, text = call(f"{server.base_url}/chat/completions", chat_body())
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert json.loads(text)["error"]["code"] == "rate_limit_exceeded"
    assert server.stats.faults["429"] == 1 and server.stats.completed == 0


def test_malformed_body(server: StubServer) -> None:
    server.configure(faults=Faults(rate=1.0, kinds=("malformed",)))
    status, headers, text = call(f"{server.base_url}/chat/completions", chat_body())
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_permanent_failures_are_stable(server: StubServer) -> None:
    server.configure(faults=Faults(rate=0.0, kinds=("500", "503"), permanent=0.3))
    url = f"{server.base_url}/chat/completions"
    first = [call(url, chat_body(f"q{i}"))[0] for i in range(40)]
    again = [call(url, chat_body(f"q{i}"))[0] for i in range(40)]
    assert first == again
    failed = sum(status != 200 for status in first)
    assert 0 < failed < 40
    assert set(first) <= {200, 500, 503}


def test_stats_and_reset(server: StubServer) -> None:
    url = f"{server.base_url}/chat/completions"
    for text in ["a", "b", "a"]:
        assert call(url, chat_body(text))[0] == 200
    stats = server.stats
    assert (stats.requests, stats.completed, stats.aborted) == (3, 3, 0)
    assert stats.completed_hashes[body_hash(chat_body("a"))] == 2
    assert sum(stats.request_hashes.values()) == 3
    remote = json.loads(call(server.base_url.removesuffix("/v1") + "/stats", {})[2])
    assert remote["completed"] == 3 and remote["completed_hashes"][body_hash(chat_body("b"))] == 1
    assert call(server.base_url.removesuffix("/v1") + "/stats/reset", {"x": 1})[0] == 200
    assert server.stats.requests == 0 and not server.stats.completed_hashes


def test_client_disconnect_counts_as_aborted(server: StubServer) -> None:
    server.configure(faults=Faults(rate=1.0, kinds=("slow",), slow_seconds=0.3))

    async def go() -> None:
        timeout = aiohttp.ClientTimeout(total=0.05)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.post(f"{server.base_url}/chat/completions", json=chat_body())

    asyncio.run(go())
    deadline = time.monotonic() + 5  # the handler notices the disconnect after slow_seconds
    while server.stats.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = server.stats
    assert (stats.requests, stats.completed, stats.aborted, stats.faults["slow"]) == (1, 0, 1, 1)


def test_subprocess_mode() -> None:
    proc, base_url = start_stub_process(latency=0, api_key="k", seed=1)
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        status, _, text = call(f"{base_url}/chat/completions", chat_body(), key="k")
        assert status == 200 and json.loads(text)["choices"][0]["message"]["role"] == "assistant"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        proc.stdout.close()
