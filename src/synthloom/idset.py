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
        self._sorted: np.ndarray | None = None
        self._recent: set[int] = set()
        self._other: set[str] = set()
        self.update(ids)

    def __len__(self) -> int:
        done = 0 if self._sorted is None else len(self._sorted)
        return done + len(self._recent) + len(self._other)

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
        s = self._sorted
        if s is None or not len(s):
            return False
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
        """Add many 64-bit values at once (a numpy uint64 array or an iterable of ints)."""
        import numpy as np

        extra = np.unique(np.asarray(values, dtype=np.uint64))
        if self._sorted is None or not len(self._sorted):
            self._sorted = extra
        else:
            self._sorted = np.union1d(self._sorted, extra)

    def _merge(self) -> None:
        import numpy as np

        recent = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        self._recent = set()
        self.add_ints(recent)

    def __iter__(self) -> Any:
        raise TypeError("an IdSet answers `in`; it does not list its ids")
