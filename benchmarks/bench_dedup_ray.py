"""Distributed near-dup dedup (issue 17): RayNearDedup on a local Ray instance against the
local NearDedup, on the same planted texts (benchmarks/bench_dedup.py's generator).

    python benchmarks/bench_dedup_ray.py [--n 1000000] [--share 0.1] [--cpus 2] [--skip-local]

Times, on N texts of which a share are planted near-duplicates: the local NearDedup.find
(one process), and RayNearDedup.find on `ray.init(num_cpus=CPUS)` (Ray's start-up timed
apart), and checks that both give the same verdict for every text. Prints one JSON line.
On one 2-core machine Ray cannot be faster than the local finder (it does the same work plus
moving band keys through Ray's object store); what it buys is that the same code runs on a
cluster whose workers each take a share of the signatures, the key shuffle and the checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_dedup import make_texts  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--share", type=float, default=0.1)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--partitions", type=int, default=None)
    p.add_argument("--skip-local", action="store_true")
    a = p.parse_args()
    import ray

    from synthloom.quality.dedup import NearDedup
    from synthloom.quality.dedup_ray import RayNearDedup

    t = time.perf_counter()
    texts, planted = make_texts(a.n, a.share)
    result: dict = {"n": a.n, "planted": len(planted), "texts_built_s": time.perf_counter() - t}
    local = None
    if not a.skip_local:
        t = time.perf_counter()
        local = NearDedup().find(texts)
        result["local_s"] = round(time.perf_counter() - t, 1)
        result["local_duplicates"] = sum(m is not None for m in local)
    t = time.perf_counter()
    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    result["ray_init_s"] = round(time.perf_counter() - t, 1)
    finder = RayNearDedup(partitions=a.partitions)
    t = time.perf_counter()
    found = finder.find(texts)
    result["ray_s"] = round(time.perf_counter() - t, 1)
    result["ray_duplicates"] = sum(m is not None for m in found)
    result["ray_stats"] = finder.stats
    if local is not None:
        result["same_verdicts"] = found == local
        result["differing"] = sum(x != y for x, y in zip(found, local, strict=True))
    ray.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
