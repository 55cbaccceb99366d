"""Model-free deduplication: exact (hashed), near (MinHash LSH) and near-copy checks."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Hashable, Iterable, Sequence

from datasketch import MinHash, MinHashLSH
from rapidfuzz import process
from rapidfuzz.distance import Indel

__all__ = [
    "ExactDedup",
    "NearDedup",
    "dedup_within",
    "is_near_copy",
    "near_copy_score",
    "normalize",
    "shingles",
    "words",
]

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """NFKC + casefold, collapse whitespace, strip punctuation/space at both ends."""
    text = _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def words(text: str) -> list[str]:
    """Casefolded word tokens (``\\w+`` runs); the tokenizer shared by all quality tools."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def shingles(text: str, ngram: int = 5) -> list[bytes]:
    """Word n-gram shingles as UTF-8 bytes; fewer than ``ngram`` words -> one whole-text shingle."""
    toks = words(text)
    if len(toks) < ngram:
        return [" ".join(toks).encode()]
    return list({" ".join(toks[i : i + ngram]).encode() for i in range(len(toks) - ngram + 1)})


class ExactDedup:
    """Streaming exact dedup on :func:`normalize`-d text; keeps 16-byte digests only."""

    def __init__(self) -> None:
        self._digests: set[bytes] = set()

    @staticmethod
    def digest(text: str) -> bytes:
        """Stable 128-bit BLAKE2b digest of the normalized text."""
        return hashlib.blake2b(normalize(text).encode(), digest_size=16).digest()

    def seen(self, text: str) -> bool:
        """Record ``text``; return True if an equal normalized text was recorded before."""
        d = self.digest(text)
        if d in self._digests:
            return True
        self._digests.add(d)
        return False

    def __len__(self) -> int:
        return len(self._digests)


class NearDedup:
    """Streaming near-duplicate detector: MinHash over word shingles + banded LSH.

    Defaults follow datatrove: 5-gram shingles, 14 bands x 8 rows (112 perms).
    A pair with Jaccard ``s`` collides with probability ``1 - (1 - s**rows)**bands``:
    ~0.57 at 0.7, ~0.77 at 0.75, ~0.92 at 0.8, ~0.99 at 0.85 (usually quoted as a
    ~0.75 threshold). Any band collision counts as a duplicate (no verification).
    Duplicates are not inserted, so the first text of a cluster is the one kept.
    """

    def __init__(self, ngram: int = 5, bands: int = 14, rows: int = 8, seed: int = 1) -> None:
        if ngram < 1 or bands < 2 or rows < 1:
            raise ValueError("need ngram >= 1, bands >= 2, rows >= 1")
        self.ngram, self.bands, self.rows = ngram, bands, rows
        self.num_perm = bands * rows
        self._template = MinHash(num_perm=self.num_perm, seed=seed)
        self._lsh = MinHashLSH(
            threshold=self.threshold, num_perm=self.num_perm, params=(bands, rows)
        )
        self._order: dict[Hashable, int] = {}

    @property
    def threshold(self) -> float:
        """Approximate Jaccard threshold ``(1/bands)**(1/rows)`` (~0.72 for 14x8)."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    def detection_probability(self, jaccard: float) -> float:
        """Probability that two texts with this Jaccard similarity are flagged."""
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands

    def minhash(self, text: str) -> MinHash:
        """MinHash of the text's shingles (copies a prebuilt template, one batched update)."""
        m = self._template.copy()
        m.update_batch(shingles(text, self.ngram))
        return m

    def minhashes(self, texts: Iterable[str]) -> list[MinHash]:
        """MinHashes for many texts via ``MinHash.bulk`` (same permutations as :meth:`minhash`)."""
        return MinHash.bulk(
            (shingles(t, self.ngram) for t in texts),
            num_perm=self.num_perm,
            seed=self._template.seed,
        )

    def check_and_add(self, key: Hashable, text: str, mh: MinHash | None = None) -> Hashable | None:
        """Return the earliest stored key that near-duplicates ``text``; else store it, return None.

        ``mh`` may pass a precomputed :meth:`minhash` / :meth:`minhashes` result.
        Raises ``ValueError`` if a non-duplicate ``key`` was already stored.
        """
        m = mh if mh is not None else self.minhash(text)
        hits = self._lsh.query(m)
        if hits:
            return min(hits, key=self._order.__getitem__)
        if key in self._order:
            raise ValueError(f"key already stored: {key!r}")
        self._lsh.insert(key, m, check_duplication=False)
        self._order[key] = len(self._order)
        return None

    def __len__(self) -> int:
        return len(self._order)


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_copy_score(a: str, b: str) -> float:
    """Similarity in [0, 1] of two short texts: max of two views.

    * character view: normalized Indel similarity (``rapidfuzz.fuzz.ratio`` / 100)
      of :func:`normalize`-d texts -- catches small edits and punctuation changes;
    * word view: Jaccard of the :func:`words` sets -- catches reordering.
    """
    char = Indel.normalized_similarity(normalize(a), normalize(b))
    return max(char, _jaccard(set(words(a)), set(words(b))))


def is_near_copy(a: str, b: str, threshold: float = 0.9) -> bool:
    """True if :func:`near_copy_score` is at least ``threshold``."""
    return near_copy_score(a, b) >= threshold


def dedup_within(texts: Sequence[str], threshold: float = 0.9) -> list[int]:
    """Indices to keep: greedy in order, drop a text if it is a near copy of a kept one.

    Same criterion as :func:`is_near_copy`. Cost is O(n * kept) comparisons (the
    character view runs in rapidfuzz's C loop); for large corpora use :class:`NearDedup`.
    A ``threshold`` above 1 keeps everything.
    """
    if threshold > 1.0:
        return list(range(len(texts)))
    keep: list[int] = []
    kept_norm: list[str] = []
    kept_sets: list[set[str]] = []
    for i, text in enumerate(texts):
        norm, toks = normalize(text), set(words(text))
        if kept_norm and process.extractOne(
            norm, kept_norm, scorer=Indel.normalized_similarity, score_cutoff=threshold
        ):
            continue
        n = len(toks)
        # Jaccard <= min(|A|,|B|)/max(|A|,|B|): skip sets whose size alone rules them out.
        if any(
            min(n, len(s)) >= threshold * max(n, len(s)) and _jaccard(toks, s) >= threshold
            for s in kept_sets
        ):
            continue
        keep.append(i)
        kept_norm.append(norm)
        kept_sets.append(toks)
    return keep
