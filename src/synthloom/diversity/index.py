"""Dedup while generating: a streaming near-duplicate index of what a run already produced.

The same test as `synthloom dedup` (`synthloom.quality.dedup.NearDedup`): texts are sets of
word 5-gram shingles (`shingle_hashes`; a text of fewer words is one shingle), candidates come
from MinHash LSH banded for the threshold (`lsh_params`: a pair at the threshold is a
candidate with probability >= 0.99), and a candidate counts only if the true shingle Jaccard
is >= the threshold. Unlike NearDedup, which sees all texts at once, this index takes them one
at a time: `query` before a text is accepted, `add` once it is.

Memory: the LSH tables live in rensa (Rust), about 1 KB a text with 17 bands; the shingle
hashes of each text are kept for the exact check (8 bytes a shingle plus ~100 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthloom.quality.dedup import lsh_params, shingle_hashes

NGRAM = 5  # as NearDedup and `synthloom dedup`


@dataclass(frozen=True)
class Hit:
    id: str  # the earlier text's id (a record id)
    jaccard: float


class NearIndex:
    def __init__(self, threshold: float, ngram: int = NGRAM, seed: int = 1) -> None:
        import rensa

        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold, self.ngram, self.seed = threshold, ngram, seed
        self.rows, self.bands = lsh_params(threshold)
        self.num_perm = self.rows * self.bands
        self._lsh = rensa.RMinHashLSH(threshold, self.num_perm, self.bands)
        self._ids: list[str] = []
        self._shingles: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._ids)

    def _prepare(self, text: str) -> tuple[np.ndarray, object]:
        import rensa

        flat, _ = shingle_hashes([text], self.ngram)
        shingles = np.unique(flat)
        minhash = rensa.RMinHash(self.num_perm, self.seed)
        minhash.update([h.tobytes() for h in shingles])
        return shingles, minhash

    def query(self, text: str) -> Hit | None:
        """The earliest added text `text` near-duplicates, or None."""
        shingles, minhash = self._prepare(text)
        for key in sorted(self._lsh.query(minhash)):
            other = self._shingles[key]
            common = len(np.intersect1d(shingles, other, assume_unique=True))
            jaccard = common / (len(shingles) + len(other) - common)
            if jaccard >= self.threshold:
                return Hit(self._ids[key], jaccard)
        return None

    def add(self, text: str, id: str) -> None:
        shingles, minhash = self._prepare(text)
        self._lsh.insert(len(self._ids), minhash)
        self._ids.append(id)
        self._shingles.append(shingles)
