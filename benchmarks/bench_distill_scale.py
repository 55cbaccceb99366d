"""`synthloom distill` over 100,000 and 1,000,000 prompts: peak memory, and the rerun of a
finished run (issue 12, item 6).

    python benchmarks/bench_distill_scale.py [--sizes 100000 1000000] [--dir /tmp/synthloom-scale]

For each size a prompts file is written (once, kept in --dir), and `synthloom distill` runs
over it against the stub server in its own process (0 ms latency, concurrency 256), with its
own cache file. The process's resident memory is read from /proc every second while it runs
(to show it is flat, not growing with the records written) and its peak (ru_maxrss) when it
exits. Then the same command runs again on the finished run: the server counts the requests
it sends (target 0) and its time is compared with the first run's (target < 10%).
A 1,000,000-prompt run takes several minutes; everything stays under --dir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from synthloom.testing.stub_server import start_stub_process


def write_prompts(path: Path, n: int) -> Path:
    if path.exists() and path.stat().st_size:
        return path
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"Explain item {i} of the catalogue in one sentence."}))
            f.write("\n")
    return path


def stub_requests(root: str) -> int:
    with urllib.request.urlopen(f"{root}/stats") as resp:
        return int(json.load(resp)["requests"])


def reset(root: str) -> None:
    req = urllib.request.Request(f"{root}/stats/reset", method="POST")
    urllib.request.urlopen(req).read()


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process: resident now, and its high-water mark since its exec."""
    found = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line[:6] in found:
                    found[line[:6]] = int(line.split()[1])
    except OSError:
        pass
    return found["VmRSS:"], found["VmHWM:"]


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def run(cmd: list[str], env: dict[str, str], records: Path) -> dict:
    """Run `cmd`; its time, peak RSS (MB: the kernel's high-water mark of the process, read
    until it exits; not ru_maxrss, which also counts this parent's pages before the exec),
    and RSS samples (seconds, MB, records bytes) every second."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, peak, last = [], 0, 0.0
    while True:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            break
        rss, hwm = memory_kb(proc.pid)
        peak = max(peak, hwm)
        now = time.perf_counter()
        if now - last >= 1.0:
            size = records.stat().st_size if records.exists() else 0
            samples.append((round(now - start, 1), rss // 1024, size))
            last = now
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[3]} failed: {stderr[-2000:]}")
    return {"seconds": seconds, "peak_mb": peak / 1024, "samples": samples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dir", type=Path, default=Path("/tmp/synthloom-scale"))
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--keep", action="store_true", help="keep the run directories and caches")
    a = p.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    proc, base_url = start_stub_process(latency=0)
    root = base_url.removesuffix("/v1")
    try:
        for n in a.sizes:
            prompts = write_prompts(a.dir / f"prompts-{n}.jsonl", n)
            out, cache = a.dir / f"run-{n}", a.dir / f"cache-{n}.sqlite"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(f"{cache}.journal", ignore_errors=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{cache}{suffix}").unlink(missing_ok=True)
            env = {**os.environ, "SYNTHLOOM_CACHE": str(cache)}
            cmd = [
                sys.executable, "-m", "synthloom", "distill", "--input", str(prompts),
                "--backend", "openai", "--base-url", base_url, "--model", "m",
                "--concurrency", str(a.concurrency), "--out", str(out),
            ]  # fmt: skip
            reset(root)
            first = run(cmd, env, out / "records.jsonl")
            first_requests = stub_requests(root)
            lines = count_lines(out / "records.jsonl")
            reset(root)
            again = run(cmd, env, out / "records.jsonl")
            again_requests = stub_requests(root)
            samples = first["samples"]
            quarters = [samples[min(len(samples) - 1, len(samples) * q // 4)] for q in (1, 2, 3)]
            row = {
                "prompts": n,
                "records": lines,
                "first_seconds": round(first["seconds"], 1),
                "first_requests": first_requests,
                "first_peak_rss_mb": round(first["peak_mb"], 1),
                "rss_mb_at_quarters": [mb for _, mb, _ in quarters],
                "records_mb_at_quarters": [round(size / 2**20) for _, _, size in quarters],
                "rerun_seconds": round(again["seconds"], 1),
                "rerun_requests": again_requests,
                "rerun_peak_rss_mb": round(again["peak_mb"], 1),
                "rerun_rss_mb_samples": [mb for _, mb, _ in again["samples"]][-8:],
                "rerun_share": round(again["seconds"] / first["seconds"], 3),
            }
            print(json.dumps(row), flush=True)
            if not a.keep:
                shutil.rmtree(out, ignore_errors=True)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{cache}{suffix}").unlink(missing_ok=True)
    finally:
        proc.terminate()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()
