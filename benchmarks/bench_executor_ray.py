"""Local vs Ray executor on one machine (issue 17): the same distill step over N prompts
against the stub server (a separate process, no latency), each executor with its own cache.

    python benchmarks/bench_executor_ray.py [--n 100000] [--concurrency 64] [--actors 2]

Runs `synthloom run recipe.yaml` (one distill step) twice as whole commands, first with the
local executor, then with `--executor ray` (which starts a local Ray instance: its start-up
is part of the time), and prints one JSON line: each command's wall time and records, the
stub's requests, and whether both runs wrote the same records (ids and contents, the answer
time left out). On one machine Ray can only add work (pickling units and records through the
object store, actors starting, the driver still writing every record); the numbers say how
much.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from synthloom.testing.stub_server import start_stub_process


def _records(path: Path) -> dict[str, str]:
    found = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            r["provenance"].pop("created_at", None)
            found[r["id"]] = json.dumps(r, sort_keys=True)
    return found


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--actors", type=int, default=2)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    prompts = tmp / "prompts.jsonl"
    with open(prompts, "w") as f:
        for i in range(a.n):
            f.write(json.dumps({"prompt": f"Question {i}: how do I return item {i % 977}?"}) + "\n")
    proc, url = start_stub_process()
    result: dict = {"n": a.n, "concurrency": a.concurrency, "actors": a.actors}
    try:
        recipe = tmp / "recipe.yaml"
        recipe.write_text(
            f"out: {tmp / 'unused'}\n"
            f"model: {{backend: openai, base_url: '{url}', model: stub,"
            f" concurrency: {a.concurrency}}}\n"
            "steps:\n  - name: distill\n    task: distill\n"
            f"    params: {{input: '{prompts}'}}\n"
        )
        for name, extra in (
            ("local", []),
            ("ray", ["--executor", "ray", "--actors", str(a.actors)]),
        ):
            env = {**os.environ, "SYNTHLOOM_CACHE": str(tmp / f"{name}.sqlite")}
            before = _stats(url)["requests"]
            t = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "synthloom", "run", str(recipe), "--out", str(tmp / name)]
                + extra,
                capture_output=True,
                text=True,
                env=env,
            )
            seconds = time.perf_counter() - t
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            summary = json.loads((tmp / name / "distill/manifest.json").read_text())["summary"]
            result[name] = {
                "seconds": round(seconds, 1),
                "run_seconds": summary["seconds"],
                "records": summary["records_new"],
                "requests_at_stub": _stats(url)["requests"] - before,
                "records_per_s": round(summary["records_new"] / seconds, 1),
            }
        local, ray = (
            _records(tmp / "local/distill/records.jsonl"),
            _records(tmp / "ray/distill/records.jsonl"),
        )
        result["same_records"] = local == ray
        result["ray_overhead"] = round(result["ray"]["seconds"] / result["local"]["seconds"], 2)
    finally:
        proc.terminate()
        proc.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
