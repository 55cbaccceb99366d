"""The review web app (Starlette): one page, its static modules, and a JSON API.

Security, for every request (`Guard`, a plain ASGI middleware in front of everything):
- the Host header must name this machine (no DNS rebinding);
- a token is required: `Authorization: Bearer TOKEN`, or the cookie set when a page is first
  opened with `?token=TOKEN` (HttpOnly, SameSite=Strict; the page then reloads without it);
  otherwise 401. Tokens are looked up by their SHA-256; the store keeps no token;
- a state-changing request (anything but GET/HEAD) that relies on the cookie must carry the
  page's CSRF token in `X-CSRF-Token`, and an `Origin` header, when sent, must be this server;
- request bodies over `max_body` bytes are refused (413) before they are read whole;
- every response carries a strict Content-Security-Policy (scripts and styles only from this
  server, no inline script, no framing), nosniff, no referrer and no caching.
The page builds its DOM with textContent only, so record text is never markup.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from synthloom.review.store import (
    ORDERS,
    STATUSES,
    Conflict,
    Decision,
    ReviewStore,
    item_status,
)
from synthloom.validation import one_line

COOKIE = "synthloom_review"
MAX_BODY = 1_000_000
MAX_TEXT = 200_000
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
UNAUTHORIZED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>synthloom review: token needed</title></head><body>
<h1>A token is needed</h1>
<p>Open the link you were given (it ends in <code>?token=...</code>), or ask the person who
runs the review for one: <code>synthloom review add-user RUN --name YOUR_NAME</code>.</p>
</body></html>"""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class DecisionIn(BaseModel):
    """A save from the page: a draft, a skip or a decision, based on `version`."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=0, le=10**9)
    action: Literal["draft", "approve", "reject", "skip", "rank"]
    edits: dict[str, str] = Field(default_factory=dict, max_length=100)
    reason: str = Field("", max_length=2000)
    ranks: dict[str, int] = Field(default_factory=dict, max_length=100)
    comment: str = Field("", max_length=4000)


class Guard:
    """Host check, token auth, CSRF, body limit and security headers (see the module doc)."""

    def __init__(self, app: ASGIApp, store: ReviewStore, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.store = store
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in SECURITY_HEADERS}
                ]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        request = Request(scope)
        host = request.headers.get("host", "")
        allowed = scope.get("state", {}).get("hosts", ())
        if "*" not in allowed and _host_name(host) not in (*LOCAL_HOSTS, *allowed):
            await _plain(400, "unknown Host header")(scope, receive, send_secure)
            return
        token, from_cookie = _token(request)
        user = self.store.user_for(token) if token else None
        api = scope["path"].startswith("/api/")
        if user is None:
            if api or scope["method"] not in ("GET", "HEAD"):
                response: Response = JSONResponse(
                    {"error": "a valid token is required (Authorization: Bearer TOKEN)"}, 401
                )
            else:
                response = HTMLResponse(UNAUTHORIZED_PAGE, 401)
            response.headers["www-authenticate"] = "Bearer"
            await response(scope, receive, send_secure)
            return
        if "token" in request.query_params and not api and scope["method"] == "GET":
            # first visit with ?token=: keep it in a cookie and take it out of the address bar
            rest = [
                (k, v)
                for k, v in parse_qsl(scope.get("query_string", b"").decode())
                if k != "token"
            ]
            target = scope["path"] + ("?" + urlencode(rest) if rest else "")
            response = Response(status_code=303, headers={"location": target})
            response.set_cookie(
                COOKIE, token, max_age=30 * 86400, httponly=True, samesite="strict", path="/"
            )
            await response(scope, receive, send_secure)
            return
        if scope["method"] not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != host:
                await _json(403, "cross-origin request refused")(scope, receive, send_secure)
                return
            if from_cookie and request.headers.get("x-csrf-token") != self.store.csrf_for(user):
                await _json(403, "missing or wrong X-CSRF-Token")(scope, receive, send_secure)
                return
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await _json(413, f"request body over {self.max_body} bytes")(
                    scope, receive, send_secure
                )
                return
        scope.setdefault("state", {})["user"] = user
        received = 0
        limit = self.max_body

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_secure(message)

        try:
            await self.app(scope, limited_receive, send_tracked)
        except BodyTooLarge as exc:
            if not started:
                await _json(413, str(exc))(scope, receive, send_secure)


class BodyTooLarge(Exception):
    pass


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token(request: Request) -> tuple[str | None, bool]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if (
        request.method == "GET"
        and "token" in request.query_params
        and not request.url.path.startswith("/api/")
    ):
        return request.query_params["token"], False
    cookie = SimpleCookie()
    try:
        cookie.load(request.headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no token
        return None, False
    morsel = cookie.get(COOKIE)
    return (morsel.value, True) if morsel else (None, False)


def _json(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status)


def _plain(status: int, message: str) -> Response:
    return Response(message, status, media_type="text/plain")


def _static_dir() -> str:
    return str(resources.files("synthloom.review") / "static")


def _page(csrf: str) -> str:
    html = (resources.files("synthloom.review") / "static" / "index.html").read_text("utf-8")
    return html.replace("{{csrf}}", csrf)  # hex only: nothing to escape


# -- views ----------------------------------------------------------------------------------


def shown_order(item_id: str, annotator: str, ids: list[str]) -> list[str]:
    """The order one annotator sees a prompt's responses in: random, but the same every time
    for that annotator and prompt (and recorded with the decision)."""
    order = list(ids)
    random.Random(f"{annotator}\x00{item_id}").shuffle(order)
    return order


def item_view(
    store: ReviewStore, item: dict[str, Any], user: str, held_by: str | None = None
) -> dict[str, Any]:
    decisions = store.decisions(item["id"])
    mine = next((d for d in decisions if d.annotator == user), None)
    overlap = store.overlap
    view: dict[str, Any] = {
        "id": item["id"],
        "kind": item["kind"],
        "task": item["task"],
        "label": item["label"],
        "seq": item["seq"],
        "status": item_status(decisions, overlap, held_by is None),
        "decision": mine.public() if mine else None,
        "version": mine.version if mine else 0,
        "others_done": sum(d.state == "done" and d.annotator != user for d in decisions),
        "held_by": held_by,
        "judge": {
            "score": item["score"],
            "uncertainty": item["uncertainty"],
            "order": item["judge_order"],
        }
        if item["judge_order"] is not None
        else None,
    }
    payload = item["payload"]
    if item["kind"] == "record":
        record = payload["record"]
        view["record"] = {k: record.get(k) for k in ("id", "task", "origin", "status", "notes")} | {
            "model": (record.get("provenance") or {}).get("model")
        }
        view["main"] = payload.get("main")
        view["fields"] = _fields(record.get("data") or {}, payload.get("main"))
    else:
        ids = list(payload["responses"])
        shown = (mine.body.get("shown") if mine else None) or shown_order(item["id"], user, ids)
        view["prompt"] = payload["prompt"]
        view["responses"] = [
            {"number": i + 1, "id": rid, "text": payload["responses"][rid]}
            for i, rid in enumerate(shown)
        ]
    return view


def _fields(data: dict[str, Any], main: str | None) -> list[dict[str, Any]]:
    """The record's fields for the page: text fields (editable), others as JSON; a field
    holding the same text as an earlier one is shown once (`same_as`)."""
    fields: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    names = ([main] if main in data else []) + [k for k in data if k != main]
    for name in names:
        value = data[name]
        if isinstance(value, str):
            if value in seen and value.strip():
                for f in fields:
                    if f["name"] == seen[value]:
                        f.setdefault("same_as", []).append(name)
                continue
            seen[value] = name
            fields.append({"name": name, "text": value, "editable": True})
        else:
            fields.append(
                {"name": name, "text": json.dumps(value, ensure_ascii=False), "editable": False}
            )
    return fields


def _body_for(item: dict[str, Any], d: DecisionIn, user: str, store: ReviewStore) -> dict[str, Any]:
    """Check a save against its item; the body the store keeps. ValueError: 422."""
    payload = item["payload"]
    if item["kind"] == "record":
        if d.action == "rank" or d.ranks:
            raise ValueError("this item is a record: approve, reject, skip or save a draft")
        data = payload["record"].get("data") or {}
        edits: dict[str, str] = {}
        for name, text in d.edits.items():
            if not isinstance(data.get(name), str):
                raise ValueError(f"field {name!r} is not a text field of this record")
            if len(text) > MAX_TEXT:
                raise ValueError(f"field {name!r}: edited text over {MAX_TEXT} characters")
            if text != data[name]:
                edits[name] = text
        if d.action == "reject" and not d.reason.strip():
            raise ValueError("a rejection needs a reason")
        return {"edits": edits, "reason": d.reason}
    if d.action in ("approve", "reject") or d.edits:
        raise ValueError("this item is a prompt to rank: rank, skip or save a draft")
    ids = list(payload["responses"])
    unknown = sorted(set(d.ranks) - set(ids))
    if unknown:
        raise ValueError(f"unknown response id(s) {unknown}")
    bad = sorted(r for r in d.ranks.values() if not 1 <= r <= len(ids))
    if bad:
        raise ValueError(f"ranks must be 1..{len(ids)}, got {bad}")
    mine = store.decision(item["id"], user)
    body: dict[str, Any] = {
        "ranks": dict(d.ranks),
        "comment": d.comment,
        "shown": (mine.body.get("shown") if mine else None) or shown_order(item["id"], user, ids),
    }
    if d.action == "rank":
        missing = [rid for rid in ids if rid not in d.ranks]
        if missing:
            raise ValueError(f"rank every response before submitting (missing {missing})")
        body["order"] = order_from_ranks(d.ranks)
    return body


def order_from_ranks(ranks: dict[str, int]) -> str:
    """{"A": 2, "B": 1, "C": 2, "D": 1} -> "B = D > A = C" (rank numbers may have gaps)."""
    tiers: dict[int, list[str]] = {}
    for rid, rank in ranks.items():
        tiers.setdefault(rank, []).append(rid)
    return " > ".join(" = ".join(sorted(tiers[r])) for r in sorted(tiers))


def create_app(
    store: ReviewStore,
    *,
    guidelines: str = "",
    order: str = "file",
    max_body: int = MAX_BODY,
    hosts: tuple[str, ...] = (),
) -> ASGIApp:
    """The ASGI app over `store` (wrapped in `Guard`)."""

    def user(request: Request) -> str:
        return str(request.scope["state"]["user"])

    def index(request: Request) -> Response:
        return HTMLResponse(_page(store.csrf_for(user(request))))

    def session(request: Request) -> Response:
        items = store.items(payload=False)
        meta = store.meta()
        return JSONResponse(
            {
                "user": user(request),
                "mode": meta.get("mode"),
                "source": meta.get("source"),
                "overlap": int(meta.get("overlap", "1")),
                "claim_seconds": float(meta.get("claim_seconds", "1800")),
                "guidelines": guidelines,
                "order": order,
                "orders": list(ORDERS),
                "statuses": list(STATUSES),
                "tasks": sorted({i["task"] for i in items}),
                "labels": sorted({i["label"] for i in items if i["label"] is not None}),
                "annotators": store.users(),
                "has_judge": any(i["judge_order"] is not None for i in items),
            }
        )

    def progress(request: Request) -> Response:
        out = store.progress(user(request))
        if store.mode == "ranking":
            out["agreement"] = store.agreement()
        return JSONResponse(out)

    def _order(request: Request) -> str:
        chosen = request.query_params.get("order") or order
        if chosen not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        return chosen

    def next_item(request: Request) -> Response:
        try:
            chosen = _order(request)
        except ValueError as exc:
            return _json(422, str(exc))
        item_id = store.next_item(
            user(request),
            order=chosen,  # type: ignore[arg-type]
            task=request.query_params.get("task") or None,
            label=request.query_params.get("label") or None,
        )
        if item_id is None:
            return JSONResponse({"item": None, "progress": store.progress(user(request))})
        item = store.item(item_id)
        assert item is not None
        return JSONResponse(
            {
                "item": item_view(store, item, user(request)),
                "progress": store.progress(user(request)),
            }
        )

    def get_item(request: Request) -> Response:
        item = store.item(request.path_params["item_id"])
        if item is None:
            return _json(404, "no such item")
        held_by = store.claim(item["id"], user(request))
        return JSONResponse({"item": item_view(store, item, user(request), held_by)})

    async def save(request: Request) -> Response:
        item = store.item(request.path_params["item_id"])
        if item is None:
            return _json(404, "no such item")
        try:
            raw = await request.body()
        except BodyTooLarge as exc:
            return _json(413, str(exc))
        try:
            d = DecisionIn.model_validate_json(raw)
            body = _body_for(item, d, user(request), store)
        except ValidationError as exc:
            return _json(422, one_line(exc))
        except ValueError as exc:
            return _json(422, str(exc))
        from starlette.concurrency import run_in_threadpool

        try:
            saved: Decision = await run_in_threadpool(
                store.save,
                item["id"],
                user(request),
                base_version=d.version,
                action=d.action,
                body=body,
            )
        except Conflict as exc:
            return _json(
                409,
                str(exc),
                current=exc.current.public() if exc.current else None,
                version=exc.current.version if exc.current else 0,
            )
        decisions = store.decisions(item["id"])
        return JSONResponse(
            {
                "decision": saved.public(),
                "version": saved.version,
                "status": item_status(decisions, store.overlap, False),
                "saved_at": time.time(),
            }
        )

    def list_items(request: Request) -> Response:
        q = request.query_params
        try:
            chosen = _order(request)
            offset = max(0, int(q.get("offset", "0")))
            limit = min(500, max(1, int(q.get("limit", "100"))))
        except ValueError as exc:
            return _json(422, str(exc))
        statuses = store.statuses()
        items = store.items(payload=False)
        agreement = store.agreement()["per_prompt"] if store.mode == "ranking" else {}
        rows = []
        for item in _sorted(items, chosen):
            status, annotators = statuses[item["id"]]
            if q.get("status") and status != q["status"]:
                continue
            if q.get("task") and item["task"] != q["task"]:
                continue
            if q.get("label") and item["label"] != q["label"]:
                continue
            if q.get("annotator") and q["annotator"] not in annotators:
                continue
            rows.append(
                {
                    "id": item["id"],
                    "seq": item["seq"],
                    "task": item["task"],
                    "label": item["label"],
                    "status": status,
                    "annotators": annotators,
                    "preview": item["preview"],
                    "score": item["score"],
                    "uncertainty": item["uncertainty"],
                    "disagreement": item["disagreement"],
                    "kendall_tau": agreement.get(item["id"]),
                }
            )
        return JSONResponse({"total": len(rows), "rows": rows[offset : offset + limit]})

    def agreement(request: Request) -> Response:
        return JSONResponse(store.agreement())

    routes = [
        Route("/", index),
        Route("/api/session", session),
        Route("/api/progress", progress),
        Route("/api/next", next_item),
        Route("/api/items", list_items),
        Route("/api/items/{item_id:path}", get_item),
        Route("/api/decisions/{item_id:path}", save, methods=["PUT"]),
        Route("/api/agreement", agreement),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=_static_dir()), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(404, "not found")

    async def server_error(request: Request, exc: Exception) -> Response:
        return _json(500, "internal error")

    app = Starlette(
        routes=routes, exception_handlers={404: not_found, 405: not_found, 500: server_error}
    )
    guarded = Guard(app, store, max_body)

    async def with_hosts(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["hosts"] = hosts
        await guarded(scope, receive, send)

    return with_hosts


def _sorted(items: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        s, u, g = item["score"], item["uncertainty"], item["disagreement"]
        if order == "judge-high":
            return (s is None, -(s or 0), item["seq"])
        if order == "judge-low":
            return (s is None, s or 0, item["seq"])
        if order == "uncertainty":
            return (u is None, -(u or 0), item["seq"])
        if order == "disagreement":
            return (g is None, -(g or 0), u is None, -(u or 0), item["seq"])
        return (item["seq"],)

    return sorted(items, key=key)
