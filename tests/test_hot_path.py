"""The per-record path made fast (issue 12, items 4 and 5) keeps what users rely on: the same
cache keys as before (old caches and run directories still resume), record lines that JSON
can always split on newlines, and a writer that never falls behind the answers unboundedly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from synthloom import templates
from synthloom.llm import cache as cache_module
from synthloom.llm import engine as engine_module
from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import Engine, canonical_json
from synthloom.llm.openai_http import OpenAIBackend
from synthloom.records import json_line
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.distill import DistillParams, DistillTask
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom


def _old_key(identity: list[str], body: dict, sample: int, attempt: int) -> str:
    """How cache keys were computed before the fast path (the oracle)."""
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = hashlib.sha256(json.dumps(identity).encode())
    h.update(blob.encode())
    h.update(f"|{sample}|{attempt}".encode())
    return h.hexdigest()


class Pair(BaseModel):
    question: str
    answer: str


def test_canonical_json_is_json_dumps_for_every_character() -> None:
    chars = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for start in range(0, len(chars), 4096):
        piece = chars[start : start + 4096]
        messages = [{"role": "user", "content": piece}, {"content": piece[::-1], "role": "x"}]
        expected = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(messages) == expected.encode()
    others = [384, -1, 0.7, 1e-05, 1e16, -0.0, 1.5e300, float("nan"), float("inf"), True, None]
    others += ["é\u2028", {"b": [1.5, "x"], "a": None}, [{1: "int key"}], ["a", "list"]]
    others += [[{"role": "user", "content": None}], [{"content": [{"type": "text", "n": 0.5}]}]]
    for value in others:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(value) == expected.encode(), value


def test_record_lines_are_the_bytes_json_dumps_wrote() -> None:
    # records.jsonl lines go through orjson where it writes json's bytes (issue 12); every
    # character, the floats the two spell differently, and values orjson cannot take
    def old(value: object) -> str:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))

    chars = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for start in range(0, len(chars), 4096):
        piece = chars[start : start + 4096]
        value = {"id": "r1", "data": {"q": piece, "a": [piece[:7], 3]}, "notes": {}}
        assert json_line(value) == old(value)
    floats = [0.0, -0.0, 0.7, 1e-4, 9.99e-5, 1e-05, 2.5e-9, 1e15, 9.9e15, 1e16, 1.5e300]
    floats += [float("nan"), float("inf"), -float("inf"), 1764600000.123456, 0.1 + 0.2]
    rng = random.Random(5)
    floats += [rng.random() * 10 ** rng.randint(-12, 20) for _ in range(20_000)]
    for f in floats:
        value = {"provenance": {"params": {"temperature": f}, "created_at": -f}, "x": (f, None)}
        assert json_line(value) == old(value), f
    others: list[object] = [
        {"a": "\ud800 lone \udfff surrogates"}, {"n": 2**70}, {1: "int key"}, {"t": (1, True)},
        {"nested": [[{"deep": [None, False, -(2**63)]}]]}, "", [], {"é": "key not ASCII"},
    ]  # fmt: skip
    for value in others:
        assert json_line(value) == old(value), value
    with pytest.raises(TypeError):  # what json cannot write, json_line does not write either
        json_line({"data": {"a set": {1, 2}}})


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "prompt", None])
def test_cache_keys_are_those_of_earlier_versions(tmp_path: Path, mode: str | None) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m", api_key_env=None)
    engine = Engine(backend, cache, seed=3)
    messages = [
        {"role": "system", "content": 'Be brief.\n"quoted" \\ back\tslash'},
        {"role": "user", "content": "Café ☕ — line\u2028sep \x00\x1f\x7f 日本語 🎉"},
    ]
    params = {"max_tokens": 384, "temperature": 0.7, "top_p": 1e-05}
    for attempt in range(3):  # the response format object is reused from the second call on
        body = engine._body(messages, params, 5, attempt, Pair if mode else None, mode)
        assert engine.key(body, 5, attempt) == _old_key(backend.cache_identity(), body, 5, attempt)
    cache.close()


def test_record_lines_stay_one_record_per_line_with_line_separators(
    tmp_path: Path, stub: StubServer
) -> None:
    text = "Réponse: first\u2028second\u2029third\x85fourth — 日本語 🎉"
    stub.configure(responder=lambda body: text)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}\u2028?"}) + "\n" for i in range(40)))
    settings = ModelSettings(backend="openai", base_url=stub.base_url, model="m", concurrency=8)
    task = DistillTask(DistillParams(input=prompts))
    summary = run_task(task, settings, tmp_path / "run", show_progress=False)
    assert summary.records_new == 40
    raw = (tmp_path / "run" / "records.jsonl").read_bytes()
    assert raw.isascii()  # every non-ASCII character escaped: no line can break inside a record
    lines = raw.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 41
    records = [json.loads(line) for line in lines[:-1]]
    assert {r["data"]["response"] for r in records} == {text}
    assert {r["data"]["prompt"] for r in records} == {f"q{i}\u2028?" for i in range(40)}


def test_a_set_in_the_system_block_stays_in_it() -> None:
    t = templates.from_source(
        "t",
        "{% block system %}{% set x = 'system' %}S {{ x }}{% endblock %}"
        "{% block user %}U {{ x }}{% endblock %}",
    )
    assert t.messages(x="given") == [
        {"role": "system", "content": "S system"},
        {"role": "user", "content": "U given"},
    ]


def test_answers_waiting_for_a_stuck_writer_are_bounded(
    tmp_path: Path, stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the cache's writer cannot commit, at most MAX_BACKLOG answers (plus the calls in
    flight) are taken; then calls wait, and all finish once the writer goes on."""
    limit, concurrency, calls = 100, 16, 400
    monkeypatch.setattr(cache_module, "MAX_BACKLOG", limit)
    monkeypatch.setattr(engine_module, "MAX_BACKLOG", limit)
    release = threading.Event()

    async def go() -> tuple[int, int]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        backend = OpenAIBackend(stub.base_url, "stub", api_key_env=None)
        await backend.start()
        engine = Engine(backend, cache, concurrency=concurrency)
        cache.submit(lambda: release.wait(30))  # the writer is stuck behind this
        done = 0

        async def one(i: int) -> None:
            nonlocal done
            await engine.complete([{"role": "user", "content": f"q{i}"}])
            done += 1

        tasks = [asyncio.ensure_future(one(i)) for i in range(calls)]
        for _ in range(100):  # until the calls stop being answered
            await asyncio.sleep(0.05)
            if stub.stats.completed >= limit and engine.stats.calls == stub.stats.completed:
                before = stub.stats.completed
                await asyncio.sleep(0.3)
                if stub.stats.completed == before:
                    break
        stalled = stub.stats.completed
        release.set()
        await asyncio.gather(*tasks)
        await backend.close()
        cache.close()
        return stalled, done

    stalled, done = asyncio.run(go())
    assert limit < stalled <= limit + 2 * concurrency
    assert done == calls and stub.stats.completed == calls


def test_process_start_is_before_the_imports() -> None:
    """A command's time counts from its process's start: a second spent before synthloom is
    even imported is in it."""
    code = (
        "import time; time.sleep(1.0); from synthloom.runner import process_started;"
        " print(time.monotonic() - process_started())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 1.0 <= float(done.stdout) < 60


def test_summary_time_covers_the_whole_command(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    start = time.monotonic()
    result = synthloom(
        "qa", "--topic", "returns", "-n", "50", "--backend", "openai", "--base-url",
        stub.base_url, "--model", "m", "--out", str(out),
    )  # fmt: skip
    wall = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    seconds = json.loads((out / "manifest.json").read_text())["summary"]["seconds"]
    # everything but printing the summary and the interpreter's exit
    assert 0.6 * wall <= seconds <= wall


def _qa(server: StubServer, out: Path, seed: int, cache: Path) -> subprocess.CompletedProcess[str]:
    return synthloom(
        "qa", "--topic", "returns", "-n", "20", "--seed", str(seed), "--concurrency", "8",
        "--backend", "openai", "--base-url", server.base_url, "--model", "m", "--out", str(out),
        env={"SYNTHLOOM_CACHE": str(cache)},
    )  # fmt: skip


def _formats(server: StubServer) -> list[str]:
    return [(b.get("response_format") or {}).get("type", "text") for b in server.bodies]


def test_a_later_run_uses_the_negotiated_mode_at_once(tmp_path: Path) -> None:
    """The structured-output mode negotiated with an endpoint is kept with the cache: a later
    run (other calls: another seed) starts every call in it, without a refused request or a
    first call alone."""
    cache = tmp_path / "cache.sqlite"
    with StubServer(reject_formats=("json_schema",), record=True) as server:
        first = _qa(server, tmp_path / "a", 1, cache)
        assert first.returncode == 0, first.stderr
        assert _formats(server).count("json_schema") == 1  # negotiated: refused once
        server.reset_stats()
        second = _qa(server, tmp_path / "b", 2, cache)
        assert second.returncode == 0, second.stderr
        assert _formats(server) == ["json_object"] * 20
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["summary"]["backends"]["default"]["structured_output"] == "json_object"


def test_a_remembered_mode_the_server_now_refuses_is_negotiated_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    with StubServer(reject_formats=("json_schema",), record=True) as server:
        assert _qa(server, tmp_path / "a", 1, cache).returncode == 0
        server.configure(reject_formats=("json_object",))  # the server was changed
        server.reset_stats()
        again = _qa(server, tmp_path / "b", 2, cache)
        assert again.returncode == 0, again.stderr
        formats = _formats(server)
    assert formats.count("json_object") <= 8 + 1  # at most the first wave, then negotiated
    assert formats.count("json_schema") == 20
    records = (tmp_path / "b" / "records.jsonl").read_text().splitlines()
    assert len(records) == 20


def test_cache_hits_and_misses_through_the_compact_key_index(tmp_path: Path) -> None:
    """The cache tells a miss without SQLite from an 8-bytes-a-key index of what it holds
    (stored before this process, and put by it): every stored key is still a hit."""
    from synthloom.llm.base import Completion

    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(70_000)]
    cache = ResponseCache(tmp_path / "c.sqlite")
    for i, key in enumerate(keys[:35_000]):
        cache.put(key, Completion(f"answer {i}", "stop", 1, 2, 3.0))
    assert all(cache.get(k) is not None for k in keys[:35_000:97])  # put by this process
    assert all(cache.get(k) is None for k in keys[35_000::97])
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    again.flush()  # the writer has loaded the index of stored keys
    assert again.get(keys[12_345]) == Completion("answer 12345", "stop", 1, 2, 3.0)
    assert all(again.get(k) is not None for k in keys[:35_000:89])
    assert all(again.get(k) is None for k in keys[35_000::89])
    again.close()


def test_the_limiter_hands_freed_slots_in_arrival_order() -> None:
    """FIFO: a call that waits for a slot gets the next one freed, never a newcomer that
    arrives after it (retries first, then new calls in arrival order)."""
    from synthloom.llm.limits import AdaptiveConcurrency

    async def go() -> list[str]:
        limiter = AdaptiveConcurrency(2)
        order: list[str] = []
        held: dict[str, asyncio.Event] = {}

        async def call(name: str, retry: bool = False) -> None:
            await limiter.acquire(retry=retry)
            order.append(name)
            held[name] = asyncio.Event()
            await held[name].wait()
            limiter.release(ok=True)

        first = [asyncio.ensure_future(call(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(call(f"w{i}")) for i in range(5)]
        await asyncio.sleep(0)
        retry = asyncio.ensure_future(call("retry", retry=True))
        await asyncio.sleep(0)
        late: list[asyncio.Future[None]] = []
        for name in ("a", "b", "retry", "w0", "w1", "w2", "w3", "w4"):
            while name not in held:
                await asyncio.sleep(0)
            held[name].set()  # frees a slot ...
            late.append(asyncio.ensure_future(call(f"new-after-{name}")))  # ... and one arrives
            await asyncio.sleep(0)
        for name in list(held):
            held[name].set()
        while len(order) < 2 + 5 + 1 + len(late):
            await asyncio.sleep(0)
            for name in list(held):
                held[name].set()
        await asyncio.gather(*first, *waiting, retry, *late)
        return order

    order = asyncio.run(go())
    assert order[:8] == ["a", "b", "retry", "w0", "w1", "w2", "w3", "w4"]
    assert order[8:] == [
        f"new-after-{n}" for n in ("a", "b", "retry", "w0", "w1", "w2", "w3", "w4")
    ]


def test_record_ids_are_those_of_earlier_versions() -> None:
    """Record ids from string parts (the fast path) are the sha256 of the same JSON as before,
    for every character, so old run directories still resume without duplicates."""
    from synthloom.records import stable_id

    def old(*parts: object) -> str:
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    chars = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for start in range(0, len(chars), 4096):
        piece = chars[start : start + 4096]
        assert stable_id("qa", piece, piece[::-1]) == old("qa", piece, piece[::-1])
    for parts in (
        ("qa", "topic:1", "ab" * 32),
        ("human", "f.jsonl", 3, {"b": 1.5}),
    ):
        assert stable_id(*parts) == old(*parts), parts


def test_qa_prompts_are_rendered_once_each_and_stay_the_same(tmp_path: Path) -> None:
    """qa renders its ten angle prompts once each (issue 12); what it sends is still the
    template rendered with each unit's own sample number, unit by unit (seed = unit)."""
    with StubServer(record=True) as server:
        done = synthloom(
            "qa", "--topic", "product returns", "-n", "25", "--seed", "3",
            "--backend", "openai", "--base-url", server.base_url, "--model", "m",
            "--out", str(tmp_path / "run"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        bodies = server.bodies
    template = templates.load("qa_topic")
    sent = {b["seed"]: b["messages"] for b in bodies}
    assert len(sent) == 25
    for unit in range(25):
        expected = template._render({"topic": "product returns", "sample": unit})
        assert sent[engine_module.call_seed(3, unit, 0)] == expected, unit


def test_runs_go_on_uvloop_unless_asked_for_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvloop is a dependency (issue 12: fewer instructions per request); a user who suspects
    # it can ask for asyncio's loop, and the run then really goes on asyncio's
    import uvloop

    from synthloom.runner import event_loop_factory

    factory = event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    monkeypatch.setenv("SYNTHLOOM_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None


def test_an_idle_writer_moves_committed_answers_into_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the WAL is checkpointed while the run waits, so closing the cache at the end of a run
    # (SQLite's checkpoint on close) has little left to copy (issue 12: ~20 -> ~5 ms a run);
    # the rows are in the main database file without anything closing it
    from synthloom.llm.base import Completion

    monkeypatch.setattr(cache_module, "CHECKPOINT_EVERY", 0.05)
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    created = Completion(text="x" * 600, finish_reason="stop", prompt_tokens=1,
                         completion_tokens=1, created=1.0)  # fmt: skip
    for i in range(2000):  # ~1.3 MB: under SQLite's own checkpoint at 1,000 pages (4 MB)
        cache.put(f"{i:064x}", created)
    cache.flush()
    deadline = time.monotonic() + 10
    while path.stat().st_size < 1_000_000 and time.monotonic() < deadline:
        cache.submit(lambda: None)  # wake the writer: it checkpoints when idle
        cache.flush()
        time.sleep(0.06)
    assert path.stat().st_size >= 1_000_000
    assert cache.get(f"{1999:064x}") == created
    cache.close()


def test_a_run_collects_garbage_less_often_and_puts_the_thresholds_back(
    tmp_path: Path, stub: StubServer
) -> None:
    # fewer young-generation collections while calls flow (issue 12: ~10% of a record's CPU);
    # a program that calls run_task keeps its own garbage-collector settings afterwards
    import gc

    during: list[tuple[int, int, int]] = []

    def answer(body: dict) -> str:
        during.append(gc.get_threshold())
        return "an answer"

    stub.configure(responder=answer)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(5)))
    settings = ModelSettings(backend="openai", base_url=stub.base_url, model="m")
    before = gc.get_threshold()
    gc.set_threshold(900, 11, 12)
    try:
        run_task(DistillTask(DistillParams(input=prompts)), settings, tmp_path / "run",
                 show_progress=False)  # fmt: skip
        assert gc.get_threshold() == (900, 11, 12)
    finally:
        gc.set_threshold(*before)
    assert during and all(t[0] >= 10_000 for t in during)


def test_answers_are_journaled_once_a_turn_and_before_their_records(tmp_path: Path) -> None:
    # the answers of one event-loop turn go to the journal in one write at the next turn (a
    # write each cost ~20 us of a record's ~100 us); a record is never on disk before the
    # answer it was made from (kill -9 safety: the records' flush writes the journal first)
    from synthloom.llm.base import Completion
    from synthloom.records import Record
    from synthloom.runs import RunDir

    def journaled() -> list[str]:
        return [
            json.loads(line)[0]
            for f in sorted((tmp_path / "c.sqlite.journal").glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ]

    answer = Completion(text="a", finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                        created=1.0)  # fmt: skip

    async def go() -> tuple[list[str], list[str], list[str]]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        run = RunDir(tmp_path / "run", "qa", {"config": {}})
        run.open(cache)
        for i in range(3):
            cache.put(f"{i:064x}", answer)
        same_turn = journaled()
        await asyncio.sleep(0)
        next_turn = journaled()
        cache.put(f"{3:064x}", answer)
        run.add(Record(id="r3", task="qa", data={"text": "from answer 3"}))
        run.flush()  # as its 50 ms timer would, in the turn the answer came
        with_record = journaled()
        run.close("complete", {})
        cache.close()
        return same_turn, next_turn, with_record

    same_turn, next_turn, with_record = asyncio.run(go())
    keys = [f"{i:064x}" for i in range(4)]
    assert same_turn == [] and next_turn == keys[:3] and with_record == keys
