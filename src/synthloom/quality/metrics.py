"""Model-free diversity and distribution metrics over a list of texts."""

from __future__ import annotations

import bisect
import math
import random
import zlib
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from synthloom.quality.dedup import (
    ExactDedup,
    NearDedup,
    join_shingles,
    normalize,
    shingle_hashes,
    words,
)

__all__ = [
    "distinct_n",
    "diversity_report",
    "label_distribution",
    "length_stats",
    "near_duplicate_rate",
    "self_bleu",
    "vendi_score",
]

_NGram = tuple[str, ...]


def _ngrams(toks: Sequence[str], n: int) -> list[_NGram]:
    return list(zip(*(toks[i:] for i in range(n)), strict=False))


def distinct_n(texts: Sequence[str], n: int = 1) -> float:
    """Unique / total word n-grams pooled over all texts (n-grams never cross texts); 0 if none."""
    counter = DistinctN(n)
    counter.add(texts)
    return counter.value


class DistinctN:
    """distinct-n fed a few texts at a time (a run's spread summary measures its texts while
    it waits for answers): after `add` of texts in any number of parts, `value` is
    `distinct_n` of all of them."""

    def __init__(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.total = 0
        self.unique: set[_NGram] = set()

    def add(self, texts: Sequence[str]) -> None:
        for t in texts:
            grams = _ngrams(words(t), self.n)
            self.total += len(grams)
            self.unique.update(grams)

    @property
    def value(self) -> float:
        return len(self.unique) / self.total if self.total else 0.0


class _RefIndex:
    """Per n-gram the two largest per-text counts, to clip against "all texts but one"."""

    def __init__(self, counts: list[list[Counter[_NGram]]], lengths: list[int]) -> None:
        self.best: list[dict[_NGram, tuple[int, int, int]]] = []
        for k in range(len(counts[0]) if counts else 0):
            table: dict[_NGram, tuple[int, int, int]] = {}
            for idx, per_order in enumerate(counts):
                for g, c in per_order[k].items():
                    b_c, b_i, s_c = table.get(g, (0, -1, 0))
                    table[g] = (c, idx, b_c) if c > b_c else (b_c, b_i, max(s_c, c))
            self.best.append(table)
        self.lengths = sorted(lengths)

    def max_count(self, k: int, gram: _NGram, exclude: int) -> int:
        b_c, b_i, s_c = self.best[k].get(gram, (0, -1, 0))
        return s_c if b_i == exclude else b_c

    def closest_len(self, length: int) -> int:
        """Closest reference length (ties -> shorter) after removing one copy of ``length``."""
        pos = bisect.bisect_left(self.lengths, length)
        cands = [self.lengths[j] for j in (pos - 1, pos + 1) if 0 <= j < len(self.lengths)]
        return min(cands, key=lambda r: (abs(r - length), r))


def self_bleu(texts: Sequence[str], n: int = 4, sample: int = 200, seed: int = 0) -> float:
    """Mean smoothed sentence-BLEU of sampled texts, each against all *other* texts.

    Uniform weights over orders 1..min(n, len(hyp)) (effective order, so short texts
    are not punished), NLTK ``method1`` smoothing (zero matches -> 0.1 / total),
    closest-reference-length brevity penalty, word tokens from :func:`words`.
    Up to ``sample`` non-empty hypotheses are drawn with ``random.Random(seed)``.
    Cost: one pass to index the n-grams of all texts (O(total tokens * n) time and
    memory), then O(len(hyp) * n) per sampled hypothesis. Returns 0.0 for < 2 texts.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if len(texts) < 2:
        return 0.0
    toks = [words(t) for t in texts]
    counts = [[Counter(_ngrams(tk, k)) for k in range(1, n + 1)] for tk in toks]
    index = _RefIndex(counts, [len(tk) for tk in toks])
    hyps = [i for i, tk in enumerate(toks) if tk]
    if len(hyps) > sample:
        hyps = random.Random(seed).sample(hyps, sample)
    if not hyps:
        return 0.0
    scores = []
    for i in hyps:
        length, order = len(toks[i]), min(n, len(toks[i]))
        log_p = 0.0
        for k in range(order):
            hyp = counts[i][k]
            clipped = sum(min(c, index.max_count(k, g, i)) for g, c in hyp.items())
            if k == 0 and clipped == 0:
                log_p = -math.inf
                break
            log_p += math.log((clipped or 0.1) / (length - k))
        ref_len = index.closest_len(length)
        bp = 1.0 if length > ref_len else math.exp(1.0 - ref_len / length)
        scores.append(bp * math.exp(log_p / order))
    return float(np.mean(scores))


def _feature_blocks(text: str, dims: int) -> list[Counter[int]]:
    """Non-empty hashed TF blocks: word trigrams (buckets < dims), char 4-grams (>= dims)."""
    toks, norm = words(text), normalize(text)
    wgrams = [" ".join(g) for g in _ngrams(toks, 3)] or ([" ".join(toks)] if toks else [])
    cgrams = [norm[i : i + 4] for i in range(len(norm) - 3)] or [norm]
    blocks = [
        Counter(offset + zlib.crc32(g.encode()) % dims for g in grams)
        for offset, grams in ((0, wgrams), (dims, cgrams))
    ]
    return [b for b in blocks if b]


def _cosine_kernel(texts: Sequence[str], dims: int) -> np.ndarray:
    """K[i, j] = 0.5 * cos(word-trigram TF) + 0.5 * cos(char-4-gram TF); diag is 1."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, text in enumerate(texts):
        blocks = _feature_blocks(text, dims)
        for block in blocks:
            scale = math.sqrt(sum(c * c for c in block.values()) * len(blocks))
            rows.extend([r] * len(block))
            cols.extend(block)
            vals.extend(c / scale for c in block.values())
    ucols, col_a = np.unique(np.asarray(cols), return_inverse=True)
    order = np.argsort(col_a, kind="stable")
    row_a, col_a, val_a = np.asarray(rows)[order], col_a[order], np.asarray(vals)[order]
    n = len(texts)
    kernel = np.zeros((n, n))
    chunk = max(1, 4_000_000 // n)  # dense column blocks of at most ~16 MB (float32)
    for c0 in range(0, len(ucols), chunk):
        lo, hi = np.searchsorted(col_a, [c0, c0 + chunk])
        block = np.zeros((n, min(chunk, len(ucols) - c0)), dtype=np.float32)
        block[row_a[lo:hi], col_a[lo:hi] - c0] = val_a[lo:hi]
        kernel += block @ block.T
    return kernel


def vendi_score(texts: Sequence[str], max_texts: int = 1000, dims: int = 2**16) -> float:
    """Vendi score (effective number of distinct texts, 1..N) with a cheap n-gram kernel.

    Each text becomes hashed (crc32 mod ``dims``) TF vectors of word trigrams and char
    4-grams, each block L2-normalized; K is the cosine kernel weighting both blocks
    equally. Vendi = exp(Shannon entropy of the eigenvalues of K / N). Only the first
    ``max_texts`` texts are used (eigendecomposition is O(N^3)); 0.0 for no texts.
    """
    texts = list(texts[:max_texts])
    if not texts:
        return 0.0
    eig = np.clip(np.linalg.eigvalsh(_cosine_kernel(texts, dims) / len(texts)), 0.0, None)
    eig = eig[eig > 1e-12]
    eig = eig / eig.sum()
    return float(np.exp(-np.sum(eig * np.log(eig))))


def near_duplicate_rate(texts: Sequence[str], **near_dedup_kwargs: Any) -> float:
    """Fraction of texts that :class:`NearDedup` finds near-duplicates of an earlier one."""
    rate = NearDuplicateRate(**near_dedup_kwargs)
    rate.add(texts)
    return rate.value


class NearDuplicateRate:
    """near_duplicate_rate fed a few texts at a time: each part's shingles are hashed when it
    is added (the costly part), the near-duplicate search runs once, on `value`, over all the
    texts added, in order: the same answer as `near_duplicate_rate` of all of them."""

    def __init__(self, **near_dedup_kwargs: Any) -> None:
        self.finder = NearDedup(**near_dedup_kwargs)
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.count = 0

    def add(self, texts: Sequence[str]) -> None:
        if texts:
            self.parts.append(shingle_hashes(texts, self.finder.ngram))
            self.count += len(texts)

    @property
    def value(self) -> float:
        if not self.count:
            return 0.0
        flat, offsets = join_shingles(self.parts)
        found = self.finder.find_hashed(flat, offsets)
        return sum(match is not None for match in found) / self.count


def exact_duplicate_rate(texts: Sequence[str]) -> float:
    """Fraction of texts whose :func:`normalize`-d form appeared earlier."""
    if not texts:
        return 0.0
    ed = ExactDedup()
    return sum(ed.seen(t) for t in texts) / len(texts)


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Whitespace-word lengths: min, mean, p50, p90, max (all 0 for no texts)."""
    if not texts:
        return {"min": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "max": 0}
    lens = np.array([len(t.split()) for t in texts])
    return {
        "min": int(lens.min()),
        "mean": float(lens.mean()),
        "p50": float(np.percentile(lens, 50)),
        "p90": float(np.percentile(lens, 90)),
        "max": int(lens.max()),
    }


def label_distribution(labels: Sequence[Hashable]) -> dict[Hashable, int]:
    """Label -> count, most common first."""
    return dict(Counter(labels).most_common())


def diversity_report(
    texts: Sequence[str], labels: Sequence[Hashable] | None = None, *, seed: int = 0
) -> dict[str, Any]:
    """All metrics above in one JSON-serializable dict (label keys become ``str``)."""
    if labels is not None and len(labels) != len(texts):
        raise ValueError("labels and texts differ in length")
    report: dict[str, Any] = {
        "n_texts": len(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "self_bleu": self_bleu(texts, seed=seed),
        "vendi_score": vendi_score(texts),
        "vendi_n": min(len(texts), 1000),
        "exact_duplicate_rate": exact_duplicate_rate(texts),
        "near_duplicate_rate": near_duplicate_rate(texts),
        "length_words": length_stats(texts),
    }
    if labels is not None:
        report["label_distribution"] = {str(k): v for k, v in label_distribution(labels).items()}
    return report
