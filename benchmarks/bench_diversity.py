"""Diversity at scale (issue 16): `qa -n 300` on the embedded model with the ten fixed angles
against a depth-2 topic tree plus one persona sampler, same model and seed, side by side.

    python benchmarks/bench_diversity.py [--n 300] [--slots 4] [--temperature T]
                                         [--out DIR] [--json FILE]

1. `synthloom topics --root "product returns" --depth 2 --breadth 8` makes a tree with the
   same embedded model (the bundled SmolLM2-135M), seed 0;
2. baseline: `synthloom qa --topic "product returns" -n N` (the angles cycled, the seed varied);
3. tree+persona: `synthloom qa --topics tree.yaml --sample persona=@personas -n N`, once with
   the tree of step 1 ("model tree") and once with examples/returns_tree.yaml, the same
   depth-2 breadth-8 shape written by hand ("edited tree": what a person makes of a tree
   before using it, or what a capable model gives; the 135M model's own tree is small);
4. with --max-similar X, the edited-tree run again with dedup while generating.
The qa runs use a fresh response cache (every call is made), seed 0 and the same slots, and
`--temperature` when given (the model's default, 0.8 in llama.cpp, otherwise; the tree is made
at the default either way; with --out DIR holding a tree.yaml, that tree is used). On
the questions of each run it reports the near-duplicate rate (share of questions NearDedup
finds a near-duplicate of an earlier one: word 5-gram Jaccard >= 0.7, what `synthloom dedup`
removes), the exact-duplicate rate and distinct-2, and checks the targets: near-duplicate rate
at most half the baseline's, distinct-2 at least 1.3x. Units whose output stayed invalid after
the retries write no record (they are counted, never filled in): each run reports its units
ok/failed, and the rates are over the questions written.

`--tree FILE` uses that tree for the "model tree" arm instead of making one (it is copied to
DIR/tree.yaml). The results (JSON) are rewritten after every run, so an interrupted benchmark
keeps the runs it finished.

Not part of `make bench`: at n=300 every qa run is 10-45 minutes of the 135M model on two
cores (one to two hours in all, by the load); run it by hand, e.g.

    python benchmarks/bench_diversity.py --temperature 0.2 --out /tmp/bench-div \
        --json /tmp/bench-div/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from synthloom.diversity.tree import TopicTree
from synthloom.quality.metrics import distinct_n, exact_duplicate_rate, near_duplicate_rate

ROOT = "product returns"


def synthloom(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "synthloom", *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"synthloom {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def questions(run: Path) -> list[str]:
    lines = (run / "records.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["data"]["question"] for line in lines]


def measure(texts: list[str]) -> dict[str, Any]:
    return {
        "questions": len(texts),
        "near_duplicate_rate": round(near_duplicate_rate(texts), 4),
        "exact_duplicate_rate": round(exact_duplicate_rate(texts), 4),
        "distinct_2": round(distinct_n(texts, 2), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--out", type=Path, default=None, help="keep the runs here")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--temperature", type=float, default=None, help="for the qa runs")
    p.add_argument("--tree", type=Path, default=None, help="use this tree, do not make one")
    p.add_argument(
        "--max-similar", type=float, default=None, help="add a run with dedup while generating"
    )
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="bench-diversity-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SYNTHLOOM_CACHE": str(out / "cache.sqlite")}
    model = ["--backend", "embedded", "--slots", str(a.slots), "--seed", "0"]
    tree = out / "tree.yaml"
    seconds: dict[str, float] = {}
    if a.tree is not None and a.tree.resolve() != tree.resolve():
        shutil.copyfile(a.tree, tree)
    tree_source = str(a.tree or tree) if tree.exists() else "made by this run"
    if not tree.exists():
        seconds["topics"] = synthloom(
            [
                "topics",
                "--root",
                ROOT,
                "--depth",
                "2",
                "--breadth",
                "8",
                "--out",
                str(tree),
                *model,
            ],
            env,
        )
    leaves = TopicTree.load(tree).leaves()
    edited = Path(__file__).resolve().parent.parent / "examples" / "returns_tree.yaml"
    runs = {"angles": ["qa", "--topic", ROOT, "-n", str(a.n), "--out", str(out / "angles")]}
    for name, path in (("model tree+persona", tree), ("edited tree+persona", edited)):
        runs[name] = [
            "qa", "--topics", str(path), "--sample", "persona=@personas", "-n", str(a.n),
            "--out", str(out / name.replace(" ", "-").replace("+", "-")),
        ]  # fmt: skip
    if a.max_similar is not None:  # the same, with dedup while generating
        runs["edited tree+persona+max-similar"] = [
            *runs["edited tree+persona"][:-1],
            str(out / "edited-tree-persona-max-similar"),
            "--max-similar", str(a.max_similar),
        ]  # fmt: skip
    for args in runs.values():  # fresh runs only: a resumed run would make no calls
        if Path(args[args.index("--out") + 1]).exists():
            raise SystemExit(f"{args[args.index('--out') + 1]} exists: use a new --out")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "n": a.n,
        "temperature": a.temperature,
        "model_tree": tree_source,
        "leaves": {"model tree": len(leaves), "edited tree": len(TopicTree.load(edited).leaves())},
        "runs": {},
    }
    sampling = ["--temperature", str(a.temperature)] if a.temperature is not None else []
    for name, args in runs.items():
        seconds[name] = synthloom([*args, *model, *sampling], env)
        run = Path(args[args.index("--out") + 1])
        summary = json.loads((run / "manifest.json").read_text())["summary"]
        results["runs"][name] = {
            **measure(questions(run)),
            "units_ok": summary["units_ok"],
            "units_failed": summary["units_failed"],
            "calls": summary["calls"],
            "cache_hits": summary["cache_hits"],
            "spread": summary["spread"],
        }
        results["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
        compare(results)
        print(name, json.dumps(results["runs"][name]), flush=True)
        if a.json:
            a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def compare(results: dict[str, Any]) -> None:
    """Each finished run against the angles: the ratios and whether the targets are met."""
    base = results["runs"]["angles"]
    for name in [n for n in results["runs"] if n != "angles"]:
        div = results["runs"][name]
        near = (
            round(div["near_duplicate_rate"] / base["near_duplicate_rate"], 3)
            if base["near_duplicate_rate"]
            else None
        )
        distinct = round(div["distinct_2"] / base["distinct_2"], 3)
        div["vs_angles"] = {
            "near_duplicate_ratio": near,
            "distinct_2_ratio": distinct,
            "near_duplicate_rate_at_most_half": near is not None and near <= 0.5,
            "distinct_2_at_least_1.3x": distinct >= 1.3,
        }


if __name__ == "__main__":
    main()
