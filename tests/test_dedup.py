"""Tests for synthloom.quality.dedup."""

from __future__ import annotations

import pytest

from synthloom.quality.dedup import (
    ExactDedup,
    NearDedup,
    dedup_within,
    is_near_copy,
    near_copy_score,
    normalize,
    shingles,
)

PARA = (
    "The committee met on Tuesday to review the budget for the new library wing. "
    "After a long discussion about shelving, lighting and accessibility, members agreed "
    "to postpone the final vote until the architect submits revised drawings early next month, probably."
)
UNRELATED = (
    "Octopuses have three hearts and blue blood, and they can change the colour and "
    "texture of their skin in a fraction of a second to blend into rocks, coral or sand "
    "while hunting crabs along the shallow reef at night without being seen by predators."
)
ORIGINAL = "This product broke after one day."


def test_paragraphs_are_forty_words() -> None:
    assert len(PARA.split()) == 40
    assert len(UNRELATED.split()) >= 40


def test_normalize() -> None:
    assert normalize("  Hello,\n\tWORLD!!  ") == "hello, world"
    assert normalize("«Straße»") == "strasse"
    assert normalize("...") == ""


def test_exact_dedup_ignores_case_whitespace_and_edge_punctuation() -> None:
    ed = ExactDedup()
    assert not ed.seen("Hello   World")
    assert ed.seen("  hello world! ")
    assert ed.seen("HELLO\nWORLD")
    assert not ed.seen("hello there world")
    assert len(ed) == 2
    assert all(isinstance(d, bytes) and len(d) == 16 for d in ed._digests)


def test_shingles() -> None:
    assert shingles("Buy now!", 5) == [b"buy now"]
    assert len(shingles(" ".join(str(i) for i in range(10)), 5)) == 6


def test_near_dedup_flags_one_word_change_not_unrelated() -> None:
    # Word 2 changed: 3 of 36 shingles differ, Jaccard 33/39 ~ 0.85 -> caught with p ~ 0.99.
    nd = NearDedup()
    assert nd.check_and_add("orig", PARA) is None
    changed = PARA.replace("committee", "board", 1)
    assert changed != PARA
    assert nd.check_and_add("changed", changed) == "orig"
    assert nd.check_and_add("other", UNRELATED) is None
    assert len(nd) == 2  # duplicates are not stored


def test_mid_paragraph_change_caught_with_trigram_shingles() -> None:
    # A middle word touches 5 of 36 5-gram shingles (Jaccard ~0.76, p ~0.77 at 14x8);
    # with 3-gram shingles Jaccard is ~0.85 and p ~0.99.
    changed = PARA.replace("shelving", "parking", 1)
    nd = NearDedup(ngram=3)
    assert nd.check_and_add("orig", PARA) is None
    assert nd.check_and_add("changed", changed) == "orig"
    assert nd.check_and_add("other", UNRELATED) is None


def test_near_dedup_returns_earliest_key_and_rejects_reused_key() -> None:
    nd = NearDedup()
    assert nd.check_and_add(1, "completely different words about cooking pasta tonight") is None
    assert nd.check_and_add(0, PARA) is None
    assert nd.check_and_add(2, PARA + " Thanks.") == 0
    with pytest.raises(ValueError):
        nd.check_and_add(0, UNRELATED)


def test_near_dedup_picks_earliest_of_several_hits() -> None:
    # Unigram shingles, 32 bands x 1 row: disjoint sets never collide, the union of
    # three 4-word sets (Jaccard 1/3 with each) hits all three with p > 0.9999.
    nd = NearDedup(ngram=1, bands=32, rows=1)
    groups = ["alpha beta gamma delta", "one two three four", "red green blue cyan"]
    for key, text in zip((2, 1, 0), groups, strict=True):
        assert nd.check_and_add(key, text) is None
    assert nd.check_and_add(3, " ".join(groups)) == 2


def test_near_dedup_short_texts_use_whole_text() -> None:
    nd = NearDedup()
    assert nd.check_and_add("a", "Buy now!") is None
    assert nd.check_and_add("b", "buy   NOW") == "a"
    assert nd.check_and_add("c", "buy later") is None


def test_near_dedup_banding_defaults() -> None:
    nd = NearDedup()
    assert (nd.num_perm, nd.bands, nd.rows) == (112, 14, 8)
    assert nd.threshold == pytest.approx(0.719, abs=1e-3)
    assert nd.detection_probability(0.75) == pytest.approx(0.772, abs=1e-3)
    assert nd.detection_probability(0.3) < 0.01
    bulk = nd.minhashes([PARA])[0]
    assert (bulk.hashvalues == nd.minhash(PARA).hashvalues).all()


def test_near_copy_score() -> None:
    assert near_copy_score(ORIGINAL, "This product broke after one day!") == pytest.approx(1.0)
    assert near_copy_score(ORIGINAL, "The item stopped working within 24 hours.") < 0.5
    assert near_copy_score(ORIGINAL, "After one day this product broke.") == pytest.approx(1.0)
    assert is_near_copy(ORIGINAL, "This product broke after 1 day.")
    assert not is_near_copy(ORIGINAL, "The item stopped working within 24 hours.")


def test_dedup_within_keeps_first_of_each_cluster() -> None:
    texts = [
        ORIGINAL,
        "The item stopped working within 24 hours.",
        "this product broke after one day!",
        "the item stopped working within 24 hours",
        "Great value for the money.",
    ]
    assert dedup_within(texts, 0.9) == [0, 1, 4]
    assert dedup_within(texts, 1.01) == [0, 1, 2, 3, 4]
    assert dedup_within([]) == []
