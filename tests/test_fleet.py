"""A fleet of endpoints (issue 17): calls spread by least outstanding requests, an endpoint
that keeps failing is taken out and tried again later, one killed mid-run loses nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from synthloom.errors import UserError
from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import Engine
from synthloom.llm.fleet import FleetBackend
from synthloom.runner import make_backend
from synthloom.settings import ModelSettings
from synthloom.testing.stub_server import StubServer, start_stub_process
from tests.conftest import synthloom


def _ask(backend: FleetBackend, cache: Path, n: int, concurrency: int = 8) -> list[str]:
    async def main() -> list[str]:
        await backend.start()
        try:
            engine = Engine(backend, ResponseCache(cache), concurrency=concurrency, seed=0)
            results = await asyncio.gather(
                *(engine.complete([{"role": "user", "content": f"q {i}"}]) for i in range(n))
            )
            engine.cache.close()
            return [r.value for r in results]
        finally:
            await backend.close()

    return asyncio.run(main())


def test_settings_take_a_list_or_comma_separated_urls() -> None:
    s = ModelSettings(backend="openai", base_url="http://a:1/v1, http://b:2/v1")
    assert s.base_url == ["http://a:1/v1", "http://b:2/v1"]
    assert isinstance(make_backend(s), FleetBackend)
    # adding or removing an endpoint is the same job (the run directory resumes)
    fewer = ModelSettings(backend="openai", base_url=["http://a:1/v1"])
    assert s.identity() == fewer.identity()
    assert ModelSettings(backend="openai", base_url="http://a:1/v1").base_url == "http://a:1/v1"
    with pytest.raises(ValueError, match="listed twice"):
        ModelSettings(base_url="http://a:1/v1,http://a:1/v1/")
    with pytest.raises(ValueError, match="user name or password"):
        ModelSettings(base_url="http://a:1/v1,http://u:p@b:2/v1")


def test_calls_spread_by_least_outstanding(tmp_path: Path) -> None:
    with StubServer(latency=0.05) as a, StubServer(latency=0.05) as b:
        fleet = FleetBackend([a.base_url, b.base_url], "m")
        answers = _ask(fleet, tmp_path / "c.sqlite", 40)
        assert len(answers) == 40
        # equally fast servers share the load evenly
        assert abs(a.stats.completed - b.stats.completed) <= 4, (a.stats, b.stats)
        assert fleet.failovers == 0


def test_a_slow_endpoint_gets_fewer_calls(tmp_path: Path) -> None:
    with StubServer(latency=0.2) as slow, StubServer(latency=0.01) as fast:
        fleet = FleetBackend([slow.base_url, fast.base_url], "m")
        _ask(fleet, tmp_path / "c.sqlite", 60, concurrency=4)
        assert fast.stats.completed > 3 * slow.stats.completed


def test_failing_endpoint_is_taken_out_then_tried_again(tmp_path: Path) -> None:
    with StubServer() as bad, StubServer() as good:
        bad.configure(failer=lambda body: (500, "broken (stub)"))
        fleet = FleetBackend([bad.base_url, good.base_url], "m", cooldown=0.3)
        answers = _ask(fleet, tmp_path / "c1.sqlite", 30, concurrency=2)
        assert len(answers) == 30  # every call answered by the good one after a failover
        first = fleet.endpoints[0]
        assert first.taken_out >= 1 and first.failures >= 3
        assert bad.stats.requests <= 6  # out of service, not asked again and again
        assert fleet.failovers == first.failures
        # repaired: after its cool-down it is tried again and takes calls
        bad.configure(failer=None)
        time.sleep(0.4)
        _ask(fleet, tmp_path / "c2.sqlite", 30, concurrency=2)
        assert fleet.endpoints[0].requests > first.failures
        assert bad.stats.completed > 0


def test_every_endpoint_down_fails_like_one(tmp_path: Path) -> None:
    """With no endpoint in service the fleet still tries (the one due back first), so the
    engine's retries apply and a call fails with the endpoint's cause, not a new one."""
    from synthloom.llm.engine import CallFailed

    with StubServer() as a, StubServer() as b:
        for s in (a, b):
            s.configure(failer=lambda body: (500, "broken (stub)"))
        fleet = FleetBackend([a.base_url, b.base_url], "m", cooldown=0.05)

        async def main() -> None:
            await fleet.start()
            engine = Engine(
                fleet, ResponseCache(tmp_path / "c.sqlite"), max_retries=2, backoff_base=0.01
            )
            try:
                with pytest.raises(CallFailed, match="http_500"):
                    await engine.complete([{"role": "user", "content": "q"}])
            finally:
                engine.cache.close()
                await fleet.close()

        asyncio.run(main())


def test_unreachable_endpoint_at_start_is_taken_out(tmp_path: Path, stub: StubServer) -> None:
    dead = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    fleet = FleetBackend([dead, stub.base_url], "m")

    async def main() -> None:
        await fleet.start()
        try:
            await fleet.preflight()
        finally:
            await fleet.close()

    asyncio.run(main())
    assert fleet.endpoints[0].taken_out == 1
    answers = _ask(fleet, tmp_path / "c.sqlite", 10)
    assert len(answers) == 10 and fleet.endpoints[0].requests == 0

    alone = FleetBackend([dead, "http://127.0.0.1:7/v1"], "m")

    async def none() -> None:
        await alone.start()
        try:
            await alone.preflight()
        finally:
            await alone.close()

    from synthloom.errors import BackendFatal

    with pytest.raises(BackendFatal, match="cannot reach"):
        asyncio.run(none())


def _stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as r:
        return json.loads(r.read())


def test_endpoint_killed_mid_run(tmp_path: Path) -> None:
    """Two stub servers, one killed mid-run: the run completes with every record, none twice,
    and the summary shows the failover. The same calls from a fleet without the dead endpoint
    come from the cache (the fleet's identity does not name its endpoints)."""
    n = 400
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"prompt number {i}"}) + "\n" for i in range(n))
    )
    a, url_a = start_stub_process(latency=0.05)
    b, url_b = start_stub_process(latency=0.05)
    run_dir = tmp_path / "run"
    try:
        cmd = [sys.executable, "-m", "synthloom", "distill", "--input", str(prompts)]
        cmd += ["--backend", "openai", "--base-url", f"{url_a},{url_b}", "--concurrency", "4"]
        cmd += ["--out", str(run_dir)]
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _stats(url_a)["completed"] < 40:  # mid-run: A has answered some calls
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the run never reached the first endpoint"
            time.sleep(0.05)
        a.kill()
        a.wait()
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        b_requests = _stats(url_b)["requests"]
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.terminate()
                p.wait()
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == n
    assert len({r["id"] for r in records}) == n  # nothing duplicated
    assert {r["data"]["prompt"] for r in records} == {f"prompt number {i}" for i in range(n)}
    summary = json.loads((run_dir / "manifest.json").read_text())["summary"]
    assert summary["units_ok"] == n and summary["units_failed"] == 0
    fleet = summary["backends"]["teacher"]
    first, second = fleet["endpoints"]
    assert first["base_url"] == url_a and first["taken_out"] >= 1 and first["failures"] >= 1
    assert fleet["failovers"] >= 1
    assert 40 <= first["requests"] - first["failures"] < n
    assert second["requests"] + first["requests"] - first["failures"] >= n
    assert "failovers" in err and "taken out" in err  # the printed summary says so
    # the same job without the dead endpoint: every call from the cache, B never asked
    c, url_c = start_stub_process()
    try:
        again = synthloom(
            "distill", "--input", str(prompts), "--backend", "openai",
            "--base-url", f"{url_c},", "--out", str(tmp_path / "again"),
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert _stats(url_c)["requests"] == 0
    finally:
        c.terminate()
        c.wait()
    assert b_requests > 0
    ids = {json.loads(line)["id"] for line in (tmp_path / "again/records.jsonl").open()}
    assert ids == {r["id"] for r in records}


def test_fleet_of_one_in_a_recipe_is_a_list(tmp_path: Path) -> None:
    s = ModelSettings.model_validate({"backend": "openai", "base_url": ["http://a:1/v1"]})
    assert isinstance(make_backend(s), FleetBackend)
    with pytest.raises((UserError, ValueError), match="at least one"):
        ModelSettings.model_validate({"backend": "openai", "base_url": []})
