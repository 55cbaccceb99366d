"""Throughput of the request engine vs a bare aiohttp loop, and embedded tokens/s.

    python benchmarks/bench_engine.py [--requests 20000] [--skip-embedded]

Part 1: the stub server runs in its own process. For latency 0 and 200 ms, at concurrency 256,
the same distinct requests go through (a) a bare aiohttp loop and (b) synthloom's Engine with
its SQLite cache on (all misses), adaptive concurrency, retries and JSON parsing. Trials are
interleaved (bare, engine, bare, engine, ...) and the median of each is compared.

Part 2: embedded tokens/s through the Engine vs calling xllamacpp directly, same slots, same
requests (fresh cache, so every call runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import Engine
from synthloom.llm.openai_http import OpenAIBackend
from synthloom.testing.stub_server import start_stub_process


def messages(i: int, tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[{tag}] Write a short answer about item number {i}."}]


async def bare_loop(base_url: str, n: int, concurrency: int, tag: str) -> float:
    url = base_url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                body = {"model": "stub", "messages": messages(i, tag), "max_tokens": 64}
                async with session.post(url, json=body) as resp:
                    data = await resp.json()
                    assert data["choices"][0]["message"]["content"]

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


async def engine_loop(base_url: str, n: int, concurrency: int, tag: str, cache_dir: Path) -> float:
    cache = ResponseCache(cache_dir / f"{tag}.sqlite")
    backend = OpenAIBackend(base_url, "stub", api_key_env=None, max_connections=concurrency)
    await backend.start()
    engine = Engine(backend, cache, concurrency=concurrency, seed=0)
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            result = await engine.complete(messages(i, tag), max_tokens=64)
            assert result.value

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await backend.close()
    cache.close()  # includes flushing the batched cache writes, outside the timed part
    assert engine.stats.requests == n and engine.stats.cache_hits == 0, engine.stats
    return n / elapsed


def http_part(n_fast: int, trials: int) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for latency, n in ((0.0, n_fast), (0.2, 256 * 12)):
            proc, base_url = start_stub_process(latency=latency)
            try:
                bare, eng = [], []
                asyncio.run(bare_loop(base_url, 2000, 256, f"warm{latency}"))
                for t in range(trials):
                    bare.append(asyncio.run(bare_loop(base_url, n, 256, f"b{latency}-{t}")))
                    eng.append(
                        asyncio.run(engine_loop(base_url, n, 256, f"e{latency}-{t}", Path(tmp)))
                    )
            finally:
                proc.terminate()
                proc.wait()
            b, e = statistics.median(bare), statistics.median(eng)
            rows.append(
                {
                    "latency_ms": int(latency * 1000),
                    "concurrency": 256,
                    "requests": n,
                    "bare_aiohttp_rps": round(b),
                    "engine_rps": round(e),
                    "ratio": round(e / b, 3),
                    "ideal_rps": round(256 / latency) if latency else None,
                    "trials_bare": [round(x) for x in bare],
                    "trials_engine": [round(x) for x in eng],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def embedded_part(slots: int, n: int, max_tokens: int) -> dict[str, object]:
    from synthloom.llm.embedded import EmbeddedBackend, default_model_path, load_xllamacpp

    xllamacpp = load_xllamacpp()  # as the backend loads it, for both sides

    path = str(default_model_path())
    bodies = [
        {"messages": messages(i, "emb"), "max_tokens": max_tokens, "seed": i, "temperature": 0.8}
        for i in range(n)
    ]

    def direct(todo: list[dict[str, object]] = bodies) -> float:
        p = xllamacpp.CommonParams()
        p.model.path = path
        p.n_parallel = slots
        p.n_ctx = 2048 * slots
        p.verbosity = -1
        server = xllamacpp.Server(p)
        tokens = 0
        lock = threading.Lock()
        it = iter(todo)

        def worker() -> None:
            nonlocal tokens
            for body in it:
                r = server.handle_chat_completions(dict(body))
                with lock:
                    tokens += r["usage"]["completion_tokens"]

        threads = [threading.Thread(target=worker) for _ in range(slots)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = tokens / (time.perf_counter() - start)
        return rate

    async def through_engine(tmp: str) -> float:
        backend = EmbeddedBackend(path, slots=slots)
        await backend.start()
        cache = ResponseCache(Path(tmp) / "emb.sqlite")
        engine = Engine(backend, cache, concurrency=slots, seed=None)

        async def one(body: dict[str, object]) -> None:
            sampling = {k: v for k, v in body.items() if k != "messages"}
            await engine.complete(body["messages"], accept_truncated=True, **sampling)  # type: ignore[arg-type]

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        rate = engine.stats.completion_tokens / (time.perf_counter() - start)
        await backend.close()
        cache.close()
        return rate

    direct(bodies[:slots])  # warm-up (page in the model), not counted
    d1 = direct()
    with tempfile.TemporaryDirectory() as tmp:
        e1 = asyncio.run(through_engine(tmp))
    d2 = direct()
    with tempfile.TemporaryDirectory() as tmp:
        e2 = asyncio.run(through_engine(tmp))
    d, e = (d1 + d2) / 2, (e1 + e2) / 2
    row = {
        "slots": slots,
        "requests": n,
        "max_tokens": max_tokens,
        "direct_tok_s": round(d, 1),
        "engine_tok_s": round(e, 1),
        "ratio": round(e / d, 3),
        "trials_direct": [round(d1, 1), round(d2, 1)],
        "trials_engine": [round(e1, 1), round(e2, 1)],
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000, help="requests per trial at latency 0")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--skip-embedded", action="store_true")
    ap.add_argument("--slots", type=int, default=8)
    a = ap.parse_args()
    http_part(a.requests, a.trials)
    if not a.skip_embedded:
        embedded_part(a.slots, 32, 128)


if __name__ == "__main__":
    main()
