"""The whole `synthloom qa` command vs a bare aiohttp loop (issue 12, item 4).

    python benchmarks/bench_command.py [--trials 3] [--requests 20000] [--skip-slow]

For each server latency (0 ms with REQUESTS requests, 200 ms with 3,072), a stub server runs
in its own process and two programs send the same number of requests at concurrency 256:

  bare       a minimal aiohttp script (this file with --bare): the same request bodies as
             `qa` sends (its prompts, JSON schema, max_tokens and seeds), each answer's JSON
             parsed; nothing else.
  synthloom  `synthloom qa --topic ... -n N --concurrency 256` into a fresh run directory:
             templates, engine, cache, validation, records.jsonl, progress. Its trials share
             one cache file, each with its own --seed (so every call is a miss and is sent),
             as a user's later runs against an endpoint do: the structured-output mode is
             the one negotiated before (by an uncounted warm-up run).
  first run  the same with a cache file of its own: the mode is negotiated first (the first
             call alone, then the others: one more round trip).

Both are timed from process start to exit (start-up, imports and the final writes
included), and the server counts the requests each sent. Trials are interleaved (bare,
synthloom, bare, ...); the median of each and their ratio (bare seconds / synthloom seconds,
i.e. synthloom's throughput as a share of the bare loop's) are printed as JSON lines.
Targets: >= 0.8 at 0 ms, >= 0.95 at 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time


async def _bare(url: str, spec: dict, n: int, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    variants, rest = spec["variants"], spec["rest"]
    async with aiohttp.ClientSession(connector=connector) as session:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                body = {"model": "m", "messages": variants[i % len(variants)], **rest, "seed": i}
                async with session.post(url, json=body) as resp:
                    data = await resp.json()
                    assert data["choices"][0]["message"]["content"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def bare_main(argv: list[str]) -> None:
    url, spec_file, n, concurrency = argv
    with open(spec_file, encoding="utf-8") as f:
        spec = json.load(f)
    asyncio.run(_bare(url, spec, int(n), int(concurrency)))


def qa_spec(topic: str) -> dict:
    """What `synthloom qa --topic TOPIC` sends: its 10 prompt variants and the rest of a body."""
    from synthloom import templates
    from synthloom.llm import structured
    from synthloom.tasks.qa import QAPair, QATask

    template = templates.load("qa_topic")
    variants = [template.messages(topic=topic, sample=i) for i in range(10)]
    rest = {
        **QATask.sampling,
        "response_format": structured.response_format(QAPair, "json_schema"),
    }
    return {"variants": variants, "rest": rest}


def main() -> None:
    import os
    import statistics
    import subprocess
    import tempfile
    import urllib.request
    from pathlib import Path

    from synthloom.testing.stub_server import start_stub_process

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20000, help="at 0 ms latency")
    p.add_argument("--slow-requests", type=int, default=256 * 12, help="at 200 ms latency")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--skip-slow", action="store_true", help="only the 0 ms part")
    p.add_argument("--skip-fast", action="store_true", help="only the 200 ms part")
    a = p.parse_args()
    topic = "product returns"

    def stats(root: str) -> dict:
        with urllib.request.urlopen(f"{root}/stats") as resp:
            return json.load(resp)

    def reset(root: str) -> None:
        req = urllib.request.Request(f"{root}/stats/reset", method="POST")
        urllib.request.urlopen(req).read()

    cpu: dict[str, list[float]] = {}

    def timed(cmd: list[str], env: dict[str, str], name: str = "") -> float:
        """Wall seconds from process start to exit; the process's CPU seconds (user + system,
        less sensitive to a busy machine) are kept in `cpu[name]`."""
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {stderr[-2000:]}")
        if name:
            cpu.setdefault(name, []).append(usage.ru_utime + usage.ru_stime)
        return seconds

    parts = []
    if not a.skip_fast:
        parts.append((0.0, a.requests))
    if not a.skip_slow:
        parts.append((0.2, a.slow_requests))
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(qa_spec(topic)), encoding="utf-8")
        for latency, n in parts:
            proc, base_url = start_stub_process(latency=latency)
            root = base_url.removesuffix("/v1")
            bare_cmd = [
                sys.executable, __file__, "--bare", f"{base_url}/chat/completions",
                str(spec_file), str(n), str(a.concurrency),
            ]  # fmt: skip
            times: dict[str, list[float]] = {"bare": [], "synthloom": [], "first run": []}
            shared = Path(tmp) / f"{int(latency * 1000)}-shared.sqlite"

            def qa(
                n: int, seed: int, cache: Path, tag: str, base_url: str = base_url
            ) -> tuple[list[str], dict]:
                cmd = [
                    sys.executable, "-m", "synthloom", "qa", "--topic", topic, "-n", str(n),
                    "--seed", str(seed), "--concurrency", str(a.concurrency),
                    "--backend", "openai", "--base-url", base_url, "--model", "m",
                    "--out", str(Path(tmp) / tag),
                ]  # fmt: skip
                return cmd, {**os.environ, "SYNTHLOOM_CACHE": str(cache)}

            try:
                timed(bare_cmd[:-2] + ["1000", str(a.concurrency)], dict(os.environ))  # warm-up
                timed(*qa(50, 10_000, shared, f"warm-{latency}"))  # negotiates the mode
                for t in range(a.trials):
                    tag = f"{int(latency * 1000)}-{t}"
                    fresh = Path(tmp) / f"{tag}-fresh.sqlite"
                    runs = (
                        ("bare", (bare_cmd, dict(os.environ))),
                        ("synthloom", qa(n, t, shared, tag)),
                        ("first run", qa(n, 1000 + t, fresh, f"{tag}-fresh")),
                    )
                    for name, (cmd, env) in runs:
                        reset(root)
                        seconds = timed(cmd, env, f"{latency}-{name}")
                        sent = stats(root)["requests"]
                        if sent != n:
                            raise SystemExit(f"{name} sent {sent} requests, not {n}")
                        times[name].append(seconds)
                        print(f"  {name:>9} {n} requests in {seconds:.2f}s", flush=True)
            finally:
                proc.terminate()
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            bare, ours = statistics.median(times["bare"]), statistics.median(times["synthloom"])
            first = statistics.median(times["first run"])
            row = {
                "latency_ms": int(latency * 1000),
                "concurrency": a.concurrency,
                "requests": n,
                "bare_seconds": round(bare, 2),
                "synthloom_seconds": round(ours, 2),
                "first_run_seconds": round(first, 2),
                "bare_rps": round(n / bare),
                "synthloom_rps": round(n / ours),
                "ratio": round(bare / ours, 3),
                "ratio_first_run": round(bare / first, 3),
                "trials_bare": [round(x, 2) for x in times["bare"]],
                "trials_synthloom": [round(x, 2) for x in times["synthloom"]],
                "trials_first_run": [round(x, 2) for x in times["first run"]],
                # client CPU seconds (user + system), median: what each program costs
                "cpu_bare": round(statistics.median(cpu[f"{latency}-bare"]), 2),
                "cpu_synthloom": round(statistics.median(cpu[f"{latency}-synthloom"]), 2),
                "cpu_ratio": round(
                    statistics.median(cpu[f"{latency}-bare"])
                    / statistics.median(cpu[f"{latency}-synthloom"]),
                    3,
                ),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        bare_main(sys.argv[2:])
    else:
        main()
