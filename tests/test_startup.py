"""Start-up of a command (issue 12): what a common run imports before its first request is
part of every command's time, so what only an option needs is imported when it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from synthloom.testing.stub_server import StubServer

# imported by `qa --topic` only when an option asks for them
OPTIONAL = (
    "synthloom.diversity.tree",  # --topics
    "synthloom.diversity.examples",  # --examples
    "synthloom.sources",  # --from-docs, --examples, a --sample file of values
)


def _imported_by(*args: str) -> set[str]:
    """The modules loaded in a process that ran the command `synthloom ARGS` (in full: its
    run is made, written and summarised)."""
    code = (
        "import json, sys; from synthloom.cli import main; main(sys.argv[1:]);"
        " print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_a_topic_run_imports_no_option_it_was_not_given(tmp_path: Path, stub: StubServer) -> None:
    common = ("--backend", "openai", "--base-url", stub.base_url, "--model", "m")
    plain = _imported_by(
        "qa", "--topic", "returns", "-n", "2", *common, "--out", str(tmp_path / "a")
    )
    assert "synthloom.tasks.qa" in plain and not plain & set(OPTIONAL)
    assert (tmp_path / "a" / "records.jsonl").read_text().count("\n") == 2
    # the same run with the options: each module is there when its option is given
    tree = tmp_path / "tree.yaml"
    tree.write_text("root: shop\nsubtopics: [returns, refunds]\n", encoding="utf-8")
    examples = tmp_path / "examples.jsonl"
    examples.write_text(
        json.dumps({"question": "How do I return a lamp?", "answer": "Send it back in 30 days."})
        + "\n",
        encoding="utf-8",
    )
    given = _imported_by(
        "qa", "--topics", str(tree), "--examples", str(examples), "-n", "2", *common,
        "--out", str(tmp_path / "b"),
    )  # fmt: skip
    assert set(OPTIONAL) <= given


# The program (`python -m synthloom`) with a probe: the garbage collector's state when a
# task's run starts (synthloom.runner.run_task) and when the process leaves.
_PROBE = """
import atexit, gc, runpy, sys
import synthloom.runner as runner

def state(when):
    print(when, gc.isenabled(), gc.get_freeze_count() > 0, flush=True)

real = runner.run_task
def run_task(*args, **kwargs):
    state("run")
    return real(*args, **kwargs)

runner.run_task = run_task
atexit.register(state, "exit")
sys.argv = ["synthloom", *sys.argv[1:]]
runpy.run_module("synthloom", run_name="__main__", alter_sys=True)
"""


def _collector(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(("run ", "exit "))]


def test_the_collector_is_on_when_a_command_does_its_work(tmp_path: Path, stub: StubServer) -> None:
    """The program starts with the garbage collector paused (issue 12); every kind of command
    turns it on again before its work (a long run without it would keep all its cyclic
    garbage), with the start-up's objects frozen."""
    out = tmp_path / "run"
    qa = _collector(
        "qa", "--topic", "returns", "-n", "3", "--backend", "openai", "--base-url",
        stub.base_url, "--model", "m", "--out", str(out),
    )  # fmt: skip
    assert qa == ["run True True", "exit True True"]
    # a model-free step, and a command that is neither a task nor a step
    assert _collector("dedup", str(out), "--out", str(tmp_path / "d.jsonl")) == ["exit True True"]
    assert _collector("show", str(out), "-n", "1") == ["exit True True"]
