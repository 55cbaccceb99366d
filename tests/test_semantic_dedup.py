"""Semantic dedup (dedup --semantic): texts whose embeddings point the same way are duplicates
by meaning, even with no words in common; embeddings come from an OpenAI-compatible
/embeddings endpoint (here a local one whose vectors count concepts, synonyms together)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from synthloom.quality.semantic import semantic_duplicates
from tests.conftest import synthloom

CONCEPTS = {
    "cat": 0, "kitten": 0, "feline": 0,
    "sleeps": 1, "naps": 1, "dozes": 1,
    "sofa": 2, "couch": 2,
    "train": 3, "railway": 3,
    "late": 4, "delayed": 4,
}  # fmt: skip


def embed(text: str) -> list[float]:
    vector = [0.0] * 6
    for word in text.lower().replace(".", "").split():
        vector[CONCEPTS.get(word, 5)] += 1.0 if word in CONCEPTS else 0.1
    return vector


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/embeddings" and body["model"] == "embedder"
        data = [{"index": i, "embedding": embed(t)} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_semantic_duplicates_keep_the_first_and_use_the_reference() -> None:
    vectors = np.array([embed(t) for t in ["cat sleeps", "kitten naps", "train late", "x y"]])
    found = semantic_duplicates(vectors, None, 0.95)
    assert found[0] is None and found[2] is None and found[3] is None
    assert found[1] is not None and found[1][:2] == (0, False)
    reference = np.array([embed("railway delayed")])
    found = semantic_duplicates(vectors, reference, 0.95)
    assert found[2] is not None and found[2][:2] == (0, True)


def test_dedup_semantic_step(tmp_path: Path, server: str) -> None:
    texts = [
        "The cat sleeps on the sofa.",
        "A kitten naps on the couch.",  # the same meaning, other words
        "The train is late.",  # both repeat the evaluation set's meaning
        "Railway delayed.",
    ]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "task": "t", "data": {"text": t}}) + "\n"
            for i, t in enumerate(texts)
        )
    )
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text(json.dumps({"text": "The railway is delayed."}) + "\n")
    out = tmp_path / "clean"
    result = synthloom(
        "dedup", str(source), "--semantic", "0.95", "--embed-model", "embedder",
        "--embed-base-url", server, "--reference", str(evalset), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kept = [json.loads(x)["id"] for x in (out / "records.jsonl").read_text().splitlines()]
    assert kept == ["r0"]
    removed = {
        r["id"]: r for r in map(json.loads, (out / "removed.jsonl").read_text().splitlines())
    }
    assert removed["r1"]["removed_by"] == "semantic_duplicate"
    assert removed["r1"]["duplicate_of"]["id"] == "r0"
    assert removed["r2"]["removed_by"] == removed["r3"]["removed_by"] == "reference_semantic"
    assert removed["r3"]["duplicate_of"]["reference"] == f"{evalset}:1"


def test_semantic_needs_a_model(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "task": "t", "data": {"text": "x"}}) + "\n")
    result = synthloom("dedup", str(source), "--semantic", "0.9", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "--semantic needs --embed-model" in result.stderr
