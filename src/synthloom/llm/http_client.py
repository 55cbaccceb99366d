"""A small HTTP/1.1 client for one server: keep-alive connections on the event loop's own
transports, responses parsed by httptools (llhttp, the parser of Node.js and uvicorn).

Why not aiohttp (issue 12): the OpenAI backend makes one kind of request, a POST of a JSON
body to one URL, hundreds a second. aiohttp spends ~420 k CPU instructions on each (its
request and response objects, URL, header and cookie handling, tracing hooks, timers); this
client ~45 k (benchmarks/RESULTS.md), which was the larger part of the gap between a whole
`synthloom qa` and a bare request loop. It also starts ~0.15 s sooner: aiohttp's import builds
two TLS contexts, loading every system CA certificate; here one is built only for https.

What it does: HTTP/1.1 requests with a Content-Length body over at most `max_connections`
connections to the server (a new request waits, first come first served, for a free one);
persistent connections, reused unless the server says `Connection: close`; a request that
fails on a reused connection before any answer arrived (the server closed it while it was
idle) is sent once more on a new connection; https with the system's CA certificates;
responses framed by Content-Length, chunked transfer coding or the end of the connection;
gzip and deflate bodies decompressed (it asks for none). What it does not: proxies (aiohttp,
as it was set up, did not use them either), redirects (a 3xx is returned as it is),
HTTP/2, request bodies streamed from files. Every failure to connect, send or read raises
`ConnectionFailed` (a subclass of OSError), naming what happened.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools


class ConnectionFailed(OSError):
    """The request got no complete answer: the connection failed, closed or was garbled."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header's values joined by ", "
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection: at most one request at a time; its answer is a future."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[Response] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.received = False  # a byte of the current answer arrived
        self.headers_complete = False  # the current answer's headers are all in
        self.keep_alive = False  # the server lets the connection carry another request
        self.complete = False  # the current answer is whole
        self.closed = False
        self.reused = False  # it answered a request before the current one

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the server switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"malformed HTTP answer ({exc})")

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self.answer
        if answer is None or answer.done():
            return
        if self._until_close():
            self._finish()  # an answer framed by the end of the connection is whole now
            return
        if not self.received:
            self._fail("the server closed the connection before answering", exc)
        else:
            self._fail("the connection closed in the middle of the answer", exc)

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = []
        self.headers_complete = False

    def on_headers_complete(self) -> None:
        self.headers_complete = True
        self.keep_alive = self.parser.should_keep_alive()  # (llhttp knows only until the end)

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:  # 100 Continue and the like: skip
            self.received = False
            return
        self._finish()

    # -- the connection's own
    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None and self.answer is None
        self.received = self.complete = False
        answer = self.answer = self.loop.create_future()
        if self.closed or self.transport.is_closing():  # a write would vanish: fail now
            self._fail("the server closed the connection before answering")
        else:
            self.transport.write(data)
        return answer

    @property
    def reusable(self) -> bool:
        return self.complete and not self.closed and self.keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _until_close(self) -> bool:
        """The answer's headers are in and its body has no other end than the connection's."""
        h = self.headers
        return (
            self.headers_complete
            and "content-length" not in h
            and "chunked" not in h.get("transfer-encoding", "")
        )

    def _finish(self) -> None:
        answer, self.answer = self.answer, None
        self.complete = True
        if answer is None or answer.done():
            return
        body = b"".join(self.body)  # (one part: that very bytes object, not a copy)
        coding = self.headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("identity", ""):
            try:
                body = _decompress(body, coding)
            except (ValueError, zlib.error) as exc:
                answer.set_exception(ConnectionFailed(f"cannot decode the answer: {exc}"))
                self.close()
                return
        answer.set_result(Response(self.parser.get_status_code(), self.headers, body))

    def _fail(self, why: str, exc: BaseException | None = None) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            detail = f"{why}: {exc}" if exc else why
            answer.set_exception(ConnectionFailed(detail))
        self.close()


def _decompress(body: bytes, coding: str) -> bytes:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:  # raw deflate, as some servers send it
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise ValueError(f"unsupported content-encoding {coding!r}")


class HttpClient:
    """Requests to the server of `base_url` (http or https), with `headers` on each."""

    def __init__(
        self, base_url: str, headers: dict[str, str] | None = None, max_connections: int = 256
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = url.scheme == "https"
        self.host = url.hostname
        default_port = 443 if self.tls else 80
        self.port = url.port or default_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if self.port == default_port else f"{host}:{self.port}"
        fixed = {
            "Host": authority,
            "User-Agent": "synthloom",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._heads: dict[tuple[str, str], bytes] = {}
        self.max_connections = max_connections
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or opening
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._addresses: list[tuple[Any, ...]] | None = None
        self._ssl: Any = None
        self._closed = False

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        """Send the request; return the whole answer (any status). Raises ConnectionFailed
        (or another OSError) when there is none."""
        data = self._head(method, path, len(body) if body is not None else None)
        if body:
            data += body
        conn = await self._acquire()
        try:
            return await self._exchange(conn, data)
        except ConnectionFailed:
            if not (conn.reused and not conn.received):
                raise
        # The server had closed the idle connection: the request never reached it.
        conn = await self._acquire(fresh=True)
        return await self._exchange(conn, data)

    async def _exchange(self, conn: _Connection, data: bytes) -> Response:
        reusable = False
        try:
            response = await conn.send(data)
            reusable = conn.reusable
            return response
        finally:
            conn.answer = None
            self._release(conn, reusable)

    def _head(self, method: str, path: str, length: int | None) -> bytes:
        head = self._heads.get((method, path))
        if head is None:
            head = self._heads[(method, path)] = (
                f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + self._fixed
            )
        if length is None:
            return head + b"\r\n"
        return head + b"Content-Length: %d\r\n\r\n" % length

    # -- the pool
    async def _acquire(self, fresh: bool = False) -> _Connection:
        if self._closed:
            raise ConnectionFailed("the client is closed")
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        if fresh and self._idle and self._open >= self.max_connections:
            self._idle.pop(0).close()  # the oldest idle one makes room for a new one
            self._open -= 1
        if self._open >= self.max_connections:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.cancelled() or waiter.exception() is not None:
                    if waiter in self._waiting:
                        self._waiting.remove(waiter)
                elif waiter.result() is not None:  # cancelled just as a connection came
                    self._release(waiter.result(), True)  # type: ignore[arg-type]
                else:  # ...or a place for a new one: it goes to the next waiter
                    self._open -= 1
                    self._wake()
                raise
            if handed is not None:
                return handed
            # a place for a new connection was handed over (already counted in _open)
        else:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed:
            conn.reused = True
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            self._idle.append(conn)
            return
        conn.close()
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        """A place for a new connection is free: the first waiter opens one."""
        while self._waiting and self._open < self.max_connections:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._addresses is None:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._addresses = [info[4] for info in infos]
        if self.tls and self._ssl is None:
            import ssl

            self._ssl = ssl.create_default_context()
        failure: OSError | None = None
        for address in self._addresses:
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host=address[0],
                    port=address[1],
                    ssl=self._ssl,
                    server_hostname=self.host if self.tls else None,
                )
                return conn
            except OSError as exc:
                failure = exc
        raise failure or ConnectionFailed(f"no address for {self.host}")

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionFailed("the client is closed"))
