"""`review`: pause a recipe until people have reviewed its input, then go on with the
reviewed set.

The step opens the review of its input (the store beside the run, as `synthloom review serve`
does), serves the review app while it waits (unless `serve: false`: then people use
`synthloom review serve`), and polls the store until `share` of the items are reviewed
(`overlap` decisions each). Then it writes the reviewed set to its directory, as
`review-export` does: records.jsonl for a records review, rankings.jsonl for a ranking one.

It never waits for nothing: `share: 0` goes on at once with what is reviewed so far, a store
already complete goes on at once, and `timeout` (seconds) stops the wait with an error (run
the recipe again to wait again: every decision is kept in the store). Ctrl-C stops it too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from synthloom.errors import RunFailed, UserError
from synthloom.review.export import export_review
from synthloom.review.items import RECORDS_FILE
from synthloom.review.server import ReviewServer, ServeParams, open_review
from synthloom.steps.base import Step
from synthloom.terminal import visible


class ReviewParams(ServeParams):
    out: Path | None = Field(
        None,
        description="a directory for the reviewed set (in a recipe: the step's directory)",
        json_schema_extra={"required": True},
    )
    share: float = Field(
        1.0,
        ge=0,
        le=1,
        description="go on once this share of the items is reviewed (0: at once, with what is"
        " reviewed so far)",
    )
    timeout: float | None = Field(
        None, ge=0, description="stop waiting after this many seconds, with an error"
    )
    serve: bool = Field(True, description="serve the review app while waiting")
    poll: float = Field(1.0, gt=0, le=60, description="seconds between looks at the store")


def _say(text: str) -> None:
    print(visible(f"review: {text}"), file=sys.stderr, flush=True)


class Review(Step):
    """Serve the review app until people have reviewed the input (or a share), then export it."""

    name = "review"
    command = False  # its command is `synthloom review wait`
    Params = ReviewParams
    inputs = ("input", "judge", "guidelines")
    outputs = ("out",)
    out_dir = True

    params: ReviewParams

    def written(self) -> list[tuple[str, str, Path]]:
        out = self.params.out
        if out is None:
            return []
        return [("out", "", out)] + [
            ("out", f" ({name})", out / name)
            for name in (RECORDS_FILE, "rankings.jsonl", "lineage.json")
        ]

    def check(self) -> None:
        from synthloom.review.items import detect_mode

        detect_mode(Path(self.params.input))

    def run(self) -> dict[str, Any]:
        p = self.params
        if p.out is None:
            raise UserError("review: give `out`, a directory for the reviewed set")
        store, info = open_review(p)
        started = time.monotonic()
        progress = store.progress()

        def reached() -> bool:
            return progress["items"] > 0 and progress["complete"] >= p.share * progress["items"]

        server: ReviewServer | None = None
        try:
            if not reached():
                _say(
                    f"waiting until {p.share:.0%} of {progress['items']} {info['mode']} items"
                    f" are reviewed ({progress['complete']} so far); store {store.path}"
                )
                if p.serve:
                    server = ReviewServer(store, p).start()
                    _say(f"open {server.url}?token=TOKEN")
                users = store.users()
                _say(
                    f"annotators: {', '.join(users) if users else 'none yet'}; add one with:"
                    f" synthloom review add-user {p.input} --name NAME"
                    + (f" --store {p.store}" if p.store else "")
                )
            last = progress["complete"]
            while not reached():
                if p.timeout is not None and time.monotonic() - started >= p.timeout:
                    raise RunFailed(
                        f"review of {p.input}: {progress['complete']} of {progress['items']}"
                        f" items reviewed after {p.timeout:g} s, {p.share:.0%} needed; the"
                        " decisions are kept: run again to wait again"
                    )
                time.sleep(p.poll)
                progress = store.progress()
                if progress["complete"] != last:
                    last = progress["complete"]
                    _say(f"{last} of {progress['items']} reviewed")
        finally:
            if server is not None:
                server.stop()
        counts = export_review(store, p.out, inputs=[p.input])
        return {
            **{k: v for k, v in counts.items() if k != "out"},
            "reviewed_share": round(progress["share"], 4),
            "waited_s": round(time.monotonic() - started, 1),
        }
