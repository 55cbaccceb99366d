"""The response cache's index file of stored keys (synthloom.llm.key_index, issue 12): a start
reads the keys from it, not from SQLite, and a stale or damaged file is never trusted: every
stored call stays a hit and nothing else becomes one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from synthloom.llm import key_index
from synthloom.llm.base import Completion
from synthloom.llm.cache import ResponseCache


def _key(i: int) -> str:
    return f"{i * 2654435761 % 2**64:016x}" * 4  # 64 hex digits, spread like sha256 keys


def _fill(path: Path, keys: range) -> None:
    cache = ResponseCache(path)
    for i in keys:
        cache.put(_key(i), Completion(f"answer {i}", "stop", 1, 2, 3.0))
    cache.close()


def _open(path: Path) -> tuple[ResponseCache, key_index.Loaded]:
    cache = ResponseCache(path)
    cache.flush()  # the writer loads the keys before it takes its first batch
    assert cache.keys_loaded is not None
    return cache, cache.keys_loaded


def _hits_and_misses(cache: ResponseCache, stored: range, absent: range) -> None:
    for i in list(stored)[:: max(1, len(stored) // 500)]:
        assert cache.get(_key(i)) == Completion(f"answer {i}", "stop", 1, 2, 3.0), i
    for i in absent:
        assert cache.get(_key(i)) is None


def test_a_start_reads_the_stored_keys_from_the_index_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    _fill(path, range(6000))
    cache, loaded = _open(path)  # every key from SQLite; saved at close
    assert (loaded.from_file, loaded.from_rows) == (0, 6000)
    cache.close()
    assert key_index.index_path(path).exists()
    _fill(path, range(6000, 6100))  # a later run stores 100 more (read from SQLite next time)
    cache, loaded = _open(path)
    assert (loaded.from_file, loaded.from_rows) == (6000, 100)
    _hits_and_misses(cache, range(6100), range(10_000, 10_200))
    cache.close()


def test_a_stale_or_damaged_index_file_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    _fill(path, range(6000))
    cache, _ = _open(path)
    cache.close()
    index = key_index.index_path(path)
    good = index.read_bytes()
    # rows deleted (and VACUUM): the file may still be used; a deleted call is no hit
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM calls WHERE rowid <= 10")
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    cache, loaded = _open(path)
    _hits_and_misses(cache, range(10, 6000), range(10))
    cache.close()
    # the cache replaced by another one: the row the file names as its last holds another key
    for name in ("c.sqlite", "c.sqlite-wal", "c.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    _fill(path, range(20_000, 26_000))
    index.write_bytes(good)
    cache, loaded = _open(path)
    assert loaded.from_file == 0 and loaded.from_rows == 6000
    _hits_and_misses(cache, range(20_000, 26_000), range(6000))
    cache.close()
    good = index.read_bytes()
    for damaged in (good[:-3], good[:20], b"", b"not an index" + good[12:]):
        index.write_bytes(damaged)
        cache, loaded = _open(path)
        assert loaded.from_file == 0 and loaded.from_rows == 6000
        _hits_and_misses(cache, range(20_000, 26_000), range(6000))
        cache.close()


def test_a_small_cache_keeps_no_index_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    _fill(path, range(300))
    cache, loaded = _open(path)
    assert (loaded.from_file, loaded.from_rows) == (0, 300)
    cache.close()
    assert not key_index.index_path(path).exists()
