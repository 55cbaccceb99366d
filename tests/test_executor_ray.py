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
