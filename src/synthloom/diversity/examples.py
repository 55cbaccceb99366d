"""Real-example conditioning: k real examples in each prompt, rotated from call to call.

Examples are rows of a .jsonl/.csv file or a synthloom run; each task names the columns it
shows (qa: question and answer). Each call gets k of them (`--shots`), in rotation:

- the examples are shuffled (seeded by the run seed) and dealt k at a time, a fresh shuffle
  for every pass, so every example is shown about as often as every other (exactly, within
  one, until a set has to be replaced);
- a k-set already shown is never dealt again while an unshown one is left: it is replaced by
  one not shown yet (a seeded draw, else the next in combination order). Only once all
  C(m, k) sets have been shown does the rotation start over.

The sequence depends only on the seed, m and k, so unit i always gets the same examples (a
rerun, a resumed run and a run with a larger N agree). A re-asked unit (dedup while
generating) gets a seeded random k-set of its own. Memory: the sets dealt so far, about 100
bytes a unit.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloom.errors import UserError
from synthloom.sources import iter_inputs

CLIP = 600  # characters of one example field shown in a prompt


@dataclass(frozen=True)
class Example:
    id: str  # the record id (a run), else file:line
    fields: dict[str, str]  # the columns a task shows, clipped


def load_examples(
    path: Path, required: Sequence[str], optional: Sequence[str] = (), where: str = "examples"
) -> tuple[list[Example], str]:
    """The examples of `path` with the `required` columns (and `optional` ones where present),
    and a hash of them (part of a run's identity)."""
    if not path.exists():
        raise UserError(f"{where}: {path}: not found; give a .jsonl/.csv file or a run directory")
    examples: list[Example] = []
    digest = hashlib.sha256()
    for row in iter_inputs(path, list(required)):
        fields: dict[str, str] = {}
        for column in (*required, *optional):
            value = row.data.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            text = value if isinstance(value, str) else str(value)
            fields[column] = text.strip()[:CLIP]
        examples.append(Example(row.record_id or f"{row.path.name}:{row.line}", fields))
        digest.update(repr(sorted(fields.items())).encode())
    if not examples:
        raise UserError(f"{where}: {path}: no rows")
    return examples, digest.hexdigest()[:16]


class Rotation:
    """Which k of m examples call i shows (see the module docstring)."""

    def __init__(self, m: int, k: int, seed: int | None) -> None:
        self.m, self.k = m, min(k, m)
        self.seed = seed or 0
        self.total = math.comb(self.m, self.k)
        self._sets: list[tuple[int, ...]] = []
        self._shown: set[tuple[int, ...]] = set()
        self._stream: list[int] = []
        self._pass = 0
        self._rng = random.Random(f"{self.seed}:rotation:replace")

    def shots(self, i: int) -> tuple[int, ...]:
        while len(self._sets) <= i:
            self._sets.append(self._next())
        return self._sets[i]

    def extra(self, key: str, attempt: int) -> tuple[int, ...]:
        """A re-asked call's examples: a seeded random k-set."""
        rng = random.Random(f"{self.seed}:rotation:{key}:{attempt}")
        return tuple(rng.sample(range(self.m), self.k))

    def _deal(self) -> tuple[int, ...]:
        block: list[int] = []
        while len(block) < self.k:
            if not self._stream:
                order = list(range(self.m))
                random.Random(f"{self.seed}:rotation:{self._pass}").shuffle(order)
                self._pass += 1
                self._stream = order[::-1]  # pop() from the end deals in shuffled order
            index = self._stream.pop()
            if index not in block:
                block.append(index)
        return tuple(block)

    def _next(self) -> tuple[int, ...]:
        block = self._deal()
        key = tuple(sorted(block))
        if key in self._shown:
            if len(self._shown) >= self.total:
                self._shown.clear()  # every k-set shown: the rotation starts over
            else:
                block = self._unshown()
                key = tuple(sorted(block))
        self._shown.add(key)
        return block

    def _unshown(self) -> tuple[int, ...]:
        for _ in range(32):
            block = tuple(self._rng.sample(range(self.m), self.k))
            if tuple(sorted(block)) not in self._shown:
                return block
        start = self._rng.randrange(self.total)
        for step in range(self.total):
            combo = unrank((start + step) % self.total, self.m, self.k)
            if combo not in self._shown:
                return combo
        raise AssertionError("no unshown k-set although fewer than all were shown")


def unrank(rank: int, m: int, k: int) -> tuple[int, ...]:
    """The `rank`-th k-subset of range(m) in lexicographic order (sorted)."""
    out: list[int] = []
    start = 0
    for slots in range(k, 0, -1):
        for x in range(start, m):
            below = math.comb(m - x - 1, slots - 1)  # subsets that take x next
            if rank < below:
                out.append(x)
                start = x + 1
                break
            rank -= below
    return tuple(out)


def shown(examples: Sequence[Example], indices: Sequence[int]) -> list[dict[str, Any]]:
    """The fields of the chosen examples, for the template."""
    return [dict(examples[i].fields) for i in indices]
