"""A set of record ids (or other 64-bit digests) in 8 bytes each, for resuming huge runs.

Record ids are 16 hex digits (`records.stable_id`): one unsigned 64-bit integer. `IdSet` keeps
them in a sorted numpy array, with the ones added since the last merge in a small Python set;
an id of another shape (not 16 lowercase hex digits) is kept as a string beside them. A Python
set of the same strings costs about 100 bytes an id (a 65-byte string and its slot), a set of
ints 70; this costs 8 (10.5 MB for a million, measured with tracemalloc), plus at most MERGE
recent ones. numpy is imported only once a set is that large.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MERGE = 1 << 16  # recent ids kept in a Python set before they are merged into the array


def id_int(value: str) -> int | None:
    """`value` as its 64-bit integer when it is 16 lowercase hex digits, else None."""
    if len(value) != 16:
        return None
    try:
        n = int(value, 16)
    except ValueError:
        return None
    return n if f"{n:016x}" == value else None  # refuses "0x..", "_", "+", upper case


def _uint64(n: int) -> Any:
    import numpy as np

    return np.uint64(n)


class IdSet:
    def __init__(self, ids: Iterable[str] = ()) -> None:
        # the array's first `_n` values are the merged ids, sorted once `_dirty` is False; its
        # capacity doubles when full, so merging never allocates a slightly larger array
        # each time (freed arrays of growing sizes fragmented the heap: 70 bytes an id)
        self._buf: np.ndarray | None = None
        self._n = 0
        self._sorted: np.ndarray | None = None  # a view of the merged ids, sorted
        self._dirty = False
        self._recent: set[int] = set()
        self._other: set[str] = set()
        self.update(ids)

    def __len__(self) -> int:
        return self._n + len(self._recent) + len(self._other)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        n = id_int(value)
        if n is None:
            return value in self._other
        return self.has_int(n)

    def has_int(self, n: int) -> bool:
        if n in self._recent:
            return True
        if not self._n:
            return False
        if self._dirty:
            self._sort()
        s = self._sorted
        assert s is not None
        i = int(s.searchsorted(_uint64(n)))  # a Python int above 2**63 would cost 1 ms
        return i < len(s) and int(s[i]) == n

    def add(self, value: str) -> None:
        n = id_int(value)
        if n is None:
            self._other.add(value)
        else:
            self.add_int(n)

    def add_int(self, n: int) -> None:
        self._recent.add(n)
        if len(self._recent) >= MERGE:
            self._merge()

    def update(self, ids: Iterable[str]) -> None:
        for value in ids:
            self.add(value)

    def add_ints(self, values: Any) -> None:
        """Add many 64-bit values at once (a numpy uint64 array or a sequence of ints)."""
        if isinstance(values, list) and len(self._recent) + len(values) < MERGE:
            self._recent.update(values)  # small: no numpy (a command's start-up, issue 12)
            return
        import numpy as np

        self._append(np.asarray(values, dtype=np.uint64))

    def _merge(self) -> None:
        import numpy as np

        recent = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        self._recent = set()
        self._append(recent)

    def _append(self, values: np.ndarray) -> None:
        import numpy as np

        need = self._n + len(values)
        buf = self._buf
        if buf is None or need > len(buf):
            grown = np.empty(max(need, 2 * (0 if buf is None else len(buf)), MERGE), np.uint64)
            if buf is not None:
                grown[: self._n] = buf[: self._n]
            self._buf = buf = grown
        buf[self._n : need] = values
        self._n = need
        self._dirty = True

    def int_bytes(self) -> bytes:
        """Every 64-bit value in the set as unsigned 64-bit integers in native byte order, in
        no particular order (the ids of another shape are left out); `add_int_bytes` reads
        them back."""
        from array import array

        merged = b"" if self._buf is None else self._buf[: self._n].tobytes()
        return merged + array("Q", self._recent).tobytes()

    def add_int_bytes(self, data: bytes) -> None:
        """Add the values `int_bytes` wrote (no numpy for a few)."""
        if len(self._recent) + len(data) // 8 < MERGE:
            from array import array

            values = array("Q")
            values.frombytes(data)
            self._recent.update(values)
            return
        import numpy as np

        self._append(np.frombuffer(data, dtype=np.uint64))

    def _sort(self) -> None:
        assert self._buf is not None
        self._sorted = self._buf[: self._n]
        self._sorted.sort()  # in place
        self._dirty = False

    def __iter__(self) -> Any:
        raise TypeError("an IdSet answers `in`; it does not list its ids")
