"""kill -9 at full speed: how many answered calls are asked again (issue 12, item 8).

    python benchmarks/bench_kill_resume.py [--calls 20000] [--concurrency 256] [--kills 3]

A stub server in its own process answers at once (0 ms latency). `synthloom qa -n CALLS` runs
and is killed with SIGKILL after a random number of answers, KILLS times, then runs to the
end. The server counts every request body it received and every body it answered, so for
each kill it can tell how many calls answered before the kill were asked again later. A
call can only be lost if its answer was still on the wire when the process died (at most the
calls in flight); an answer the process had read must never be asked for again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from synthloom.testing.stub_server import start_stub_process


def _stats(root: str) -> dict:
    with urllib.request.urlopen(f"{root}/stats") as resp:
        return json.load(resp)


def _reset(root: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{root}/stats/reset", method="POST")).read()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=12)
    a = p.parse_args()
    rng = random.Random(a.seed)
    proc, base_url = start_stub_process(latency=0)
    root = base_url.removesuffix("/v1")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "SYNTHLOOM_CACHE": str(Path(tmp) / "cache.sqlite")}
            cmd = [
                sys.executable, "-m", "synthloom", "qa", "--topic", "product returns",
                "-n", str(a.calls), "--backend", "openai", "--base-url", base_url,
                "--model", "stub", "--concurrency", str(a.concurrency),
                "--out", str(Path(tmp) / "run"),
            ]  # fmt: skip
            answered: list[set[str]] = []
            asked: list[set[str]] = []
            requests = 0
            start = time.perf_counter()
            for k in range(a.kills):
                _reset(root)
                run = subprocess.Popen(
                    cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                target = rng.randint(a.calls // 10, a.calls // 4)
                while _stats(root)["completed"] < target:
                    if run.poll() is not None:
                        raise SystemExit("the run finished before it could be killed")
                    time.sleep(0.02)
                run.send_signal(signal.SIGKILL)
                run.wait()
                stats = _stats(root)
                requests += stats["requests"]
                answered.append(set(stats["completed_hashes"]))
                asked.append(set(stats["request_hashes"]))
                print(f"kill {k + 1}: after {stats['completed']} answers in that run", flush=True)
            _reset(root)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"final run failed: {done.stderr[-1500:]}")
            stats = _stats(root)
            requests += stats["requests"]
            asked.append(set(stats["request_hashes"]))
            records = (Path(tmp) / "run" / "records.jsonl").read_text().count("\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    for k in range(a.kills):
        again = answered[k] & set().union(*asked[k + 1 :])
        print(f"kill {k + 1}: {len(answered[k])} calls answered, {len(again)} asked again")
    print(f"records {records} of {a.calls}; requests sent in all {requests} ({seconds:.1f}s)")


if __name__ == "__main__":
    main()
