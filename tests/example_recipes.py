"""The example recipes (recipes/*.yaml) run on the embedded model, each once per test session.

tests/test_recipes.py runs every example end to end through `synthloom run`; the embedded
tests of a task whose example already makes the same kind of run (self-instruct, evol,
augment) check that run instead of making their own. Examples are made smaller with
`synthloom run --set` where their full size only repeats the same kind of call (quality: ~300
calls, 5 minutes on 2 cores); tests/test_recipes.py checks each at its shipped size too.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))

# recipe -> its `--set` options; `{step:N}` is that step's CSV input cut to its first N rows
# of each label
SMALL: dict[str, list[str]] = {
    "audience": ["steps.explain.params.topics=[photosynthesis]"],  # both audiences
    "augment": ["steps.augment.params.input={augment:2}"],
    "classify": ["steps.labels.params.input={labels:3}"],
    "diverse-qa": ["steps.qa.params.n=4"],  # spread over the model's tree (9 leaves)
    "evol": ["steps.evolve.params.rounds=1"],
    "mix": ["steps.topic.params.n=2"],
    "qa": ["steps.topic.params.n=2"],
    "quality": ["steps.rewrites.params.input={rewrites:3}"],
}


def small_input(recipe: Path, step: str, per_label: int, directory: Path) -> Path:
    """The CSV input of `step` cut to its first `per_label` rows of each label."""
    steps = yaml.safe_load(recipe.read_text())["steps"]
    source = REPO / next(s for s in steps if s["name"] == step)["params"]["input"]
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    taken: Counter[str] = Counter()
    kept = []
    for row in rows:
        if taken[row["label"]] < per_label:
            taken[row["label"]] += 1
            kept.append(row)
    path = directory / f"{step}-{per_label}-per-label.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return path


def small_args(recipe: Path, directory: Path) -> list[str]:
    """The `--set` options that make the example smaller (SMALL)."""
    args = []
    for item in SMALL.get(recipe.stem, []):
        key, _, value = item.partition("=")
        if m := re.fullmatch(r"\{(.+):(\d+)\}", value):
            value = str(small_input(recipe, m.group(1), int(m.group(2)), directory))
        args += ["--set", f"{key}={value}"]
    return args


Run = tuple[Path, subprocess.CompletedProcess[str], dict[str, str]]
ExampleRun = Callable[[str], Run]


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """`example_run("qa")` runs recipes/qa.yaml (made SMALL) on the embedded model the first
    time it is asked for in this test session: its `--out` directory, the finished command,
    and the environment naming the run's own response cache (to run it again). Under
    pytest-xdist the workers of one session share each run: the first to ask makes it (under
    a file lock), the others read what it left."""
    from tests.conftest import synthloom as cli  # conftest imports this module

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this session's directory, above each worker's own
    root = root / "example-runs"
    root.mkdir(exist_ok=True)

    def run(name: str) -> Run:
        base = root / name
        env = {"SYNTHLOOM_CACHE": str(base / "cache.sqlite")}
        with (root / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be making this run
            finished = base / "finished.json"
            if not finished.exists():
                recipe = REPO / "recipes" / f"{name}.yaml"
                base.mkdir(exist_ok=True)
                args = ["run", str(recipe.relative_to(REPO)), "--out", str(base / "out")]
                done = cli(*args, *small_args(recipe, base), cwd=REPO, env=env, timeout=850)
                kept = {k: getattr(done, k) for k in ("args", "returncode", "stdout", "stderr")}
                finished.write_text(json.dumps(kept))
        result = subprocess.CompletedProcess(**json.loads(finished.read_text()))
        return base / "out", result, env

    return run
