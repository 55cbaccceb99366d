"""Time limits for calls in flight without a timer per call.

aiohttp's per-request timeout (like `asyncio.timeout`) schedules a timer for every request and
cancels it afterwards: at hundreds of requests a second that was ~40 us of a request's ~200 us
of client CPU (benchmarks/RESULTS.md, issue 12). `Deadlines` keeps the calls in flight in a
dict (task -> deadline) and one sweeper task looks at them every `tick` seconds; a call past
its deadline has its task cancelled, and `expired(task)` tells the call that the
CancelledError it sees is its time limit (it then raises its own timeout error).

A call may run up to one tick past its limit: the tick is a tenth of the limit, at most 1 s.
"""

from __future__ import annotations

import asyncio


class Deadlines:
    def __init__(self) -> None:
        self._calls: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._tick = 1.0

    def start(self, timeout: float) -> asyncio.Task[object]:
        """Bound the current task's call by `timeout` seconds from now; `finish` it after."""
        task = asyncio.current_task()
        assert task is not None, "Deadlines.start outside a task"
        loop = task.get_loop()
        self._calls[task] = loop.time() + timeout
        tick = min(1.0, max(0.01, timeout / 10))
        if self._sweeper is None:
            self._tick = tick
            self._sweeper = loop.create_task(self._sweep())
        elif tick < self._tick:
            self._tick = tick
        return task

    def finish(self, task: asyncio.Task[object]) -> None:
        self._calls.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """The task was cancelled for its deadline (then its cancellation is taken back:
        the caller turns it into a timeout)."""
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    async def _sweep(self) -> None:
        try:
            while self._calls:
                await asyncio.sleep(self._tick)
                now = asyncio.get_running_loop().time()
                for task, deadline in list(self._calls.items()):
                    if deadline <= now and task not in self._expired:
                        self._expired.add(task)
                        task.cancel()
        finally:
            self._sweeper = None

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
