"""Load: 20 annotators at once against one `synthloom review serve` (a separate process on
127.0.0.1), 1,000 records, each with a draft edit and then a decision. Afterwards every
decision is in the store exactly once, no record went to two people, and the export has them
all. The numbers (requests per second, latencies) are printed with `pytest -s`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median, quantiles

import httpx

from synthloom.review.items import default_store
from synthloom.review.store import ReviewStore
from tests.conftest import synthloom
from tests.review_fixtures import records_run

ANNOTATORS = 20
RECORDS = 1000
DEADLINE_S = 120  # the whole load is bounded; on this 2-core machine it takes a few seconds


def start_server(run: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthloom", "review", "serve", str(run), "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("review: http://"):
            url = line.split()[1]
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining
            return proc, url
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("the review server did not start")


def test_twenty_annotators_make_a_thousand_decisions(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run", RECORDS, xss=False)
    store = ReviewStore(default_store(run))
    tokens = {f"annotator{i:02d}": store.add_user(f"annotator{i:02d}") for i in range(ANNOTATORS)}
    proc, url = start_server(run)
    decided: dict[str, list[str]] = {name: [] for name in tokens}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + DEADLINE_S

    def annotate(name: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                item = c.get("/api/next").json()["item"]
                if item is None:
                    return
                iid = item["id"]
                n = int(iid[3:])
                edit = {"summary": f"Edited by {name}: summary {n}."}
                r1 = c.put(
                    f"/api/decisions/{iid}", json={"version": 0, "action": "draft", "edits": edit}
                )
                body = (
                    {"version": 1, "action": "reject", "reason": "too vague"}
                    if n % 7 == 0
                    else {"version": 1, "action": "approve", "edits": edit}
                )
                r2 = c.put(f"/api/decisions/{iid}", json=body)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if r1.status_code != 200 or r2.status_code != 200:
                        errors.append(f"{name} {iid}: {r1.status_code} {r2.status_code} {r2.text}")
                    else:
                        decided[name].append(iid)

    threads = [threading.Thread(target=annotate, args=item) for item in tokens.items()]
    started = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=DEADLINE_S + 10)
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert errors == []
    everyone = [iid for ids in decided.values() for iid in ids]
    assert len(everyone) == RECORDS and len(set(everyone)) == RECORDS  # nobody shared a record
    assert all(decided.values())  # every annotator got work

    # the store: each decision exactly once, no refused write, nothing held
    counts = store.counts()
    assert counts["decisions"] == RECORDS and counts["conflicts"] == 0
    assert counts["history"] == 2 * RECORDS  # one draft and one decision per record
    finals = [d for d in store.decisions() if d.state == "done"]
    assert len(finals) == RECORDS and len({d.item_id for d in finals}) == RECORDS
    for d in finals:
        assert d.item_id in decided[d.annotator] and d.version == 2

    # the export has every approved record, with its edit, and counts the rejected ones
    out = tmp_path / "reviewed"
    result = synthloom("review", "export", str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rejected = sum(1 for i in range(RECORDS) if i % 7 == 0)
    exported = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(exported) == RECORDS - rejected
    assert len({r["id"] for r in exported}) == len(exported)
    for r in exported:
        who = r["notes"]["review"]["decisions"][0]["annotator"]
        assert r["data"]["summary"] == f"Edited by {who}: summary {int(r['id'][3:])}."
    assert f"rejected: {rejected}" in result.stderr

    requests = 3 * RECORDS + ANNOTATORS  # next + draft + decision each, one last empty next
    p50, p95 = median(latencies), quantiles(latencies, n=20)[-1]
    report = (
        f"review load: {ANNOTATORS} annotators, {RECORDS} decisions (+{RECORDS} drafts) in"
        f" {wall:.1f} s: {RECORDS / wall:.0f} decisions/s, {requests / wall:.0f} requests/s;"
        f" per record (next + draft + decision): median {p50 * 1000:.0f} ms,"
        f" p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    print(report)
    (tmp_path / "load.txt").write_text(report)
    assert wall < DEADLINE_S
