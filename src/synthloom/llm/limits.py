"""Adaptive concurrency and rate limits for the request engine.

`AdaptiveConcurrency` is AIMD: it starts at the configured maximum, halves (at most once per
second) when the server says it is overloaded (429/503), pauses every new request until a
`Retry-After` has passed, and grows back by about one slot per round trip while calls succeed.
`RateLimits` adds optional requests-per-minute and tokens-per-minute buckets that refill
continuously (no minute-boundary bursts).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from aiolimiter import AsyncLimiter


class AdaptiveConcurrency:
    def __init__(self, maximum: int, minimum: int = 1, cut_cooldown: float = 1.0) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.paused_until = 0.0
        self.cuts = 0
        self._cut_cooldown = cut_cooldown
        self._last_cut = -1e9
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters and self.paused_until == 0.0:
            self.in_flight += 1
            return
        loop = asyncio.get_running_loop()
        while True:
            wait = self.paused_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self.paused_until = 0.0
            if self.in_flight < int(self.limit):
                self.in_flight += 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                raise

    def release(
        self, *, ok: bool, overload: bool = False, retry_after: float | None = None
    ) -> None:
        self.in_flight -= 1
        if overload:
            now = time.monotonic()
            if now - self._last_cut >= self._cut_cooldown:
                self.limit = max(float(self.minimum), self.limit / 2)
                self._last_cut = now
                self.cuts += 1
            if retry_after:
                self.paused_until = max(self.paused_until, now + retry_after)
        elif ok and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1


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
