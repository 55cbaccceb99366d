"""Run directories: where a job's output lives and how it resumes.

    <out>/records.jsonl   one record per line, appended as records finish
    <out>/failures.jsonl  units that produced no record, each with its cause (rewritten at the end)
    <out>/manifest.json   the job's config, status and counts (rewritten atomically)

A rerun of the same job in the same directory resumes: records already in records.jsonl are
not written again (ids are stable), and the calls behind them come from the response cache.
A torn last line left by a killed process is cut off before appending.

`read_records` is the one reader of a run's records (a run directory or a records .jsonl
file): export, dedup, review and recipe checks all read through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from synthloom.errors import UserError
from synthloom.llm.cache import ResponseCache
from synthloom.outputs import write_atomic  # re-exported: moved to synthloom.outputs
from synthloom.records import Record

RECORDS = "records.jsonl"
FAILURES = "failures.jsonl"
MANIFEST = "manifest.json"

__all__ = [
    "FAILURES",
    "MANIFEST",
    "RECORDS",
    "RunDir",
    "identity_hash",
    "read_records",
    "write_atomic",
]


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each record of a run directory or a records .jsonl file, in
    file order; blank lines are skipped. A missing file, or a line that is not JSON or not a
    synthloom record (an object with `data`), is a UserError naming file:line."""
    if path.is_dir():
        path = path / RECORDS
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


def identity_hash(identity: dict[str, Any]) -> str:
    """The job's hash. `extent` (how far a growable job goes, e.g. {"n": 5}) is not part of
    it: raising `n` extends the same job, it does not make another one."""
    job = {k: v for k, v in identity.items() if k != EXTENT}
    blob = json.dumps(job, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


EXTENT = "extent"
_FLUSH_SECONDS = 0.05
_FLUSH_BYTES = 1 << 20


def without_extent(identity: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """`identity` without its extent and without `keys` in its config: how a run directory
    written before its task declared these keys growable (they were in the config) compares."""
    keys = set(keys)
    job = {k: v for k, v in identity.items() if k != EXTENT}
    if isinstance(job.get("config"), dict):
        job["config"] = {k: v for k, v in job["config"].items() if k not in keys}
    return job


class RunDir:
    def __init__(
        self,
        path: Path,
        command: str,
        identity: dict[str, Any],
        *,
        earlier: list[dict[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.command = command
        self.identity = identity
        self.identity_hash = identity_hash(identity)
        # the same job as an earlier version of synthloom wrote its identity: it resumes too
        self.accepted = {self.identity_hash, *(identity_hash(e) for e in earlier or ())}
        # a growable job: the same job whatever its extent, also as written before the keys
        # were growable (then they were part of the config and of the hash)
        self.extent: dict[str, Any] = dict(identity.get(EXTENT) or {})
        self.accepted_any_extent = {
            identity_hash(without_extent(e, self.extent)) for e in (identity, *(earlier or ()))
        }
        self.notes: list[str] = []  # for the user, e.g. that a lower n removed nothing
        self.existing: set[str] = set()
        self.written = 0
        self.already_present = 0
        self.failures: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        self._file: IO[str] | None = None
        self._cache: ResponseCache | None = None
        self._lines: list[str] = []  # record lines not written yet
        self._buffered = 0
        self._timer: asyncio.TimerHandle | None = None

    def check(self) -> None:
        """Raise UserError unless the directory is free or holds this same job (to resume).
        Reads only; writes nothing."""
        manifest = self.path / MANIFEST
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text(encoding="utf-8"))
            except ValueError:
                old = {}
            old_identity = old.get("identity") or {}
            same = old.get("identity_hash") in self.accepted or (
                bool(self.extent)
                and identity_hash(without_extent(old_identity, self.extent))
                in self.accepted_any_extent
            )
            if not same:
                changed = _changed_keys(
                    without_extent(old_identity, self.extent),
                    without_extent(self.identity, self.extent),
                )
                raise UserError(
                    f"{self.path} holds a different job (changed: {changed or 'config'});"
                    " use another --out, or delete that directory to start over"
                )
            self._keep_larger_extent(old_identity)
        elif self.path.exists() and any(self.path.iterdir()):
            raise UserError(
                f"{self.path} exists and is not a synthloom run directory; use another --out"
            )

    def open(self, cache: ResponseCache) -> None:
        """Check the directory belongs to this job, load what is done, open for appending."""
        self._cache = cache
        self.check()
        self.path.mkdir(parents=True, exist_ok=True)
        records = self.path / RECORDS
        if records.exists():
            self.existing = _load_ids_and_repair(records)
        self._file = open(records, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.write_manifest("running", {})

    def add(self, record: Record) -> bool:
        """Append a record unless an earlier run already wrote it. Returns True if new.

        Lines are written in batches (every 50 ms, or 1 MB) by the caller's thread, the event
        loop: no per-record flush, no thread to fall behind. The answers a record is made from
        are in the cache's journal before the record exists, so a record on disk never lacks
        them, and a kill loses at most the last 50 ms of lines, whose calls are cached."""
        if record.id in self.existing:
            self.already_present += 1
            return False
        self.existing.add(record.id)
        self.written += 1
        line = record.to_json()
        self._lines.append(line)
        self._buffered += len(line)
        if self._buffered >= _FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside an event loop: write at once
                self.flush()
            else:
                self._timer = loop.call_later(_FLUSH_SECONDS, self.flush)
        return True

    def flush(self) -> None:
        """Write the buffered record lines (one write)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        f = self._file
        assert f is not None
        data = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._buffered = 0
        f.write(data)
        f.flush()

    def fail(self, unit: str, cause: str, detail: str = "", **extra: Any) -> None:
        self.failures[unit] = {"unit": unit, "cause": cause, "detail": detail, **extra}

    def close(self, status: str, summary: dict[str, Any]) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
        if self._cache is not None:
            self._cache.flush()
        lines = "".join(json.dumps(f, ensure_ascii=True) + "\n" for f in self.failures.values())
        write_atomic(self.path / FAILURES, lines)
        self.write_manifest(status, summary)

    def _keep_larger_extent(self, old_identity: dict[str, Any]) -> None:
        """A rerun with a lower `n` keeps the records of the higher one: say so, and keep
        the higher extent in the manifest (it describes what the directory holds)."""
        before = dict(old_identity.get("config") or {})  # written before keys were growable
        before.update(old_identity.get(EXTENT) or {})
        for key, value in self.extent.items():
            old = before.get(key)
            if isinstance(old, int) and isinstance(value, int) and old > value:
                self.notes.append(
                    f"{self.path} already holds the records of {key}={old}; {key}={value}"
                    " keeps them all (lowering it removes nothing)"
                )
                self.extent[key] = old
        if self.extent:
            self.identity = {**self.identity, EXTENT: dict(self.extent)}

    def write_manifest(self, status: str, summary: dict[str, Any]) -> None:
        manifest = {
            "command": self.command,
            "status": status,
            "identity_hash": self.identity_hash,
            "identity": self.identity,
            "started_at": self.started,
            "updated_at": time.time(),
            "summary": summary,
        }
        write_atomic(self.path / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")


def _load_ids_and_repair(path: Path) -> set[str]:
    """Ids of complete records; a torn or corrupt tail (killed mid-write) is truncated."""
    ids: set[str] = set()
    good_end = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                ids.add(json.loads(raw)["id"])
            except (ValueError, KeyError, TypeError):
                break
            good_end += len(raw)
    if good_end < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return ids


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    keys = sorted(set(old) | set(new))
    changed = []
    for k in keys:
        a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            sub = _changed_keys(a, b, f"{prefix}{k}.")
            if sub:
                changed.append(sub)
        elif json.dumps(a, default=str) != json.dumps(b, default=str):
            changed.append(f"{prefix}{k}")
    return ", ".join(changed)
