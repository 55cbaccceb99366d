"""SFT and classification rows from a run's records (formats: `synthloom.export.formats`).

A record's task says what it teaches: `Task.turns(data)` (SFT) and `Task.labelled(data)`
(classification) of the task registered under the record's `task`
(`synthloom.tasks.registry`); a task that declares no turns (judge, augment) is not SFT
data. Records that are not "ok" (flagged) are left out unless asked for; every skip is
counted, never silent. Each row also gets its ids side row (record id, task, origin, model,
template, parents) and its split group: every record joined to the others by provenance
parents (and, with `group_by`, by an equal data field) is one group.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.export.formats import SFT, SFTFormat
from synthloom.export.split import Groups
from synthloom.records import Turn
from synthloom.runs import read_records
from synthloom.tasks.registry import task_class, task_names

FORMATS: tuple[str, ...] = tuple(SFT)
__all__ = ["FORMATS", "SFTFormat", "SFTRows", "sft_rows", "turns"]


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


def labelled(record: dict[str, Any]) -> tuple[str, Any] | None:
    """The (text, label) a record teaches a classifier: its task's `labelled(data)`."""
    data = record.get("data") or {}
    task = record.get("task")
    if task in task_names():
        return task_class(task).labelled(data)  # type: ignore[no-any-return]
    if isinstance(data.get("text"), str) and data.get("label") is not None:
        return data["text"], data["label"]
    return None


def _messages(system: str | None, user: str, answer: str) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def turn_row(t: Turn, fmt: str, system: str | None = None) -> dict[str, Any]:
    """One row of `fmt` for a turn; `system` is the system prompt it gets (its own first)."""
    system = t.system or system
    user = f"{t.prompt}\n\n{t.input}" if t.input else t.prompt
    if fmt in ("messages", "openai"):
        return {"messages": _messages(system, user, t.response)}
    if fmt == "prompt-completion-conversational":
        msgs = _messages(system, user, t.response)
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    if fmt == "prompt-completion":
        return {"prompt": user, "completion": t.response}
    if fmt == "alpaca":
        row = {"instruction": t.prompt, "input": t.input, "output": t.response}
        return {**row, "system": system} if system else row
    if fmt == "sharegpt":
        conv = [{"from": "system", "value": system}] if system else []
        conv += [{"from": "human", "value": user}, {"from": "gpt", "value": t.response}]
        return {"conversations": conv}
    raise ValueError(fmt)


@dataclass
class SFTRows:
    """Rows of one format, their ids side rows and split groups, what was skipped, and the
    records they came from (for the dataset card)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    ids: list[dict[str, Any]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)  # each exported record


def _id_row(record: dict[str, Any]) -> dict[str, Any]:
    prov = record.get("provenance") or {}
    return {
        "record_id": record.get("id"),
        "task": record.get("task"),
        "origin": record.get("origin", "synthetic"),
        "model": prov.get("model"),
        "template": prov.get("template"),
        "parents": list(prov.get("parents") or []),
    }


def sft_rows(
    source: Path,
    fmt: str,
    *,
    include_flagged: bool = False,
    system: str | None = None,
    group_by: str | None = None,
) -> SFTRows:
    """Every row `source`'s records teach in `fmt`, with ids and split groups."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if system and not SFT[fmt].conversational and fmt != "alpaca":
        raise UserError(
            f"--system: the {fmt} format holds no system prompt; use"
            " prompt-completion-conversational or messages"
        )
    out = SFTRows()
    joined = Groups()
    record_of_row: list[str] = []
    for line, record in read_records(source):
        out.counts["records_in"] += 1
        if record.get("status", "ok") != "ok" and not include_flagged:
            out.counts["skipped_flagged"] += 1
            continue
        rid = str(record.get("id") or f"line{line}")
        prov = record.get("provenance") or {}
        joined.join(rid, [str(p) for p in prov.get("parents") or ()])
        if group_by is not None:
            value = (record.get("data") or {}).get(group_by)
            if value is None:
                raise UserError(
                    f"{source}:{line}: --group-by {group_by}: the record has no such field"
                )
            joined.join(rid, [f"{group_by}={value!r}"])
        rows = _record_rows(record, fmt, system, out.counts)
        if not rows:
            continue
        out.records.append(record)
        out.rows.extend(rows)
        out.ids.extend(_id_row(record) for _ in rows)
        record_of_row.extend(rid for _ in rows)
    out.groups = [str(joined.find(rid)) for rid in record_of_row]
    for id_row, group in zip(out.ids, out.groups, strict=True):
        id_row["group"] = group
    if fmt == "classification":
        _same_label_type(out.rows)
    return out


def _record_rows(
    record: dict[str, Any], fmt: str, system: str | None, counts: Counter[str]
) -> list[dict[str, Any]]:
    if fmt == "data":
        return [record["data"]]
    if fmt == "classification":
        pair = labelled(record)
        if pair is None:
            counts[f"skipped_not_classification_{record.get('task')}"] += 1
            return []
        return [{"text": pair[0], "label": pair[1]}]
    taught = turns(record)
    if not taught:
        counts[f"skipped_not_sft_{record.get('task')}"] += 1
        return []
    if fmt == "prompt-completion" and any(t.system for t in taught):
        counts["system_prompt_left_out"] += 1  # the string format cannot hold it
    return [turn_row(t, fmt, system) for t in taught]


def _same_label_type(rows: list[dict[str, Any]]) -> None:
    """Labels of mixed types (1 and "neutral") become strings: a column has one type."""
    kinds = {type(r["label"]) for r in rows}
    if len(kinds) > 1:
        for r in rows:
            r["label"] = str(r["label"])
