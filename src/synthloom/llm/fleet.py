"""A fleet of interchangeable OpenAI-compatible endpoints behind one backend.

A model section may list several base URLs (`base_url: [http://a/v1, http://b/v1]`, or
`--base-url http://a/v1,http://b/v1`): listing them together declares that they serve the
same model, so they are one backend to the engine, with one cache identity (`["openai",
"fleet", model]`, whatever the URLs): adding or removing an endpoint keeps every cached
answer and resumes the same run directory. (A single `base_url` keeps its URL in the
identity, as before: two unrelated servers that name their models alike never share answers.)

Each call goes to the endpoint with the fewest requests outstanding (ties in turn). A
connection failure, a timeout or a 5xx answer counts against its endpoint and the call is
sent at once to another endpoint (a failover) when one is in service; after `trip_after`
such failures in a row the endpoint is taken out for `cooldown` seconds, then tried again
(a failure on its first call back takes it out for twice as long, up to `max_cooldown`; a
success puts it back for good). When every endpoint is out, the one due back first is tried,
so a fleet whose servers are all down fails its calls like a single endpoint (the engine's
retries and backoff apply). Other errors (4xx, a rejected key, a refused format) are the
request's or the configuration's, not the endpoint's health: they go to the engine as they
are.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from synthloom.errors import BackendFatal
from synthloom.llm.base import Backend, CallError, Completion
from synthloom.llm.openai_http import EndpointUnreachable, OpenAIBackend
from synthloom.settings import FLEET

TRIP_AFTER = 3  # failures in a row that take an endpoint out
COOLDOWN = 10.0  # seconds out, the first time
MAX_COOLDOWN = 120.0


@dataclass(eq=False)
class Endpoint:
    backend: OpenAIBackend
    cooldown: float
    outstanding: int = 0
    requests: int = 0  # requests sent to it
    failures: int = 0  # of those, failed on the endpoint (connection, timeout, 5xx)
    in_a_row: int = 0
    taken_out: int = 0  # times taken out of service
    out_until: float = 0.0  # time.monotonic() it is back in service
    last_error: str = field(default="")

    def in_service(self, now: float) -> bool:
        return self.out_until <= now


def endpoint_fault(err: CallError) -> bool:
    """The endpoint failed (not the request): no connection, no answer in time, or a 5xx."""
    return err.cause in ("connection", "timeout") or (err.status is not None and err.status >= 500)


class FleetBackend(Backend):
    kind = "openai"

    def __init__(
        self,
        base_urls: list[str],
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        api_key_required: bool = False,
        max_connections: int = 256,
        trip_after: int = TRIP_AFTER,
        cooldown: float = COOLDOWN,
        max_cooldown: float = MAX_COOLDOWN,
    ) -> None:
        self.endpoints = [
            Endpoint(
                OpenAIBackend(
                    url,
                    model,
                    api_key_env=api_key_env,
                    api_key_required=api_key_required,
                    max_connections=max_connections,
                ),
                cooldown,
            )
            for url in base_urls
        ]
        self.model = model
        self.base_url = ", ".join(e.backend.base_url for e in self.endpoints)  # for messages
        self.trip_after, self.base_cooldown, self.max_cooldown = trip_after, cooldown, max_cooldown
        self.failovers = 0  # calls sent on to another endpoint after a failure
        self._turn = 0

    def cache_identity(self) -> list[str]:
        return [self.kind, FLEET, self.model]

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            **super().describe(),
            "base_url": [e.backend.base_url for e in self.endpoints],
            "failovers": self.failovers,
            "endpoints": [
                {
                    "base_url": e.backend.base_url,
                    "requests": e.requests,
                    "failures": e.failures,
                    "taken_out": e.taken_out,
                    **({"last_error": e.last_error} if e.last_error else {}),
                }
                for e in self.endpoints
            ],
        }
        served = next(
            (e.backend.served_model for e in self.endpoints if e.backend.served_model), None
        )
        if served is not None:
            info["served_model"] = served
        return info

    async def start(self) -> None:
        for e in self.endpoints:
            await e.backend.start()

    async def close(self) -> None:
        for e in self.endpoints:
            await e.backend.close()

    async def preflight(self, timeout: float = 10.0) -> None:
        """Check every endpoint; one that cannot be reached is taken out (and tried again
        after its cool-down), as long as another one answers. A rejected key or a web page
        instead of an API is the configuration's fault: it stops the run as for one endpoint."""
        unreachable: list[EndpointUnreachable] = []

        async def check(e: Endpoint) -> None:
            try:
                await e.backend.preflight(timeout)
            except EndpointUnreachable as exc:
                unreachable.append(exc)
                e.last_error = "connection"
                self._take_out(e, time.monotonic())

        await asyncio.gather(*(check(e) for e in self.endpoints))
        if len(unreachable) == len(self.endpoints):
            raise BackendFatal(str(unreachable[0])) from None

    async def complete(self, body: dict[str, Any], timeout: float) -> Completion:
        tried: list[Endpoint] = []
        while True:
            e = self._pick(tried)
            tried.append(e)
            e.outstanding += 1
            e.requests += 1
            try:
                completion = await e.backend.complete(body, timeout)
            except CallError as err:
                if not endpoint_fault(err):
                    e.in_a_row = 0  # it answered: alive, whatever it said
                    raise
                self._failed(e, err)
                if self._next_in_service(tried) is None:
                    raise
                self.failovers += 1
                continue
            finally:
                e.outstanding -= 1
            e.in_a_row = 0
            e.cooldown = self.base_cooldown
            return completion

    # -- choosing -------------------------------------------------------------------------
    def _next_in_service(self, tried: list[Endpoint]) -> Endpoint | None:
        now = time.monotonic()
        return next((e for e in self.endpoints if e not in tried and e.in_service(now)), None)

    def _pick(self, tried: list[Endpoint]) -> Endpoint:
        """The endpoint in service with the fewest requests outstanding (ties in turn); when
        none is in service, the one due back first."""
        now = time.monotonic()
        n = len(self.endpoints)
        self._turn = (self._turn + 1) % n
        best: Endpoint | None = None
        best_rank: tuple[int, int] | None = None
        for i, e in enumerate(self.endpoints):
            if e in tried or not e.in_service(now):
                continue
            rank = (e.outstanding, (i - self._turn) % n)
            if best_rank is None or rank < best_rank:
                best, best_rank = e, rank
        if best is not None:
            return best
        left = [e for e in self.endpoints if e not in tried] or self.endpoints
        return min(left, key=lambda e: e.out_until)

    def _failed(self, e: Endpoint, err: CallError) -> None:
        e.failures += 1
        e.in_a_row += 1
        e.last_error = err.cause
        if e.in_a_row >= self.trip_after and e.in_service(time.monotonic()):
            self._take_out(e, time.monotonic())

    def _take_out(self, e: Endpoint, now: float) -> None:
        e.out_until = now + e.cooldown
        e.cooldown = min(e.cooldown * 2, self.max_cooldown)
        e.in_a_row = max(e.in_a_row, self.trip_after)  # its first failure back takes it out
        e.taken_out += 1


def fleet_line(info: dict[str, Any]) -> str | None:
    """One line for the run summary from a fleet's `describe()`: each endpoint's requests,
    failures and times taken out, and the failovers (None for a single endpoint)."""
    endpoints = info.get("endpoints")
    if not isinstance(endpoints, list):
        return None
    parts = []
    for e in endpoints:
        text = f"{e['base_url']}: {e['requests']} requests"
        if e.get("failures"):
            text += f", {e['failures']} failed"
        if e.get("taken_out"):
            text += f", taken out {e['taken_out']}x"
        parts.append(text)
    return "; ".join(parts) + f"; {info.get('failovers', 0)} failovers"
