"""Dedup while generating: a streaming near-duplicate index of what a run already produced.

The same test as `synthloom dedup` (`synthloom.quality.dedup.NearDedup`): texts are sets of
word 5-gram shingles (`shingle_hashes`; a text of fewer words is one shingle), candidates come
from MinHash LSH banded for the threshold (`lsh_params`: a pair at the threshold is a
candidate with probability >= 0.99), and a candidate counts only if the true shingle Jaccard
is >= the threshold. Unlike NearDedup, which sees all texts at once, this index takes them one
at a time: `query` before a text is accepted, `add` once it is.

Candidates are bounded as NearDedup bounds them: each band key (a band's number and its run
of `rows` MinHash values, as rensa's LSH bands a signature, hashed by Python: equal values
give one key; a 64-bit collision only adds a candidate the exact check turns down) remembers
only the first `bucket_size` (32) texts added with it, so a query checks at most
`bands * bucket_size` candidates on their true Jaccard however many texts were added. A key
shared by more texts than that comes from a template (questions filled into one template
share the bands whose MinHash minima all fall on its fixed words, and every earlier one was
checked: quadratic); a near-duplicate is still found through the other bands the pair shares
(those touching the words only they have). While no key is shared by more than
`bucket_size` texts, the candidates are exactly rensa's band-mates, so the answers are those
of checking every one. `checks`: the candidates checked on their true Jaccard so far.

Memory: about 2 KB a text with 17 bands, shingles included (its band keys in a dict; 20-word
texts: 2.1 KB, 2.0 KB with rensa's LSH tables before); the shingle hashes of each text are
kept for the exact check (8 bytes a shingle plus ~100 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthloom.quality.dedup import BUCKET_SIZE, BandBuckets, lsh_params, shingle_hashes

NGRAM = 5  # as NearDedup and `synthloom dedup`


@dataclass(frozen=True)
class Hit:
    id: str  # the earlier text's id (a record id)
    jaccard: float


class NearIndex:
    def __init__(self, threshold: float, ngram: int = NGRAM, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold, self.ngram, self.seed = threshold, ngram, seed
        self.rows, self.bands = lsh_params(threshold)
        self.num_perm = self.rows * self.bands
        self.bucket_size = BUCKET_SIZE
        self.checks = 0  # candidates checked on their true Jaccard by all queries so far
        self._buckets = BandBuckets(self.bucket_size)  # band key -> first texts added with it
        self._ids: list[str] = []
        self._shingles: list[np.ndarray] = []
        self._last: tuple[str, np.ndarray, list[int]] | None = None  # add after query: reused

    def __len__(self) -> int:
        return len(self._ids)

    def _prepare(self, text: str) -> tuple[np.ndarray, list[int]]:
        """The text's distinct shingle hashes and its band keys."""
        import rensa

        if self._last is not None and self._last[0] == text:
            return self._last[1], self._last[2]
        flat, _ = shingle_hashes([text], self.ngram)
        shingles = np.unique(flat)
        minhash = rensa.RMinHash(self.num_perm, self.seed)
        minhash.update([h.tobytes() for h in shingles])
        digest, rows = minhash.digest(), self.rows
        keys = [
            hash((band, *digest[band * rows : (band + 1) * rows])) for band in range(self.bands)
        ]
        self._last = (text, shingles, keys)
        return shingles, keys

    def query(self, text: str) -> Hit | None:
        """The earliest added text `text` near-duplicates (of those its band keys remember),
        or None."""
        shingles, keys = self._prepare(text)
        for row in sorted(self._buckets.candidates(keys)):
            self.checks += 1
            other = self._shingles[row]
            common = len(np.intersect1d(shingles, other, assume_unique=True))
            jaccard = common / (len(shingles) + len(other) - common)
            if jaccard >= self.threshold:
                return Hit(self._ids[row], jaccard)
        return None

    def add(self, text: str, id: str) -> None:
        shingles, keys = self._prepare(text)
        self._buckets.add(keys, len(self._ids))
        self._ids.append(id)
        self._shingles.append(shingles)
