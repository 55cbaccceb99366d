"""Records: the unit of every dataset synthloom reads and writes.

A record is `data` (the training example itself) plus where it came from: `origin`
("synthetic" or "human"), `status`, and, for synthetic records, `provenance` naming the
backend, model, prompt template (name and hash), sampling parameters, seed, parent records
and the time the model answered. Ids are stable: the same inputs give the same id, so a
resumed run recognises records it already wrote.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson


def stable_id(*parts: Any) -> str:
    """A short, stable id from JSON-serialisable parts: the sha256 of
    `json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`. Parts
    that are all strings (a task name, a unit id, a cache key) go through orjson, whose
    output for strings is the same bytes (tests/test_hot_path.py), at a fifth of the cost."""
    if all(type(p) is str for p in parts):
        try:
            return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]
        except orjson.JSONEncodeError:  # a lone surrogate: json writes it, orjson refuses
            pass
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Turn:
    """What a record teaches a model: a prompt (with an optional separate `input`, as Alpaca
    keeps it) and the response; exports turn it into each training format."""

    prompt: str
    response: str
    system: str | None = None
    input: str = ""


@dataclass(frozen=True)
class Provenance:
    backend: str
    model: str
    template: str
    template_hash: str
    params: dict[str, Any]
    seed: int | None
    parents: tuple[str, ...] = ()
    created_at: float = 0.0
    call_keys: tuple[str, ...] = ()
    # `model` is the model the server says answered; when that is not the one asked for, the
    # name asked for is kept here (absent from records where they agree, and in older ones)
    model_requested: str | None = None
    # what the unit was asked with beyond its input: its topic leaf's path, its sampled
    # attributes, the ids of the real examples shown (synthloom.diversity); absent without
    conditioning: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "backend": self.backend,
            "model": self.model,
            "template": self.template,
            "template_hash": self.template_hash,
            "params": self.params,
            "seed": self.seed,
            "parents": list(self.parents),
            "created_at": self.created_at,
            "call_keys": list(self.call_keys),
        }
        if self.model_requested is not None:
            d["model_requested"] = self.model_requested
        if self.conditioning is not None:
            d["conditioning"] = self.conditioning
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        return cls(
            backend=d["backend"],
            model=d["model"],
            template=d["template"],
            template_hash=d["template_hash"],
            params=dict(d.get("params") or {}),
            seed=d.get("seed"),
            parents=tuple(d.get("parents") or ()),
            created_at=float(d.get("created_at") or 0.0),
            call_keys=tuple(d.get("call_keys") or ()),
            model_requested=d.get("model_requested"),
            conditioning=d.get("conditioning"),
        )


@dataclass
class Record:
    """One example. `status` is "ok", or "flagged" (kept but needs a look; see `notes`)."""

    id: str
    task: str
    data: dict[str, Any]
    provenance: Provenance | None = None
    origin: str = "synthetic"
    status: str = "ok"
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "origin": self.origin,
            "status": self.status,
            "data": self.data,
            "notes": self.notes,
            "provenance": self.provenance.to_dict() if self.provenance else None,
        }

    def to_json(self) -> str:
        # ensure_ascii keeps U+2028 and friends escaped, so no generated text can break a line
        return json_line(self.to_dict())


def json_line(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=True, separators=(",", ":"))`, byte for byte, at a
    tenth of the cost where it can be: orjson writes the same bytes for plain JSON values (str,
    int, bool, None, lists, tuples and dicts with str keys) when its output is ASCII and every
    float is one both spell alike; anything else goes through json (issue 12: json.dumps was
    ~12 us of a qa record's ~100 us in synthloom's own code)."""
    if _plain(value):
        try:
            line = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, an int over 64 bits
            pass
        else:
            if line.isascii():
                return line.decode()
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def parse_json(text: str | bytes) -> Any:
    """`json.loads(text)`, through orjson where it can (a quarter of json's time): json
    where orjson refuses (NaN, a lone surrogate escape, an int over 64 bits: json takes them)
    and for the error of text that is not JSON (json's message says where)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _plain(value: Any) -> bool:
    """Only JSON's own types, and floats that json and orjson spell alike (json's repr
    switches to an exponent below 1e-4 and from 1e16, orjson's elsewhere; NaN and infinities:
    json writes NaN, orjson null). Dict keys are orjson's to refuse when they are not
    strings (json_line then uses json). Explicit loops, strings and ints skipped in place:
    half the cost of a walk with a stack."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is str or kind is int or kind is bool or value is None:
        return True
    elif kind is float:
        return 1e-4 <= abs(value) < 1e16 or value == 0.0
    else:
        return False
    for v in items:
        k = type(v)
        if k is str or k is int or v is None:
            continue
        if not _plain(v):
            return False
    return True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        prov = d.get("provenance")
        return cls(
            id=d["id"],
            task=d["task"],
            data=d["data"],
            provenance=Provenance.from_dict(prov) if prov else None,
            origin=d.get("origin", "synthetic"),
            status=d.get("status", "ok"),
            notes=d.get("notes") or {},
        )


def human_record(task: str, data: dict[str, Any], source: str, index: int) -> Record:
    """A record made by people (seed tasks, labelled examples), with a stable id."""
    return Record(
        id=stable_id("human", source, index, data),
        task=task,
        data=data,
        origin="human",
        notes={"source": source, "line": index + 1},
    )
