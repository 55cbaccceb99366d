"""Structured output against servers that differ (issue 12): the mode is negotiated once per
endpoint (json_schema, else json_object + schema, else the schema in the prompt), recorded in
the manifest and overridable with --structured-output; permanent errors are not retried and,
on the first calls, stop the run with the server's own words; provenance names the model the
server says answered."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from synthloom.errors import BackendFatal
from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import CallFailed, Engine
from synthloom.llm.openai_http import OpenAIBackend
from synthloom.llm.structured import PROMPT_INSTRUCTION
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom

VALIDATION = "Input should be"


def _inputs(tmp_path: Path) -> dict[str, list[str]]:
    responses = tmp_path / "responses.jsonl"
    rows = [
        {"prompt_id": "p", "prompt": "Explain tides", "response_id": rid, "response": text}
        for rid, text in (("A", "The moon pulls the sea."), ("B", "Wind makes tides."))
    ]
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = tmp_path / "examples.csv"
    with examples.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([("The parcel came a week late.", "negative"), ("Great fit.", "positive")])
    return {
        "qa": ["qa", "--topic", "product returns", "-n", "2"],
        "judge": ["judge", "--input", str(responses)],
        "augment": ["augment", "--input", str(examples), "-n", "1"],
    }


def _run(tmp_path: Path, server: StubServer, args: list[str], *extra: str, out: str = "run") -> Any:
    return synthloom(
        *args,
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "asked-model",
        "--out",
        str(tmp_path / out),
        *extra,
        env={"SYNTHLOOM_CACHE": str(tmp_path / "cache.sqlite")},
        timeout=120,
    )


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]


def _format(body: dict[str, Any]) -> str:
    return (body.get("response_format") or {}).get("type", "text")


@pytest.mark.parametrize("status", [400, 422, 500])
@pytest.mark.parametrize("command", ["qa", "judge", "augment"])
def test_server_refusing_json_schema_gets_json_object(
    tmp_path: Path, command: str, status: int
) -> None:
    with StubServer(reject_formats=("json_schema",), reject_status=status, record=True) as server:
        done = _run(tmp_path, server, _inputs(tmp_path)[command])
        bodies = server.bodies
    assert done.returncode == 0, done.stderr
    formats = [_format(b) for b in bodies]
    assert formats.count("json_schema") == 1  # asked once, then never again this run
    assert set(formats[1:]) == {"json_object"}
    assert all(b["response_format"].get("schema") for b in bodies[1:])
    manifest = _manifest(tmp_path / "run")
    assert manifest["summary"]["backends"]["default"]["structured_output"] == "json_object"
    assert manifest["summary"]["units_failed"] == 0 and _records(tmp_path / "run")


@pytest.mark.parametrize("command", ["qa", "judge", "augment"])
def test_server_refusing_both_formats_gets_the_schema_in_the_prompt(
    tmp_path: Path, command: str
) -> None:
    with StubServer(
        reject_formats=("json_schema", "json_object"), reject_status=500, record=True
    ) as server:
        done = _run(tmp_path, server, _inputs(tmp_path)[command])
        bodies = server.bodies
    assert done.returncode == 0, done.stderr
    assert [_format(b) for b in bodies[:2]] == ["json_schema", "json_object"]
    for body in bodies[2:]:
        assert "response_format" not in body
        assert PROMPT_INSTRUCTION in body["messages"][-1]["content"]
    manifest = _manifest(tmp_path / "run")
    assert manifest["summary"]["backends"]["default"]["structured_output"] == "prompt"
    assert manifest["summary"]["units_failed"] == 0 and _records(tmp_path / "run")


@pytest.mark.parametrize("status", [400, 422, 500])
def test_server_refusing_every_mode_stops_at_once_with_its_reason(
    tmp_path: Path, status: int
) -> None:
    refuse_all = ("json_schema", "json_object", "text")
    with StubServer(reject_formats=refuse_all, reject_status=status) as server:
        done = _run(tmp_path, server, _inputs(tmp_path)["qa"])
        requests = server.stats.requests
    assert done.returncode == 2
    error = done.stderr.strip()
    assert "\n" not in error and "Traceback" not in error
    assert "refused structured output in every mode" in error
    assert VALIDATION in error and f"HTTP {status}" in error
    assert requests <= 4


def test_chosen_mode_is_used_without_negotiating(tmp_path: Path) -> None:
    with StubServer(record=True) as server:
        qa = _inputs(tmp_path)["qa"]
        assert _run(tmp_path, server, qa, "--structured-output", "prompt").returncode == 0
        prompt_bodies = server.bodies
        server.reset_stats()
        # same job and cache, another mode: different requests, so nothing comes from cache
        done = _run(tmp_path, server, qa, "--structured-output", "json_object", out="run2")
        assert done.returncode == 0, done.stderr
        object_bodies = server.bodies
    assert len(prompt_bodies) == 2 and all("response_format" not in b for b in prompt_bodies)
    assert len(object_bodies) == 2 and {_format(b) for b in object_bodies} == {"json_object"}
    assert _manifest(tmp_path / "run")["summary"]["backends"]["default"]["structured_output"] == (
        "prompt"
    )


def test_rerun_against_the_same_server_resumes_from_cache(tmp_path: Path) -> None:
    with StubServer(reject_formats=("json_schema",), reject_status=422) as server:
        qa = _inputs(tmp_path)["qa"]
        assert _run(tmp_path, server, qa).returncode == 0
        server.reset_stats()
        again = _run(tmp_path, server, qa)
        assert again.returncode == 0, again.stderr
        # the mode negotiated by the first run is remembered with the cache (issue 12, item
        # 4): json_schema is not asked again, and every answer comes from the cache
        assert server.stats.requests == 0 and server.stats.completed == 0


@pytest.mark.parametrize(("status", "requests"), [(400, 1), (422, 1), (500, 2)])
def test_chosen_mode_refused_stops_the_run_without_retries(
    tmp_path: Path, status: int, requests: int
) -> None:
    """A 4xx is not retried; a 500 is asked once more, and its repeated validation message
    makes it permanent. On the first calls that stops the run with the server's words.
    (One call at a time, so the count is exact: at higher concurrency the first wave of calls
    is in flight before the first refusal comes back.)"""
    with StubServer(reject_formats=("json_schema",), reject_status=status) as server:
        args = [*_inputs(tmp_path)["qa"], "--structured-output", "json_schema"]
        done = _run(tmp_path, server, args, "--concurrency", "1")
        assert server.stats.requests == requests
    assert done.returncode == 2
    error = done.stderr.strip()
    assert "\n" not in error and f"refused the request (HTTP {status}" in error
    assert VALIDATION in error


class Verdict(BaseModel):
    ok: bool


async def _ask(url: str, cache_file: Path, texts: list[str], **kw: Any) -> list[Any]:
    cache = ResponseCache(cache_file)
    backend = OpenAIBackend(url, "stub", api_key_env=None)
    await backend.start()
    engine = Engine(backend, cache, concurrency=1, backoff_base=0.01, **kw)
    results: list[Any] = []
    try:
        for text in texts:
            try:
                results.append(await engine.complete([{"role": "user", "content": text}]))
            except (CallFailed, BackendFatal) as exc:
                results.append(exc)
    finally:
        await backend.close()
        cache.close()
    return results


def test_permanent_errors_after_the_first_calls_fail_that_call_only(tmp_path: Path) -> None:
    def failer(body: dict[str, Any]) -> tuple[int, str] | None:
        text = body["messages"][-1]["content"]
        if text.startswith("too long"):
            return 400, "This model's maximum context length is 8 tokens"
        if text.startswith("bad field"):
            return 500, "1 validation error: temperature Input should be less than 2"
        if text.startswith("flaky"):
            return 500, "The server had an error processing your request"
        return None

    with StubServer(failer=failer) as server:
        texts = ["fine", "too long", "bad field 1", "bad field 2", "flaky", "fine again"]
        results = asyncio.run(_ask(server.base_url, tmp_path / "c.sqlite", texts, max_retries=3))
        hashes = server.stats.request_hashes
    ok, too_long, bad1, bad2, flaky, ok2 = results
    assert not isinstance(ok, Exception) and not isinstance(ok2, Exception)
    assert isinstance(too_long, CallFailed) and too_long.cause == "http_400"
    assert "maximum context length" in too_long.detail
    # the same validation message twice from a 5xx: permanent from the second on
    assert isinstance(bad1, CallFailed) and isinstance(bad2, CallFailed)
    assert isinstance(flaky, CallFailed) and flaky.cause == "http_500"
    counts = sorted(hashes.values())
    # fine, too long, bad field 2, fine again: once; bad field 1: twice; flaky: 1 + 3 retries
    assert counts == [1, 1, 1, 1, 2, 4]


def test_permanent_error_on_the_first_call_stops_with_the_server_message(tmp_path: Path) -> None:
    def failer(body: dict[str, Any]) -> tuple[int, str]:
        return 400, "The model `asked` does not exist or you do not have access to it."

    with StubServer(failer=failer) as server:
        (result,) = asyncio.run(_ask(server.base_url, tmp_path / "c.sqlite", ["hello"]))
        assert server.stats.requests == 1
    assert isinstance(result, BackendFatal)
    assert "HTTP 400" in str(result) and "does not exist" in str(result)


def test_provenance_names_the_model_that_answered(tmp_path: Path) -> None:
    qa = _inputs(tmp_path)["qa"]
    with StubServer(served_model="served-model-7b") as server:
        assert _run(tmp_path, server, qa).returncode == 0
        # a new process answering from the cache still knows which model that was
        assert _run(tmp_path, server, qa, out="again").returncode == 0
        assert server.stats.requests == 2
    for out in ("run", "again"):
        for record in _records(tmp_path / out):
            prov = record["provenance"]
            assert prov["model"] == "served-model-7b"
            assert prov["model_requested"] == "asked-model"
    described = _manifest(tmp_path / "run")["summary"]["backends"]["default"]
    assert described["served_model"] == "served-model-7b"
    with StubServer() as server:  # the server reports the model asked for
        assert _run(tmp_path, server, qa, out="same").returncode == 0
    for record in _records(tmp_path / "same"):
        assert record["provenance"]["model"] == "asked-model"
        assert "model_requested" not in record["provenance"]


def test_a_prompt_too_long_for_the_context_on_the_first_call_fails_only_its_unit(
    tmp_path: Path,
) -> None:
    """The first answer of a run being a 400 'maximum context length' is about that prompt,
    not the server: that unit fails, the rest of the run goes on."""

    def failer(body: dict[str, Any]) -> tuple[int, str] | None:
        if body["messages"][-1]["content"].startswith("too long"):
            return 400, "This model's maximum context length is 8 tokens"
        return None

    with StubServer(failer=failer) as server:
        results = asyncio.run(
            _ask(server.base_url, tmp_path / "c.sqlite", ["too long " * 50, "fine", "ok too"])
        )
    first, *rest = results
    assert isinstance(first, CallFailed) and not isinstance(first, BackendFatal)
    assert "maximum context length" in first.detail
    assert all(not isinstance(r, Exception) for r in rest)


def test_schemas_made_from_params_are_the_ones_sent_before() -> None:
    """Schemas shaped by a task's params (structured.schema) send the JSON schema they sent
    when each task called create_model itself: it is part of every call's cache key."""
    from synthloom.tasks.classify import label_schema
    from synthloom.tasks.judge import rating_schema, verdict_schema

    assert label_schema(("b", "a", "c d")).model_json_schema() == {
        "properties": {"label": {"enum": ["b", "a", "c d"], "title": "Label", "type": "string"}},
        "required": ["label"],
        "title": "LabelChoice",
        "type": "object",
    }
    assert verdict_schema(80).model_json_schema() == {
        "properties": {
            "rationale": {"maxLength": 80, "title": "Rationale", "type": "string"},
            "verdict": {"enum": ["first", "second", "tie"], "title": "Verdict", "type": "string"},
        },
        "required": ["rationale", "verdict"],
        "title": "PairVerdict",
        "type": "object",
    }
    assert rating_schema(["helpfulness"], 200).model_json_schema() == {
        "properties": {
            "helpfulness": {"enum": [1, 2, 3, 4, 5], "title": "Helpfulness", "type": "integer"},
            "rationale": {"maxLength": 200, "title": "Rationale", "type": "string"},
        },
        "required": ["rationale", "helpfulness"],
        "title": "AspectRatings",
        "type": "object",
    }
