"""Paths the CLI prints outside a table (an interrupted run's directory, a checked recipe) are
shown as text: rich markup in them is not applied and escape sequences are not obeyed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom

_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)
# a directory name a user (or a script) may make: markup, a screen clear, a title change
NAME = "run[red]x[bold] \x1b[2J\x1b]0;pwned\x07"
SHOWN = r"run[red]x[bold] \x1b[2J\x1b]0;pwned\x07"


def test_an_interrupted_run_names_its_directory_as_it_is(tmp_path: Path) -> None:
    out = tmp_path / NAME
    with StubServer(latency=0.05) as server:
        args = ["qa", "--topic", "returns", "-n", "200", "--backend", "openai"]
        args += ["--base-url", server.base_url, "--concurrency", "2", "--out", str(out)]
        proc = subprocess.Popen(
            # Ctrl-C as in a terminal: a pytest-xdist worker ignores SIGINT and a child
            # inherits that (Python then installs no KeyboardInterrupt handler), so the
            # command is started with SIGINT's default action restored before its exec
            [sys.executable, "-c", _WITH_DEFAULT_SIGINT, "-m", "synthloom", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "400"},
        )
        records = out / "records.jsonl"
        deadline = time.monotonic() + 60
        while not (records.exists() and records.read_bytes().count(b"\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    for bad in (b"\x1b", b"\x07"):
        assert bad not in err
    text = err.decode()
    assert "Interrupted." in text and f"records are safe in {tmp_path}/{SHOWN}." in text


def test_a_checked_recipe_is_named_as_it_is(tmp_path: Path) -> None:
    recipe = tmp_path / f"{NAME}.yaml"
    recipe.write_text(
        f"out: {tmp_path / 'out'}\nmodel: {{backend: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "steps:\n  - {name: q, task: qa, params: {topic: returns, n: 1}}\n"
    )
    result = synthloom("run", str(recipe), "--check")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert result.stdout.strip() == f"{tmp_path}/{SHOWN}.yaml: ok (1 steps)"
