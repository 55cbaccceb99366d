"""Seeded train/validation/test splits that keep each group of rows in one split.

A group is every row derived from one original: records joined by their provenance parents
(an augmentation and its original, an evolved instruction and the one it came from), the
pairs of one prompt, or rows sharing a value the user names (`--group-by`). Whole groups are
dealt to the splits, so no original has a variant in train and another in test.

How: groups in order of first appearance, shuffled with the seed, then each group goes to
the split furthest below its target row count (ties to the earlier split). The same rows and
seed always give the same split.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable, Sequence

SPLIT_NAMES = ("train", "validation", "test")


class Groups:
    """Union-find over keys: `join(a, b)` puts a and b in one group."""

    def __init__(self) -> None:
        self._parent: dict[Hashable, Hashable] = {}

    def find(self, key: Hashable) -> Hashable:
        root = self._parent.setdefault(key, key)
        while self._parent[root] != root:
            root = self._parent[root]
        while key != root:  # path compression
            key, self._parent[key] = self._parent[key], root
        return root

    def join(self, first: Hashable, others: Iterable[Hashable]) -> None:
        root = self.find(first)
        for other in others:
            other_root = self.find(other)
            if other_root != root:
                self._parent[other_root] = root


def check_shares(shares: Sequence[float]) -> tuple[float, ...]:
    """2 or 3 shares (train, validation[, test]), each in [0, 1], summing to 1."""
    if not 2 <= len(shares) <= 3:
        raise ValueError("give 2 or 3 shares: train,validation[,test], e.g. 0.8,0.1,0.1")
    if any(s < 0 or s > 1 for s in shares):
        raise ValueError("each share must be between 0 and 1")
    if abs(sum(shares) - 1) > 1e-6:
        raise ValueError(f"the shares add up to {sum(shares):g}; they must add up to 1")
    if shares[0] == 0:
        raise ValueError("the train share must be above 0")
    return tuple(float(s) for s in shares)


def assign(groups: Sequence[Hashable], shares: Sequence[float], seed: int) -> list[str]:
    """The split name of each row, from its group key (one key per row)."""
    shares = check_shares(shares)
    sizes: dict[Hashable, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    order = list(sizes)  # first appearance: stable for the same input
    random.Random(seed).shuffle(order)
    total = len(groups)
    targets = [s * total for s in shares]
    filled = [0] * len(shares)
    where: dict[Hashable, str] = {}
    for g in order:
        deficits = [t - f if t > 0 else float("-inf") for t, f in zip(targets, filled, strict=True)]
        best = max(range(len(shares)), key=lambda i: (deficits[i], -i))
        filled[best] += sizes[g]
        where[g] = SPLIT_NAMES[best]
    return [where[g] for g in groups]
