"""What people review: items read from a run (or a records file), and judge signals for them.

Two kinds of review, chosen from the input (`mode="auto"`) or by the caller:
- `records`: one item per record (approve, reject with a reason, edit in place, skip);
- `ranking`: one item per prompt with its K responses (a `responses` run, or any input that
  `synthloom pairs` reads as responses), ranked best first with ties.

Judge signals (from a `judge` run or its rankings.jsonl) let the queue put first what pays:
`score` (the judge's score of a record's response, or the mean over a prompt's responses) and
`uncertainty` (the share of the judge's pairs that are ties, a position-swapped disagreement
counting twice). They are optional: without a judge the queue is in file order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from synthloom.errors import UserError
from synthloom.preference.rankings import Ranking
from synthloom.preference.store import load_rankings, load_responses
from synthloom.preference.types import RANKINGS_FILE, PromptResponses
from synthloom.runs import read_records

Mode = Literal["auto", "records", "ranking"]
RECORDS_FILE = "records.jsonl"
STORE_FILE = "review.sqlite"
GUIDELINES_FILE = "guidelines.md"
# the field a reviewer edits first (`e`): the answer the record teaches, when it has one
MAIN_FIELDS = ("summary", "response", "answer", "output", "completion", "text")
RESPONSE_KEYS = ("prompt", "response")


@dataclass
class Item:
    """One unit of review. `payload` is what the page shows (a record, or a prompt and its
    responses); `score` and `uncertainty` come from a judge when one is given."""

    id: str
    kind: Literal["record", "prompt"]
    task: str
    label: str | None
    payload: dict[str, Any]
    score: float | None = None
    uncertainty: float | None = None
    judge_order: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preview(self) -> str:
        """One line of the item's text for the list view."""
        if self.kind == "prompt":
            text = str(self.payload["prompt"])
        else:
            data = self.payload["record"].get("data") or {}
            main = self.payload.get("main")
            text = str(data.get(main)) if main else json.dumps(data, ensure_ascii=False)
        text = " ".join(text.split())
        return text[:160] + ("…" if len(text) > 160 else "")


def records_path(source: Path) -> Path:
    """The records file of a run directory, or the file itself."""
    return source / RECORDS_FILE if source.is_dir() else source


def default_store(source: Path) -> Path:
    """The review store beside the run: `<run>/review.sqlite` for a run directory or its
    records.jsonl, `<file>.review.sqlite` beside any other file."""
    if source.is_dir():
        return source / STORE_FILE
    if source.name == RECORDS_FILE:
        return source.parent / STORE_FILE
    return source.with_name(source.name + ".review.sqlite")


def default_guidelines(source: Path) -> Path | None:
    """`guidelines.md` in the run directory (or beside the file), if there is one."""
    folder = source if source.is_dir() else source.parent
    path = folder / GUIDELINES_FILE
    return path if path.is_file() else None


def _is_response_row(data: Mapping[str, Any]) -> bool:
    return all(isinstance(data.get(k), str) for k in RESPONSE_KEYS) and (
        "prompt_id" in data or "group" in data or "response_id" in data
    )


def detect_mode(source: Path) -> Literal["records", "ranking"]:
    """`ranking` for a `responses` run (or a plain file of prompt_id/prompt/response_id/
    response rows) where some prompt has two or more responses; `records` otherwise (a
    summarize run too: its candidates are filtered and edited; `--mode ranking` ranks them)."""
    path = records_path(source)
    if not path.exists():
        raise UserError(f"{source}: not found; give a run directory or a records .jsonl file")
    groups: dict[str, int] = {}
    for _, row in _rows(path):
        is_record = isinstance(row.get("data"), dict) and "id" in row and "task" in row
        if is_record and row.get("task") != "responses":
            return "records"
        data = row["data"] if is_record else row
        if not _is_response_row(data):
            return "records"
        key = str(data.get("prompt_id") or data.get("group") or data["prompt"])
        groups[key] = groups.get(key, 0) + 1
    return "ranking" if groups and max(groups.values()) >= 2 else "records"


def _rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        raise UserError(f"{path}:{i}: not a JSON object per line") from None
                    if not isinstance(row, dict):
                        raise UserError(f"{path}:{i}: expected a JSON object per line")
                    yield i, row
    else:
        from synthloom.sources import read_table

        yield from read_table(path)


def main_field(data: Mapping[str, Any]) -> str | None:
    """The text field a reviewer edits first: the record's answer, else its longest text."""
    for name in MAIN_FIELDS:
        if isinstance(data.get(name), str):
            return name
    texts = [(len(v), k) for k, v in data.items() if isinstance(v, str)]
    return max(texts)[1] if texts else None


def record_items(source: Path) -> list[Item]:
    """One item per synthloom record, in file order."""
    items: list[Item] = []
    seen: set[str] = set()
    path = records_path(source)
    for line, record in read_records(path):
        rid = record.get("id")
        if not isinstance(rid, str) or not rid:
            raise UserError(f"{path}:{line}: record has no 'id'; review reads synthloom records")
        if rid in seen:
            raise UserError(f"{path}:{line}: record id {rid!r} appears twice")
        seen.add(rid)
        data = record["data"]
        label = data.get("label")
        score = data.get("score")  # a judge's score (synthloom score): the queue can sort by it
        items.append(
            Item(
                id=rid,
                kind="record",
                task=str(record.get("task") or ""),
                label=str(label) if isinstance(label, (str, int, bool)) else None,
                payload={"record": record, "main": main_field(data)},
                score=float(score)
                if isinstance(score, int | float) and not isinstance(score, bool)
                else None,
            )
        )
    if not items:
        raise UserError(f"{path}: no records to review")
    return items


def prompt_items(source: Path) -> list[Item]:
    """One item per prompt with two or more responses (as `synthloom pairs` reads them)."""
    groups = load_responses(source)
    items: list[Item] = []
    task = _task_of(source)
    for group in groups.values():
        if len(group.responses) < 2:
            continue
        items.append(
            Item(
                id=group.prompt_id,
                kind="prompt",
                task=task,
                label=None,
                payload={
                    "prompt_id": group.prompt_id,
                    "prompt": group.prompt,
                    "responses": dict(group.responses),
                    "record_ids": dict(group.record_ids),
                },
            )
        )
    if not items:
        raise UserError(f"{source}: no prompt has two or more responses to rank")
    return items


def _task_of(source: Path) -> str:
    for _, row in _rows(records_path(source)):
        return str(row.get("task") or "responses") if "data" in row else "responses"
    return "responses"


def load_items(
    source: Path, mode: Mode = "auto"
) -> tuple[Literal["records", "ranking"], list[Item]]:
    """The items of `source` and the review mode."""
    chosen = detect_mode(source) if mode == "auto" else mode
    return chosen, (prompt_items(source) if chosen == "ranking" else record_items(source))


# -- judge signals ----------------------------------------------------------------------------


@dataclass
class JudgeSignals:
    """A judge's view of each prompt: its ranking and the pairs it judged inconsistently
    (pairwise mode: the two orders disagreed)."""

    rankings: dict[str, Ranking]
    inconsistent: dict[str, set[frozenset[str]]]


def load_judge(path: Path) -> JudgeSignals:
    """A judge run directory (rankings.jsonl and its records) or a rankings file."""
    rankings_file = path / RANKINGS_FILE if path.is_dir() else path
    if not rankings_file.is_file():
        raise UserError(f"{path}: no judge rankings here; give a judge run or its {RANKINGS_FILE}")
    rankings = {r.prompt_id: r for r in load_rankings([rankings_file])}
    inconsistent: dict[str, set[frozenset[str]]] = {}
    records = path / RECORDS_FILE if path.is_dir() else None
    if records is not None and records.is_file():
        for _, record in read_records(records):
            d = record["data"]
            if d.get("mode") == "pairwise" and d.get("consistent") is False:
                pair = frozenset((str(d["a_id"]), str(d["b_id"])))
                inconsistent.setdefault(str(d["prompt_id"]), set()).add(pair)
    return JudgeSignals(rankings, inconsistent)


def _uncertainty(ranking: Ranking, inconsistent: set[frozenset[str]], only: str | None) -> float:
    """Share of the judge's pairs (involving `only`, if given) that are ties, a pair judged
    inconsistently in the two orders counting twice; 0 = certain, up to 1."""
    tiers = ranking.tier_index
    pairs = [p for p in combinations(ranking.ids, 2) if only is None or only in p]
    if not pairs:
        return 0.0
    weight = 0.0
    for a, b in pairs:
        tie = tiers[a] == tiers[b]
        swapped = frozenset((a, b)) in inconsistent
        weight += (1.0 if tie else 0.0) + (1.0 if swapped else 0.0)
    return min(1.0, weight / len(pairs))


def apply_judge(items: list[Item], judge: JudgeSignals, source: Path) -> int:
    """Set `score`, `uncertainty` and `judge_order` from the judge; returns how many items got
    a signal. Records are matched to the judge through the responses they are (prompt id and
    response id, as `synthloom pairs` reads the same input)."""
    from synthloom.preference.store import format_order

    matched = 0
    if items and items[0].kind == "prompt":
        for item in items:
            ranking = judge.rankings.get(item.id)
            if ranking is None:
                continue
            incon = judge.inconsistent.get(item.id, set())
            if ranking.scores:
                item.score = sum(ranking.scores.values()) / len(ranking.scores)
            item.uncertainty = _uncertainty(ranking, incon, None)
            item.judge_order = format_order(ranking.order)
            matched += 1
        return matched
    try:
        groups: Mapping[str, PromptResponses] = load_responses(source)
    except UserError as exc:
        raise UserError(
            f"{source}: --judge needs records that are responses to prompts"
            f" (prompt/response columns): {exc}"
        ) from None
    by_record: dict[str, tuple[str, str]] = {}
    for group in groups.values():
        for rid, record_id in group.record_ids.items():
            if record_id:
                by_record[record_id] = (group.prompt_id, rid)
    for item in items:
        key = by_record.get(item.id)
        ranking = judge.rankings.get(key[0]) if key else None
        if key is None or ranking is None or key[1] not in ranking.ids:
            continue
        if ranking.scores:
            item.score = ranking.scores.get(key[1])
        item.uncertainty = _uncertainty(ranking, judge.inconsistent.get(key[0], set()), key[1])
        item.judge_order = format_order(ranking.order)
        item.extra["judge_response_id"] = key[1]
        tiers = len(ranking.order)
        # where the judge put it among its prompt's responses: 1 best ... 0 worst
        item.extra["judge_goodness"] = (
            1.0 - ranking.tier_index[key[1]] / (tiers - 1) if tiers > 1 else 0.5
        )
        matched += 1
    return matched
