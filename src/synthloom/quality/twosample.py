"""Synthetic against real: can a simple classifier tell the two sets apart, and which words
does the synthetic set use more, or less, than the real one?

Classifier two-sample test (Lopez-Paz & Oquab 2017): label every real text 0 and every
synthetic text 1 (the larger set subsampled to the smaller one's size, so chance is 0.5),
train a multinomial Naive Bayes on word unigrams + bigrams and character 3-grams (case and
punctuation kept: style differences count) and measure its accuracy on texts it did not see
(k-fold cross-validation). About 0.5 means the classifier cannot tell them apart; near 1.0
means they are easy to tell apart.

Term contrast: the log-odds ratio of each word between the two sets with an informative
Dirichlet prior (Monroe, Colaresi & Quinn 2008), as a z-score; the largest positive are
over-represented in the synthetic set, the most negative under-represented.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from synthloom.quality.dedup import words

__all__ = ["TwoSample", "term_contrast", "two_sample_test"]


def _features(text: str) -> list[str]:
    toks = words(text)
    feats = [f"w:{t}" for t in toks] + [f"b:{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]
    padded = f" {text.strip()} "
    feats += [f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
    return feats


@dataclass(frozen=True)
class TwoSample:
    accuracy: float  # held-out accuracy (0.5: indistinguishable)
    stderr: float  # binomial standard error of the accuracy
    n_per_set: int  # texts of each set used
    folds: int


def two_sample_test(
    real: Sequence[str],
    synthetic: Sequence[str],
    *,
    folds: int = 5,
    max_per_set: int = 2000,
    seed: int = 0,
) -> TwoSample | None:
    """Held-out accuracy of a Naive Bayes telling `real` from `synthetic` (None with fewer
    than `folds` texts in either set)."""
    rng = random.Random(seed)
    n = min(len(real), len(synthetic), max_per_set)
    if n < folds:
        return None
    # stratified folds: every training set holds as many real as synthetic texts (unequal
    # ones bias each held-out guess against its own set and push the accuracy under 0.5)
    real_part, synthetic_part = rng.sample(list(real), n), rng.sample(list(synthetic), n)
    items = [
        x
        for pair in zip(real_part, synthetic_part, strict=True)
        for x in ((pair[0], 0), (pair[1], 1))
    ]
    fold_of = [(i // 2) % folds for i in range(len(items))]
    feats = [Counter(_features(t)) for t, _ in items]
    labels = [y for _, y in items]
    correct = 0
    for k in range(folds):
        test = [i for i in range(len(items)) if fold_of[i] == k]
        counts = [Counter(), Counter()]  # type: list[Counter[str]]
        for i in range(len(items)):
            if fold_of[i] != k:
                counts[labels[i]].update(feats[i])
        vocab = set(counts[0]) | set(counts[1])
        totals = [sum(c.values()) + len(vocab) for c in counts]
        for i in test:
            score = 0.0
            for f, c in feats[i].items():
                if f in vocab:
                    p1 = (counts[1][f] + 1) / totals[1]
                    p0 = (counts[0][f] + 1) / totals[0]
                    score += c * math.log(p1 / p0)
            guess = 1 if score > 0 else 0 if score < 0 else i % 2
            correct += guess == labels[i]
    accuracy = correct / len(items)
    return TwoSample(accuracy, math.sqrt(accuracy * (1 - accuracy) / len(items)), n, folds)


def term_contrast(
    synthetic: Sequence[str], real: Sequence[str], *, top: int = 15, min_count: int = 3
) -> dict[str, list[dict[str, float | int | str]]]:
    """{"over": [...], "under": [...]}: words the synthetic set uses more (less) than the
    real one, by log-odds z-score; each with its count and rate per 1,000 words in each set."""
    a, b = Counter(), Counter()  # type: Counter[str], Counter[str]
    for t in synthetic:
        a.update(words(t))
    for t in real:
        b.update(words(t))
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return {"over": [], "under": []}
    prior = a + b
    a0 = sum(prior.values())
    scored = []
    for w, p in prior.items():
        if a[w] + b[w] < min_count:
            continue
        la = math.log((a[w] + p) / (na + a0 - a[w] - p))
        lb = math.log((b[w] + p) / (nb + a0 - b[w] - p))
        z = (la - lb) / math.sqrt(1 / (a[w] + p) + 1 / (b[w] + p))
        scored.append((z, w))
    scored.sort()

    def row(z: float, w: str) -> dict[str, float | int | str]:
        return {
            "term": w,
            "z": round(z, 2),
            "synthetic": a[w],
            "real": b[w],
            "synthetic_per_1k": round(1000 * a[w] / na, 2),
            "real_per_1k": round(1000 * b[w] / nb, 2),
        }

    over = [row(z, w) for z, w in reversed(scored[-top:]) if z > 1.96]
    under = [row(z, w) for z, w in scored[:top] if z < -1.96]
    return {"over": over, "under": under}
