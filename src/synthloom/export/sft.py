"""SFT exports: Alpaca, ShareGPT, OpenAI/TRL messages, TRL prompt-completion, plain data.

Each task's records are read as turns (system, prompt, response) by `turn()`. Records that are
not "ok" (flagged) are left out unless asked for; every skip is counted, never silent.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.export.trl import write_rows
from synthloom.outputs import check_not_input, check_output_path

FORMATS = ("alpaca", "sharegpt", "messages", "prompt-completion", "data")


@dataclass(frozen=True)
class Turn:
    prompt: str
    response: str
    system: str | None = None
    input: str = ""  # Alpaca's separate input field (Self-Instruct instances)


def turn(record: dict[str, Any]) -> Turn | None:
    """The (prompt, response) a record teaches, or None if it is not SFT data."""
    d = record.get("data") or {}
    task = record.get("task")
    if task == "qa":
        if "context" in d:
            prompt = f"{d['context']}\n\nQuestion: {d['question']}"
            return Turn(prompt, d["answer"])
        return Turn(d["question"], d["answer"])
    if task == "summarize":  # the candidate's own prompt: the article once, its length and style
        from synthloom.tasks.summarize import SummarizeTask  # lazy: tasks import the runner

        (t,) = SummarizeTask.turns(d)
        return Turn(t.prompt, t.response, t.system)
    if "instruction" in d and "response" in d:  # evol, audience
        return Turn(d["instruction"], d["response"], d.get("system"))
    if "prompt" in d and "response" in d:  # distill, responses
        return Turn(d["prompt"], d["response"], d.get("system"))
    return None


def _self_instruct_turns(record: dict[str, Any]) -> list[Turn]:
    d = record["data"]
    return [
        Turn(d["instruction"], inst["output"], None, inst.get("input") or "")
        for inst in d.get("instances") or []
    ]


def _turns(record: dict[str, Any]) -> list[Turn]:
    if record.get("task") == "self-instruct":
        return _self_instruct_turns(record)
    t = turn(record)
    return [t] if t else []


def _row(t: Turn, fmt: str) -> dict[str, Any]:
    user = f"{t.prompt}\n\n{t.input}" if t.input else t.prompt
    if fmt == "alpaca":
        return {"instruction": t.prompt, "input": t.input, "output": t.response}
    if fmt == "sharegpt":
        conv = [{"from": "system", "value": t.system}] if t.system else []
        conv += [{"from": "human", "value": user}, {"from": "gpt", "value": t.response}]
        return {"conversations": conv}
    if fmt == "messages":
        msgs = [{"role": "system", "content": t.system}] if t.system else []
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": t.response}]
        return {"messages": msgs}
    if fmt == "prompt-completion":
        return {"prompt": user, "completion": t.response}
    raise ValueError(fmt)


def read_records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.is_dir():
        path = path / "records.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: not found; give a run directory or a records .jsonl file")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{i}: not a JSON record") from None
            if not isinstance(record, dict) or "data" not in record:
                raise UserError(f"{path}:{i}: not a synthloom record (no 'data')")
            yield i, record


def export_records(
    source: Path, out: Path, fmt: str, *, include_flagged: bool = False
) -> Counter[str]:
    """Write `source` records as `fmt` to `out` (.jsonl or .parquet, atomically)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    check_output_path(out)
    check_not_input(out, [source])
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for _, record in read_records(source):
        counts["records_in"] += 1
        if record.get("status", "ok") != "ok" and not include_flagged:
            counts["skipped_flagged"] += 1
            continue
        if fmt == "data":
            rows.append(record["data"])
            continue
        turns = _turns(record)
        if not turns:
            counts[f"skipped_not_sft_{record.get('task')}"] += 1
            continue
        rows.extend(_row(t, fmt) for t in turns)
    if not rows:
        raise UserError(f"{source}: nothing to export ({dict(counts)})")
    write_rows(rows, out)
    counts["rows_out"] = len(rows)
    return counts
