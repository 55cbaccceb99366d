"""synthloom's own cost per record, without HTTP (issue 12).

    python benchmarks/bench_record_path.py [--records 20000] [--trials 3] [--profile]

`synthloom qa` runs in this process (run_task, a fresh run directory and cache) against a
backend that answers every call at once with a valid, distinct Q&A pair: what is left is
everything synthloom does around a call (prompt, cache key, engine, journal, validation,
record, its JSON line, the spread summary, the event loop's switches) and none of aiohttp's
work. Prints CPU and wall seconds per trial and the median CPU microseconds per record.
`--profile` prints cProfile's top functions of one trial instead (cProfile inflates loops
of cheap calls: read it for where to look, not for how much). For a stable count on a busy
machine run it under valgrind, e.g.
`valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/bench_record_path.py --records 1000 --trials 1`
and again with 4000 records: the difference / 3000 is the instructions per record.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from synthloom import runner
from synthloom.llm.base import Backend, Completion
from synthloom.settings import ModelSettings
from synthloom.tasks.qa import QAParams, QATask

_WORDS = [f"w{i}" for i in range(3000)]
_rng = random.Random(0)
ANSWERS = [
    orjson.dumps(
        {
            "question": " ".join(_rng.choice(_WORDS) for _ in range(12)) + "?",
            "answer": " ".join(_rng.choice(_WORDS) for _ in range(30)) + ".",
        }
    ).decode()
    for _ in range(5000)
]


class InstantBackend(Backend):
    """Answers every call at once (one event-loop turn, as a network answer takes)."""

    kind = "openai"

    def __init__(self) -> None:
        self.model = "m"
        self.base_url = "http://instant.invalid/v1"
        self.calls = 0

    def cache_identity(self) -> list[str]:
        return [self.kind, self.base_url, self.model]

    async def complete(self, body: dict[str, Any], timeout: float) -> Completion:
        await asyncio.sleep(0)
        self.calls += 1
        seed = int(body.get("seed") or self.calls)
        # a distinct pair per call: the question carries the seed, so no repeats are flagged
        text = ANSWERS[seed % len(ANSWERS)].replace("?", f" {seed}?", 1)
        return Completion(text, "stop", 50, 30, 1764600000.0)


def one_run(records: int, profile: bool = False) -> tuple[float, float]:
    runner.make_backend = lambda s: InstantBackend()  # this benchmark's backend, no HTTP
    settings = ModelSettings(
        backend="openai", base_url="http://instant.invalid/v1", model="m", concurrency=256,
        structured_output="json_schema",
    )  # fmt: skip
    task = QATask(QAParams(topic="product returns", n=records))
    with tempfile.TemporaryDirectory() as tmp:
        args = (task, settings, Path(tmp) / "run")
        kwargs = {"show_progress": False, "cache": Path(tmp) / "cache.sqlite"}
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                summary = runner.run_task(*args, **kwargs)
            pstats.Stats(prof).sort_stats("tottime").print_stats(40)
        else:
            summary = runner.run_task(*args, **kwargs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if summary.records_new != records:
        raise SystemExit(f"{summary.records_new} records written, not {records}")
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    if a.profile:
        one_run(a.records, profile=True)
        return
    cpus = []
    for t in range(a.trials):
        wall, cpu = one_run(a.records)
        cpus.append(cpu)
        print(f"trial {t}: {a.records} records, {cpu:.2f} s CPU, {wall:.2f} s wall", flush=True)
    print(f"median {statistics.median(cpus) / a.records * 1e6:.0f} us CPU per record")


if __name__ == "__main__":
    main()
