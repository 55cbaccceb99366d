"""A small multinomial Naive Bayes text classifier (word unigrams + bigrams, pure Python).

Used as a cheap, model-free label-fidelity check: train it on the labelled originals and ask
which label a generated variation looks like. With tens of examples it is a weak classifier;
it catches variations whose wording moved towards another label's vocabulary, not subtle drift.

    clf = NaiveBayes().fit(["great phone", "awful phone"], ["pos", "neg"])
    clf.predict("a great buy")  # -> "pos"
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from synthloom.quality.dedup import words

__all__ = ["NaiveBayes", "features"]


def features(text: str, ngram: int = 2) -> list[str]:
    """Word n-grams of length 1..``ngram`` over :func:`~synthloom.quality.dedup.words` tokens."""
    toks = words(text)
    out: list[str] = []
    for n in range(1, ngram + 1):
        out.extend(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
    return out


class NaiveBayes:
    """Multinomial Naive Bayes with additive (Laplace) smoothing.

    ``fit_prior=False`` uses a uniform class prior, so an imbalanced training set does not
    push predictions towards the majority label. Features never seen in training are ignored.
    Ties go to the label that sorts first, so predictions are deterministic.
    """

    def __init__(self, alpha: float = 1.0, ngram: int = 2, *, fit_prior: bool = True) -> None:
        if alpha <= 0 or ngram < 1:
            raise ValueError("need alpha > 0 and ngram >= 1")
        self.alpha = alpha
        self.ngram = ngram
        self.fit_prior = fit_prior
        self.labels: tuple[str, ...] = ()
        self._log_prior: dict[str, float] = {}
        self._log_prob: dict[str, dict[str, float]] = {}  # label -> feature -> log P(f | label)
        self._log_unseen: dict[str, float] = {}  # label -> log P(f | label) for a count of 0
        self._vocab: set[str] = set()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> NaiveBayes:
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        if not texts:
            raise ValueError("no training examples")
        docs = Counter(labels)
        counts: dict[str, Counter[str]] = {label: Counter() for label in docs}
        for text, label in zip(texts, labels, strict=True):
            counts[label].update(features(text, self.ngram))
        vocab: set[str] = set().union(*counts.values())
        self.labels = tuple(sorted(docs))
        total = len(texts)
        self._log_prior = {
            c: math.log(docs[c] / total) if self.fit_prior else -math.log(len(docs))
            for c in self.labels
        }
        for c in self.labels:
            denom = math.log(sum(counts[c].values()) + self.alpha * len(vocab))
            self._log_unseen[c] = math.log(self.alpha) - denom
            self._log_prob[c] = {f: math.log(n + self.alpha) - denom for f, n in counts[c].items()}
        self._vocab = vocab
        return self

    def log_scores(self, text: str) -> dict[str, float]:
        """Unnormalized log P(label) + sum log P(feature | label), per label."""
        if not self.labels:
            raise ValueError("fit the classifier first")
        feats = Counter(f for f in features(text, self.ngram) if f in self._vocab)
        return {
            c: self._log_prior[c]
            + sum(n * self._log_prob[c].get(f, self._log_unseen[c]) for f, n in feats.items())
            for c in self.labels
        }

    def predict_proba(self, text: str) -> dict[str, float]:
        scores = self.log_scores(text)
        top = max(scores.values())
        exp = {c: math.exp(s - top) for c, s in scores.items()}
        z = sum(exp.values())
        return {c: v / z for c, v in exp.items()}

    def predict(self, text: str) -> str:
        scores = self.log_scores(text)
        return max(self.labels, key=lambda c: (scores[c], -self.labels.index(c)))
