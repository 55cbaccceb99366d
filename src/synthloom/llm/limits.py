"""Concurrency and rate limits for the request engine.

`AdaptiveConcurrency` bounds the calls in flight. It is FIFO-fair: a call that waits for a
slot is handed the next free one, so a newcomer never overtakes it (and a call coming back for
a retry is served before calls that have not been sent yet). It adapts in two ways:

- AIMD on overload without a stated time (429/503 without `Retry-After`): the limit halves (at
  most once per second) and grows back by about one slot per round trip while calls succeed.
- A server-stated wait (`Retry-After`, or `x-ratelimit-remaining-*: 0` with its
  `x-ratelimit-reset-*`): no new call starts before the stated time. The pause is shared and
  taken once for a burst: answers to requests sent before the pause was decided (the rest of
  the burst) do not extend it, unless they state a later time. Calls in flight continue; the
  limit is not cut, so the full concurrency is back as soon as the pause ends.
  A 429 is a sign the limit is reached when it comes with a used-up budget header, or is the
  first of the run, or half of the recent answers are refusals; a sporadic 429 among
  successes (an overloaded shared server) makes only its own call wait the stated time, so
  the rest of the run is not stopped once a second for it.

`RateLimits` adds optional requests-per-minute and tokens-per-minute buckets that refill
continuously (no minute-boundary bursts).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from aiolimiter import AsyncLimiter


class SlotTimeout(Exception):
    """No slot became free within the allowed wait."""


@dataclass(eq=False)
class _Waiter:
    fut: asyncio.Future[None]
    started: float
    timeout: float | None
    timer: asyncio.TimerHandle | None = None


class AdaptiveConcurrency:
    def __init__(self, maximum: int, minimum: int = 1, cut_cooldown: float = 1.0) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.not_before = 0.0  # time.monotonic(): no new call starts before this
        self.cuts = 0  # AIMD halvings
        self.pauses = 0  # distinct server-stated pauses taken
        self._cut_cooldown = cut_cooldown
        self._last_cut = -1e9
        self._pause_decided = -1e9  # when the current/last pause was decided
        self._pause_length = 0.0
        # recent answers, True = refused for the rate (429/503): is the limit reached?
        self._recent: deque[bool] = deque(maxlen=max(8, min(64, self.maximum)))
        self._retries: deque[_Waiter] = deque()  # served first
        self._waiters: deque[_Waiter] = deque()
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = 0.0

    @property
    def paused_until(self) -> float:
        return self.not_before

    def _free(self, now: float) -> bool:
        return self.in_flight < int(self.limit) and now >= self.not_before

    async def acquire(self, timeout: float | None = None, *, retry: bool = False) -> None:
        """Wait for a slot, in arrival order (`retry`: ahead of calls not sent yet). With
        `timeout`, raise SlotTimeout after waiting that long; time spent in a server-stated
        pause does not count."""
        now = time.monotonic()
        if not self._retries and not self._waiters and self._free(now):
            self.in_flight += 1
            return
        loop = asyncio.get_running_loop()
        w = _Waiter(loop.create_future(), now, timeout)
        (self._retries if retry else self._waiters).append(w)
        if timeout is not None:
            w.timer = loop.call_later(timeout, self._expire, w)
        self._arm_wake(now)
        try:
            await w.fut
        except BaseException:
            if w.timer is not None:
                w.timer.cancel()
            if w.fut.done() and not w.fut.cancelled() and w.fut.exception() is None:
                self.in_flight -= 1  # handed a slot, but the caller is gone: pass it on
                self._dispatch()
            elif not w.fut.done():
                w.fut.cancel()
            raise

    def refused(self) -> None:
        """A call was refused for the rate or load (429/503); counted before `pause`."""
        self._recent.append(True)

    def release(self, *, ok: bool, overload: bool = False) -> None:
        """A call is over. `ok`: it was answered; `overload`: refused without a stated time
        (lower the limit)."""
        self.in_flight -= 1
        if ok:
            self._recent.append(False)
        if overload:
            now = time.monotonic()
            if now - self._last_cut >= self._cut_cooldown:
                self.limit = max(float(self.minimum), self.limit / 2)
                self._last_cut = now
                self.cuts += 1
        elif ok and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
        self._dispatch()

    def pause(self, seconds: float, sent_at: float, *, certain: bool = False) -> bool:
        """The server asked for no new requests for `seconds` (from now), answering a request
        sent at `sent_at` (time.monotonic()). Returns True if that started a pause.

        A request sent before the current pause was decided belongs to the burst that pause
        answers: it extends the pause only if it states a longer one. A new pause starts when
        the limit looks reached: `certain` (a used-up budget header), the first stated wait
        of the run, or half of the recent answers refused."""
        if seconds <= 0:
            return False
        now = time.monotonic()
        if sent_at < self._pause_decided:
            if seconds > self._pause_length:
                self.not_before = max(self.not_before, self._pause_decided + seconds)
                self._pause_length = seconds
            return False
        if not certain and self.pauses and not self._limit_reached():
            return False
        self._pause_decided = now
        self._pause_length = seconds
        self.not_before = max(self.not_before, now + seconds)
        self.pauses += 1
        return True

    # -- internals ----------------------------------------------------------------------
    def _limit_reached(self) -> bool:
        recent = self._recent
        if len(recent) < 8:  # too few answers to tell a sporadic refusal: assume the limit
            return True
        return 2 * sum(recent) >= len(recent)

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self._free(now):
            queue = self._retries or self._waiters
            if not queue:
                break
            w = queue.popleft()
            if w.fut.done():
                continue
            if w.timer is not None:
                w.timer.cancel()
            self.in_flight += 1
            w.fut.set_result(None)
        if self._retries or self._waiters:
            self._arm_wake(now)

    def _arm_wake(self, now: float) -> None:
        """While paused, make sure the waiters are woken when the pause ends."""
        if now >= self.not_before:
            return
        if self._wake is not None and self._wake_at == self.not_before:
            return
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = self.not_before
        self._wake = asyncio.get_running_loop().call_later(self.not_before - now, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._dispatch()

    def _expire(self, w: _Waiter) -> None:
        w.timer = None
        if w.fut.done():
            return
        now = time.monotonic()
        assert w.timeout is not None
        # a pause that overlapped the wait does not count: the wait restarts when it ends
        resume = max(self.not_before, self._pause_decided + self._pause_length)
        if resume > w.started and resume + w.timeout > now:
            w.timer = asyncio.get_running_loop().call_later(
                resume + w.timeout - now, self._expire, w
            )
            return
        w.fut.set_exception(SlotTimeout())


class RateLimits:
    """Optional requests-per-minute and tokens-per-minute limits (None = unlimited)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        # one request every 60/rpm seconds: smooth, no burst at the start of a minute
        self._rpm = AsyncLimiter(1, 60.0 / rpm) if rpm else None
        # tokens refill continuously; a bucket holds 10 seconds' worth
        self._tpm_capacity = tpm / 6 if tpm else 0.0
        self._tpm = AsyncLimiter(self._tpm_capacity, 10.0) if tpm else None
        self.active = bool(rpm or tpm)

    async def acquire(self, estimated_tokens: int) -> None:
        if self._rpm is not None:
            await self._rpm.acquire()
        if self._tpm is not None:
            await self._tpm.acquire(min(float(estimated_tokens), self._tpm_capacity))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a rate-limit reset header: "1s", "6m0s", "20ms", "1h2m3.5s" or "0.5"."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def rate_limit_pause(headers: Mapping[str, str]) -> float | None:
    """How long to hold new calls according to `x-ratelimit-remaining-{requests,tokens}` and
    `x-ratelimit-reset-{requests,tokens}` (OpenAI and compatible providers): the reset time of
    each budget that is used up, or None when there is budget left (or no such headers)."""
    waits = []
    for budget in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{budget}")
        if remaining is None:
            continue
        try:
            exhausted = float(remaining) <= 0
        except ValueError:
            continue
        if exhausted:
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{budget}"))
            if reset:
                waits.append(reset)
    return max(waits) if waits else None
