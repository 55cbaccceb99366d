"""The persistent response cache (SQLite) and the single background writer.

Every model answer is stored under its call key. Writes never block the event loop: they are
buffered for up to 50 ms (or 512 items) and handed to one writer thread that commits each
batch in one transaction. Handing over per item would wake the writer for every call, and the
resulting GIL hand-offs cost more than the HTTP request itself (measured: see benchmarks/).
A batch is inserted with one statement (the answers' journal lines as one JSON array, read by
SQLite's `json_each`), not `executemany`: that releases and re-takes the GIL once per row,
and while the event loop holds the GIL each re-take waits up to the 5 ms switch interval, so
the writer fell behind the answers by tens of thousands (issue 12). At most MAX_BACKLOG answers
wait for their commit: past that, new calls wait (`room`) until the writer catches up.
`submit` runs a function on the writer thread after the cache writes queued before it.

Misses do not touch SQLite: the writer thread first loads a 60-bit prefix of every stored key
(an IdSet: 8 MB per million cached calls; from `<cache>.keys`, `synthloom.llm.key_index`,
with only the rows stored after it read from SQLite at about 1 us a key), and `get` reads
the database only for a key whose prefix is known. A read per miss on the event-loop thread,
racing the writer's commits, cost a third of the engine's throughput against a fast server
(benchmarks/). Keys
written by another process while this one runs are not seen as hits (they are re-asked and
stored once).

The answer journal: before an answer is used, `put` appends it to a journal file (one plain
`write`, no fsync: a killed process's writes are in the OS already; only a power cut could
lose them), so no answer waits in memory for the batched commit where a kill -9 would lose it.
Each process writes its own journal file in `<cache>.journal/` and holds an flock on it; the
file is deleted once everything in it is committed (it rotates every few MB, and at close). On
start, journals whose owner is gone (their lock is free) are folded into SQLite first.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: journals of live processes are then not told apart
    fcntl = None  # type: ignore[assignment]

import orjson

from synthloom.errors import UserError, is_path_error, path_error
from synthloom.idset import IdSet
from synthloom.llm import key_index
from synthloom.llm.base import Completion

CHECKPOINT_EVERY = 1.0  # seconds: the writer checkpoints the WAL when idle, at most this often

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
  key TEXT PRIMARY KEY,
  text TEXT NOT NULL,
  finish_reason TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS token_logprobs (
  key TEXT PRIMARY KEY,
  data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS served_models (
  key TEXT PRIMARY KEY,
  model TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS structured_modes (
  endpoint TEXT PRIMARY KEY,
  mode TEXT NOT NULL
);
"""
# token_logprobs: the answer's token log-probabilities (JSON), for answers that have them.
# served_models: the model a server reported, for the answers where it was not the one asked
# for. structured_modes: the structured-output mode last negotiated with each endpoint (its
# cache identity), so a later run need not negotiate before its other calls start.
# (Tables of their own, so a cache file stays usable by older versions of synthloom.)
_STOP = object()
# Answers go to the writer in batches of up to _BATCH_ITEMS, or what came in _BATCH_SECONDS:
# one commit rewrites every page of the key index it touches, and keys are random, so in a
# cache of 80,000 calls 20,000 inserts cost 0.63 s of CPU in commits of 512, 0.33 s in
# commits of 4,096 (0.18 s into an empty cache). The journal, not the commit, keeps answers
# safe from a kill, so a commit can wait.
_BATCH_SECONDS = 0.25
_BATCH_ITEMS = 4096
MAX_BACKLOG = 8192  # answers waiting for their commit before new calls wait for the writer
# One statement per batch: the rows are the journal lines [key, text, finish_reason,
# prompt_tokens, completion_tokens, created, served model, logprobs?] as one JSON array.
_INSERT_CALLS = (
    "INSERT OR IGNORE INTO calls SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),"
    " json_extract(value, '$[5]') FROM json_each(?)"
)
_INSERT_SERVED = (
    "INSERT OR IGNORE INTO served_models SELECT json_extract(value, '$[0]'),"
    " json_extract(value, '$[6]') FROM json_each(?) WHERE json_extract(value, '$[6]') IS NOT NULL"
)
_INSERT_LOGPROBS = (
    "INSERT OR IGNORE INTO token_logprobs SELECT json_extract(value, '$[0]'),"
    " json_extract(value, '$[7]') FROM json_each(?) WHERE json_array_length(value) > 7"
)
_JOURNAL_ROTATE_BYTES = 8 << 20
_SELECT = (
    "SELECT c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.created, s.model,"
    " l.data FROM calls c LEFT JOIN served_models s ON s.key = c.key"
    " LEFT JOIN token_logprobs l ON l.key = c.key WHERE c.key = ?"
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class ResponseCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._read = _connect(path)
            self._read.executescript(_SCHEMA)
            self.journal_dir = Path(f"{path}.journal")
            self.folded = fold_journals(self._read, self.journal_dir)
            # read now, before the writer thread opens its connection: a query racing that
            # (WAL index set-up) got SQLITE_BUSY and slept in the busy handler (~0.2 s)
            self._modes: dict[str, str] = dict(
                self._read.execute("SELECT endpoint, mode FROM structured_modes").fetchall()
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._user_error(exc) from None
        self._journal_fd: int | None = None
        self._journal_path: Path | None = None
        self._journal_bytes = 0
        self._journal_lines: list[bytes] = []  # journaled this event-loop turn, not written
        self._journal_error: BaseException | None = None
        self._after_journal: list[Callable[[], object]] = []  # run once the lines are written
        self._pending: dict[str, Completion] = {}
        # 60-bit key prefixes stored before this process wrote, and those it put: 8 bytes a
        # key in sorted numpy arrays (IdSet), not a Python int of ~60 bytes in a set
        self._known: IdSet | None = None
        self.keys_loaded: key_index.Loaded | None = None  # where the writer read them from
        self._added = IdSet()
        self._queue: queue.SimpleQueue[list[object]] = queue.SimpleQueue()
        self._buffer: list[object] = []
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Event | None = None  # set by the writer when the backlog shrinks
        self._json_each = True  # SQLite has json_each (else executemany, slower under load)
        self._stopping = False  # stop_writing was called
        self._thread = threading.Thread(target=self._writer, name="synthloom-writer", daemon=True)
        self._thread.start()

    def get(self, key: str) -> Completion | None:
        hit = self._pending.get(key)
        if hit is not None:
            return hit
        known = self._known
        if known is not None:
            prefix = key_index.prefix(key)
            if not known.has_int(prefix) and not self._added.has_int(prefix):
                return None
        row = self._read.execute(_SELECT, (key,)).fetchone()
        if not row:
            return None
        return Completion(*row[:6], logprobs=json.loads(row[6]) if row[6] else None)

    def structured_mode(self, endpoint: str) -> str | None:
        """The structured-output mode last negotiated with `endpoint`, if any."""
        return self._modes.get(endpoint)

    def set_structured_mode(self, endpoint: str, mode: str | None) -> None:
        """Remember (or, with None, forget) the mode negotiated with `endpoint`."""
        if mode is None:
            self._modes.pop(endpoint, None)
        else:
            self._modes[endpoint] = mode
        try:
            if mode is None:
                self._read.execute("DELETE FROM structured_modes WHERE endpoint = ?", (endpoint,))
            else:
                self._read.execute(
                    "INSERT OR REPLACE INTO structured_modes VALUES (?, ?)", (endpoint, mode)
                )
        except sqlite3.Error as exc:
            raise self._user_error(exc) from None

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer: in the journal at once, in SQLite with the next batch."""
        line = self._journal(key, completion)
        self._pending[key] = completion
        self._added.add_int(key_index.prefix(key))
        self._enqueue((key, line))

    @property
    def backlog(self) -> int:
        """Answers stored but not committed yet."""
        return len(self._pending)

    async def room(self) -> None:
        """Wait while more than MAX_BACKLOG answers wait for their commit (backpressure: the
        writer never falls behind the answers by more than that)."""
        while len(self._pending) > MAX_BACKLOG:
            if self._error is not None or not self._thread.is_alive():
                raise self._user_error(self._error or RuntimeError("cache writer stopped"))
            self._hand_over()
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), 0.5)
            except TimeoutError:
                pass

    def submit(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the writer thread after every cache write queued before it."""
        self._enqueue(fn)

    def _enqueue(self, item: object) -> None:
        if self._error is not None:  # the writer stopped (disk full...): stop the run now
            raise self._user_error(self._error)
        self._buffer.append(item)
        if len(self._buffer) >= _BATCH_ITEMS:
            self._hand_over()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside an event loop: hand over at once
                self._hand_over()
                return
            self._loop = loop
            self._timer = loop.call_later(_BATCH_SECONDS, self._hand_over)

    def _hand_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._queue.put(batch)

    def flush(self) -> None:
        """Block until everything queued so far is written."""
        if self._stopping:  # the writer writes everything, then stops: wait for that
            self._thread.join()
            if self._error:
                raise self._user_error(self._error)
            return
        done = threading.Event()
        self._buffer.append(done.set)
        self._hand_over()
        while not done.wait(0.1):
            if not self._thread.is_alive():  # it stopped on an error: nothing will come
                break
        if self._error:
            raise self._user_error(self._error)

    def stop_writing(self) -> None:
        """No more gets or puts: the writer commits what is queued and closes its connection,
        the last one, so SQLite's checkpoint on close runs on the writer thread while this one
        goes on (the end of a run closes its HTTP connections meanwhile); `close` waits."""
        if self._stopping:
            return
        self._stopping = True
        self.write_journal()
        self._read.close()
        self._buffer.append(_STOP)
        self._hand_over()

    def close(self) -> None:
        self.stop_writing()
        self._thread.join()
        if self._error:  # the journal keeps what was not committed, for the next start
            raise self._user_error(self._error)
        if self._journal_fd is not None and self._journal_path is not None:
            _drop_journal(self._journal_path, self._journal_fd)
            self._journal_fd = self._journal_path = None

    # -- the answer journal -------------------------------------------------------------
    def _journal(self, key: str, c: Completion) -> bytes:
        """Journal the answer; return its line (JSON, without the newline).

        The lines of one event-loop turn are written together at the start of the next
        turn (one write, not one per answer: a write costs ~20 us, as much as a tenth of
        all the work around a call), and always before a record made from them is written:
        the run directory calls write_journal before it writes records. A kill between an
        answer's arrival and that write loses only answers of the last turn, which were in
        flight anyway."""
        if self._journal_error is not None:
            raise self._journal_error
        row = [key, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.created]
        row.append(c.model)
        if c.logprobs:
            row.append(c.logprobs)
        try:
            line = orjson.dumps(row)
        except (TypeError, orjson.JSONEncodeError):  # e.g. a lone surrogate in the text
            line = json.dumps(row).encode()
        lines = self._journal_lines
        lines.append(line + b"\n")
        if len(lines) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside an event loop: write it at once
                self.write_journal()
            else:
                loop.call_soon(self._write_journal_soon)
        return line

    def when_journaled(self, fn: Callable[[], object]) -> None:
        """Call `fn` once every answer journaled so far is written (now, if it is)."""
        if self._journal_lines:
            self._after_journal.append(fn)
        else:
            fn()

    def _write_journal_soon(self) -> None:
        try:
            self.write_journal()
        except Exception as exc:  # raised to the run by the next put or write_journal
            self._journal_error = exc

    def write_journal(self) -> None:
        """Write the journaled answers not written yet (one write)."""
        if self._journal_error is not None:
            raise self._journal_error
        lines = self._journal_lines
        if not lines:
            return
        data = b"".join(lines)
        lines.clear()
        try:
            if self._journal_fd is None or self._journal_bytes >= _JOURNAL_ROTATE_BYTES:
                self._rotate_journal()
            assert self._journal_fd is not None
            view = memoryview(data)
            while view:
                view = view[os.write(self._journal_fd, view) :]
        except OSError as exc:
            self._journal_error = self._user_error(exc)
            raise self._journal_error from None
        finally:  # (after a failed write too: the error stops the run at the next put)
            waiting, self._after_journal = self._after_journal, []
            for fn in waiting:
                fn()
        self._journal_bytes += len(data)

    def _rotate_journal(self) -> None:
        """Start a new journal file; the old one is deleted by the writer thread once every
        answer queued before now is committed."""
        old_path, old_fd = self._journal_path, self._journal_fd
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{time.time_ns()}.jsonl"
        path = self.journal_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._journal_path, self._journal_fd, self._journal_bytes = path, fd, 0
        if old_path is not None and old_fd is not None:
            self._enqueue(lambda: _drop_journal(old_path, old_fd))

    def _user_error(self, exc: BaseException) -> BaseException:
        """A full or read-only disk, or an unwritable cache or output path, is the user's to
        fix (one line, exit 2); anything else stays what it is."""
        if isinstance(exc, OSError) and is_path_error(exc):
            return path_error(exc)
        if isinstance(exc, sqlite3.Error):
            return UserError(
                f"cannot use the response cache {self.path}: {exc}; set SYNTHLOOM_CACHE to a"
                " file in a writable directory (with free space)"
            )
        return exc

    def __len__(self) -> int:
        return int(self._read.execute("SELECT count(*) FROM calls").fetchone()[0])

    def _writer(self) -> None:
        conn = _connect(self.path)
        try:
            # A snapshot before this process's first commit (puts wait in the queue meanwhile),
            # from the index file where it agrees with the database (synthloom.llm.key_index)
            loaded = self.keys_loaded = key_index.load(conn, self.path)
            self._known = loaded.known
            checkpointed = time.monotonic()
            while True:
                if time.monotonic() - checkpointed >= CHECKPOINT_EVERY and self._queue.empty():
                    # idle: move the committed rows from the WAL into the database now, not in
                    # the checkpoint SQLite makes when the cache closes, at the end of the run
                    # (~15 ms of a 3,000-call run's end; the GIL is released meanwhile)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    checkpointed = time.monotonic()
                batch = self._queue.get()
                while len(batch) < 4096:
                    try:
                        batch.extend(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._write_batch(conn, batch)
                if stop:
                    key_index.save(conn, self.path, loaded)
                    return
        except BaseException as exc:  # surfaced by flush()/close()
            self._error = exc
        finally:
            conn.close()

    def _write_batch(self, conn: sqlite3.Connection, batch: list[object]) -> bool:
        rows: list[tuple[str, bytes]] = []
        for item in batch:
            if isinstance(item, tuple):
                rows.append(item)
                continue
            self._commit(conn, rows)
            rows = []
            if item is _STOP:
                return True
            item()  # type: ignore[operator]
        self._commit(conn, rows)
        return False

    def _commit(self, conn: sqlite3.Connection, rows: list[tuple[str, bytes]]) -> None:
        if not rows:
            return
        served = logprobs = False
        for key, _ in rows:
            c = self._pending[key]
            served = served or c.model is not None
            logprobs = logprobs or bool(c.logprobs)
        conn.execute("BEGIN")
        try:
            if self._json_each:
                try:
                    self._insert_json(conn, rows, served, logprobs)
                except sqlite3.OperationalError as exc:  # an SQLite without JSON functions
                    if "json" not in str(exc):
                        raise
                    self._json_each = False
            if not self._json_each:
                self._insert_rows(conn, [key for key, _ in rows])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for key, _ in rows:
            self._pending.pop(key, None)
        loop, drained = self._loop, self._drained
        if drained is not None and loop is not None and len(self._pending) <= MAX_BACKLOG // 2:
            try:
                loop.call_soon_threadsafe(drained.set)
            except RuntimeError:  # the loop is closed
                pass

    @staticmethod
    def _insert_json(
        conn: sqlite3.Connection, rows: list[tuple[str, bytes]], served: bool, logprobs: bool
    ) -> None:
        """One statement per table for the whole batch: the GIL is released once."""
        data = (b"[" + b",".join(line for _, line in rows) + b"]").decode()
        conn.execute(_INSERT_CALLS, (data,))
        if served:
            conn.execute(_INSERT_SERVED, (data,))
        if logprobs:
            conn.execute(_INSERT_LOGPROBS, (data,))

    def _insert_rows(self, conn: sqlite3.Connection, keys: list[str]) -> None:
        rows, logprobs, served = [], [], []
        for key in keys:
            c = self._pending[key]
            rows.append(
                (key, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.created)
            )
            if c.logprobs:
                logprobs.append((key, json.dumps(c.logprobs)))
            if c.model is not None:
                served.append((key, c.model))
        conn.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?)", rows)
        if logprobs:
            conn.executemany("INSERT OR IGNORE INTO token_logprobs VALUES (?, ?)", logprobs)
        if served:
            conn.executemany("INSERT OR IGNORE INTO served_models VALUES (?, ?)", served)


def _drop_journal(path: Path, fd: int) -> None:
    """Delete a journal whose answers are all committed (then release its lock)."""
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def fold_journals(conn: sqlite3.Connection, directory: Path) -> int:
    """Commit the answers in journals left by processes that are gone (killed before their
    answers reached SQLite); delete those journals. Returns the number of answers read.
    A journal whose lock is held belongs to a running process and is left alone."""
    if not directory.is_dir():
        return 0
    count = 0
    for path in sorted(directory.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # its owner finished meanwhile
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            rows, served, logprobs = _journal_rows(data)
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT OR IGNORE INTO served_models VALUES (?, ?)", served)
            conn.executemany("INSERT OR IGNORE INTO token_logprobs VALUES (?, ?)", logprobs)
            conn.execute("COMMIT")
            count += len(rows)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return count


def _journal_rows(
    data: bytes,
) -> tuple[list[tuple[object, ...]], list[tuple[str, str]], list[tuple[str, str]]]:
    rows: list[tuple[object, ...]] = []
    served: list[tuple[str, str]] = []
    logprobs: list[tuple[str, str]] = []
    for raw in data.split(b"\n"):
        try:
            key, text, finish, pt, ct, created, model, *more = json.loads(raw)
        except (ValueError, TypeError):  # a line torn by the kill, or an empty tail
            continue
        rows.append((key, text, finish, int(pt), int(ct), float(created)))
        if model is not None:
            served.append((key, model))
        if more and more[0]:  # the answer's token log-probabilities
            logprobs.append((key, json.dumps(more[0])))
    return rows, served, logprobs
