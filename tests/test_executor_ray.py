"""The Ray executor (issue 17): an example recipe on a local Ray instance gives the same
records as the local executor, and resumes after its driver is killed without repeating the
calls whose answers were cached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("ray.data")

import synthloom  # noqa: E402
from synthloom.executors.ray import RayExecutor  # noqa: E402
from synthloom.testing.stub_server import StubServer, start_stub_process  # noqa: E402
from tests.ray_support import ray_local  # noqa: E402, F401

pytestmark = pytest.mark.ray
REPO = Path(__file__).parent.parent


def _recipe(tmp_path: Path, urls: list[str], **changes: Any) -> Path:
    """recipes/ray.yaml with the stub servers' URLs and paths from the repository root."""
    recipe = yaml.safe_load((REPO / "recipes/ray.yaml").read_text())
    recipe["model"]["base_url"] = urls
    recipe["model"].update(changes.pop("model", {}))
    replies = recipe["steps"][0]["params"]
    replies["input"] = str(REPO / replies["input"])
    replies.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _records(path: Path) -> dict[str, dict[str, Any]]:
    """Records by id, without the time the server answered (the one field two runs that
    each call the server cannot share)."""
    found = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record["provenance"].pop("created_at")
        found[record["id"]] = record
    return found


@pytest.mark.usefixtures("ray_local")
def test_same_records_as_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with StubServer() as a, StubServer() as b:
        recipe = _recipe(tmp_path, [a.base_url, b.base_url])
        monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "local.sqlite"))
        local = synthloom.run_recipe(recipe, out=tmp_path / "local", show_progress=False)
        sent = a.stats.completed + b.stats.completed
        # its own cache: every call of the Ray run goes to the servers again
        monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "ray.sqlite"))
        executor = RayExecutor(actors=2, shards="parquet")
        on_ray = synthloom.run_recipe(
            recipe, out=tmp_path / "ray", show_progress=False, executor=executor
        )
        assert a.stats.completed + b.stats.completed == 2 * sent
    assert executor.units_sent == 144  # the distill step's units went to the actors
    assert on_ray["replies"]["executor"]["units_on_actors"] == 144
    assert local["replies"]["executor"] is None
    assert local["replies"]["units_ok"] == on_ray["replies"]["units_ok"] == 144
    assert on_ray["replies"]["requests"] == local["replies"]["requests"] == 144
    assert on_ray["replies"]["cache_hits"] == 0
    mine, theirs = _records(tmp_path / "local/replies/records.jsonl"), None
    theirs = _records(tmp_path / "ray/replies/records.jsonl")
    assert len(mine) == 144 and theirs == mine  # same ids, same contents
    for step in ("clean",):
        assert local[step]["records_out"] == on_ray[step]["records_out"]
        assert _records(tmp_path / f"local/{step}/records.jsonl") == _records(
            tmp_path / f"ray/{step}/records.jsonl"
        )
    sft = sorted((tmp_path / "local/sft.jsonl").read_text().splitlines())
    assert sorted((tmp_path / "ray/sft.jsonl").read_text().splitlines()) == sft
    # the records also as Parquet shards, written by the workers
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ray/replies/shards")
    assert sorted(table.column("id").to_pylist()) == sorted(theirs)
    row = table.slice(0, 1).to_pylist()[0]
    assert json.loads(row["data"]) == theirs[row["id"]]["data"]
    # and as JSONL shards: the same lines as records.jsonl
    from synthloom.executors.ray import write_shards

    lines = (tmp_path / "ray/replies/records.jsonl").read_text().splitlines()
    assert write_shards(tmp_path / "ray/replies/records.jsonl", tmp_path / "jsonl", "jsonl") == 144
    parts = list((tmp_path / "jsonl").glob("part-*.jsonl"))
    assert sorted(x for p in parts for x in p.read_text().splitlines()) == sorted(lines)


def _stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as r:
        return json.loads(r.read())


def test_resumes_after_the_driver_is_killed(tmp_path: Path) -> None:
    """`synthloom run --executor ray`, its driver killed (SIGKILL) mid-step, then run again:
    every record once, and no call whose answer was cached is asked again (at most the calls
    in flight at the kill are)."""
    server, url = start_stub_process(latency=0.05)
    units = 72 * 6
    recipe = _recipe(tmp_path, [url], samples=6, model={"concurrency": 4})
    cmd = [sys.executable, "-m", "synthloom", "run", str(recipe), "--step", "replies"]
    cmd += ["--out", str(tmp_path / "out"), "--executor", "ray", "--actors", "2"]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    try:
        driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 180
        while _stats(url)["completed"] < units // 3:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the actors never called the server"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        time.sleep(3)  # the cluster it started notices and stops
        before = _stats(url)
        assert before["completed"] < units  # killed mid-step
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 0, again.stderr
        after = _stats(url)
    finally:
        server.terminate()
        server.wait()
    records = [json.loads(line) for line in (tmp_path / "out/replies/records.jsonl").open()]
    assert len(records) == units and len({r["id"] for r in records}) == units
    repeated = sum(n - 1 for n in after["completed_hashes"].values() if n > 1)
    assert len(after["completed_hashes"]) == units  # every call answered
    assert repeated <= 2 * 2 * 4  # at most what was in flight: actors x shards x concurrency
    # the rerun asked only for what the first run had not got
    assert (
        after["completed"] - before["completed"]
        <= units - len(before["completed_hashes"]) + repeated
    )


# -- the other tasks: on the actors where their units are independent -------------------------
def _example(tmp_path: Path, name: str, url: str, **params: Any) -> Path:
    """recipes/<name>.yaml against the stub server at `url`, `params` changing its steps'
    params (by step name), paths from the repository root."""
    recipe = yaml.safe_load((REPO / f"recipes/{name}.yaml").read_text())
    recipe["model"] = {"backend": "openai", "base_url": [url], "model": "stub"}
    recipe["model"].update(concurrency=4, seed=0)
    for step in recipe["steps"]:
        step["params"].update(params.get(step["name"], {}))
        for key in ("examples", "input", "from_docs"):
            value = step["params"].get(key)
            if isinstance(value, str) and "${" not in value and (REPO / value).exists():
                step["params"][key] = str(REPO / value)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _lines_of(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


@pytest.fixture
def whole_pool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Data hands shards out once every actor of the pool has started (by default it
    starts with the first one ready, which may take every shard of a small step): the
    steps below then split their units over both actors."""
    request.getfixturevalue("ray_local")
    import ray.data

    monkeypatch.setattr(ray.data.DataContext.get_current(), "wait_for_min_actors_s", 120)


ON_TWO_ACTORS = {"kind": "ray", "units_on_actors": 24, "actors": 2, "actors_used": 2}


@pytest.mark.usefixtures("whole_pool")
def test_preference_recipe_runs_on_the_actors_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recipes/preference.yaml (responses -> judge -> pairs) on Ray: both model steps send
    their units to the actors, and the records, the judge's rankings and the DPO rows are the
    local executor's. Neither task resumes by unit, so a run restarted on a partly written
    run directory sends every unit again: each call is answered from the cache the actors
    share (no request reaches the server) and no record is written twice."""
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        json.dumps({"prompt": f"Give tip number {i} for a first job interview."}) for i in range(24)
    ]
    prompts.write_text("\n".join(lines) + "\n")
    with StubServer() as server:
        recipe = _example(
            tmp_path,
            "preference",
            server.base_url,
            responses={"input": str(prompts), "prompts": []},
        )
        monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "local.sqlite"))
        local = synthloom.run_recipe(recipe, out=tmp_path / "local", show_progress=False)
        sent = server.stats.completed
        monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "ray.sqlite"))
        on_ray = synthloom.run_recipe(
            recipe,
            out=tmp_path / "ray",
            show_progress=False,
            executor=RayExecutor(actors=2, shard=4),
        )
        assert server.stats.completed == 2 * sent  # the Ray run asked the server itself
        for step, calls in (("responses", 24 * 3), ("judge", 24 * 3)):
            assert local[step]["executor"] is None
            assert on_ray[step]["executor"] == ON_TWO_ACTORS
            assert on_ray[step]["requests"] == local[step]["requests"] == calls
            assert on_ray[step]["counters"] == local[step]["counters"]
            mine = _records(tmp_path / f"local/{step}/records.jsonl")
            assert len(mine) == calls  # one record per response, one per rated response
            assert _records(tmp_path / f"ray/{step}/records.jsonl") == mine
        rankings = _lines_of(tmp_path / "local/judge/rankings.jsonl")
        assert len(rankings) == 24 and _lines_of(tmp_path / "ray/judge/rankings.jsonl") == rankings
        dpo = _lines_of(tmp_path / "local/dpo.jsonl")
        assert dpo and _lines_of(tmp_path / "ray/dpo.jsonl") == dpo
        assert local["dpo"]["rows"] == on_ray["dpo"]["rows"] == len(dpo)

        # The driver stopped after writing half of each step's records: run it again.
        full = {s: _records(tmp_path / f"ray/{s}/records.jsonl") for s in ("responses", "judge")}
        for step in full:
            path = tmp_path / f"ray/{step}/records.jsonl"
            kept = path.read_text().splitlines(keepends=True)
            path.write_text("".join(kept[: len(kept) // 2]))
        before = server.stats.completed
        again = synthloom.run_recipe(
            recipe,
            out=tmp_path / "ray",
            show_progress=False,
            executor=RayExecutor(actors=2, shard=4),
        )
        assert server.stats.completed == before  # every call from the cache
    for step, records in full.items():
        summary = again[step]
        assert summary["executor"] == ON_TWO_ACTORS
        assert summary["requests"] == 0 and summary["cache_hits"] == summary["calls"] == 72
        assert summary["records_new"] == 72 - 36 and summary["records_present"] == 36
        lines = (tmp_path / f"ray/{step}/records.jsonl").read_text().splitlines()
        assert len(lines) == 72  # nothing written twice
        assert _records(tmp_path / f"ray/{step}/records.jsonl") == records
    assert _lines_of(tmp_path / "ray/judge/rankings.jsonl") == rankings
    assert _lines_of(tmp_path / "ray/dpo.jsonl") == dpo


@pytest.mark.usefixtures("whole_pool")
def test_exact_repeats_are_flagged_across_actors(tmp_path: Path) -> None:
    """qa (without --max-similar) sends its units to the actors; an exact repeat of an earlier
    question is flagged in the driver, so every repeat is caught whichever actor made it: all
    but one of 24 identical questions flagged, as locally."""
    pair = {"question": "How long do I have to return an item?", "answer": "Thirty days."}
    with StubServer(responder=lambda body: json.dumps(pair)) as server:
        recipe = _example(tmp_path, "qa", server.base_url, topic={"n": 24})
        results = {}
        for where, executor in (("local", None), ("ray", RayExecutor(actors=2, shard=3))):
            results[where] = synthloom.run_recipe(
                recipe, only=["topic"], out=tmp_path / where, show_progress=False, executor=executor
            )
    local, on_ray = results["local"]["topic"], results["ray"]["topic"]
    assert on_ray["executor"] == ON_TWO_ACTORS  # each with its own copy of the task
    for summary in (local, on_ray):
        assert summary["counters"]["duplicate_questions_flagged"] == 23
    for where in ("local", "ray"):
        records = _records(tmp_path / f"{where}/topic/records.jsonl")
        statuses = sorted(r["status"] for r in records.values())
        assert statuses == ["flagged"] * 23 + ["ok"]
        first = next(r["id"] for r in records.values() if r["status"] == "ok")
        assert {r["notes"].get("duplicate_of", first) for r in records.values()} == {first}
    assert set(_records(tmp_path / "ray/topic/records.jsonl")) == set(
        _records(tmp_path / "local/topic/records.jsonl")
    )


@pytest.mark.usefixtures("ray_local")
def test_tasks_whose_units_depend_on_one_another_run_in_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recipes/diverse-qa.yaml: the topic tree is built level by level and qa with
    --max-similar checks each question against those before it, in unit order: on Ray both
    run in the driver, say why (summary.executor), and make the local records."""
    with StubServer() as server:
        recipe = _example(tmp_path, "diverse-qa", server.base_url)
        monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "local.sqlite"))
        local = synthloom.run_recipe(recipe, out=tmp_path / "local", show_progress=False)
        monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "ray.sqlite"))
        on_ray = synthloom.run_recipe(
            recipe, out=tmp_path / "ray", show_progress=False, executor=RayExecutor(actors=2)
        )
    assert on_ray["tree"]["executor"] == {
        "kind": "ray",
        "units_on_actors": 0,
        "in_driver": "it builds the tree level by level, each from the topics of the one before",
    }
    assert on_ray["qa"]["executor"] == {
        "kind": "ray",
        "units_on_actors": 0,
        "in_driver": "--max-similar compares each question with those of the units before it",
    }
    for step in ("tree", "qa"):
        assert on_ray[step]["counters"] == local[step]["counters"]
        mine = _records(tmp_path / f"local/{step}/records.jsonl")
        assert mine and _records(tmp_path / f"ray/{step}/records.jsonl") == mine
