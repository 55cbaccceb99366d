"""A local OpenAI-compatible stub server for exercising HTTP clients under failure.

Deterministic answers (JSON-schema output included), optional API key, latency, injected faults
(429/500/503, slow, malformed JSON, permanent per-body failures) and counters (``GET /stats``).
Like real servers, it can refuse structured-output formats (``reject_formats``, with a
pydantic-style message and a chosen status), report another model than the one asked for
(``served_model``), and state rate limits in ``x-ratelimit-*`` headers instead of Retry-After.
In tests: ``with StubServer(faults=Faults(rate=0.3)) as s: ... s.base_url ... s.stats``;
``StubServer(record=True)`` also keeps every chat request body received (``s.bodies``).
Benchmarks: ``python -m synthloom.testing.stub_server --port 0 ...`` or ``start_stub_process``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import hashlib
import json
import math
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:
    from aiohttp import web
except ImportError:  # not a core dependency: only this server uses it
    raise ImportError("the stub server needs aiohttp: pip install 'synthloom[stub]'") from None

from synthloom.llm.structured import PROMPT_INSTRUCTION

FAULT_KINDS = ("429", "500", "503", "slow", "malformed")
Responder = Callable[[dict[str, Any]], str | None]
# Decides an error for a request body: (status, message) or (status, message, headers), or
# None to answer normally.
Failer = Callable[[dict[str, Any]], tuple[Any, ...] | None]
FORMAT_TYPES = ("text", "json_object", "json_schema")  # "text": no response_format at all
_MALFORMED = b'{"id": "x", "choices": ['
_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "400": (400, "Invalid chat completion request (stub)", "invalid_request_error", None),
    "401": (401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
    "429": (429, "Rate limit reached (stub)", "requests", "rate_limit_exceeded"),
    "500": (500, "The server had an error processing your request (stub)", "server_error", None),
    "503": (503, "The engine is currently overloaded (stub)", "server_error", None),
}
_FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "email": "a@example.com"}
_MODELS = {"object": "list", "data": [{"id": "stub-model", "object": "model"}]}
_WORDS = "amber basil cedar delta ember fjord gamma harbor indigo juniper kelp lumen".split()


@dataclass
class Faults:
    """Fault injection settings; ``rate`` and ``permanent`` are fractions in [0, 1]."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500")
    retry_after: float | None = 1.0  # Retry-After header on 429/503; None = no header
    slow_seconds: float = 30.0  # should exceed the client's timeout
    permanent: float = 0.0  # fraction of distinct bodies that always fail
    # state the wait as x-ratelimit-remaining-requests: 0 + x-ratelimit-reset-requests instead
    ratelimit_headers: bool = False

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}")


@dataclass
class Stats:
    requests: int = 0  # chat-completion requests received (authorized or not)
    completed: int = 0  # valid 200 responses returned after the client was seen still waiting
    aborted: int = 0  # client went away before the response was sent
    unauthorized: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    request_hashes: Counter[str] = field(default_factory=Counter)
    completed_hashes: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in vars(self).items()}


def body_hash(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body (what the stats are keyed by)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _words(text: Any) -> list[str]:
    if isinstance(text, list):  # content parts
        text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
    return str(text or "").split()


class _SchemaFaker:
    """Builds a deterministic instance of a JSON schema (the subset pydantic emits)."""

    def __init__(self, root: dict[str, Any], digest: str) -> None:
        self.root, self.tag, self.rng = root, digest[:8], random.Random(digest)

    def make(self, s: dict[str, Any], name: str = "value", depth: int = 0) -> Any:
        if "$ref" in s:
            return self.make(self._resolve(s["$ref"]), name, depth + 1)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return self.rng.choice(s["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if key in s:
                options = [o for o in s[key] if o.get("type") != "null"]
                if not options or (depth > 8 and len(options) < len(s[key])):
                    return None
                return self.make(options[0], name, depth)
        kind = s.get("type", "object" if "properties" in s else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            props = s.get("properties", {})
            return {k: self.make(v, k, depth + 1) for k, v in props.items()}
        if kind == "array":
            return self._array(s, name, depth)
        if kind in ("integer", "number"):
            return self._number(s, kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(s, name)

    def _resolve(self, ref: str) -> dict[str, Any]:
        return functools.reduce(lambda node, key: node[key], ref[2:].split("/"), self.root)

    def _array(self, s: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = s.get("prefixItems", [])
        lo = s.get("minItems", 0)
        n = lo if depth > 8 else max(lo, len(prefix), 1 + self.rng.randrange(2))
        n = min(n, s.get("maxItems", n))
        items = s.get("items") or {}
        return [
            self.make(prefix[i] if i < len(prefix) else items, name, depth + 1) for i in range(n)
        ]

    def _number(self, s: dict[str, Any], integer: bool) -> int | float:
        step = 1 if integer else 1e-6
        lo = s.get("minimum", s.get("exclusiveMinimum", None))
        hi = s.get("maximum", s.get("exclusiveMaximum", None))
        lo = None if lo is None else lo + (step if "minimum" not in s else 0)
        hi = None if hi is None else hi - (step if "maximum" not in s else 0)
        lo = lo if lo is not None else (hi - 100 if hi is not None else 0)
        hi = hi if hi is not None else lo + 100
        if integer:
            return self.rng.randint(math.ceil(lo), math.floor(hi))
        return lo + (hi - lo) * self.rng.random()

    def _string(self, s: dict[str, Any], name: str) -> str:
        if s.get("format") in _FORMATS:
            return _FORMATS[s["format"]]
        text = f"stub {self.tag} {name} " + " ".join(self.rng.choices(_WORDS, k=3))
        while len(text) < s.get("minLength", 0):
            text += " " + self.rng.choice(_WORDS)
        return text[: s.get("maxLength", len(text))]


def make_content(body: dict[str, Any], digest: str) -> str:
    """The default deterministic answer for a chat request: an instance of the schema given
    in `response_format` (json_schema, or json_object with a `schema`) or in the prompt
    (synthloom's prompt mode), else text."""
    fmt = body.get("response_format") or {}
    schema = None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    elif fmt.get("type") == "json_object":
        schema = fmt.get("schema")
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    last = user[-1].get("content") if user else ""
    if schema is None and not fmt and isinstance(last, str) and PROMPT_INSTRUCTION in last:
        try:
            schema = json.loads(last.rsplit(PROMPT_INSTRUCTION, 1)[1])
        except ValueError:
            schema = None
    if isinstance(schema, dict):
        return json.dumps(_SchemaFaker(schema, digest).make(schema))
    words = _words(last)
    text = f"Stub answer {digest[:8]}: " + " ".join(words[:8] or ["ok"])
    return json.dumps({"text": text}) if fmt.get("type") == "json_object" else text


def _error(
    kind: str, retry_after: float | None = None, ratelimit_headers: bool = False
) -> web.Response:
    status, message, etype, code = _ERRORS[kind]
    headers = None
    if retry_after is not None and ratelimit_headers:
        headers = {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{retry_after * 1000:g}ms",
        }
    elif retry_after is not None:
        headers = {"Retry-After": f"{retry_after:g}"}
    err = {"message": message, "type": etype, "param": None, "code": code}
    return web.json_response({"error": err}, status=status, headers=headers)


def format_type(body: dict[str, Any]) -> str:
    """The output format a request asks for: "text", "json_object" or "json_schema"."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return str(kind) if kind else "text"


def format_rejection(kind: str, rejected: tuple[str, ...]) -> str:
    """What a pydantic-validated server says about a response_format it does not take."""
    accepted = [t for t in FORMAT_TYPES if t not in rejected]
    allowed = " or ".join(f"'{t}'" for t in accepted) or "one of no types (stub refuses all)"
    return (
        "1 validation error for ChatCompletionRequest\nresponse_format.type\n"
        f"  Input should be {allowed} [type=literal_error, input_value='{kind}', input_type=str]"
    )


def _status_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    if status == 422:  # FastAPI's shape
        detail = [{"loc": ["body", "response_format"], "msg": message, "type": "value_error"}]
        return web.json_response({"detail": detail}, status=status, headers=headers)
    etype = "server_error" if status >= 500 else "invalid_request_error"
    err = {"message": message, "type": etype, "param": None, "code": None}
    return web.json_response({"error": err}, status=status, headers=headers)


class StubServer:
    """OpenAI-compatible stub; a context manager that serves from a background thread."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: Faults | None = None,
        api_key: str | None = None,
        responder: Responder | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = False,
        reject_formats: tuple[str, ...] = (),
        reject_status: int = 400,
        served_model: str | None = None,
        failer: Failer | None = None,
    ) -> None:
        self.latency, self.faults, self.api_key = latency, faults, api_key
        self.responder, self.record = responder, record
        self.reject_formats, self.reject_status = tuple(reject_formats), reject_status
        self.served_model, self.failer = served_model, failer
        self._bodies: list[dict[str, Any]] = []
        self.host, self.port, self.base_url = host, port, ""
        self._rng = random.Random(seed)
        self._stats = Stats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def configure(self, **changes: Any) -> None:
        """Change ``latency``, ``faults``, ``api_key``, ``responder``, ``record``, ``seed``,
        ``reject_formats``, ``reject_status``, ``served_model`` or ``failer`` (live)."""
        for key, value in changes.items():
            if key == "seed":
                self._rng = random.Random(value)
            elif key in ("latency", "faults", "api_key", "responder", "record", "served_model"):
                setattr(self, key, value)
            elif key in ("reject_formats", "reject_status", "failer"):
                setattr(self, key, tuple(value) if key == "reject_formats" else value)
            else:
                raise TypeError(f"unknown setting {key!r}")

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters (safe to read from any thread)."""
        with self._lock:
            return copy.deepcopy(self._stats)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The chat request bodies received while ``record`` was on, in arrival order."""
        with self._lock:
            return copy.deepcopy(self._bodies)

    def reset_stats(self) -> None:
        """Zero the counters and forget the recorded bodies."""
        with self._lock:
            self._stats = Stats()
            self._bodies = []

    # -- HTTP handlers ---------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._get_stats)
        app.router.add_post("/stats/reset", self._reset)
        return app

    def _authorized(self, request: web.Request) -> bool:
        return (
            self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"
        )

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error("401")
        return web.json_response(_MODELS)

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.json_response({"ok": True})

    def _count(self, attr: str, digest: str | None = None) -> None:
        with self._lock:
            setattr(self._stats, attr, getattr(self._stats, attr) + 1)
            if digest:
                self._stats.completed_hashes[digest] += 1

    def _pick_fault(self, digest: str) -> str | None:
        f = self.faults
        if f is None:
            return None
        if f.permanent > 0 and int(digest[8:16], 16) / 16**8 < f.permanent:
            return f.kinds[int(digest[16:24], 16) % len(f.kinds)]
        return self._rng.choice(f.kinds) if f.rate > 0 and self._rng.random() < f.rate else None

    async def _chat(self, request: web.Request) -> web.Response:
        self._count("requests")
        if not self._authorized(request):
            self._count("unauthorized")
            return _error("401")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error("400")
        digest = body_hash(body)
        faults, fault = self.faults, self._pick_fault(digest)
        with self._lock:
            self._stats.request_hashes[digest] += 1
            if self.record:
                self._bodies.append(body)
            if fault:
                self._stats.faults[fault] += 1
        # Refusals come before generation, as on real servers (no latency).
        kind = format_type(body)
        if kind in self.reject_formats:
            return _status_response(self.reject_status, format_rejection(kind, self.reject_formats))
        failure = self.failer(body) if self.failer else None
        if failure is not None:
            return _status_response(*failure)
        delay = self.latency + (faults.slow_seconds if faults and fault == "slow" else 0.0)
        try:
            if delay > 0:
                await asyncio.sleep(delay)
        except asyncio.CancelledError:  # server shutdown (or handler cancellation)
            self._count("aborted")
            raise
        if request.transport is None or request.transport.is_closing():
            self._count("aborted")
            return web.Response(status=499)
        if faults and fault in ("429", "503"):
            return _error(fault, faults.retry_after, faults.ratelimit_headers)
        if fault == "500":
            return _error(fault)
        if fault == "malformed":
            return web.Response(body=_MALFORMED, content_type="application/json")
        resp = web.json_response(self._completion(body, digest))
        self._count("completed", digest)  # before sending: a client holding it sees it counted
        return resp

    def _completion(self, body: dict[str, Any], digest: str) -> dict[str, Any]:
        content = self.responder(body) if self.responder else None
        if content is None:
            content = make_content(body, digest)
        prompt = sum(len(_words(m.get("content"))) for m in body["messages"] if isinstance(m, dict))
        completion = len(content.split())
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        message = {"role": "assistant", "content": content}
        return {
            "id": f"chatcmpl-{digest[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model or body.get("model", "stub-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage | {"total_tokens": prompt + completion},
        }

    # -- running ---------------------------------------------------------------------------
    async def start_async(self) -> web.AppRunner:
        """Start listening on the current loop; sets ``base_url``. Caller cleans up the runner."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        return runner

    def start(self, timeout: float = 10.0) -> StubServer:
        ready, failure = threading.Event(), list[BaseException]()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                runner = loop.run_until_complete(self.start_async())
            except BaseException as exc:
                failure.append(exc)
                loop.close()
                return
            finally:
                ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            pending = asyncio.all_tasks(loop)  # handlers of clients that already left
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="stub-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("stub server did not start in time")
        if failure:
            self._loop = self._thread = None
            raise RuntimeError("stub server failed to start") from failure[0]
        return self

    def close(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop = self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_stub_process(timeout: float = 20.0, **flags: Any) -> tuple[subprocess.Popen[str], str]:
    """Run the stub as a subprocess; returns (process, base_url). Stop it with ``terminate()``.

    ``flags`` are the CLI options: ``start_stub_process(latency=0.2, faults="429,slow")``.
    """
    cmd = [sys.executable, "-m", "synthloom.testing.stub_server"]
    for key, value in flags.items():
        if value is None:
            continue
        value = ",".join(value) if isinstance(value, list | tuple) else value
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stdout, line = proc.stdout, list[str]()
    assert stdout is not None
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].startswith("READY "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"stub server did not become ready: {line!r}")
    return proc, line[0].split()[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--faults", default="429,500", help="comma-separated: " + ",".join(FAULT_KINDS))
    p.add_argument("--retry-after", default="1", help="seconds, or 'none'")
    p.add_argument("--slow-seconds", type=float, default=30.0)
    p.add_argument("--permanent", type=float, default=0.0)
    p.add_argument("--api-key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ratelimit-headers",
        action="store_true",
        help="state 429/503 waits in x-ratelimit-* headers instead of Retry-After",
    )
    p.add_argument(
        "--reject-formats",
        default="",
        help="comma-separated response_format types to refuse: " + ",".join(FORMAT_TYPES),
    )
    p.add_argument("--reject-status", type=int, default=400, help="400, 422 or 500")
    p.add_argument("--served-model", help="model name reported in answers")
    a = p.parse_args(argv)
    retry = None if a.retry_after.lower() == "none" else float(a.retry_after)
    faults = Faults(
        a.fault_rate,
        tuple(a.faults.split(",")),
        retry,
        a.slow_seconds,
        a.permanent,
        a.ratelimit_headers,
    )
    server = StubServer(
        latency=a.latency,
        faults=faults,
        api_key=a.api_key,
        seed=a.seed,
        host=a.host,
        port=a.port,
        reject_formats=tuple(x for x in a.reject_formats.split(",") if x),
        reject_status=a.reject_status,
        served_model=a.served_model,
    )
    asyncio.run(_serve(server))


async def _serve(server: StubServer) -> None:
    runner = await server.start_async()
    print(f"READY {server.base_url}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    main()
