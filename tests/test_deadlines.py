"""`--timeout` bounds every call (issue 12): the OpenAI backend keeps its calls' deadlines in one
sweeper instead of a timer per request, so these check what a user relies on: a slow answer
becomes a `timeout` failure within the limit (plus its tick), the task that made the call goes
on normally afterwards, the other calls are not disturbed, and a real cancellation (Ctrl-C,
a run stopping) still cancels."""

from __future__ import annotations

import asyncio
import time

import pytest

from synthloom.llm.base import CallError
from synthloom.llm.openai_http import OpenAIBackend
from synthloom.testing.stub_server import StubServer

BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


async def _backend(stub: StubServer) -> OpenAIBackend:
    backend = OpenAIBackend(stub.base_url, "m", api_key_env=None)
    await backend.start()
    return backend


def test_a_slow_answer_times_out_and_the_task_goes_on(stub: StubServer) -> None:
    stub.configure(latency=3.0)

    async def main() -> tuple[float, str, int, str]:
        backend = await _backend(stub)
        try:
            started = time.monotonic()
            with pytest.raises(CallError) as err:
                await backend.complete(BODY, timeout=0.4)
            took = time.monotonic() - started
            task = asyncio.current_task()
            assert task is not None
            await asyncio.sleep(0.05)  # no cancellation left pending on the task
            stub.configure(latency=0.0)
            answer = await backend.complete(BODY, timeout=0.4)
            return took, err.value.cause, task.cancelling(), answer.text
        finally:
            await backend.close()

    took, cause, cancelling, text = asyncio.run(main())
    assert cause == "timeout"
    assert 0.4 <= took < 1.5  # the limit plus at most a tick (0.04 s here) and slack
    assert cancelling == 0
    assert text


def test_only_the_slow_call_times_out(stub: StubServer) -> None:
    """Calls with a generous limit finish while a call with a short one times out."""
    stub.configure(latency=0.6)

    async def main() -> list[str]:
        backend = await _backend(stub)
        try:

            async def call(timeout: float) -> str:
                try:
                    await backend.complete(BODY, timeout=timeout)
                except CallError as exc:
                    return exc.cause
                return "ok"

            return await asyncio.gather(call(0.2), call(30), call(30), call(0.2))
        finally:
            await backend.close()

    assert asyncio.run(main()) == ["timeout", "ok", "ok", "timeout"]


def test_a_real_cancellation_still_cancels(stub: StubServer) -> None:
    stub.configure(latency=3.0)

    async def main() -> bool:
        backend = await _backend(stub)
        try:
            call = asyncio.ensure_future(backend.complete(BODY, timeout=60))
            await asyncio.sleep(0.2)
            call.cancel()
            try:
                await call
            except asyncio.CancelledError:
                return True
            return False
        finally:
            await backend.close()

    assert asyncio.run(main())
