"""The reviewed set, from a review store.

records review -> `<out>/records.jsonl`: each record people approved (a majority of its
    decisions, once `overlap` people decided it), in input order, with their edits applied
    and `notes.review` saying who decided what and when; an edited field keeps its original
    text beside it (`notes.review.edits.FIELD.original`), with who edited it and when. A field
    that held the same text as an edited one (a summary's `summary` and `response`) follows
    the edit. Rejected, undecided and partly decided records are counted, not written.
ranking review -> `<out>/rankings.jsonl`: one line per prompt and annotator, in the format
    `synthloom pairs` reads (`prompt_id`, `annotator`, `annotator_kind: human`, `order`), with
    the comment, the order the responses were shown in and the time as extra keys.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.outputs import check_not_input, write_atomic, write_lineage
from synthloom.preference.types import RANKINGS_FILE
from synthloom.review.items import RECORDS_FILE
from synthloom.review.store import Decision, ReviewStore


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def export_target(store: ReviewStore, out: Path) -> Path:
    mode = store.mode
    if mode is None:
        raise UserError(f"{store.path}: the review has no items yet; serve it first")
    return out / (RANKINGS_FILE if mode == "ranking" else RECORDS_FILE)


def export_review(
    store: ReviewStore, out: Path, *, inputs: list[Path] | None = None
) -> dict[str, Any]:
    """Write the reviewed set to `out` (a directory); returns the counts."""
    target = export_target(store, out)
    for path in [store.path, *(inputs or [])]:
        check_not_input(out, [path], what="review export out")
        check_not_input(target, [path], what="review export out")
    overlap = store.overlap
    by_item: dict[str, list[Decision]] = {}
    for d in store.decisions():
        if d.state == "done":
            by_item.setdefault(d.item_id, []).append(d)
    counts: Counter[str] = Counter()
    lines: list[str] = []
    if store.mode == "ranking":
        for item in store.items(payload=False):
            done = sorted(by_item.get(item["id"], []), key=lambda d: d.annotator)
            counts["prompts"] += 1
            counts["prompts_complete" if len(done) >= overlap else "prompts_incomplete"] += 1
            for d in done:
                row: dict[str, Any] = {
                    "prompt_id": item["id"],
                    "annotator": d.annotator,
                    "annotator_kind": "human",
                    "order": d.body["order"],
                    "shown": d.body.get("shown"),
                    "reviewed_at": iso(d.updated_at),
                }
                if d.body.get("comment"):
                    row["comment"] = d.body["comment"]
                lines.append(json.dumps(row, ensure_ascii=True))
                counts["rankings_out"] += 1
    else:
        for item in store.items():
            counts["records_in"] += 1
            done = by_item.get(item["id"], [])
            if not done:
                counts["undecided"] += 1
                continue
            if len(done) < overlap:
                counts["partly_decided"] += 1
                continue
            approvals = [d for d in done if d.action == "approve"]
            if len(approvals) * 2 <= len(done):
                counts["rejected"] += 1
                continue
            record = reviewed_record(item["payload"]["record"], done)
            counts["edited" if record["notes"]["review"].get("edits") else "approved"] += 1
            lines.append(json.dumps(record, ensure_ascii=True, separators=(",", ":")))
        counts["records_out"] = len(lines)
    write_atomic(target, "".join(line + "\n" for line in lines))
    write_lineage(out, "review-export", inputs or [store.path], dict(counts))  # for dataset cards
    return {**counts, "out": str(target)}


def reviewed_record(record: dict[str, Any], done: list[Decision]) -> dict[str, Any]:
    """The record as people approved it: edits applied, the originals and decisions kept."""
    out = copy.deepcopy(record)
    data: dict[str, Any] = out["data"]
    original = record["data"]
    # the latest edit of each field among the approving decisions
    latest: dict[str, tuple[float, str, str]] = {}
    for d in done:
        if d.action != "approve":
            continue
        for name, edit in (d.body.get("edits") or {}).items():
            at = float(edit["at"])
            if name not in latest or at > latest[name][0]:
                latest[name] = (at, edit["text"], d.annotator)
    edits: dict[str, Any] = {}
    for name, (at, text, who) in latest.items():
        data[name] = text
        follows = [
            other
            for other, value in original.items()
            if other != name and other not in latest and value == original[name]
        ]
        for other in follows:
            data[other] = text
        edits[name] = {
            "original": original[name],
            "edited_by": who,
            "edited_at": iso(at),
            **({"also": follows} if follows else {}),
        }
    review: dict[str, Any] = {
        "decision": "approved",
        "decisions": [
            {
                "annotator": d.annotator,
                "action": d.action,
                "at": iso(d.updated_at),
                **({"reason": d.body["reason"]} if d.body.get("reason") else {}),
            }
            for d in sorted(done, key=lambda d: d.updated_at)
        ],
    }
    if edits:
        review["edits"] = edits
    if out.get("status", "ok") != "ok":
        review["status_before"] = out.get("status")
    out["status"] = "ok"  # people looked at it and kept it
    out["notes"] = {**(out.get("notes") or {}), "review": review}
    return out
