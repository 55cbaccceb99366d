"""The response cache's index of stored keys, kept beside it so a start does not read them all.

Before its first miss a run needs to know which calls the cache holds (`ResponseCache.get`
answers a miss without touching SQLite): the 60-bit prefix of every stored key, in an IdSet.
Reading them from SQLite costs about 1 us a key on the writer thread at every start (1 s per
million cached calls, most of it holding the GIL while the command starts). So at close, when
many of the keys it read came from SQLite, the writer saves them to `<cache>.keys` with the
highest rowid they cover; the next start reads that file (8 bytes a key) and only the rows
after that rowid (those the last runs stored).

The file is a hint, never the truth: it is replaced atomically (a temporary file renamed, no
fsync: a lost or stale file costs one full read); it is used only if the row it names as its
last still holds the same key (a VACUUM that renumbered rows, or a cache file replaced, makes
it disagree: then every key is read again). A prefix missing from it would only make a call
a miss that is then asked again and stored once more; an extra prefix costs one SQLite read.
Several processes sharing a cache each save the keys of the rows up to the rowid they started
from: whichever file is left is right.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

from synthloom.idset import IdSet

_MAGIC = b"synthloom-keys-1\n"
_HEAD = struct.Struct("<QQ64s")  # rowid covered, number of prefixes, the key at that rowid
SMALL = 4096  # keys: a cache this small is read from SQLite (~4 ms), no file kept


@dataclass
class Loaded:
    known: IdSet
    rowid: int  # every row up to this one has its prefix in `known`
    from_file: int  # prefixes read from the file (0: none, or the file was not usable)
    from_rows: int  # prefixes read from SQLite


def prefix(key: str) -> int:
    """The 60-bit prefix of a cache key (15 hex digits) the index keeps."""
    return int(key[:15], 16)


def index_path(cache: Path) -> Path:
    return Path(f"{cache}.keys")


def load(conn: sqlite3.Connection, cache: Path) -> Loaded:
    """The prefixes of every key stored now, from the index file when it agrees with the
    database, and from SQLite for the rest."""
    top = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM calls").fetchone()[0])
    known = IdSet()
    since, from_file = _read(conn, index_path(cache), top, known)
    rows = conn.execute("SELECT key FROM calls WHERE rowid > ?", (since,))
    from_rows = 0
    while batch := rows.fetchmany(1 << 16):
        known.add_ints([prefix(k) for (k,) in batch])
        from_rows += len(batch)
    return Loaded(known, top, from_file, from_rows)


def _read(conn: sqlite3.Connection, path: Path, top: int, known: IdSet) -> tuple[int, int]:
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0
    head_end = len(_MAGIC) + _HEAD.size
    if not data.startswith(_MAGIC) or len(data) < head_end:
        return 0, 0
    rowid, count, last = _HEAD.unpack_from(data, len(_MAGIC))
    body = data[head_end:]
    if len(body) != 8 * count or rowid > top or rowid == 0:
        return 0, 0
    row = conn.execute("SELECT key FROM calls WHERE rowid = ?", (rowid,)).fetchone()
    if row is None or row[0].encode() != last.rstrip(b"\0"):
        return 0, 0
    known.add_int_bytes(body)
    return rowid, count


def save(conn: sqlite3.Connection, cache: Path, loaded: Loaded) -> bool:
    """Write the index file of what `load` read, if enough of it came from SQLite (returns
    whether it did). The rows stored since (this process's own) are read by the next start:
    file and rows never overlap, so no prefix is kept twice."""
    total = len(loaded.known)
    if total < SMALL or loaded.from_rows < max(SMALL, total // 20) or loaded.rowid == 0:
        return False
    row = conn.execute("SELECT key FROM calls WHERE rowid = ?", (loaded.rowid,)).fetchone()
    if row is None:
        return False
    body = loaded.known.int_bytes()
    head = _MAGIC + _HEAD.pack(loaded.rowid, len(body) // 8, row[0].encode())
    path = index_path(cache)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(head + body)
        os.replace(tmp, path)
    except OSError:  # a hint only: a cache in a read-only place just reads its keys again
        tmp.unlink(missing_ok=True)
        return False
    return True
