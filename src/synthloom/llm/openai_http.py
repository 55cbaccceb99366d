"""Backend for any OpenAI-compatible `/v1/chat/completions` endpoint.

Requests go through synthloom.llm.http_client (keep-alive connections on the event loop,
httptools' parser): a tenth of the CPU per request of aiohttp, the client before it, whose
share was most of the gap between a whole command and a bare request loop (issue 12; httpx,
before aiohttp, did not keep up at hundreds of concurrent requests: see benchmarks/). The API
key is read from an environment variable named in config; it is sent in the Authorization
header and never written to disk or logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from synthloom.errors import BackendFatal, UserError
from synthloom.llm.base import Backend, CallError, Completion, token_logprobs
from synthloom.llm.deadlines import Deadlines
from synthloom.llm.http_client import HttpClient, Response
from synthloom.llm.limits import rate_limit_pause
from synthloom.records import parse_json
from synthloom.settings import base_url_problem

_OVERLOAD = {429, 503}
_FATAL = {401, 403, 404}
_RETRYABLE_4XX = {408, 409, 429}  # other 4xx are permanent: asking again cannot help


class EndpointUnreachable(BackendFatal):
    """The preflight found no server at the base URL (a fleet takes such an endpoint out)."""


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        api_key_required: bool = False,
        max_connections: int = 256,
    ) -> None:
        problem = base_url_problem(base_url)
        if problem:
            raise UserError(f"`base_url`: {problem}")
        if not base_url.startswith(("http://", "https://")):
            shown = base_url.rsplit("@", 1)[-1]  # never echo what may be a password
            raise UserError(f"`base_url` must start with http:// or https:// (got {shown!r})")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_required and not key:
            raise UserError(
                f"environment variable {api_key_env} is not set; export it with your API key"
                " or name another variable with `api_key_env`"
            )
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._max_connections = max_connections
        self._client: HttpClient | None = None
        self._deadlines = Deadlines()  # `timeout` per call, without a timer per call
        self._url = f"{self.base_url}/chat/completions"
        self._path = urlsplit(self.base_url).path.rstrip("/")  # the URL's path, for requests
        self.served_model: str | None = None  # what the server says answered, if not `model`

    def cache_identity(self) -> list[str]:
        return [self.kind, self.base_url, self.model]

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "base_url": self.base_url}
        if self.served_model is not None:
            info["served_model"] = self.served_model
        return info

    async def start(self) -> None:
        self._client = HttpClient(self.base_url, self._headers, self._max_connections)

    async def close(self) -> None:
        self._deadlines.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _get(self, path: str, timeout: float) -> Response:
        assert self._client is not None, "backend not started"
        async with asyncio.timeout(timeout):
            return await self._client.request("GET", self._path + path)

    async def preflight(self, timeout: float = 10.0) -> None:
        """Fail fast, with one clear line, on an unreachable endpoint, a rejected key, a web
        page instead of an API, or a base URL missing its `/v1` (before any model call)."""
        url = f"{self.base_url}/models"
        try:
            resp = await self._get("/models", timeout)
            if resp.status in (401, 403):
                raise BackendFatal(
                    f"{self.base_url} rejected the API key (HTTP {resp.status}); check the"
                    f" key in ${self.api_key_env}"
                )
            if 300 <= resp.status < 400:
                raise BackendFatal(_redirect_message(url, resp.status, resp.headers))
            ctype = resp.headers.get("content-type", "")
            if resp.status == 200 and _looks_like_html(resp.body, ctype):
                raise BackendFatal(_html_message(url, self.base_url))
            if resp.status == 404 and self._v1_hint():
                # /models is optional, so a 404 alone proves nothing; <url>/v1/models answering
                # does: the user left out the /v1.
                alt = await self._get("/v1/models", timeout)
                if alt.status == 200 and _is_json(alt.body):
                    raise BackendFatal(f"{url} answered 404 Not Found{self._v1_hint()}")
        except (TimeoutError, OSError) as exc:
            raise EndpointUnreachable(
                f"cannot reach {self.base_url} ({type(exc).__name__}: {exc or 'timed out'});"
                " check `base_url` and that the server is running"
            ) from None

    def _v1_hint(self) -> str:
        """ "; did you mean <url>/v1?" when the base URL does not end in /v1, else ""."""
        if self.base_url.endswith("/v1"):
            return ""
        return f"; did you mean {self.base_url}/v1?"

    async def complete(self, body: dict[str, Any], timeout: float) -> Completion:
        client = self._client
        assert client is not None, "backend not started"
        payload = _dumps({"model": self.model, **body})
        task = self._deadlines.start(timeout)
        try:
            resp = await client.request("POST", self._path + "/chat/completions", payload)
        except (asyncio.CancelledError, TimeoutError) as exc:
            # a cancellation is a timeout only when the deadline sweeper made it
            if isinstance(exc, asyncio.CancelledError) and not self._deadlines.expired(task):
                raise
            raise CallError("timeout", f"no answer within {timeout:g}s", retryable=True) from None
        except OSError as exc:  # refused, reset, closed early, a garbled answer
            raise CallError("connection", _connection_detail(exc), retryable=True) from None
        finally:
            self._deadlines.finish(task)
        headers, raw = resp.headers, resp.body
        pause = rate_limit_pause(headers)
        if 300 <= resp.status < 400:  # not followed: the base URL is to be corrected
            message = _redirect_message(self._url, resp.status, headers)
            raise CallError(f"http_{resp.status}", message, retryable=False, fatal=True)
        if resp.status != 200:
            raise _status_error(
                resp.status,
                raw,
                headers.get("retry-after"),
                self._url,
                self._v1_hint(),
                pause,
            )
        completion = _parse_body(
            raw, headers.get("content-type", ""), self._url, self.base_url, self.model, pause
        )
        if completion.model is not None:
            self.served_model = completion.model
        return completion


def _redirect_message(url: str, status: int, headers: dict[str, str]) -> str:
    where = headers.get("location")
    to = f" to {where}" if where else ""
    return (
        f"{url} answered HTTP {status}, a redirect{to}; synthloom does not follow redirects:"
        " set `base_url` to where the API is"
    )


def _connection_detail(exc: OSError) -> str:
    """What went wrong with the connection, in a few words (no traceback)."""
    text = exc.strerror or str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _dumps(body: dict[str, Any]) -> bytes:
    """The request as JSON (orjson: ten times faster than json; servers read the same values)."""
    try:
        return orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):  # e.g. a lone surrogate: json escapes it
        return json.dumps(body).encode()


def _looks_like_html(raw: bytes, content_type: str) -> bool:
    head = raw[:512].lstrip().lower()
    return "html" in content_type.lower() or head.startswith((b"<!doctype", b"<html", b"<?xml"))


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _html_message(url: str, base_url: str) -> str:
    hint = "" if base_url.endswith("/v1") else f"; did you mean {base_url}/v1?"
    return (
        f"{url} answered with an HTML page, not an OpenAI-compatible JSON response;"
        f" check `base_url` (it usually ends in /v1){hint}"
    )


def _parse_body(
    raw: bytes,
    content_type: str = "",
    url: str = "",
    base_url: str = "",
    requested: str | None = None,
    rate_pause: float | None = None,
) -> Completion:
    """A 200 answer as a Completion. A web page or other non-JSON answer means the URL is
    not an OpenAI-compatible API: fatal, on the first answer (retrying cannot help). A JSON
    answer that is cut off or misses fields may be a passing fault: retried."""
    if _looks_like_html(raw, content_type):
        raise CallError("not_an_api", _html_message(url, base_url), retryable=False, fatal=True)
    if "json" not in content_type.lower() and content_type and not _is_json(raw):
        shown = raw[:60].decode("utf-8", "replace")
        raise CallError(
            "not_an_api",
            f"{url} answered {content_type.split(';')[0]} ({shown!r}), not an OpenAI-compatible"
            " JSON response; check `base_url` (it usually ends in /v1)",
            retryable=False,
            fatal=True,
        )
    try:
        data = parse_json(raw)
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
        usage = data.get("usage") or {}
        served = data.get("model")
        return Completion(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            created=float(data.get("created") or time.time()),
            model=served if isinstance(served, str) and served and served != requested else None,
            rate_pause=rate_pause,
            logprobs=token_logprobs(choice),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CallError("malformed_response", type(exc).__name__, retryable=True) from None


def _status_error(
    status: int,
    raw: bytes,
    retry_after: str | None,
    url: str = "",
    v1_hint: str = "",
    rate_pause: float | None = None,
) -> CallError:
    message = _error_message(raw)
    if status == 404 and url and not _is_json(raw):  # no API there (an API says what is missing)
        shown = "an HTML page" if _looks_like_html(raw, "") else repr(message.strip()[:80])
        message = f"{url} answered 404 Not Found ({shown}){v1_hint}"
    cause = f"http_{status}"
    if status in _FATAL:
        return CallError(cause, message, retryable=False, fatal=True, status=status)
    retryable = status >= 500 or status in _RETRYABLE_4XX
    wait = _retry_after_seconds(retry_after)
    if wait is None and status in _OVERLOAD:
        wait = rate_pause  # x-ratelimit-reset-* of the budget that ran out
    return CallError(
        cause,
        message,
        retryable=retryable,
        overload=status in _OVERLOAD,
        retry_after=wait,
        status=status,
        input_specific=status in (400, 413, 422) and _too_long(message),
    )


def _too_long(message: str) -> bool:
    """The server's words say this request's prompt is too long for the model's context."""
    text = message.lower()
    return "context" in text and any(w in text for w in ("length", "maximum", "exceed", "long"))


def _error_message(raw: bytes) -> str:
    """The server's own words: OpenAI's {"error": {"message"}}, FastAPI/pydantic's
    {"detail": ...}, {"error": "..."}, or the start of the body."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace")
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        detail = data.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = ".".join(str(x) for x in first.get("loc") or ())
            return f"{loc}: {first.get('msg', '')}" if loc else str(first.get("msg", ""))
        if isinstance(data.get("message"), str):
            return data["message"]
    return raw[:500].decode("utf-8", "replace")


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
