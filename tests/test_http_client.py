"""synthloom's HTTP/1.1 client (synthloom.llm.http_client) against real servers: a plain
asyncio server written here where a test needs a server to misbehave in one exact way, and
aiohttp's server (a third-party HTTP implementation) for the ordinary cases and TLS."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from synthloom.llm.http_client import ConnectionFailed, HttpClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


def _answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def _keep_alive(answer: Callable[[bytes], Awaitable[bytes]]) -> Handler:
    """A server side that answers each request on a connection with `answer(its body)`,
    until the client closes the connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                writer.write(await answer(request.split(b"\r\n\r\n", 1)[1]))
                await writer.drain()
        finally:
            writer.close()

    return handler


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


def test_requests_share_at_most_max_connections_and_come_back_whole() -> None:
    # 40 concurrent requests over at most 3 connections, each answered with its own body
    connections = 0
    open_now = peak = 0

    async def echo(body: bytes) -> bytes:
        await asyncio.sleep(0.005)
        return _answer(b"echo:" + body, b"Content-Type: application/json\r\n")

    serve = _keep_alive(echo)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, open_now, peak
        connections += 1
        open_now += 1
        peak = max(peak, open_now)
        try:
            await serve(reader, writer)
        finally:
            open_now -= 1

    async def go() -> list[tuple[int, bytes, str]]:
        server, url = await _serve(handler)
        client = HttpClient(url, {"Authorization": "Bearer k"}, max_connections=3)
        try:
            answers = await asyncio.gather(
                *(client.request("POST", "/v1/chat/completions", b"%d" % i) for i in range(40))
            )
        finally:
            await client.close()
            server.close()
        return [(a.status, a.body, a.headers["content-type"]) for a in answers]

    answers = asyncio.run(go())
    assert answers == [(200, b"echo:%d" % i, "application/json") for i in range(40)]
    assert peak <= 3 and connections <= 3


def test_the_request_carries_its_headers_and_body() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(_answer(b"{}"))
        await writer.drain()
        writer.close()

    async def go() -> None:
        server, url = await _serve(handler)
        client = HttpClient(url, {"Authorization": "Bearer sk-1", "Content-Type": "x/y"})
        await client.request("POST", "/v1/chat/completions", b'{"a":1}')
        await client.close()
        server.close()

    asyncio.run(go())
    head, body = seen[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert {b"Authorization: Bearer sk-1", b"Content-Type: x/y", b"Content-Length: 7"} <= set(lines)
    assert any(line.startswith(b"Host: 127.0.0.1:") for line in lines)
    assert body == b'{"a":1}'


@pytest.mark.parametrize(
    "answer, body",
    [
        # chunked transfer coding
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
         b"abcde"),
        # gzip, though the client asks for none
        (_answer(gzip.compress(b"zipped", mtime=0), b"Content-Encoding: gzip\r\n"), b"zipped"),
        # no length: the body ends with the connection
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", b"until the end"),
        # a 100 Continue before the answer
        (b"HTTP/1.1 100 Continue\r\n\r\n" + _answer(b"after"), b"after"),
    ],
    ids=["chunked", "gzip", "until-close", "100-continue"],
)  # fmt: skip
def test_answers_framed_every_way_http_allows(answer: bytes, body: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def go() -> bytes:
        server, url = await _serve(handler)
        client = HttpClient(url)
        try:
            return (await client.request("GET", "/v1/models")).body
        finally:
            await client.close()
            server.close()

    assert asyncio.run(go()) == body


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error() -> None:
    # servers close keep-alive connections they think idle; the next request on it gets no
    # answer at all and is sent again on a new connection (it never reached the server)
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(reader)
        requests += 1
        writer.write(_answer(b"ok"))  # says nothing of closing: a keep-alive answer
        await writer.drain()
        writer.close()  # ...and closes right after

    async def go() -> list[int]:
        server, url = await _serve(handler)
        client = HttpClient(url, max_connections=1)
        statuses = []
        for _ in range(3):
            statuses.append((await client.request("POST", "/v1/x", b"{}")).status)
            await asyncio.sleep(0.05)  # the close reaches the client while it is idle...
        statuses.append((await client.request("POST", "/v1/x", b"{}")).status)  # ...or not
        await client.close()
        server.close()
        return statuses

    assert asyncio.run(go()) == [200, 200, 200, 200]
    assert requests == 4


@pytest.mark.parametrize(
    "answer, said",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", "in the middle"),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed HTTP answer"),
        (b"", "before answering"),
    ],
    ids=["cut-short", "not-http", "nothing"],
)
def test_no_whole_answer_is_a_connection_failure_saying_what_happened(
    answer: bytes, said: str
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def go() -> str:
        server, url = await _serve(handler)
        client = HttpClient(url)
        try:
            await client.request("POST", "/v1/x", b"{}")
        except ConnectionFailed as exc:
            return str(exc)
        finally:
            await client.close()
            server.close()
        return "answered"

    assert said in asyncio.run(go())


def test_a_refused_connection_raises_os_error() -> None:
    async def go() -> None:
        server, url = await _serve(lambda r, w: asyncio.sleep(0))
        server.close()
        await server.wait_closed()
        client = HttpClient(url)
        try:
            await client.request("GET", "/v1/models")
        finally:
            await client.close()

    with pytest.raises(OSError):
        asyncio.run(go())


def test_a_cancelled_request_gives_back_its_place_and_its_connection_is_not_reused() -> None:
    # a call past its deadline is cancelled mid-answer: that connection is closed (its state
    # is unknown), and the place goes to the next request, which is answered
    async def fast_unless_slow(body: bytes) -> bytes:
        if body == b"slow":
            await asyncio.sleep(5)
        return _answer(b"fast")

    async def go() -> bytes:
        server, url = await _serve(_keep_alive(fast_unless_slow))
        client = HttpClient(url, max_connections=1)
        slow = asyncio.ensure_future(client.request("POST", "/v1/x", b"slow"))
        waiting = asyncio.ensure_future(client.request("POST", "/v1/x", b"next"))
        await asyncio.sleep(0.1)
        slow.cancel()
        answer = await asyncio.wait_for(waiting, 2)
        await client.close()
        server.close()
        return answer.body

    assert asyncio.run(go()) == b"fast"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_with_a_certificate_the_system_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the "system" CA file, for this test

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "body": (await request.text())})

    async def go() -> tuple[int, bytes]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        site = web.TCPSite(runner, "localhost", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = HttpClient(f"https://localhost:{port}/v1")
        try:
            answer = await client.request("POST", "/v1/chat/completions", b"hi")
        finally:
            await client.close()
            await runner.cleanup()
        return answer.status, answer.body

    status, body = asyncio.run(go())
    assert status == 200 and body == b'{"path": "/v1/chat/completions", "body": "hi"}'


def test_a_request_cancelled_while_it_waits_for_a_connection_leaves_the_queue() -> None:
    # one connection: a slow request holds it, two wait; the first waiter is cancelled (its
    # deadline), the second gets the connection when the slow one is answered
    async def echo_slow_late(body: bytes) -> bytes:
        if body == b"slow":
            await asyncio.sleep(0.2)
        return _answer(body)

    async def go() -> tuple[bytes, bytes, bool]:
        server, url = await _serve(_keep_alive(echo_slow_late))
        client = HttpClient(url, max_connections=1)
        slow = asyncio.ensure_future(client.request("POST", "/v1/x", b"slow"))
        await asyncio.sleep(0.02)
        first = asyncio.ensure_future(client.request("POST", "/v1/x", b"first"))
        second = asyncio.ensure_future(client.request("POST", "/v1/x", b"second"))
        await asyncio.sleep(0.02)
        first.cancel()
        answers = await asyncio.wait_for(asyncio.gather(slow, second), 3)
        await client.close()
        server.close()
        return answers[0].body, answers[1].body, first.cancelled()

    assert asyncio.run(go()) == (b"slow", b"second", True)
