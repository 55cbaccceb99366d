"""The one async interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Completion:
    """What a model answered to one request."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    created: float
    # The model the server says answered, when it is not the one asked for (None: the same).
    model: str | None = None
    # Seconds the server asked for no new requests (x-ratelimit-remaining-*: 0); not cached.
    rate_pause: float | None = field(default=None, compare=False)
    # Token log-probabilities, when asked for (`logprobs: true`) and the server gave them:
    # [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}], in answer order.
    logprobs: list[dict[str, Any]] | None = None


def token_logprobs(choice: Any) -> list[dict[str, Any]] | None:
    """The token log-probabilities of an OpenAI-style `choices[i]` (None if it has none or
    they are not in the documented shape); only token, logprob and top_logprobs are kept."""
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None

    def entry(t: Any) -> dict[str, Any]:
        return {"token": str(t["token"]), "logprob": float(t["logprob"])}

    try:
        return [
            {**entry(t), "top_logprobs": [entry(a) for a in t.get("top_logprobs") or ()]}
            for t in content
        ]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class CallError(Exception):
    """One failed attempt. `cause` is a short stable name used in summaries."""

    def __init__(
        self,
        cause: str,
        detail: str = "",
        *,
        retryable: bool,
        overload: bool = False,
        retry_after: float | None = None,
        fatal: bool = False,
        input_specific: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail
        self.retryable = retryable
        self.overload = overload  # the server says it is overloaded: lower concurrency
        self.retry_after = retry_after
        self.fatal = fatal  # every call will fail the same way (bad key, unknown model)
        # this call's input is the problem (a prompt over the context), not the server or the
        # request's shape: it fails its own unit and never stops the run
        self.input_specific = input_specific
        self.status = status  # the HTTP status, if the server answered


class Backend(ABC):
    """A chat-completion backend. `kind` and `model` identify it in cache keys and provenance."""

    kind: str
    model: str
    # The structured-output mode in use ("json_schema", "json_object", "prompt"); None until
    # the engine has negotiated it with the server (see synthloom.llm.structured).
    structured_mode: str | None = None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or load weights."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    @abstractmethod
    async def complete(self, body: dict[str, Any], timeout: float) -> Completion:
        """Send one OpenAI-style chat request body; raise CallError on failure."""

    def cache_identity(self) -> list[str]:
        """What, besides the request body, decides the answer: part of every cache key.
        Two endpoints serving models of the same name must not share answers."""
        return [self.kind, self.model]

    def describe(self) -> dict[str, Any]:
        """What goes in the run manifest (never secrets)."""
        return {
            "backend": self.kind,
            "model": self.model,
            "structured_output": self.structured_mode,
        }
