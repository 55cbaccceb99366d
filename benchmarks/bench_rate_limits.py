"""Rate limits: a run where 30% of answers are 429s carrying `Retry-After: 1`, against the same
fault rate without the header (issue 12, item 7).

    python benchmarks/bench_rate_limits.py [--calls 2000] [--concurrency 64] [--trials 1]

Each trial times the whole `synthloom qa` command (process start to exit) against a stub
server in its own process, with a fresh cache and run directory, and counts the requests the
server received. Trials are interleaved (header, no header, header, ...); the medians and
their ratio are printed. Target: with the header within 2x of without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from synthloom.testing.stub_server import start_stub_process


def stub_requests(base_url: str) -> int:
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/stats") as resp:
        return int(json.load(resp)["requests"])


def one_run(retry_after: str, calls: int, concurrency: int, latency: float, tmp: Path) -> dict:
    proc, base_url = start_stub_process(
        latency=latency, fault_rate=0.3, faults="429", retry_after=retry_after, seed=7
    )
    tag = f"{retry_after}-{time.monotonic_ns()}"
    env = {**os.environ, "SYNTHLOOM_CACHE": str(tmp / f"{tag}.sqlite")}
    cmd = [
        sys.executable,
        "-m",
        "synthloom",
        "qa",
        "--topic",
        "product returns",
        "-n",
        str(calls),
        "--backend",
        "openai",
        "--base-url",
        base_url,
        "--model",
        "stub",
        "--concurrency",
        str(concurrency),
        "--out",
        str(tmp / tag),
    ]
    try:
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - start
        requests = stub_requests(base_url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads((tmp / tag / "manifest.json").read_text())["summary"]
    return {
        "seconds": seconds,
        "requests": requests,
        "units_ok": summary["units_ok"],
        "units_failed": summary["units_failed"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.0, help="stub latency in seconds")
    p.add_argument("--trials", type=int, default=1)
    a = p.parse_args()
    runs: dict[str, list[dict]] = {"1": [], "none": []}
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(a.trials):
            for retry_after in ("1", "none"):
                r = one_run(retry_after, a.calls, a.concurrency, a.latency, Path(tmp))
                runs[retry_after].append(r)
                label = "Retry-After: 1" if retry_after == "1" else "no header"
                print(
                    f"trial {trial + 1} {label:>14}: {r['seconds']:7.1f}s"
                    f" {r['requests']} requests, {r['units_ok']} ok, {r['units_failed']} failed",
                    flush=True,
                )
    with_header = statistics.median(r["seconds"] for r in runs["1"])
    without = statistics.median(r["seconds"] for r in runs["none"])
    print(f"median with Retry-After: 1   {with_header:.1f}s")
    print(f"median without the header   {without:.1f}s")
    print(f"ratio (target <= 2.0)       {with_header / without:.2f}")


if __name__ == "__main__":
    main()
