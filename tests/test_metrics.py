"""Tests for synthloom.quality.metrics."""

from __future__ import annotations

import json
import math

import pytest

from synthloom.quality.metrics import (
    _cosine_kernel,
    distinct_n,
    diversity_report,
    label_distribution,
    length_stats,
    near_duplicate_rate,
    self_bleu,
    vendi_score,
)

SAME = ["The cat sat on the mat and looked out of the window."] * 5
VARIED = [
    "The quick brown fox jumps over the lazy dog near the river.",
    "Quantum chromodynamics describes how quarks bind inside protons.",
    "I ordered a pizza but the courier delivered a cold salad instead.",
    "Rainfall across the Amazon basin has declined sharply since 2010.",
    "My grandmother knits woollen scarves every winter for the local shelter.",
]
PARA = (
    "The committee met on Tuesday to review the budget for the new library wing. "
    "After a long discussion about shelving, lighting and accessibility, members agreed "
    "to postpone the final vote until the architect submits revised drawings."
)


def test_distinct_n() -> None:
    assert distinct_n(["a a a"], 1) == pytest.approx(1 / 3)
    assert distinct_n(["a b", "b a"], 2) == 1.0
    assert distinct_n(["a b", "a b"], 2) == 0.5
    assert distinct_n(SAME, 2) < distinct_n(VARIED, 2)
    assert distinct_n([], 1) == 0.0
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_self_bleu_identical_vs_varied() -> None:
    assert self_bleu(SAME) == pytest.approx(1.0)
    varied = self_bleu(VARIED)
    assert 0.0 < varied < 0.3
    assert self_bleu(["only one text"]) == 0.0


def test_self_bleu_matches_hand_computed_smoothed_bleu() -> None:
    # hyp "a b c d" vs ref "a b c e": p1..p4 = 3/4, 2/3, 1/2, (0 -> eps 0.1)/1; equal lengths.
    expected = (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected)
    # Brevity penalty and effective order: "a b c" (3-gram BLEU 1, BP e^-1) and
    # "a b c d e f" (p = 3/6, 2/5, 1/4, 0.1/3; BP 1).
    long_hyp = (3 / 6 * 2 / 5 * 1 / 4 * 0.1 / 3) ** 0.25
    assert self_bleu(["a b c", "a b c d e f"]) == pytest.approx((math.exp(-1) + long_hyp) / 2)


def test_self_bleu_sampling_is_seeded() -> None:
    texts = VARIED * 3 + [PARA]
    assert self_bleu(texts, sample=4, seed=1) == self_bleu(texts, sample=4, seed=1)
    assert self_bleu(texts, sample=100) == pytest.approx(1.0, abs=0.1)  # each text has copies


def test_vendi_score() -> None:
    assert vendi_score(SAME) == pytest.approx(1.0, abs=1e-6)
    unrelated = vendi_score(VARIED)
    assert 0.7 * len(VARIED) < unrelated <= len(VARIED) + 1e-6
    half = vendi_score(VARIED[:2] * 2)
    assert half == pytest.approx(vendi_score(VARIED[:2]), abs=1e-6)
    assert vendi_score([]) == 0.0


def test_cosine_kernel_weights_word_and_char_blocks_equally() -> None:
    kernel = _cosine_kernel(["Cats sleep all day.", "cats sleep all day", "dogs run"], 2**16)
    assert kernel.diagonal() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    assert kernel[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert (kernel == kernel.T).all()
    # "ab cd" vs "ab cd ef": word blocks (1 trigram-or-whole gram each) share nothing,
    # char blocks share "ab c" and "b cd" of 2 and 5 grams -> 0.5 * 2 / sqrt(2 * 5).
    pair = _cosine_kernel(["ab cd", "ab cd ef"], 2**16)
    assert pair[0, 1] == pytest.approx(0.5 * 2 / math.sqrt(10), abs=1e-6)


def test_vendi_score_uses_only_first_max_texts() -> None:
    assert vendi_score(VARIED + SAME, max_texts=5) == pytest.approx(vendi_score(VARIED))


def test_near_duplicate_rate() -> None:
    variant = PARA.replace("committee", "board", 1)
    assert near_duplicate_rate([PARA, variant, VARIED[0], PARA]) == 0.5
    assert near_duplicate_rate(VARIED) == 0.0
    assert near_duplicate_rate([]) == 0.0


def test_length_stats_and_labels() -> None:
    stats = length_stats(["a b", "a b c d", "a  b c"])
    assert stats == {"min": 2, "mean": 3.0, "p50": 3.0, "p90": pytest.approx(3.8), "max": 4}
    assert length_stats([])["max"] == 0
    assert label_distribution(["pos", "neg", "pos"]) == {"pos": 2, "neg": 1}
    assert list(label_distribution(["b", "a", "a"])) == ["a", "b"]


def test_diversity_report_is_json_serializable() -> None:
    texts = VARIED + [VARIED[0]]
    report = diversity_report(texts, labels=[1, 0, 1, 1, 0, 2])
    decoded = json.loads(json.dumps(report))
    assert decoded["n_texts"] == 6
    assert decoded["label_distribution"] == {"1": 3, "0": 2, "2": 1}
    assert decoded["exact_duplicate_rate"] == pytest.approx(1 / 6)
    assert decoded["near_duplicate_rate"] == pytest.approx(1 / 6)
    assert decoded["length_words"]["max"] == 12
    for key in ("distinct_1", "distinct_2", "distinct_3", "self_bleu", "vendi_score"):
        assert isinstance(decoded[key], float)
    assert "label_distribution" not in diversity_report(texts)
    with pytest.raises(ValueError):
        diversity_report(texts, labels=[1])
