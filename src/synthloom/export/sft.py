"""SFT exports: Alpaca, ShareGPT, OpenAI/TRL messages, TRL prompt-completion, plain data.

A record's task says what it teaches: `Task.turns(data)` of the task registered under the
record's `task` (`synthloom.tasks.registry`); a task that declares no turns (judge, augment)
is not SFT data. Records that are not "ok" (flagged) are left out unless asked for; every
skip is counted, never silent.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal, get_args

from synthloom.errors import UserError
from synthloom.export.trl import write_rows
from synthloom.outputs import check_not_input, check_output_path
from synthloom.records import Turn
from synthloom.runs import read_records
from synthloom.tasks.registry import task_class, task_names

SFTFormat = Literal["alpaca", "sharegpt", "messages", "prompt-completion", "data"]
FORMATS: tuple[str, ...] = get_args(SFTFormat)


def turns(record: dict[str, Any]) -> list[Turn]:
    """The SFT turns a record teaches: its task's `turns(data)`; none if it is not SFT data.
    A record of no registered task (a file written elsewhere) is read by its data's shape:
    instruction/response or prompt/response."""
    data = record.get("data") or {}
    task = record.get("task")
    if task in task_names():
        return list(task_class(task).turns(data))
    for prompt in ("instruction", "prompt"):
        if prompt in data and "response" in data:
            return [Turn(data[prompt], data["response"], data.get("system"))]
    return []


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
        taught = turns(record)
        if not taught:
            counts[f"skipped_not_sft_{record.get('task')}"] += 1
            continue
        rows.extend(_row(t, fmt) for t in taught)
    if not rows:
        raise UserError(f"{source}: nothing to export ({dict(counts)})")
    write_rows(rows, out)
    counts["rows_out"] = len(rows)
    return counts
