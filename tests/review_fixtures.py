"""Small runs to review (records, responses, a judge's rankings) and a running review app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthloom.review.server import ReviewServer, ServeParams, open_review
from synthloom.review.store import ReviewStore

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=\"document.title='pwned'\">"
ARTICLE = "The city council voted on Tuesday to extend the tram line to the airport. " * 4
RESPONSES = {  # technical, friendly, wrong, clear
    "A": "Quantum computers use qubits and unitary gates; Shor's algorithm factors integers.",
    "B": "Think of a coin spinning in the air: a qubit is heads and tails at once.",
    "C": f"Quantum computers are just cold normal computers. {XSS_IMG}",
    "D": f"Qubits hold superpositions; interference lets some problems run faster. {XSS_SCRIPT}",
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def summary_record(i: int, summary: str, **data: Any) -> dict[str, Any]:
    return {
        "id": f"rec{i:04d}",
        "task": "summarize",
        "origin": "synthetic",
        "status": "ok",
        "data": {
            "article_id": f"art{i // 2}",
            "title": "Tram line",
            "article": ARTICLE,
            "summary": summary,
            "response": summary,
            "group": f"art{i // 2}",
            "prompt": "Summarize the article.",
            "response_id": "AB"[i % 2],
            **data,
        },
        "notes": {},
        "provenance": {
            "backend": "openai",
            "model": "stub-model",
            "template": "summarize",
            "template_hash": "x",
            "params": {},
            "seed": 0,
        },
    }


def records_run(folder: Path, n: int = 4, *, xss: bool = True) -> Path:
    """A summarize-like run of `n` records; the 2nd and 3rd carry XSS payloads."""
    rows = []
    for i in range(n):
        text = f"Summary {i}: the council extends the tram line to the airport."
        if xss and i == 1:
            text = f"{XSS_SCRIPT} The council extends the tram."
        if xss and i == 2:
            text = f"{XSS_IMG} Trams to the airport."
        rows.append(summary_record(i, text))
    write_jsonl(folder / "records.jsonl", rows)
    return folder


def responses_run(folder: Path, prompts: int = 1) -> Path:
    """A `responses` run: each prompt with the four responses A-D."""
    rows = []
    for p in range(prompts):
        for rid, text in RESPONSES.items():
            rows.append(
                {
                    "id": f"resp{p}{rid}",
                    "task": "responses",
                    "origin": "synthetic",
                    "status": "ok",
                    "data": {
                        "prompt_id": f"p{p}",
                        "prompt": f"Explain quantum computing ({p}). {XSS_SCRIPT}",
                        "response_id": rid,
                        "response": text,
                    },
                    "notes": {},
                    "provenance": None,
                }
            )
    write_jsonl(folder / "records.jsonl", rows)
    return folder


def judge_rankings(path: Path, orders: dict[str, dict[str, float]]) -> Path:
    """A judge's rankings.jsonl: {prompt_id: {response_id: score}}."""
    rows = []
    for pid, scores in orders.items():
        tiers: dict[float, list[str]] = {}
        for rid, s in scores.items():
            tiers.setdefault(s, []).append(rid)
        order = " > ".join(" = ".join(tiers[s]) for s in sorted(tiers, reverse=True))
        rows.append(
            {
                "prompt_id": pid,
                "annotator": "judge:stub-model",
                "annotator_kind": "judge",
                "order": order,
                "scores": scores,
            }
        )
    return write_jsonl(path, rows)


@contextmanager
def review_server(source: Path, **params: Any) -> Iterator[tuple[ReviewServer, ReviewStore]]:
    """The review app over `source`, serving on 127.0.0.1 (a free port) in a thread."""
    p = ServeParams(input=source, port=params.pop("port", 0), **params)
    store, _ = open_review(p)
    server = ReviewServer(store, p).start()
    try:
        yield server, store
    finally:
        server.stop()
