"""`synthloom serve` (issue 12): the embedded model behind llama.cpp's own OpenAI-compatible
HTTP server, used here as a real llama.cpp server by `qa`, `judge` and `augment` in every
structured-output mode (json_schema as auto negotiates it)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import synthloom

pytestmark = pytest.mark.embedded
SERVED = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """A `synthloom serve` subprocess on a free port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthloom", "serve", "--port", "0", "--slots", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    try:
        assert first and first[0].startswith("READY "), first
        yield first[0].split()[1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def test_serve_answers_openai_requests(served: str) -> None:
    with urllib.request.urlopen(f"{served}/models", timeout=30) as resp:
        models = json.load(resp)
    assert SERVED in [m["id"] for m in models["data"]]
    body = {
        "model": "anything",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "seed": 1,
    }
    request = urllib.request.Request(
        f"{served}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        answer = json.load(resp)
    assert answer["model"] == SERVED
    assert answer["choices"][0]["message"]["content"]


def test_serve_refuses_a_port_in_use(served: str) -> None:
    port = served.rsplit(":", 1)[1].split("/")[0]
    done = synthloom("serve", "--port", port, timeout=60)
    assert done.returncode == 2
    assert "port is in use" in done.stderr and "\n" not in done.stderr.strip()


def _inputs(tmp_path: Path) -> dict[str, list[str]]:
    responses = tmp_path / "responses.jsonl"
    rows = [
        {"prompt_id": "p", "prompt": "Why is the sky blue?", "response_id": rid, "response": text}
        for rid, text in (
            ("A", "Sunlight scatters off air molecules; blue light scatters the most."),
            ("B", "Because the sea reflects onto it."),
        )
    ]
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = tmp_path / "examples.csv"
    with examples.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(
            [("The parcel came a week late and broken.", "negative"), ("I love it.", "positive")]
        )
    return {
        "qa": ["qa", "--topic", "product returns", "-n", "2"],
        "judge": ["judge", "--input", str(responses), "--rationale-chars", "200"],
        "augment": ["augment", "--input", str(examples), "-n", "1", "--fidelity", "none"],
    }


def _failures(out: Path) -> list[dict[str, Any]]:
    path = out / "failures.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# auto tries json_schema first and llama.cpp takes it, so auto sends the requests that
# --structured-output json_schema would (asserted below): that mode is not run again here
# (a chosen mode is used without negotiating: tests/test_structured_modes.py)
@pytest.mark.parametrize("mode", ["auto", "json_object", "prompt"])
@pytest.mark.parametrize("command", ["qa", "judge", "augment"])
def test_commands_against_a_real_llama_cpp_server(
    served: str, tmp_path: Path, command: str, mode: str
) -> None:
    out = tmp_path / "run"
    extra = ["--max-tokens", "64"] if mode == "prompt" else []
    done = synthloom(
        *_inputs(tmp_path)[command],
        "--backend",
        "openai",
        "--base-url",
        served,
        "--structured-output",
        mode,
        "--seed",
        "1",
        "--out",
        str(out),
        *extra,
        env={"SYNTHLOOM_CACHE": str(tmp_path / "cache.sqlite")},
        timeout=900,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    used = manifest["summary"]["backends"]["default"]["structured_output"]
    assert used == ("json_schema" if mode == "auto" else mode)  # llama.cpp takes json_schema
    failures = _failures(out)
    if mode == "prompt":
        # Without constrained decoding a 135M model rarely writes the JSON asked for: each
        # unit is a record or an unusable answer, and the server took every request.
        assert done.returncode in (0, 1), done.stderr
        assert all(f["cause"] == "invalid_output" for f in failures), failures
        assert manifest["summary"]["requests"] == manifest["summary"]["calls"]
        return
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    made = [r for r in records if r["origin"] == "synthetic"]  # augment keeps the originals too
    assert made, failures
    for record in made:
        prov = record["provenance"]
        assert prov["backend"] == "openai"
        assert prov["model"] == SERVED and prov["model_requested"] == "default"
