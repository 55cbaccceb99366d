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
