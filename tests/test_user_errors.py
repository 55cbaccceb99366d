"""User mistakes and traps that used to end as "internal error" or silently wrong (issue 10)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from synthloom.errors import UserError, is_path_error, path_error
from synthloom.llm.base import Completion
from synthloom.llm.cache import ResponseCache
from synthloom.llm.embedded import MAX_CHARS_PER_TOKEN, prompt_too_long
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr
    return lines[0]


# -- large CSV cells --------------------------------------------------------------------------


def test_csv_cell_of_200_kib_is_read(tmp_path: Path) -> None:
    """The csv module's default limit is 128 KiB; a fresh process must read a 200 KiB cell."""
    long = "word " * (200 * 1024 // 5)
    responses = tmp_path / "responses.csv"
    responses.write_text(
        "prompt_id,prompt,response_id,response\n"
        f'p1,Say something long,A,"{long}"\n'
        "p1,Say something long,B,short\n"
    )
    rankings = tmp_path / "rankings.jsonl"
    rankings.write_text(json.dumps({"prompt_id": "p1", "annotator": "h", "order": "A > B"}) + "\n")
    out = tmp_path / "dpo.jsonl"
    args = ["--responses", str(responses), "--rankings", str(rankings), "--out", str(out)]
    result = synthloom("pairs", *args)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
    assert chosen == long and rejected == "short"


# -- credentials in the base URL --------------------------------------------------------------


def test_credentials_in_base_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    url = "http://alice:s3cret-pw@127.0.0.1:9/v1"
    result = synthloom(
        "qa", "--topic", "returns", "-n", "1", "--backend", "openai", "--base-url", url,
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "--api-key-env" in line and "user name or password" in line
    assert "s3cret" not in result.stderr + result.stdout
    assert not out.exists()


def test_credentials_in_config_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "synthloom.yaml").write_text(
        "backend: openai\nbase_url: https://bob:hunter2@api.example.com/v1\n"
    )
    result = synthloom("qa", "--topic", "returns", "-n", "1", cwd=tmp_path)
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "synthloom.yaml" in line and "user name or password" in line
    assert "hunter2" not in result.stderr


# -- unwritable output and cache paths ---------------------------------------------------------
# Tests run as root, which ignores permission bits, so the paths are made unwritable for
# everyone: a directory wanted where a regular file already is.


def _qa(stub: StubServer, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return synthloom(
        "qa", "--topic", "returns", "-n", "1", "--backend", "openai",
        "--base-url", stub.base_url, "--out", str(out), env=env,
    )  # fmt: skip


def test_run_directory_under_a_file_is_a_user_error(tmp_path: Path, stub: StubServer) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    result = _qa(stub, blocker / "sub")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert f"{blocker / 'sub'}" in line and f"{blocker} is a file, not a directory" in line
    assert blocker.read_text() == "not a directory\n"


def test_run_directory_that_is_a_file_is_a_user_error(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    out.write_text("x\n")
    result = _qa(stub, out)
    assert result.returncode == 2
    assert f"{out} is a file, not a directory" in _one_error_line(result.stderr)


def test_cache_under_a_file_is_a_user_error(tmp_path: Path, stub: StubServer) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x\n")
    result = _qa(stub, tmp_path / "run", SYNTHLOOM_CACHE=str(blocker / "cache.sqlite"))
    assert result.returncode == 2
    assert f"{blocker} is a file, not a directory" in _one_error_line(result.stderr)
    assert stub.stats.requests == 0  # refused before any call


def test_cache_that_is_not_a_database_is_a_user_error(tmp_path: Path, stub: StubServer) -> None:
    cache = tmp_path / "cache.sqlite"
    cache.write_text("this is not SQLite\n" * 100)
    result = _qa(stub, tmp_path / "run", SYNTHLOOM_CACHE=str(cache))
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert str(cache) in line and "SYNTHLOOM_CACHE" in line


def test_export_file_under_a_file_is_a_user_error(tmp_path: Path) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text(
        "".join(
            json.dumps({"prompt_id": "p", "prompt": "P", "response_id": r, "response": r}) + "\n"
            for r in ("A", "B")
        )
    )
    rankings = tmp_path / "rankings.jsonl"
    rankings.write_text(json.dumps({"prompt_id": "p", "annotator": "h", "order": "A > B"}) + "\n")
    blocker = tmp_path / "file"
    blocker.write_text("x\n")
    out = blocker / "sub" / "dpo.jsonl"
    args = ["--responses", str(responses), "--rankings", str(rankings), "--out", str(out)]
    result = synthloom("pairs", *args)
    assert result.returncode == 2
    assert f"{blocker} is a file, not a directory" in _one_error_line(result.stderr)


def test_a_full_disk_stops_the_writer_with_a_user_error(tmp_path: Path) -> None:
    """ENOSPC (here from /dev/full) in the writer thread: flush() reports it, never hangs."""
    cache = ResponseCache(tmp_path / "cache.sqlite")
    sink = open("/dev/full", "w")  # noqa: SIM115 - closed below

    def write() -> None:
        sink.write("record\n")
        sink.flush()

    try:
        cache.submit(write)
        done: list[BaseException] = []
        waiter = threading.Thread(target=lambda: _catch(cache.flush, done), daemon=True)
        waiter.start()
        waiter.join(10)
        assert not waiter.is_alive(), "flush() hung after the writer failed"
        (error,) = done
        assert isinstance(error, UserError) and "No space left on device" in str(error)
        assert "free some disk space" in str(error)
        with pytest.raises(UserError):  # later writes are refused at once
            cache.put("0" * 64, Completion("x", "stop", 1, 1, 0.0))
    finally:
        with contextlib.suppress(UserError):
            cache.close()
        with contextlib.suppress(OSError):
            sink.close()


def _catch(fn: Callable[[], object], into: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        into.append(exc)


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.EACCES, "check its permissions"),
        (errno.EROFS, "read-only"),
        (errno.ENOSPC, "free some disk space"),
    ],
)
def test_path_error_names_path_reason_and_fix(code: int, fix: str) -> None:
    exc = OSError(code, os.strerror(code), "/data/runs/x")
    assert is_path_error(exc)
    message = str(path_error(exc))
    assert message.startswith("cannot write /data/runs/x: " + os.strerror(code))
    assert fix in message and "\n" not in message


# -- an endpoint that is not an OpenAI-compatible API ------------------------------------------


class WebServer:
    """A web server that is not an API: `routes` maps a path to (status, content type, body);
    other paths get `default`. Counts every request by method and path."""

    def __init__(
        self,
        default: tuple[int, str, str],
        routes: dict[str, tuple[int, str, str]] | None = None,
    ) -> None:
        self.default, self.routes = default, routes or {}
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path}")
        status, ctype, body = self.routes.get(request.path, self.default)
        return web.Response(status=status, body=body.encode(), content_type=ctype)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner

    def __enter__(self) -> WebServer:
        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


PAGE = "<!DOCTYPE html><html><head><title>My app</title></head><body>Welcome</body></html>"
MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]})


def _qa_at(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return synthloom(
        "qa", "--topic", "returns", "-n", "5", "--backend", "openai", "--base-url", url,
        "--max-retries", "6", "--out", str(out), *extra,
    )  # fmt: skip


def test_an_html_page_at_base_url_stops_at_the_first_answer(tmp_path: Path) -> None:
    with WebServer((200, "text/html", PAGE)) as site:
        result = _qa_at(site.url, tmp_path / "run")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "answered with an HTML page, not an OpenAI-compatible JSON response" in line
    assert f"did you mean {site.url}/v1?" in line
    assert site.requests == ["GET /models"]  # one request, no chat call, no retry


def test_html_from_the_chat_endpoint_is_fatal_not_retried(tmp_path: Path) -> None:
    """/models looks fine, but the chat endpoint answers a login page (e.g. a proxy)."""
    routes = {"/v1/models": (200, "application/json", MODELS)}
    with WebServer((200, "text/html", PAGE), routes) as site:
        result = _qa_at(f"{site.url}/v1", tmp_path / "run", "--concurrency", "1")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert f"{site.url}/v1/chat/completions answered with an HTML page" in line
    assert "check --base-url" in line and "did you mean" not in line
    assert site.requests == ["GET /v1/models", "POST /v1/chat/completions"]


def test_a_redirect_is_reported_not_followed(tmp_path: Path) -> None:
    # the OpenAI backend's HTTP client follows no redirects: the base URL is to be fixed
    with WebServer((308, "text/plain", "moved")) as site:
        result = _qa_at(f"{site.url}/v1", tmp_path / "run")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert f"{site.url}/v1/models answered HTTP 308, a redirect" in line
    assert "does not follow redirects" in line and "--base-url" in line
    routes = {"/v1/models": (200, "application/json", MODELS)}
    with WebServer((301, "text/plain", "moved"), routes) as site:
        result = _qa_at(f"{site.url}/v1", tmp_path / "run2", "--concurrency", "1")
    assert result.returncode == 2
    assert f"{site.url}/v1/chat/completions answered HTTP 301" in _one_error_line(result.stderr)
    assert site.requests.count("POST /v1/chat/completions") == 1  # not retried


def test_plain_text_answer_is_fatal_not_retried(tmp_path: Path) -> None:
    routes = {"/v1/models": (200, "application/json", MODELS)}
    with WebServer((200, "text/plain", "Hello from my server"), routes) as site:
        result = _qa_at(f"{site.url}/v1", tmp_path / "run", "--concurrency", "1")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "answered text/plain ('Hello from my server')" in line and "--base-url" in line
    assert site.requests.count("POST /v1/chat/completions") == 1


def test_a_recipe_names_its_key_where_a_command_names_its_option(tmp_path: Path) -> None:
    """The backend says `base_url`; the command line shows --base-url (tests above), a recipe
    its own key, and the Python API the setting."""
    routes = {"/v1/models": (200, "application/json", MODELS)}
    with WebServer((200, "text/html", PAGE), routes) as site:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(
            f"out: {tmp_path / 'out'}\n"
            f"model: {{backend: openai, base_url: '{site.url}/v1', model: m}}\n"
            "steps:\n  - {name: q, task: qa, params: {topic: returns, n: 1}}\n"
        )
        result = synthloom("run", str(recipe))
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]  # after the step's header line
    assert line.startswith("synthloom: error: ") and "Traceback" not in result.stderr
    assert "answered with an HTML page" in line and "check `base_url`" in line
    assert "--base-url" not in result.stderr
    from synthloom.llm.openai_http import OpenAIBackend

    with pytest.raises(UserError, match="^`base_url` must start with http"):
        OpenAIBackend("ftp://example.com/v1", "m")


def test_base_url_without_v1_is_hinted_before_any_call(tmp_path: Path, stub: StubServer) -> None:
    root = stub.base_url.removesuffix("/v1")
    result = _qa_at(root, tmp_path / "run")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert f"{root}/models answered 404 Not Found; did you mean {root}/v1?" in line
    assert stub.stats.requests == 0  # no chat call was sent


def test_404_without_v1_is_hinted_at_the_chat_call(tmp_path: Path) -> None:
    with WebServer((404, "text/plain", "404: Not Found")) as site:
        result = _qa_at(site.url, tmp_path / "run", "--concurrency", "1")
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert f"{site.url}/chat/completions answered 404 Not Found" in line
    assert f"did you mean {site.url}/v1?" in line
    assert site.requests.count("POST /chat/completions") == 1


# -- inputs over the model's context ----------------------------------------------------------


def test_prompt_too_long_is_decided_by_characters() -> None:
    ctx = 2048
    fits = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x" * 4000}]
    assert prompt_too_long(fits, ctx) is None
    at_bound = [{"role": "user", "content": "x" * (ctx * MAX_CHARS_PER_TOKEN)}]
    assert prompt_too_long(at_bound, ctx) is None  # not clearly over: llama.cpp decides
    over = [{"role": "user", "content": [{"type": "text", "text": "x" * (ctx * 8 + 1)}]}]
    message = prompt_too_long(over, ctx)
    assert message is not None and "16,385 characters" in message and "2,048 tokens" in message


@pytest.mark.embedded
def test_a_50_mb_prompt_fails_its_unit_at_once_on_the_embedded_model(tmp_path: Path) -> None:
    """It used to take 35 s and 2.3 GB in llama.cpp before the server rejected it. One slot, so
    the short prompt is answered first; the long one fails alone and the run goes on."""
    big = "The quick brown fox jumps over the lazy dog. " * (50 * 1024 * 1024 // 45)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "Reply with one word: hello."})
        + "\n"
        + json.dumps({"prompt": big})
        + "\n"
    )
    out = tmp_path / "run"
    started = time.monotonic()
    result = synthloom(
        "distill", "--input", str(prompts), "--out", str(out), "--slots", "1",
        "--max-tokens", "64", "--threads", "1",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert len((out / "records.jsonl").read_text().splitlines()) == 1
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["cause"] == "too_long" and failure["unit"].startswith("line2")
    assert "52,428,7" in failure["detail"] and "context of 2,048 tokens" in failure["detail"]


# -- a large job says how large before it starts -----------------------------------------------


def test_a_one_line_document_of_2_mb_announces_its_size(tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("word " * (2_100_000 // 5))  # one line, no paragraph or sentence breaks
    result = synthloom(
        "qa", "--from-docs", str(doc), "-n", "1", "--chunk-size", "200", "--chunk-overlap", "0",
        "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "r"),
    )  # fmt: skip
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and "cannot reach" in lines[-1]  # nothing was called
    assert lines[0].startswith("this job makes at least 10,")
    assert "chunks x 1); Ctrl-C to stop, it can be resumed" in lines[0]


def test_a_small_job_does_not_announce_its_size(tmp_path: Path, stub: StubServer) -> None:
    result = _qa(stub, tmp_path / "run")
    assert result.returncode == 0 and "this job makes" not in result.stderr


# -- ./synthloom.yaml is a config only if it looks like one ------------------------------------

RECIPE = Path(__file__).parent.parent / "recipes" / "qa.yaml"


def test_a_recipe_saved_as_synthloom_yaml_is_not_loaded_as_config(
    tmp_path: Path, stub: StubServer
) -> None:
    (tmp_path / "synthloom.yaml").write_text(RECIPE.read_text())
    result = synthloom(
        "qa", "--topic", "returns", "-n", "1", "--backend", "openai",
        "--base-url", stub.base_url, "--out", "run", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    note = "./synthloom.yaml looks like a recipe (it has steps:); not loaded as config"
    assert result.stderr.count(note) == 1
    assert len((tmp_path / "run" / "records.jsonl").read_text().splitlines()) == 1


def test_a_recipe_named_as_config_explicitly_says_how_to_run_it(tmp_path: Path) -> None:
    result = synthloom("--config", str(RECIPE), "qa", "--topic", "returns", cwd=tmp_path)
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "looks like a recipe (it has steps:)" in line and f"synthloom run {RECIPE}" in line


def test_a_config_saved_as_synthloom_yaml_is_still_loaded(tmp_path: Path, stub: StubServer) -> None:
    (tmp_path / "synthloom.yaml").write_text(f"backend: openai\nbase_url: {stub.base_url}\n")
    result = synthloom("qa", "--topic", "returns", "-n", "1", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not loaded" not in result.stderr and stub.stats.requests == 1


# -- the summary says how the run went -------------------------------------------------------


def _short_question(frustrated_only: bool) -> Callable[[dict[str, Any]], str | None]:
    """A responder whose Q&A pair is rejected (question under 8 characters), for every call or
    only for the "frustrated customer" angle (unit topic:3)."""

    def respond(body: dict[str, Any]) -> str | None:
        text = json.dumps(body["messages"])
        if frustrated_only and "frustrated" not in text:
            return None
        return json.dumps({"question": "Why?", "answer": "Because the policy says so."})

    return respond


def _summary_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())["summary"]


def test_a_run_where_every_unit_failed_is_titled_failed(tmp_path: Path, stub: StubServer) -> None:
    stub.configure(responder=_short_question(frustrated_only=False))
    out = tmp_path / "run"
    result = synthloom(
        "qa", "--topic", "returns", "-n", "2", "--backend", "openai",
        "--base-url", stub.base_url, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1
    reason = "invalid_output: question: String should have at least 8 characters"
    assert result.stderr.lstrip().startswith("synthloom: failed")
    assert "synthloom: complete" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("synthloom: error: every unit failed (invalid_output: 2;")
    assert f"most often {reason});" in last
    summary = _summary_of(out)
    assert summary["outcome"] == "failed" and summary["top_failure"] == reason


def test_a_run_where_some_units_failed_is_titled_partly_failed(
    tmp_path: Path, stub: StubServer
) -> None:
    stub.configure(responder=_short_question(frustrated_only=True))
    out = tmp_path / "run"
    result = synthloom(
        "qa", "--topic", "returns", "-n", "5", "--backend", "openai",
        "--base-url", stub.base_url, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.lstrip().startswith("synthloom: partly failed")
    assert "4 ok, 1 failed" in result.stderr and "most often" in result.stderr
    summary = _summary_of(out)
    assert summary["outcome"] == "partly failed" and summary["units_failed"] == 1
    assert summary["top_failure"].startswith("invalid_output: question: String should")


def test_a_run_without_failures_is_titled_complete(tmp_path: Path, stub: StubServer) -> None:
    result = _qa(stub, tmp_path / "run")
    assert result.returncode == 0
    assert result.stderr.lstrip().startswith("synthloom: complete")
    assert _summary_of(tmp_path / "run")["outcome"] == "complete"


# -- pairs never writes an empty dataset --------------------------------------------------------


def _pairs(
    tmp_path: Path, order: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    responses = tmp_path / "responses.jsonl"
    responses.write_text(
        "".join(
            json.dumps({"prompt_id": "p1", "prompt": "Say hi", "response_id": r, "response": t})
            + "\n"
            for r, t in (("A", "hi"), ("B", "hello there"))
        )
    )
    rankings = tmp_path / "rankings.jsonl"
    rankings.write_text(json.dumps({"prompt_id": "p1", "annotator": "h", "order": order}) + "\n")
    out = tmp_path / "dpo.jsonl"
    args = ["--responses", str(responses), "--rankings", str(rankings), "--out", str(out)]
    return synthloom("pairs", *args, *extra), out


def test_a_one_item_ranking_is_refused_with_the_true_reason(tmp_path: Path) -> None:
    result, out = _pairs(tmp_path, "A")
    assert result.returncode == 2
    assert _one_error_line(result.stderr) == (
        f"synthloom: error: {tmp_path / 'rankings.jsonl'}:1: ranks only 1 response (A) of"
        " prompt 'p1'; a pair needs 2 (it has 2: A, B); nothing written"
    )
    assert not out.exists() and not (tmp_path / "dpo.jsonl.ids.jsonl").exists()


@pytest.mark.parametrize("fmt", ["dpo", "kto"])
def test_an_all_tie_ranking_is_refused(tmp_path: Path, fmt: str) -> None:
    result, out = _pairs(tmp_path, "A = B", "--format", fmt)
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "rankings.jsonl:1: ranks every response of prompt 'p1' equal (A = B)" in line
    assert not out.exists()


# -- raising -n extends a run -------------------------------------------------------------------


def _qa_n(stub: StubServer, n: int, *out: str, cwd: Path | None = None) -> str:
    result = synthloom(
        "qa", "--topic", "returns", "-n", str(n), "--backend", "openai",
        "--base-url", stub.base_url, *out, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stderr


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_raising_n_extends_the_run_and_keeps_the_records(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    _qa_n(stub, 3, "--out", str(out))
    first = _lines(out / "records.jsonl")
    assert len(first) == 3 and stub.stats.requests == 3
    _qa_n(stub, 5, "--out", str(out))
    records = _lines(out / "records.jsonl")
    assert len(records) == 5 and records[:3] == first  # the first three untouched
    assert [json.loads(r)["id"] for r in records[3:]] != [json.loads(r)["id"] for r in first]
    assert stub.stats.requests == 5  # the first three came from the cache
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["extent"] == {"n": 5} and "n" not in manifest["identity"]["config"]

    stderr = _qa_n(stub, 2, "--out", str(out))  # lowering: nothing removed, and it says so
    assert f"{out} already holds the records of n=5; n=2 keeps them all" in stderr
    assert _lines(out / "records.jsonl") == records and stub.stats.requests == 5
    assert json.loads((out / "manifest.json").read_text())["identity"]["extent"] == {"n": 5}


def test_raising_n_finds_the_same_default_directory(tmp_path: Path, stub: StubServer) -> None:
    _qa_n(stub, 2, cwd=tmp_path)
    (run,) = (tmp_path / "runs").iterdir()
    _qa_n(stub, 4, cwd=tmp_path)
    assert list((tmp_path / "runs").iterdir()) == [run]
    assert len(_lines(run / "records.jsonl")) == 4 and stub.stats.requests == 4


def test_a_run_written_before_n_was_growable_still_resumes_and_grows(
    tmp_path: Path, stub: StubServer
) -> None:
    """Older versions put n in the job's config and hash; such a directory is the same job."""
    out = tmp_path / "run"
    _qa_n(stub, 2, "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    identity = manifest["identity"]
    identity["config"]["n"] = identity.pop("extent")["n"]
    blob = json.dumps(identity, sort_keys=True, default=str)
    manifest["identity_hash"] = hashlib.sha256(blob.encode()).hexdigest()[:12]
    (out / "manifest.json").write_text(json.dumps(manifest))
    _qa_n(stub, 3, "--out", str(out))
    assert len(_lines(out / "records.jsonl")) == 3 and stub.stats.requests == 3


def test_changing_the_topic_is_still_a_different_job(tmp_path: Path, stub: StubServer) -> None:
    out = tmp_path / "run"
    _qa_n(stub, 2, "--out", str(out))
    result = synthloom(
        "qa", "--topic", "shipping", "-n", "3", "--backend", "openai",
        "--base-url", stub.base_url, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2
    assert "holds a different job (changed: config.topic)" in _one_error_line(result.stderr)
