"""The persistent response cache (SQLite) and the single background writer.

Every model answer is stored under its call key. Writes never block the event loop: they are
buffered for up to 50 ms (or 512 items) and handed to one writer thread that commits each
batch in one transaction. Handing over per item would wake the writer for every call, and the
resulting GIL hand-offs cost more than the HTTP request itself (measured: see benchmarks/). The same thread also appends records to
run outputs (`submit`), strictly after the cache writes queued before them, so a record is
never on disk before the answers it was made from: a resumed run re-pays at most the calls
that were in flight when the process died.

Misses do not touch SQLite: the writer thread first loads a 60-bit prefix of every stored key
into a set (about 65 MB and 1 s per million cached calls), and `get` reads the database only
for a key whose prefix is known. A read per miss on the event-loop thread, racing the writer's
commits, cost a third of the engine's throughput against a fast server (benchmarks/). Keys
written by another process while this one runs are not seen as hits (they are re-asked and
stored once).
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from synthloom.errors import UserError, is_path_error, path_error
from synthloom.llm.base import Completion

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
"""
# token_logprobs: the answer's token log-probabilities (JSON), for answers that have them.
_STOP = object()
_BATCH_SECONDS = 0.05
_BATCH_ITEMS = 512


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
        except (OSError, sqlite3.Error) as exc:
            raise self._user_error(exc) from None
        self._pending: dict[str, Completion] = {}
        self._known: set[int] | None = None  # prefixes stored before this process wrote
        self._added: set[int] = set()  # prefixes this process put
        self._queue: queue.SimpleQueue[list[object]] = queue.SimpleQueue()
        self._buffer: list[object] = []
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._writer, name="synthloom-writer", daemon=True)
        self._thread.start()

    def get(self, key: str) -> Completion | None:
        hit = self._pending.get(key)
        if hit is not None:
            return hit
        known = self._known
        if known is not None:
            prefix = int(key[:15], 16)
            if prefix not in known and prefix not in self._added:
                return None
        row = self._read.execute(
            "SELECT c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.created,"
            " l.data FROM calls c LEFT JOIN token_logprobs l ON l.key = c.key WHERE c.key = ?",
            (key,),
        ).fetchone()
        if not row:
            return None
        return Completion(*row[:5], logprobs=json.loads(row[5]) if row[5] else None)

    def put(self, key: str, completion: Completion) -> None:
        self._pending[key] = completion
        self._added.add(int(key[:15], 16))
        self._enqueue(key)

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
        done = threading.Event()
        self._buffer.append(done.set)
        self._hand_over()
        while not done.wait(0.1):
            if not self._thread.is_alive():  # it stopped on an error: nothing will come
                break
        if self._error:
            raise self._user_error(self._error)

    def close(self) -> None:
        self._buffer.append(_STOP)
        self._hand_over()
        self._thread.join()
        self._read.close()
        if self._error:
            raise self._user_error(self._error)

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
            # A snapshot before this process's first commit (puts wait in the queue meanwhile).
            self._known = {int(k[:15], 16) for (k,) in conn.execute("SELECT key FROM calls")}
            while True:
                batch = self._queue.get()
                while len(batch) < 4096:
                    try:
                        batch.extend(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._write_batch(conn, batch)
                if stop:
                    return
        except BaseException as exc:  # surfaced by flush()/close()
            self._error = exc
        finally:
            conn.close()

    def _write_batch(self, conn: sqlite3.Connection, batch: list[object]) -> bool:
        keys: list[str] = []
        for item in batch:
            if isinstance(item, str):
                keys.append(item)
                continue
            self._commit(conn, keys)
            keys = []
            if item is _STOP:
                return True
            item()  # type: ignore[operator]
        self._commit(conn, keys)
        return False

    def _commit(self, conn: sqlite3.Connection, keys: list[str]) -> None:
        if not keys:
            return
        rows = []
        logprobs = []
        for key in keys:
            c = self._pending[key]
            rows.append(
                (key, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.created)
            )
            if c.logprobs:
                logprobs.append((key, json.dumps(c.logprobs)))
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?)", rows)
        if logprobs:
            conn.executemany("INSERT OR IGNORE INTO token_logprobs VALUES (?, ?)", logprobs)
        conn.execute("COMMIT")
        for key in keys:
            self._pending.pop(key, None)
