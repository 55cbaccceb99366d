"""The whole `synthloom qa` command vs the bare aiohttp loop in CPU instructions (issue 12).

    python benchmarks/bench_command_instructions.py [--small 2000] [--large 6000]
                                                    [--pythonpath SRC]

Wall-clock ratios on a shared 2-core machine swing with the other load (bench_command.py
reports them, with client CPU seconds); instruction counts do not. Each program runs under
valgrind's callgrind (about 50x slower) against the stub server (its own process, 0 ms
latency, not counted) at concurrency 256, once with SMALL and once with LARGE requests; the
difference gives the instructions per request and the rest the fixed cost (start-up, imports,
the end of the run). `--pythonpath SRC` measures another checkout's synthloom (e.g. a
`git worktree` of an older commit) beside this one. Needs valgrind; not in `make bench`
(about 10 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", *cmd],
            env=env,
            capture_output=True,
            text=True,
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or not found:
        raise SystemExit(f"{cmd[:4]} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    from bench_command import qa_spec

    from synthloom.testing.stub_server import start_stub_process

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--large", type=int, default=6000)
    p.add_argument("--pythonpath", action="append", default=[], help="another synthloom src/")
    a = p.parse_args()
    proc, base_url = start_stub_process(latency=0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "spec.json"
            spec.write_text(json.dumps(qa_spec("product returns")), encoding="utf-8")
            variants: list[tuple[str, dict[str, str] | None]] = [("bare", None), ("synthloom", {})]
            variants += [(f"synthloom ({src})", {"PYTHONPATH": src}) for src in a.pythonpath]
            for name, extra in variants:
                counts = []
                for n in (a.small, a.large):
                    run = Path(tmp) / f"{len(counts)}-{abs(hash(name))}"
                    env = {**os.environ, "SYNTHLOOM_CACHE": str(run / "cache.sqlite")}
                    if extra is None:
                        cmd = [
                            sys.executable, str(HERE / "bench_command.py"), "--bare",
                            f"{base_url}/chat/completions", str(spec), str(n), "256",
                        ]  # fmt: skip
                    else:
                        env.update(extra)
                        cmd = [
                            sys.executable, "-m", "synthloom", "qa", "--topic", "product returns",
                            "-n", str(n), "--concurrency", "256", "--backend", "openai",
                            "--base-url", base_url, "--model", "m", "--out", str(run / "out"),
                        ]  # fmt: skip
                    counts.append(instructions(cmd, env))
                per_request = (counts[1] - counts[0]) / (a.large - a.small)
                row = {
                    "program": name,
                    "instructions": {str(a.small): counts[0], str(a.large): counts[1]},
                    "per_request": round(per_request),
                    "fixed": round(counts[0] - a.small * per_request),
                }
                print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
