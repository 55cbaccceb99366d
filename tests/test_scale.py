"""Runs over large inputs (issue 12, item 6): inputs are read as the units are made, the state
kept for resume is a few bytes a record, and rerunning a finished run redoes nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

from synthloom.idset import IdSet
from synthloom.runner import run_task
from synthloom.runs import RECORDS, UNITS_DONE, _load_ids_and_repair
from synthloom.settings import ModelSettings
from synthloom.tasks.distill import DistillParams, DistillTask
from synthloom.testing.stub_server import Faults, StubServer
from tests.conftest import synthloom


def _prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"prompt number {i}"}) + "\n" for i in range(n)))
    return path


def _settings(server: StubServer) -> ModelSettings:
    return ModelSettings(backend="openai", base_url=server.base_url, model="m", concurrency=32)


def _distill(tmp_path: Path, server: StubServer, prompts: Path, samples: int = 1):  # noqa: ANN202
    task = DistillTask(DistillParams(input=prompts, samples=samples))
    return run_task(task, _settings(server), tmp_path / "run", show_progress=False)


def test_a_bad_last_line_stops_before_any_call(tmp_path: Path, stub: StubServer) -> None:
    prompts = _prompts(tmp_path / "p.jsonl", 3000)
    with prompts.open("a") as f:
        f.write(json.dumps({"prompt": ["not", "text"]}) + "\n")
    result = synthloom(
        "distill", "--input", str(prompts), "--backend", "openai", "--base-url", stub.base_url,
        "--model", "m", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{prompts}:3001: column 'prompt' is not text" in result.stderr
    assert stub.stats.requests == 0


def test_rerun_of_a_finished_run_redoes_no_unit(tmp_path: Path, stub: StubServer) -> None:
    prompts = _prompts(tmp_path / "p.jsonl", 500)
    first = _distill(tmp_path, stub, prompts)
    assert first.records_new == 500 and stub.stats.requests == 500
    before = (tmp_path / "run" / RECORDS).read_bytes()
    again = _distill(tmp_path, stub, prompts)
    assert (again.records_new, again.records_present, again.units_ok) == (0, 500, 500)
    assert again.calls == again.cache_hits == 0  # not even a cache lookup: units skipped
    assert stub.stats.requests == 500
    assert (tmp_path / "run" / RECORDS).read_bytes() == before
    # raising --samples runs only the new units
    more = _distill(tmp_path, stub, prompts, samples=2)
    assert (more.records_new, more.records_present, more.calls) == (500, 500, 500)


def test_records_cut_from_the_file_are_made_again(tmp_path: Path, stub: StubServer) -> None:
    """units.done only counts units whose records are still in records.jsonl: a file cut
    short (or torn by a kill) has its missing records made again, from the cache."""
    prompts = _prompts(tmp_path / "p.jsonl", 200)
    _distill(tmp_path, stub, prompts)
    path = tmp_path / "run" / RECORDS
    full = path.read_bytes()
    lines = full.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-3]) + lines[-3][:40])  # 2 lines gone, 1 torn
    again = _distill(tmp_path, stub, prompts)
    assert again.records_new == 3 and again.records_present == 197
    # the units written in the same batch as the cut records are redone too, from the cache
    assert again.calls == again.cache_hits >= 3 and stub.stats.requests == 200
    assert sorted(path.read_bytes().splitlines()) == sorted(full.splitlines())


def test_failures_are_streamed_and_the_rerun_retries_them(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path / "p.jsonl", 300)
    with StubServer(faults=Faults(permanent=0.1, kinds=("500",))) as server:
        first = _distill(tmp_path, server, prompts)
        failed = [
            json.loads(x)
            for x in (tmp_path / "run" / "failures.jsonl").read_text().split("\n")
            if x
        ]
        assert first.units_failed == len(failed) > 0
        assert first.units_ok + first.units_failed == 300
        assert {f["cause"] for f in failed} == {"http_500"}
        assert first.failures == {"http_500": len(failed)}
        assert first.top_failure.startswith("http_500: ")
        server.configure(faults=None)
        again = _distill(tmp_path, server, prompts)
    assert again.records_new == len(failed) and again.units_failed == 0
    assert (tmp_path / "run" / "failures.jsonl").read_text() == ""
    assert not (tmp_path / "run" / ".failures.jsonl.partial").exists()


def test_id_set_answers_like_a_set() -> None:
    rng = random.Random(5)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(150_000)]
    odd = ["human-1", "ABCDEF0123456789", "0x12345678901234", "1234_67890123456"]
    kept = IdSet()
    for x in ids[:100_000] + odd:
        kept.add(x)
    assert len(kept) == 100_000 + len(odd)
    assert all(x in kept for x in ids[:100_000:7]) and all(x in kept for x in odd)
    assert not any(x in kept for x in ids[100_000:])
    assert "abcdef0123456789" not in kept  # the upper-case one is not the same id


def test_reading_ids_of_a_finished_run_parses_few_lines(tmp_path: Path, stub: StubServer) -> None:
    """Ids are read from the start of each line; lines written otherwise are still read."""
    prompts = _prompts(tmp_path / "p.jsonl", 50)
    _distill(tmp_path, stub, prompts)
    path = tmp_path / "run" / RECORDS
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    # another tool rewrote one line with spaces and other key order
    moved = dict(reversed(list(rows[10].items())))
    lines = path.read_text().splitlines()
    lines[10] = json.dumps(moved)
    path.write_text("\n".join(lines) + "\n")
    ids, size = _load_ids_and_repair(path)
    assert len(ids) == 50 and all(r["id"] in ids for r in rows)
    assert size == path.stat().st_size
    assert (tmp_path / "run" / UNITS_DONE).stat().st_size == 50 * 16
