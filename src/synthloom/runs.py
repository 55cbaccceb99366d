"""Run directories: where a job's output lives and how it resumes.

    <out>/records.jsonl   one record per line, appended as records finish
    <out>/failures.jsonl  units that produced no record, each with its cause (rewritten at the end)
    <out>/manifest.json   the job's config, status and counts (rewritten atomically)
    <out>/units.done      for tasks that resume by unit (distill): the units whose records are
                          all written, 16 bytes each (binary)

A rerun of the same job in the same directory resumes: records already in records.jsonl are
not written again (ids are stable), and the calls behind them come from the response cache.
A torn last line left by a killed process is cut off before appending. A task that declares
`resume_by_unit` does not even redo a finished unit: units.done says which are finished.

Memory does not grow with the run's size beyond a few bytes a record: the ids already written
are 8 bytes each (`IdSet`), units.done 16 bytes a unit, and failures go to disk as they come
(only their counts by cause stay in memory). Reading the ids of a finished run does not parse
its records: the id is the start of each line this module writes.

`read_records` is the one reader of a run's records (a run directory or a records .jsonl
file): export, dedup, review and recipe checks all read through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import struct
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from synthloom.errors import UserError
from synthloom.idset import IdSet
from synthloom.llm.cache import ResponseCache
from synthloom.outputs import atomic_file, write_atomic  # write_atomic: re-exported
from synthloom.records import Record

if TYPE_CHECKING:
    import numpy as np

RECORDS = "records.jsonl"
FAILURES = "failures.jsonl"
MANIFEST = "manifest.json"
UNITS_DONE = "units.done"
_FAILURES_PARTIAL = ".failures.jsonl.partial"
_HEX = b"0123456789abcdef"
_DONE_ENTRY = struct.Struct("<QQ")  # unit digest, records end offset << 16 | record count
_DETAILS_PER_CAUSE = 64  # distinct failure texts counted per cause (for "most often")

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
        self.existing = IdSet()  # ids of the records in records.jsonl
        self.written = 0
        self.already_present = 0
        self.failure_causes: Counter[str] = Counter()  # this run's failures.jsonl, by cause
        self._failure_details: dict[str, Counter[str]] = {}
        self.started = time.time()
        self._file: IO[str] | None = None
        self._failures: IO[str] | None = None
        self._cache: ResponseCache | None = None
        self._lines: list[str] = []  # record lines not written yet
        self._buffered = 0
        self._size = 0  # bytes in records.jsonl (its lines are ASCII)
        self._timer: asyncio.TimerHandle | None = None
        self._done_file: IO[bytes] | None = None
        self._done_new: list[bytes] = []  # units.done entries to write after their records
        self._done_keys: np.ndarray | None = None  # units.done read at open: sorted digests
        self._done_values: np.ndarray | None = None

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
            self.existing, self._size = _load_ids_and_repair(records)
        self._file = open(records, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._failures = open(  # noqa: SIM115 - closed in close()
            self.path / _FAILURES_PARTIAL, "w", encoding="utf-8"
        )
        self.write_manifest("running", {})

    def open_units_done(self) -> None:
        """Read units.done (the finished units of earlier runs whose records are still all in
        records.jsonl) and open it for appending; for tasks that resume by unit."""
        path = self.path / UNITS_DONE
        if path.exists():
            self._done_keys, self._done_values = _load_units_done(path, self._size)
        self._done_file = open(path, "ab")  # noqa: SIM115 - closed in close()

    def done_records_of(self, units: list[str]) -> list[int | None]:
        """How many records each unit finished by an earlier run wrote (None: not finished),
        in one search of units.done (a search per unit cost ~2 us of a rerun's ~20 us a unit:
        numpy's overhead per call)."""
        keys, values = self._done_keys, self._done_values
        if keys is None or values is None or not len(keys):
            return [None] * len(units)
        import numpy as np

        digests = np.fromiter(map(unit_digest, units), dtype=keys.dtype, count=len(units))
        at = np.minimum(keys.searchsorted(digests), len(keys) - 1)
        found = (keys[at] == digests).tolist()
        counts = (values[at] & 0xFFFF).tolist()
        return [c if f else None for f, c in zip(found, counts, strict=True)]

    def mark_done(self, unit: str, records: int) -> None:
        """The unit's records are all added: it need not run again (written after them)."""
        if self._done_file is not None and records < 0xFFFF:
            self._done_new.append(_DONE_ENTRY.pack(unit_digest(unit), records))

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
            if self._done_new and self._done_file is not None:  # units with no records
                self._write_done()
            return
        if self._cache is not None:  # the answers first: a record on disk never lacks them
            self._cache.write_journal()
        f = self._file
        assert f is not None
        data = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._buffered = 0
        f.write(data)
        f.flush()
        self._size += len(data)
        if self._done_new and self._done_file is not None:
            self._write_done()

    def _write_done(self) -> None:
        """Append the units whose records are now on disk, with where those records end."""
        assert self._done_file is not None
        end = self._size << 16
        self._done_file.write(
            b"".join(
                _DONE_ENTRY.pack(digest, end | count)
                for digest, count in map(_DONE_ENTRY.unpack, self._done_new)
            )
        )
        self._done_file.flush()
        self._done_new.clear()

    def fail(self, unit: str, cause: str, detail: str = "", **extra: Any) -> None:
        """A failures.jsonl line (written as it comes; only the counts stay in memory)."""
        line = json.dumps({"unit": unit, "cause": cause, "detail": detail, **extra})
        if self._failures is None:
            raise RuntimeError("the run directory is not open")
        self._failures.write(line + "\n")
        self.failure_causes[cause] += 1
        details = self._failure_details.setdefault(cause, Counter())
        if detail in details or len(details) < _DETAILS_PER_CAUSE:
            details[detail] += 1

    def top_failure(self) -> str:
        """The most common failure cause with its most common text: "cause: detail"."""
        if not self.failure_causes:
            return ""
        cause = self.failure_causes.most_common(1)[0][0]
        details = self._failure_details.get(cause)
        detail = details.most_common(1)[0][0] if details else ""
        return f"{cause}: {detail}" if detail else cause

    def close(self, status: str, summary: dict[str, Any]) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
        if self._done_file is not None:
            self._done_file.close()
            self._done_file = None
        if self._cache is not None:
            self._cache.flush()
        partial = self.path / _FAILURES_PARTIAL
        if self._failures is not None:
            self._failures.close()
            self._failures = None

            def copy(tmp: Path) -> None:
                with open(partial, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)

            atomic_file(self.path / FAILURES, copy)
            partial.unlink(missing_ok=True)
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
        text = json.dumps(manifest, indent=2, default=str) + "\n"
        if status == "running":  # replaced at the end: atomic, but not worth two fsyncs
            tmp = self.path / f".{MANIFEST}.running.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path / MANIFEST)
        else:
            write_atomic(self.path / MANIFEST, text)


def unit_digest(unit: str) -> int:
    """A unit id as the 64-bit digest units.done keeps."""
    return int.from_bytes(hashlib.blake2b(unit.encode(), digest_size=8).digest(), "little")


def _load_ids_and_repair(path: Path) -> tuple[IdSet, int]:
    """Ids of complete records, and the size of the file holding them; a torn or corrupt
    tail (killed mid-write) is truncated. A line as this module writes it starts with its
    id (`{"id":"<16 hex digits>",`): that is read without parsing the line; any other line,
    and the last one (where a kill leaves its mark), is parsed."""
    ids = IdSet()
    good_end = 0
    last = b""
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            if last:  # not the last line: the fast path applies
                if not _add_id(ids, last):
                    break
                good_end += len(last)
            last = raw
        if last and last.endswith(b"\n") and _add_id(ids, last, parse=True):
            good_end += len(last)
    if good_end < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return ids, good_end


def _add_id(ids: IdSet, raw: bytes, parse: bool = False) -> bool:
    """Add the id of one record line; False if the line is not a record."""
    if not parse and raw.startswith(b'{"id":"') and raw[23:25] == b'",':
        digits = raw[7:23]
        if not digits.translate(None, _HEX):
            ids.add_int(int(digits, 16))
            return True
    try:
        record = json.loads(raw)
        ids.add(record["id"])
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(record, dict) and isinstance(record["id"], str)


def _load_units_done(path: Path, records_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries of units.done whose records end within the first `records_size` bytes of
    records.jsonl (a cut or replaced records file invalidates the rest), sorted by unit."""
    import numpy as np

    data = path.read_bytes()
    data = data[: len(data) - len(data) % _DONE_ENTRY.size]  # a torn last entry
    table = np.frombuffer(data, dtype=np.dtype([("unit", "<u8"), ("end", "<u8")]))
    table = table[(table["end"] >> np.uint64(16)) <= np.uint64(records_size)]
    order = np.argsort(table["unit"], kind="stable")
    return np.ascontiguousarray(table["unit"][order]), np.ascontiguousarray(table["end"][order])


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
