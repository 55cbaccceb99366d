"""Model-free deduplication: exact (hashed), near (MinHash LSH, confirmed on the true
Jaccard), and near-copy checks of short texts."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel

# plain-Python text helpers live in quality.text (cheap to import); re-exported here
from synthloom.quality.text import normalize, words

__all__ = [
    "ExactDedup",
    "Match",
    "NearDedup",
    "lsh_params",
    "shingle_hashes",
    "dedup_within",
    "is_near_copy",
    "near_copy_score",
    "normalize",
    "shingles",
    "words",
]


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


DEFAULT_THRESHOLD = 0.7  # shingle Jaccard; DESIGN.md: about 0.7-0.8 (text-dedup uses 0.7)
_MAX_PERM = 128
BATCH = 50_000  # texts tokenised at once (bounds the memory of their word lists)
BUCKET_SIZE = 32  # kept texts a band key remembers (NearDedup: bounds the checks per text)
_CACHED_SHINGLES = 1 << 20  # shingles NearDedup keeps as sets while checking (~100 MB)


class BandBuckets:
    """LSH band key -> the first `size` rows kept with it, in order (a single row is held as an
    int: most keys have one). What bounds the candidates of NearDedup and of the streaming
    NearIndex (synthloom.diversity.index): a key shared by more rows than `size` comes from a
    template (see NearDedup)."""

    def __init__(self, size: int = BUCKET_SIZE) -> None:
        self.size = size
        self._rows: dict[int, int | list[int]] = {}

    def candidates(self, keys: Iterable[int]) -> set[int]:
        """The rows kept with any of `keys`."""
        found: set[int] = set()
        rows = self._rows
        for key in keys:
            kept = rows.get(key)
            if kept is None:
                continue
            if isinstance(kept, int):
                found.add(kept)
            else:
                found.update(kept)
        return found

    def add(self, keys: Iterable[int], row: int) -> None:
        """`row` is kept: remember it under each of its keys that is not full."""
        rows, size = self._rows, self.size
        for key in keys:
            kept = rows.get(key)
            if kept is None:
                rows[key] = row
            elif isinstance(kept, int):
                if size > 1:
                    rows[key] = [kept, row]
            elif len(kept) < size:
                kept.append(row)


class NearDedup:
    """Near-duplicate detection: MinHash LSH over word n-gram shingles, each candidate pair
    confirmed on its true Jaccard similarity.

    Texts become sets of hashed word n-grams (:func:`shingle_hashes`; a text of fewer than
    ``ngram`` words is one whole-text shingle). `rensa` (a Rust MinHash) computes the
    signatures of all texts at once and tells which share an LSH band with another; only those
    are looked at again, in order: a text whose band-mates include an earlier kept text with
    shingle Jaccard >= ``threshold`` is a duplicate of the earliest such text, otherwise it is
    kept (duplicates are never matched against, so the first text of a cluster is the one
    kept). The banding is chosen so that a pair at the threshold becomes a candidate with
    probability >= 0.99 (:func:`lsh_params`); the exact check then removes the false positives
    LSH alone would keep, so nothing under the threshold is ever called a duplicate.

    Each band key remembers only the first ``bucket_size`` (32) kept texts that have it, so a
    text is checked against at most ``bands * bucket_size`` candidates however many texts
    there are. A key shared by more kept texts than that comes from a template: texts filled
    into one template share the bands whose MinHash minima all fall on its fixed words, and
    every pair of them is a candidate there although few are near duplicates. A near-duplicate
    of a later text is then found through the other bands they share (those that touch the
    words they alone have), so recall barely changes (templated
    texts with 4,000 planted near-duplicates at Jaccard 0.71-0.89: one pair fewer found, in
    25-35x fewer checks). While no key is shared by more than ``bucket_size`` kept texts (texts
    not made from a template) the answers are exactly those of checking every candidate.
    ``checks``: the candidate pairs the last call checked on their true Jaccard.

    Reference texts (e.g. an evaluation set) count as kept before the first text: a text near
    one of them is a duplicate of that reference text.
    """

    def __init__(self, ngram: int = 5, threshold: float = DEFAULT_THRESHOLD, seed: int = 1):
        if ngram < 1 or not 0.0 < threshold <= 1.0:
            raise ValueError("need ngram >= 1 and 0 < threshold <= 1")
        self.ngram, self.threshold, self.seed = ngram, threshold, seed
        self.rows, self.bands = lsh_params(threshold)
        self.num_perm = self.rows * self.bands
        self.bucket_size = BUCKET_SIZE
        self.checks = 0  # candidate pairs the last find checked on their true Jaccard

    def candidate_probability(self, jaccard: float) -> float:
        """Probability that two texts with this Jaccard similarity share a band."""
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands

    def find(self, texts: Sequence[str], reference: Sequence[str] = ()) -> list[Match | None]:
        """For each text: None (kept), or the :class:`Match` it near-duplicates."""
        n_ref = len(reference)
        flat, offsets = shingle_hashes([*reference, *texts], self.ngram)
        return self._find(flat, offsets, n_ref)[n_ref:]

    def find_hashed(self, flat: np.ndarray, offsets: np.ndarray) -> list[Match | None]:
        """`find` of texts whose shingles are already hashed (`shingle_hashes` with this
        finder's `ngram`, or parts of them joined by `join_shingles`)."""
        return self._find(flat, offsets, 0)

    def _find(self, flat: np.ndarray, offsets: np.ndarray, n_ref: int) -> list[Match | None]:
        import rensa

        n = len(offsets) - 1
        result: list[Match | None] = [None] * n
        if n == 0:
            return result
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            flat, offsets, self.num_perm, self.seed
        )
        lsh = rensa.RMinHashLSH(self.threshold, self.num_perm, self.bands)
        flags = np.fromiter(lsh.query_duplicate_flags_matrix_one_shot(matrix), bool, count=n)
        del matrix
        rows = np.flatnonzero(flags)
        if len(rows) == 0:
            return result
        keys = self._band_keys(flat, offsets, rows)
        buckets = BandBuckets(self.bucket_size)
        cache: dict[int, frozenset[int]] = {}  # shingle sets of rows checked lately
        cached = checks = 0

        def shingle_set(i: int) -> frozenset[int]:
            nonlocal cached
            found = cache.get(i)
            if found is None:
                found = frozenset(flat[offsets[i] : offsets[i + 1]].tolist())
                if cached + len(found) > _CACHED_SHINGLES:
                    cache.clear()
                    cached = 0
                cache[i] = found
                cached += len(found)
            return found

        for row, band_keys in zip(rows.tolist(), keys.tolist(), strict=True):
            if row >= n_ref:
                candidates = buckets.candidates(band_keys)
                if candidates:
                    mine = shingle_set(row)
                    for c in sorted(candidates):
                        checks += 1
                        other = shingle_set(c)
                        score = len(mine & other) / len(mine | other)
                        if score >= self.threshold:
                            result[row] = Match(c if c < n_ref else c - n_ref, c < n_ref, score)
                            break
                    if result[row] is not None:
                        continue
            buckets.add(band_keys, row)
        self.checks = checks
        return result

    def band_keys(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's LSH band keys, shape (len(texts), bands): two texts are candidates
        when they share a key (the keys `find` buckets by; synthloom.quality.dedup_ray groups
        them across a Ray cluster)."""
        flat, offsets = shingle_hashes(texts, self.ngram)
        rows = np.arange(len(texts))
        if not len(rows):
            return np.zeros((0, self.bands), dtype=np.uint64)
        return self._band_keys(flat, offsets, rows)

    def _band_keys(self, flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """One 64-bit key per band for each of `rows` (the same banding rensa's LSH uses:
        contiguous runs of `self.rows` signature values)."""
        import rensa

        starts, ends = offsets[rows], offsets[rows + 1]
        lengths = ends - starts
        sub_offsets = np.zeros(len(rows) + 1, dtype=np.uint64)
        np.cumsum(lengths, out=sub_offsets[1:])
        index = np.repeat(starts - sub_offsets[:-1], lengths.astype(np.int64)) + np.arange(
            int(sub_offsets[-1]), dtype=np.uint64
        )
        sub = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            flat[index], sub_offsets, self.num_perm, self.seed
        )
        sig = np.array(sub.to_rows(), dtype=np.uint64).reshape(len(rows), self.bands, self.rows)
        key = np.broadcast_to(np.arange(self.bands, dtype=np.uint64), sig.shape[:2]).copy()
        for r in range(self.rows):  # the band's number first: equal values in two bands differ
            key = _mix(key ^ sig[:, :, r])
        return key


_FINDER: ContextVar[type[NearDedup]] = ContextVar("near_finder", default=NearDedup)


def near_finder() -> type[NearDedup]:
    """The near-duplicate finder in use: NearDedup, or on Ray its distributed twin
    (synthloom.quality.dedup_ray.RayNearDedup, which gives the same answers)."""
    return _FINDER.get()


@contextmanager
def using_near_finder(cls: type[NearDedup]) -> Iterator[None]:
    """Make `cls` the near-duplicate finder of the steps run inside (the Ray executor)."""
    token = _FINDER.set(cls)
    try:
        yield
    finally:
        _FINDER.reset(token)


@dataclass(frozen=True)
class Match:
    """What a near-duplicate text duplicates: `index` into the texts (or into the reference
    texts when `reference`), and the two texts' shingle Jaccard similarity."""

    index: int
    reference: bool
    jaccard: float


def lsh_params(threshold: float, recall: float = 0.99) -> tuple[int, int]:
    """(rows, bands) for MinHash LSH: the most rows per band (fewest chance candidates) whose
    bands make a pair at `threshold` a candidate with probability >= `recall`, within
    128 permutations. 0.7 -> 4 rows x 17 bands."""
    threshold = min(threshold, 0.999)
    best = (1, max(1, math.ceil(math.log(1 - recall) / math.log(1 - threshold))))
    for rows in range(2, _MAX_PERM + 1):
        p = threshold**rows
        if p >= 1.0:
            return rows, 1
        bands = math.ceil(math.log(1 - recall) / math.log1p(-p))
        if rows * bands > _MAX_PERM:
            break
        best = (rows, bands)
    return best


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on every element (wrapping uint64 arithmetic)."""
    x = x + _GOLD
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def shingle_hashes(texts: Sequence[str], ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Every text's word n-gram shingles as 64-bit hashes: (flat hashes, offsets), text i's
    hashes being ``flat[offsets[i]:offsets[i + 1]]``. Words are :func:`words`; the hash of an
    n-gram is a mix of its words' hashes (rensa's token hash) in order, vectorised; a text of
    fewer than ``ngram`` words (none included) is one shingle of all its words."""
    parts = [_shingle_batch(texts[i : i + BATCH], ngram) for i in range(0, len(texts), BATCH)]
    return join_shingles(parts)


def join_shingles(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """`shingle_hashes` of several lists of texts, as one: the shingles of their texts in
    order (a text's hashes depend on that text alone)."""
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.uint64)
    flat = np.concatenate([f for f, _ in parts])
    counts = np.concatenate([np.diff(o) for _, o in parts])
    offsets = np.zeros(len(counts) + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    return flat, offsets


_ASCII_SEPARATORS = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
)
_P = np.uint64(0x100000001B3)  # FNV's 64-bit prime
_WHOLE = np.uint64(0x5DEECE66D)  # seeds the hash of a text shorter than one shingle


def _spaced_words(text: str) -> str:
    """The text's :func:`words` separated by single spaces or other separators (no newline):
    for ASCII text a lowercase copy with every non-word character made a space (the same words
    as ``\\w+`` finds; NFKC and casefold change nothing there), else the words joined."""
    if text.isascii():
        return text.lower().translate(_ASCII_SEPARATORS)
    return " ".join(words(text))


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every word in order, words per text), vectorised over the UTF-8 bytes: a
    polynomial hash of each word's bytes modulo 2**64, one byte position at a time over all
    the words that long, then mixed with the word's length."""
    buf = np.frombuffer("\n".join(map(_spaced_words, texts)).encode(), dtype=np.uint8)
    n = len(texts)
    if len(buf) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(n, dtype=np.int64)
    newline = buf == 10
    inside = ~newline & (buf != 32)
    before = np.concatenate(([False], inside[:-1]))
    after = np.concatenate((inside[1:], [False]))
    starts = np.flatnonzero(inside & ~before)
    ends = np.flatnonzero(inside & ~after) + 1
    text_of = np.cumsum(newline)[starts]
    counts = np.bincount(text_of, minlength=n).astype(np.int64)
    lengths = ends - starts
    order = np.argsort(-lengths, kind="stable")  # longest first: the words still going
    first, size = starts[order], lengths[order]  # at byte j are a prefix of this order
    hashes_sorted = np.zeros(len(order), dtype=np.uint64)
    for j in range(int(size[0]) if len(size) else 0):
        live = int(np.searchsorted(-size, -j, side="left"))  # words longer than j bytes
        hashes_sorted[:live] = hashes_sorted[:live] * _P + buf[first[:live] + j]
    hashes = np.empty_like(hashes_sorted)
    hashes[order] = hashes_sorted
    return _mix(hashes ^ (ends - starts).astype(np.uint64)), counts


def _shingle_batch(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    word_hashes, lengths = _word_hashes(texts)
    counts = np.where(lengths < ngram, 1, lengths - ngram + 1)
    offsets = np.zeros(len(texts) + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint64)
    word_starts = np.cumsum(lengths) - lengths
    long = np.flatnonzero(lengths >= ngram)
    if len(long):
        last = len(word_hashes) - ngram + 1
        grams = np.zeros(last, dtype=np.uint64)
        for k in range(ngram):
            grams = _mix(grams ^ word_hashes[k : last + k])
        n_grams = counts[long]
        within = _ranges(n_grams)
        target = np.repeat(offsets[:-1][long].astype(np.int64), n_grams) + within
        flat[target] = grams[np.repeat(word_starts[long], n_grams) + within]
    short = np.flatnonzero(lengths < ngram)  # one shingle of all its words
    if len(short):
        whole = np.full(len(short), _WHOLE, dtype=np.uint64)
        for k in range(ngram - 1):
            more = lengths[short] > k
            whole[more] = _mix(whole[more] ^ word_hashes[word_starts[short[more]] + k])
        flat[offsets[:-1][short].astype(np.int64)] = whole
    return flat, offsets


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


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
