"""The request engine: the one place that owns concurrency, retries, rate limits,
structured output and the response cache, for every task and backend.

A call is identified by a key: a hash of the backend kind, model, messages, sampling
parameters, seed, sample index and parse attempt. The key is both the cache key and the
resume key, so a rerun never pays twice for the same call.

Retries live here (not in a retry library) because they share state with the adaptive
concurrency controller: one 429 with `Retry-After` pauses every caller, not only the one
that received it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from synthloom.errors import BackendFatal
from synthloom.llm import structured
from synthloom.llm.base import Backend, CallError, Completion
from synthloom.llm.cache import MAX_BACKLOG, ResponseCache
from synthloom.llm.limits import AdaptiveConcurrency, RateLimits, SlotTimeout
from synthloom.validation import one_line

T = TypeVar("T")


class CallFailed(Exception):
    """A call that could not produce a usable answer after all retries."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


@dataclass
class CallResult(Generic[T]):
    value: T
    completion: Completion
    key: str
    cached: bool
    keys: tuple[str, ...]  # every call key paid for this answer (parse retries included)


@dataclass
class EngineStats:
    calls: int = 0  # distinct calls answered (cache or network)
    requests: int = 0  # HTTP/model requests actually sent, retries included
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_outputs: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # calls given up, by cause
    errors: Counter[str] = field(default_factory=Counter)  # failed attempts, by cause


@dataclass(frozen=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def merged(self, **task_defaults: Any) -> dict[str, Any]:
        """The task's sampling defaults, overridden by what the user set."""
        values = {k: v for k, v in task_defaults.items() if v is not None}
        for k, v in (
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("max_tokens", self.max_tokens),
        ):
            if v is not None:
                values[k] = v
        return values


def call_seed(seed: int | None, sample: int, attempt: int) -> int | None:
    if seed is None:
        return None
    return (seed * 1_000_003 + sample * 7_919 + attempt * 104_729) % 2_147_483_647


class _Refused(Exception):
    """While negotiating the structured-output mode: the server will not take this format."""

    def __init__(self, error: CallError) -> None:
        super().__init__(str(error))
        self.error = error


class _Renegotiate(Exception):
    """The server refused the structured-output mode remembered from an earlier run."""


class Engine:
    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache,
        *,
        concurrency: int = 16,
        seed: int | None = 0,
        sampling: Sampling | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        max_retries: int = 6,
        timeout: float = 120.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        structured_output: str = "auto",
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.seed = seed
        self.sampling = sampling or Sampling()
        self.limiter = AdaptiveConcurrency(concurrency)
        self._answered_slot = functools.partial(self.limiter.release, ok=True)
        self.rates = RateLimits(rpm, tpm)
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stats = EngineStats()
        self._identity = json.dumps(backend.cache_identity()).encode()
        # a mode negotiated by an earlier run with this endpoint, trusted until it is refused
        self._remembered = False
        if structured_output != "auto":
            if structured_output not in structured.MODES:
                raise ValueError(f"unknown structured output mode {structured_output!r}")
            backend.structured_mode = structured_output
        elif backend.structured_mode is None:
            known = cache.structured_mode(self._identity.decode())
            if known in structured.MODES:
                backend.structured_mode = known
                self._remembered = True
        self._inflight: dict[str, asyncio.Future[tuple[Completion, bool]]] = {}
        self._rng = random.Random()
        self._fatal: str | None = None  # set once every further call is known to fail
        self._answered = False  # a call has been answered (network or cache)
        self._server_messages: Counter[tuple[int, str]] = Counter()  # 5xx validation texts
        self._negotiation = asyncio.Lock()
        # response_format per (schema, mode), built once; its canonical JSON for cache keys by
        # the id() of the format (kept alive in _formats: an id is never reused)
        self._formats: dict[tuple[type[BaseModel], str], dict[str, Any] | None] = {}
        self._encoded_formats: dict[int, bytes] = {}

    # -- public -------------------------------------------------------------------------
    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: type[BaseModel] | None = None,
        validate: Callable[[Any], Any] | None = None,
        sample: int = 0,
        parse_attempts: int = 3,
        accept_truncated: bool = False,
        **sampling: Any,
    ) -> CallResult[Any]:
        """Ask the model; return the parsed answer (a `schema` instance, or text).

        An answer that does not parse, or that `validate` rejects (by raising ValueError),
        is counted and asked again with a new seed, up to `parse_attempts` times; then
        CallFailed("invalid_output") is raised. Transport failures are retried inside.
        A text answer cut off by max_tokens counts as invalid unless `accept_truncated`
        (then the caller sees `completion.finish_reason == "length"` and decides).
        With a `schema`, the structured-output mode is the backend's (negotiated on the
        first call when it is not known); the answer is validated by `schema` in every mode.
        """
        params = self.sampling.merged(**sampling)
        keys: list[str] = []
        last_error = ""
        for attempt in range(parse_attempts):
            if schema is None:
                body = self._body(messages, params, sample, attempt)
                key = self.key(body, sample, attempt)
                completion, cached = await self._fetch(key, body)
            else:
                key, completion, cached = await self._structured(
                    messages, params, schema, sample, attempt
                )
            keys.append(key)
            try:
                value: Any = _parse(completion, schema, accept_truncated)
                if validate is not None:
                    checked = validate(value)
                    if checked is not None:
                        value = checked
            except (ValueError, ValidationError) as exc:
                self.stats.invalid_outputs += 1
                last_error = _short(exc)
                continue
            return CallResult(value, completion, key, cached, tuple(keys))
        self.stats.failures["invalid_output"] += 1
        raise CallFailed("invalid_output", last_error)

    def key(self, body: dict[str, Any], sample: int, attempt: int) -> str:
        """sha256 of the backend identity, the body as canonical JSON (sorted keys, no spaces,
        UTF-8: `json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`,
        byte for byte), sample and attempt."""
        h = hashlib.sha256(self._identity)
        h.update(self._canonical(body))
        h.update(f"|{sample}|{attempt}".encode())
        return h.hexdigest()

    def _canonical(self, body: dict[str, Any]) -> bytes:
        """`body` as canonical JSON (see `key`), the parts that repeat from call to call (the
        response format with its schema) encoded once."""
        parts = []
        for name in sorted(body):
            value = body[name]
            if name == "response_format":
                encoded = self._encoded_formats.get(id(value)) or canonical_json(value)
            else:
                encoded = canonical_json(value)
            prefix = _NAME_PREFIXES.get(name)
            if prefix is None:
                prefix = _NAME_PREFIXES[name] = orjson.dumps(name) + b":"
            parts.append(prefix + encoded)
        return b"{" + b",".join(parts) + b"}"

    def provenance_params(self, **sampling: Any) -> dict[str, Any]:
        return self.sampling.merged(**sampling)

    # -- internals ----------------------------------------------------------------------
    def _body(
        self,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        sample: int,
        attempt: int,
        schema: type[BaseModel] | None = None,
        mode: str | None = None,
    ) -> dict[str, Any]:
        if schema is not None and mode == "prompt":
            messages = structured.prompt_messages(messages, schema)
        body: dict[str, Any] = {"messages": messages, **params}
        seed = call_seed(self.seed, sample, attempt)
        if seed is not None:
            body["seed"] = seed
        if schema is not None and mode is not None:
            fmt = self._response_format(schema, mode)
            if fmt is not None:
                body["response_format"] = fmt
        return body

    def _response_format(self, schema: type[BaseModel], mode: str) -> dict[str, Any] | None:
        """The request's response_format, built (and encoded for keys) once per schema and
        mode. It is shared by every body: nothing may modify it."""
        if (schema, mode) not in self._formats:
            fmt = self._formats[(schema, mode)] = structured.response_format(schema, mode)
            if fmt is not None:
                self._encoded_formats[id(fmt)] = canonical_json(fmt)
        return self._formats[(schema, mode)]

    async def _structured(
        self,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        schema: type[BaseModel],
        sample: int,
        attempt: int,
    ) -> tuple[str, Completion, bool]:
        mode = self.backend.structured_mode
        if mode is None:
            async with self._negotiation:  # one call negotiates; the others wait for it
                if self._fatal is not None:
                    raise BackendFatal(self._fatal)
                mode = self.backend.structured_mode
                if mode is None:
                    return await self._negotiate(messages, params, schema, sample, attempt)
        body = self._body(messages, params, sample, attempt, schema, mode)
        key = self.key(body, sample, attempt)
        try:
            completion, cached = await self._fetch(key, body, remembered=self._remembered)
        except _Renegotiate:
            # The endpoint no longer takes the mode an earlier run negotiated: negotiate again
            # (the first refusal forgets it; every call refused meanwhile comes back here).
            if self.backend.structured_mode == mode and self._remembered:
                self.backend.structured_mode = None
                self._remembered = False
                self.cache.set_structured_mode(self._identity.decode(), None)
            return await self._structured(messages, params, schema, sample, attempt)
        return key, completion, cached

    async def _negotiate(
        self,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        schema: type[BaseModel],
        sample: int,
        attempt: int,
    ) -> tuple[str, Completion, bool]:
        """Try json_schema, then json_object + schema, then instructions in the prompt; the
        first mode the server accepts is kept for the run (a cached answer counts: the cache
        is per endpoint). The call's answer is the one the accepted mode produced."""
        refusals: list[tuple[str, CallError]] = []
        for mode in structured.MODES:
            body = self._body(messages, params, sample, attempt, schema, mode)
            key = self.key(body, sample, attempt)
            try:
                completion, cached = await self._fetch(key, body, negotiating=True)
            except _Refused as exc:
                refusals.append((mode, exc.error))
                continue
            self.backend.structured_mode = mode
            self.cache.set_structured_mode(self._identity.decode(), mode)  # for later runs
            return key, completion, cached
        self._fatal = _refusals_message(self.backend, refusals)
        raise BackendFatal(self._fatal)

    async def _fetch(
        self, key: str, body: dict[str, Any], negotiating: bool = False, remembered: bool = False
    ) -> tuple[Completion, bool]:
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.calls += 1
            self.stats.cache_hits += 1
            self._answered = True
            return hit, True
        running = self._inflight.get(key)
        if running is not None:  # the same call is already on its way: share it
            completion, _ = await asyncio.shield(running)
            self.stats.calls += 1
            self.stats.cache_hits += 1
            return completion, True
        fut: asyncio.Future[tuple[Completion, bool]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            completion = await self._send(body, negotiating, remembered)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: sharers re-raise it themselves
            raise
        finally:
            del self._inflight[key]
        try:
            self.cache.put(key, completion)
        finally:
            # The call gives back its slot once its answer is in the journal, not before: the
            # journal is written once per event-loop turn, and a slot freed earlier could carry
            # a new call whose answer also arrives unwritten. So a kill -9 loses at most the
            # answers of the calls holding slots (tests/test_resume.py).
            self.cache.when_journaled(self._answered_slot)
        self.stats.calls += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        fut.set_result((completion, False))
        return completion, False

    async def _send(
        self, body: dict[str, Any], negotiating: bool = False, remembered: bool = False
    ) -> Completion:
        """Send `body` with retries. `negotiating`: a refused format raises _Refused (try
        the next mode); `remembered`: the body is in a mode remembered from an earlier run,
        and a refused format (or that mode refused meanwhile) raises _Renegotiate."""
        attempt = 0
        limiter = self.limiter
        while True:
            if self._fatal is not None:
                raise BackendFatal(self._fatal)
            try:
                await limiter.acquire(self.timeout, retry=attempt > 0)
            except SlotTimeout:
                # The wait for a slot is bounded like the call itself: it counts as an attempt.
                self.stats.errors["timeout"] += 1
                if attempt >= self.max_retries:
                    self.stats.failures["timeout"] += 1
                    raise CallFailed("timeout", f"no free slot within {self.timeout:g}s") from None
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt, None))
                continue
            if self._fatal is not None:  # decided while this call waited for its slot
                limiter.release(ok=False)
                raise BackendFatal(self._fatal)
            if remembered and not self._remembered:  # its mode was refused meanwhile
                limiter.release(ok=False)
                raise _Renegotiate()
            if self.cache.backlog > MAX_BACKLOG:  # the cache's writer is behind: wait for it,
                try:  # holding the slot, so no more answers pile up meanwhile
                    await self.cache.room()
                except BaseException:
                    limiter.release(ok=False)
                    raise
            if self.rates.active:
                estimate = sum(len(m.get("content") or "") for m in body["messages"]) // 4
                await self.rates.acquire(estimate + int(body.get("max_tokens") or 256))
            self.stats.requests += 1
            sent_at = time.monotonic()
            try:
                completion = await self.backend.complete(body, self.timeout)
            except CallError as err:
                # A stated time pauses new calls, once for a burst of 429s; only an overload
                # without a stated time lowers the concurrency.
                if err.overload:
                    limiter.refused()
                if err.retry_after:  # before the release: its slot must not go to a new call
                    limiter.pause(err.retry_after, sent_at)
                limiter.release(ok=False, overload=err.overload and not err.retry_after)
                self.stats.errors[err.cause] += 1
                if err.fatal:
                    self._fatal = _fatal_message(self.backend, err)
                    raise BackendFatal(self._fatal) from None
                permanent = self._permanent(err)
                if negotiating and (permanent or _refuses_format(err)):
                    raise _Refused(err) from None
                if remembered and _refuses_format(err):  # sent in a mode remembered
                    raise _Renegotiate() from None
                if permanent and not self._answered and not err.input_specific:
                    # The first calls of the run fail for good, so every call will: stop now,
                    # with the server's own words.
                    self._fatal = _fatal_message(self.backend, err)
                    raise BackendFatal(self._fatal) from None
                if permanent or attempt >= self.max_retries:
                    self.stats.failures[err.cause] += 1
                    raise CallFailed(err.cause, err.detail) from None
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt, err.retry_after))
                continue
            except BaseException:
                limiter.release(ok=False)
                raise
            if completion.rate_pause:  # answered, but the budget is used up
                limiter.pause(completion.rate_pause, sent_at, certain=True)
            self._answered = True
            return completion  # still holding its slot: _fetch gives it back

    def _permanent(self, err: CallError) -> bool:
        """Asking again cannot help: a client error (4xx other than 408/409/429), or a 5xx
        whose validation message the server has now given twice."""
        if not err.retryable:
            return True
        if err.status is not None and err.status >= 500 and err.detail:
            if structured.looks_like_validation(err.detail):
                self._server_messages[(err.status, err.detail)] += 1
                return self._server_messages[(err.status, err.detail)] >= 2
        return False

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """The time the server stated (plus a little jitter so the retries do not all land
        at once), else exponential backoff with jitter."""
        if retry_after:
            return retry_after + self._rng.uniform(0, min(1.0, retry_after / 10))
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return self._rng.uniform(ceiling / 2, ceiling)


_NAME_PREFIXES: dict[str, bytes] = {}  # a body field's name as JSON, with its colon


def canonical_json(value: Any) -> bytes:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` as UTF-8.
    Chat messages (dicts of strings) go through orjson, whose output for strings is the same
    byte for byte (tests/test_engine.py checks every code point); a finite float is its repr,
    as json writes it; anything else goes through json (its float and special-value spelling
    differs from orjson's)."""
    kind = type(value)
    if kind is int:
        return b"%d" % value
    if kind is float and math.isfinite(value):
        return repr(value).encode()
    if kind is str or kind is list and _plain_messages(value):
        try:  # (orjson refuses a key that is not a string: json then writes it)
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate: json writes it, encode() refuses
            pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _plain_messages(value: list[Any]) -> bool:
    """Dicts whose values are all strings (explicit loops: `all()` over generators cost
    three times as much, ~2 us of a call's cache key)."""
    for m in value:
        if type(m) is not dict:
            return False
        for v in m.values():
            if type(v) is not str:
                return False
    return True


def _refuses_format(err: CallError) -> bool:
    """A 400/422/5xx whose message says the requested output format is not accepted."""
    if err.status is None or not (err.status in (400, 422) or err.status >= 500):
        return False
    return structured.mentions_format(err.detail) and (
        err.status < 500 or structured.looks_like_validation(err.detail)
    )


def _where(backend: Backend) -> str:
    return str(getattr(backend, "base_url", "") or backend.kind)


def _reason(err: CallError) -> str:
    what = f"HTTP {err.status}" if err.status is not None else err.cause
    return f"{what}: {structured.one_line(err.detail, 200)}" if err.detail else what


def _fatal_message(backend: Backend, err: CallError) -> str:
    return f"{_where(backend)} refused the request ({_reason(err)})"


def _refusals_message(backend: Backend, refusals: list[tuple[str, CallError]]) -> str:
    reasons = [_reason(err) for _, err in refusals]
    if len(set(reasons)) == 1:
        said = reasons[0]
    else:
        said = "; ".join(f"{mode}: {r}" for (mode, _), r in zip(refusals, reasons, strict=True))
    modes = ", ".join(mode for mode, _ in refusals)
    return f"{_where(backend)} refused structured output in every mode ({modes}): {said}"


def _parse(completion: Completion, schema: type[BaseModel] | None, accept_truncated: bool) -> Any:
    if schema is None:
        text = completion.text.strip()
        if not text:
            raise ValueError("empty answer")
        if completion.finish_reason == "length" and not accept_truncated:
            raise ValueError("answer cut off by max_tokens")
        return text
    value = schema.model_validate_json(_strip_fences(completion.text))
    _reject_cut_strings(value)
    return value


def _reject_cut_strings(value: BaseModel) -> None:
    """A string exactly as long as its field's max_length was cut there.

    Constrained decoding (llama.cpp's grammar, vLLM's guided decoding) closes a string at the
    schema's maxLength mid-word, and the answer still parses; without this check a rambling
    model's answers would be kept with their ends missing.
    """
    for name, limit in _max_lengths(type(value)):
        text = getattr(value, name)
        if isinstance(text, str) and len(text) >= limit:
            raise ValueError(f"{name}: cut off at its {limit}-character limit")


@functools.cache
def _max_lengths(schema: type[BaseModel]) -> tuple[tuple[str, int], ...]:
    """The schema's fields with a max_length, and that length (looked up once per schema)."""
    limits = []
    for name, info in schema.model_fields.items():
        for rule in info.metadata:
            limit = getattr(rule, "max_length", None)
            if limit is not None:
                limits.append((name, limit))
    return tuple(limits)


def _strip_fences(text: str) -> str:
    """Accept ```json fenced answers from servers without constrained output."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return one_line(exc, whole="answer")
    return str(exc)[:200]
