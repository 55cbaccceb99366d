"""Opening a review (items into the store) and serving it with uvicorn.

`ServeParams` holds every choice of `synthloom review serve`, and of the recipe step `review`
that serves while it waits. `open_review` reads the input (and a judge) into the store;
`ReviewServer` runs the app in a thread and knows its address (port 0 picks a free one).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloom.errors import UserError
from synthloom.review.items import (
    apply_judge,
    default_guidelines,
    default_store,
    load_items,
    load_judge,
)
from synthloom.review.store import ReviewStore

GUIDELINES_LIMIT = 200_000
NAME_CHARS = "A-Za-z0-9_.-"


class ServeParams(BaseModel):
    """What is reviewed, and how the review app hands it out."""

    model_config = ConfigDict(extra="forbid")
    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file to review",
        json_schema_extra={"argument": True, "metavar": "RUN_OR_FILE"},
    )
    store: Path | None = Field(
        None,
        description="the review's SQLite store [default: review.sqlite in the run directory,"
        " or FILE.review.sqlite beside a file]",
    )
    mode: Literal["auto", "records", "ranking"] = Field(
        "auto",
        description="records: approve/reject/edit each record; ranking: rank each prompt's"
        " responses; auto: ranking when every record is a response to a prompt",
    )
    judge: Path | None = Field(
        None, description="a judge run (or its rankings.jsonl) to order the queue by"
    )
    order: Literal["file", "judge-high", "judge-low", "uncertainty", "disagreement"] = Field(
        "file",
        description="queue order: file, judge-high / judge-low (judge score), uncertainty"
        " (judge ties and position-swapped disagreements first), disagreement (judge vs people)",
    )
    guidelines: Path | None = Field(
        None, description="a text/markdown file shown beside each record [default: guidelines.md"
        " in the run directory, if any]",
    )  # fmt: skip
    overlap: int = Field(1, ge=1, le=50, description="annotators per item")
    claim_minutes: float = Field(
        30,
        gt=0,
        le=7 * 24 * 60,
        description="how long an item stays with the annotator it was handed to",
    )
    host: str = Field("127.0.0.1", description="address to listen on (keep it local)")
    port: int = Field(8765, ge=0, le=65535, description="port to listen on (0: any free port)")
    max_body_kb: int = Field(1000, ge=1, le=100_000, description="largest request body accepted")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or "/" in v:
            raise ValueError(f"not a host address: {v!r}")
        return v


def store_path(params: Any) -> Path:
    return Path(params.store) if params.store else default_store(Path(params.input))


def open_review(params: ServeParams) -> tuple[ReviewStore, dict[str, Any]]:
    """Read the input (and the judge) into the store; returns it and what was read."""
    source = Path(params.input)
    if not source.exists():
        raise UserError(f"{source}: not found; give a run directory or a records .jsonl file")
    mode, items = load_items(source, params.mode)
    matched = 0
    if params.judge is not None:
        matched = apply_judge(items, load_judge(Path(params.judge)), source)
        if not matched:
            raise UserError(
                f"{params.judge}: the judge ranked none of the items of {source};"
                " give the judge run made from this input"
            )
    if params.order != "file" and params.judge is None:
        raise UserError(f"--order {params.order} needs --judge (a judge run of this input)")
    store = ReviewStore(store_path(params))
    new = store.import_items(mode, items, str(source))
    store.set_meta(overlap=params.overlap, claim_seconds=params.claim_minutes * 60)
    return store, {"mode": mode, "items": len(items), "new": new, "judged": matched}


def guidelines_text(params: ServeParams) -> str:
    path = params.guidelines or default_guidelines(Path(params.input))
    if path is None:
        return ""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: guidelines file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: guidelines are not UTF-8 text") from None
    if len(text) > GUIDELINES_LIMIT:
        raise UserError(f"{path}: guidelines over {GUIDELINES_LIMIT} characters; shorten them")
    return text


class ReviewServer:
    """The app served by uvicorn in a background thread: `start()`, `url`, `stop()`."""

    def __init__(self, store: ReviewStore, params: ServeParams) -> None:
        try:
            import uvicorn

            from synthloom.review.app import create_app
        except ImportError as exc:
            raise UserError(
                f"the review app needs {exc.name}: pip install 'synthloom[review]'"
            ) from None

        app = create_app(
            store,
            guidelines=guidelines_text(params),
            order=params.order,
            max_body=params.max_body_kb * 1000,
            # bound to every address: people reach it by names we cannot know (tokens still
            # guard it); bound to one address: only that name and localhost (no DNS rebinding)
            hosts=("*",) if params.host in ("0.0.0.0", "::") else (params.host,),
        )
        self.host = params.host
        self.config = uvicorn.Config(
            app,
            host=params.host,
            port=params.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.config)
        self.thread: threading.Thread | None = None
        self.port = params.port

    def _check_port(self) -> None:
        """Fail with one line, before uvicorn logs its own, when the port is taken."""
        import socket

        if self.config.port == 0:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.config.port))
            except OSError as exc:
                raise UserError(
                    f"review server cannot listen on {self.host}:{self.config.port}"
                    f" ({exc.strerror}); choose another --port"
                ) from None

    def start(self, timeout: float = 15.0) -> ReviewServer:
        self._check_port()
        self.thread = threading.Thread(target=self.server.run, name="review-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise UserError(
                    f"review server could not listen on {self.host}:{self.config.port}"
                    " (in use? choose another --port)"
                )
            if time.monotonic() > deadline:
                raise UserError(f"review server did not start within {timeout:.0f} s")
            time.sleep(0.02)
        sockets = [s for server in self.server.servers for s in server.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it)."""
        assert self.thread is not None
        try:
            while self.thread.is_alive():
                self.thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
