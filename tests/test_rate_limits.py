"""Rate limits as providers state them (issue 12): Retry-After and x-ratelimit-* pause new calls
once for a burst of 429s, calls in flight finish, concurrency is not cut; the slot queue is
first come, first served, and its wait is bounded by the call timeout."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from synthloom.llm.cache import ResponseCache
from synthloom.llm.engine import Engine
from synthloom.llm.limits import AdaptiveConcurrency, SlotTimeout, parse_duration, rate_limit_pause
from synthloom.llm.openai_http import OpenAIBackend, _retry_after_seconds
from synthloom.testing.stub_server import Faults, StubServer


async def _run_calls(
    url: str, cache_file: Path, n: int, concurrency: int, tag: str
) -> tuple[Engine, float]:
    cache = ResponseCache(cache_file)
    backend = OpenAIBackend(url, "stub", api_key_env=None)
    await backend.start()
    engine = Engine(backend, cache, concurrency=concurrency, max_retries=20, backoff_base=0.01)
    start = time.monotonic()
    try:
        await asyncio.gather(
            *(engine.complete([{"role": "user", "content": f"{tag} {i}"}]) for i in range(n))
        )
    finally:
        await backend.close()
        cache.close()
    return engine, time.monotonic() - start


@pytest.mark.parametrize("headers", ["retry-after", "x-ratelimit"])
def test_a_burst_of_429s_pauses_new_calls_once_and_concurrency_stays(
    tmp_path: Path, headers: str
) -> None:
    """30% of answers are 429 "wait 0.5 s". Taken one after another the waits would add up to
    (number of 429s) x 0.5 s; shared, the run takes a small fraction of that."""
    wait = 0.5
    faults = Faults(
        rate=0.3, kinds=("429",), retry_after=wait, ratelimit_headers=headers == "x-ratelimit"
    )
    with StubServer(faults=faults, seed=3) as server:
        engine, elapsed = asyncio.run(
            _run_calls(server.base_url, tmp_path / "c.sqlite", 200, 32, headers)
        )
        stats = server.stats
    too_many = stats.faults["429"]
    assert too_many >= 30  # the scenario did happen
    assert stats.completed == 200 and engine.stats.failures == {}
    # one pause per burst, not one per 429
    assert engine.limiter.pauses <= too_many / 3
    assert elapsed < too_many * wait / 4
    # a stated wait is not an overload signal: the full concurrency is kept
    assert engine.limiter.cuts == 0 and engine.limiter.limit == 32


def test_calls_in_flight_finish_during_a_pause(tmp_path: Path) -> None:
    """One call gets "429, Retry-After: 1" at once; the calls already sent (0.3 s each) are
    answered during the pause, and no new call is sent before it ends."""
    sent: list[tuple[float, str]] = []

    def failer(body: dict) -> tuple[int, str, dict[str, str]] | None:
        text = body["messages"][-1]["content"]
        sent.append((time.monotonic(), text))
        if text == "call 0" and sum(1 for _, t in sent if t == "call 0") == 1:
            return 429, "Rate limit reached (stub)", {"Retry-After": "1"}
        return None

    async def go(url: str) -> tuple[Engine, float, list[float]]:
        cache = ResponseCache(tmp_path / "c.sqlite")
        backend = OpenAIBackend(url, "stub", api_key_env=None)
        await backend.start()
        engine = Engine(backend, cache, concurrency=4, backoff_base=0.01)
        done: list[float] = []

        async def one(i: int) -> None:
            await engine.complete([{"role": "user", "content": f"call {i}"}])
            done.append(time.monotonic())

        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(8)))
        await backend.close()
        cache.close()
        return engine, start, done

    with StubServer(latency=0.3, failer=failer) as server:
        engine, start, done = asyncio.run(go(server.base_url))
    first_wave = sorted(sent)[:4]
    later = sorted(sent)[4:]
    assert {t for _, t in first_wave} == {"call 0", "call 1", "call 2", "call 3"}
    assert len(later) == 5  # calls 4-7 and call 0 again
    # the three other first-wave calls were answered (at ~0.3 s) during the pause
    assert sum(1 for t in done if t - start < 0.9) == 3
    # nothing new went out during the pause (1 s from the 429, which came back at once)
    assert all(t - start >= 0.95 for t, _ in later)
    assert engine.limiter.pauses == 1 and engine.limiter.cuts == 0


def test_slots_are_first_come_first_served() -> None:
    """A call waiting for a slot gets it before a call that arrives later, even one that
    arrives at the very moment the slot is freed."""

    async def go() -> list[str]:
        lim = AdaptiveConcurrency(1)
        order: list[str] = []
        await lim.acquire()  # held by "first"

        async def call(name: str) -> None:
            await lim.acquire()
            order.append(name)
            await asyncio.sleep(0)
            lim.release(ok=True)

        waiters = [asyncio.create_task(call(f"waiter{i}")) for i in range(3)]
        await asyncio.sleep(0.01)  # all three are queued
        lim.release(ok=True)
        newcomer = asyncio.create_task(call("newcomer"))  # arrives as the slot frees
        await asyncio.gather(*waiters, newcomer)
        return order

    assert asyncio.run(go()) == ["waiter0", "waiter1", "waiter2", "newcomer"]


def test_the_wait_for_a_slot_is_bounded_but_a_stated_pause_does_not_count() -> None:
    async def go() -> tuple[bool, float]:
        lim = AdaptiveConcurrency(1)
        await lim.acquire()
        timed_out = False
        try:
            await lim.acquire(timeout=0.05)
        except SlotTimeout:
            timed_out = True
        lim.release(ok=True)
        assert lim.in_flight == 0  # the call that gave up holds no slot
        # A 0.3 s pause from the server, a 0.05 s bound: the call waits out the pause.
        lim.pause(0.3, sent_at=time.monotonic())
        start = time.monotonic()
        await lim.acquire(timeout=0.05)
        return timed_out, time.monotonic() - start

    timed_out, waited = asyncio.run(go())
    assert timed_out
    assert waited >= 0.29


def test_timed_out_wait_for_a_slot_is_retried_then_reported(tmp_path: Path) -> None:
    """--timeout bounds the wait for a slot like the call itself: a call stuck behind slow
    calls fails as a timeout (after its retries) instead of waiting for ever."""
    with StubServer(latency=1.0) as server:

        async def go() -> list[object]:
            cache = ResponseCache(tmp_path / "c.sqlite")
            backend = OpenAIBackend(server.base_url, "stub", api_key_env=None)
            await backend.start()
            engine = Engine(
                backend, cache, concurrency=1, timeout=1.5, max_retries=0, backoff_base=0.01
            )
            results = await asyncio.gather(
                *(engine.complete([{"role": "user", "content": f"q{i}"}]) for i in range(4)),
                return_exceptions=True,
            )
            await backend.close()
            cache.close()
            return results

        results = asyncio.run(go())
    causes = [getattr(r, "cause", "ok") for r in results]
    assert causes[:2] == ["ok", "ok"]  # the second got its slot after 1 s of the 1.5 allowed
    assert causes[2:] == ["timeout", "timeout"]  # would have waited 2 s and more


def test_pause_is_taken_once_per_burst() -> None:
    lim = AdaptiveConcurrency(8)
    before = time.monotonic()
    assert lim.pause(1.0, sent_at=before)
    first_deadline = lim.not_before
    # more 429s for requests sent before the pause was decided: same burst
    assert not lim.pause(1.0, sent_at=before)
    assert lim.not_before == first_deadline
    # ...unless one states a longer wait
    assert not lim.pause(5.0, sent_at=before)
    assert lim.not_before > first_deadline + 3
    # a request sent after the pause was decided starts a new one
    assert lim.pause(1.0, sent_at=time.monotonic())
    assert lim.pauses == 2


def test_stated_times_are_understood() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("soon") is None
    assert rate_limit_pause(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    ) == (1.0)
    assert (
        rate_limit_pause(
            {
                "x-ratelimit-remaining-requests": "12",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "6m0s",
            }
        )
        == 360.0
    )
    assert rate_limit_pause({"x-ratelimit-remaining-requests": "5"}) is None
    assert _retry_after_seconds("2") == 2.0
    in_ten = formatdate(time.time() + 10, usegmt=True)  # an HTTP date
    assert 8 <= (_retry_after_seconds(in_ten) or 0) <= 10


def test_a_sporadic_refusal_among_successes_delays_only_its_own_call() -> None:
    """After the first pause, a 429 pauses everyone only while refusals are at least half of
    the recent answers (the limit is reached); one 429 among successes does not."""
    lim = AdaptiveConcurrency(16)
    assert lim.pause(1.0, sent_at=time.monotonic())  # the first of the run: pause
    for _ in range(30):
        lim.in_flight += 1
        lim.release(ok=True)
    lim.refused()
    assert not lim.pause(1.0, sent_at=time.monotonic())
    for _ in range(30):
        lim.refused()
    assert lim.pause(1.0, sent_at=time.monotonic())  # now most answers are refusals
    # a used-up budget (x-ratelimit-remaining: 0 on an answer) always pauses
    for _ in range(64):
        lim.in_flight += 1
        lim.release(ok=True)
    assert lim.pause(0.5, sent_at=time.monotonic(), certain=True)
    assert lim.pauses == 3 and lim.cuts == 0
