"""Two embedded jobs at once on a small machine: tokens/s, with libgomp's default spin count
and with synthloom's (GOMP_SPINCOUNT, see synthloom.llm.embedded), 2 and 1 threads each.

    python benchmarks/bench_embedded_side_by_side.py [--deadline SECONDS]

Runs 1 process, then 2 at once, per setting. Each process loads
the bundled model with 4 slots and sends 16 JSON-schema requests of up to 128 tokens (like
`synthloom qa`), printing a line per finished request. A configuration still running at the
deadline (default 180 s) is stopped and reported with the requests it finished, since
oversubscribed llama.cpp thread pools can slow to a crawl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from synthloom.llm.embedded import SPINCOUNT

SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "maxLength": 300},
        "answer": {"type": "string", "maxLength": 600},
    },
    "required": ["question", "answer"],
}
REQUESTS = 16


def worker(threads: int) -> None:
    import xllamacpp  # first: libgomp reads GOMP_SPINCOUNT (set by the parent) at load

    from synthloom.llm.embedded import default_model_path

    p = xllamacpp.CommonParams()
    p.model.path = str(default_model_path())
    p.n_parallel, p.n_ctx, p.verbosity = 4, 4 * 2048, -1
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(p)
    lock = threading.Lock()

    def one(i: int) -> int:
        body = {
            "messages": [
                {
                    "role": "user",
                    "content": "Write a customer question about product returns and its"
                    f" answer, as JSON. Variation {i}.",
                }
            ],
            "max_tokens": 128,
            "temperature": 0.8,
            "seed": i,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "qa", "schema": SCHEMA},
            },
        }
        tokens = int(server.handle_chat_completions(body)["usage"]["completion_tokens"])
        if i >= 0:
            line = json.dumps({"tokens": tokens, "t": time.perf_counter() - start}) + "\n"
            with lock:  # one write per line: print() from threads can interleave
                sys.stdout.write(line)
                sys.stdout.flush()
        return tokens

    start = time.perf_counter()
    one(-1)  # warm-up, not counted
    print(json.dumps({"ready": True}), flush=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(REQUESTS)))


def run(
    processes: int, threads: int, deadline: float, env: dict[str, str]
) -> list[tuple[float, int]]:
    """(tokens/s, finished requests) per process."""
    cmd = [sys.executable, __file__, "--worker", str(threads)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)
    ]
    stats = [[0, 0, 0.0] for _ in procs]  # tokens, requests, time of the last one

    def read(k: int) -> None:
        assert procs[k].stdout is not None
        for line in procs[k].stdout:
            row = json.loads(line)
            if "tokens" in row:
                stats[k][0] += row["tokens"]
                stats[k][1] += 1
                stats[k][2] = row["t"]

    readers = [threading.Thread(target=read, args=(k,)) for k in range(processes)]
    for r in readers:
        r.start()
    started = time.monotonic()
    for r in readers:
        r.join(timeout=max(0.0, deadline - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    for p in procs:
        p.kill()
        p.wait()
    for r in readers:
        r.join()
    out = []
    for tokens, done, last in stats:
        seconds = last if done == REQUESTS else max(last, elapsed)
        out.append((tokens / seconds if seconds else 0.0, done))
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
        return
    deadline = (
        float(sys.argv[sys.argv.index("--deadline") + 1]) if "--deadline" in sys.argv else 180
    )
    configs = [  # (GOMP_SPINCOUNT or None for libgomp's default, processes, threads)
        (None, 1, 2),
        (None, 2, 2),
        (SPINCOUNT, 1, 2),
        (SPINCOUNT, 2, 2),
        (SPINCOUNT, 1, 1),
        (SPINCOUNT, 2, 1),
    ]
    for spin, processes, threads in configs:
        env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
        if spin is not None:
            env["GOMP_SPINCOUNT"] = spin
        rows = run(processes, threads, deadline, env)
        each = ", ".join(f"{rate:.1f} ({done}/{REQUESTS} requests)" for rate, done in rows)
        total = sum(rate for rate, _ in rows)
        label = f"GOMP_SPINCOUNT={spin}" if spin else "libgomp default"
        print(
            f"{label:22} {processes} process(es) x {threads} thread(s): {each} tok/s;"
            f" sum {total:.1f} tok/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
