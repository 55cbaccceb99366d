"""Tests for synthloom.quality.dedup."""

from __future__ import annotations

import random

import pytest

from synthloom.quality.dedup import (
    ExactDedup,
    Match,
    NearDedup,
    dedup_within,
    is_near_copy,
    lsh_params,
    near_copy_score,
    normalize,
    shingle_hashes,
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
    # Word 2 changed: 2 of 36 shingles differ, Jaccard 34/38 ~ 0.89.
    changed = PARA.replace("committee", "board", 1)
    assert changed != PARA
    found = NearDedup().find([PARA, changed, UNRELATED])
    assert found[0] is None and found[2] is None
    assert found[1] == Match(0, False, pytest.approx(34 / 38))


def test_mid_paragraph_change_is_caught() -> None:
    # A middle word touches 5 of 36 5-gram shingles: Jaccard 31/41 ~ 0.76, over the 0.7
    # threshold; the banding makes such a pair a candidate with probability > 0.99 and the
    # true Jaccard confirms it.
    changed = PARA.replace("shelving", "parking", 1)
    found = NearDedup().find([PARA, changed, UNRELATED])
    assert found == [None, Match(0, False, pytest.approx(31 / 41)), None]


def _text(rng: random.Random, vocab: list[str], n: int = 40) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def test_planted_near_duplicates_are_found_and_distinct_texts_kept() -> None:
    """200 distinct 40-word texts and, after them, a copy of every other one with one word
    changed (at any position): every copy is found, pointing at its original; nothing else."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(3000)]
    originals = [_text(rng, vocab) for _ in range(200)]
    copies = []
    for i in range(0, 200, 2):
        toks = originals[i].split()
        toks[rng.randrange(40)] = "changed"
        copies.append((i, " ".join(toks)))
    found = NearDedup().find(originals + [c for _, c in copies])
    assert found[:200] == [None] * 200  # distinct texts are all kept
    for (i, _), match in zip(copies, found[200:], strict=True):
        assert match is not None and (match.index, match.reference) == (i, False)
        assert match.jaccard >= 0.7


def _question(i: int) -> str:
    return f"How do I return item number {i} bought online?"


def test_templated_texts_cost_a_bounded_number_of_checks_per_text() -> None:
    """Texts filled into one template share the band keys whose minima fall on its fixed
    words ("how do i return item", "do i return item number"): every pair of them is an LSH
    candidate though no two are near duplicates (Jaccard 0.25). The true-Jaccard checks per
    text stay bounded as the texts grow (checking every candidate took 6.4 million checks,
    322 a text, for 20,000 of them, and 4x as many per text at 4x the texts)."""
    small, big = NearDedup(), NearDedup()
    assert small.find([_question(i) for i in range(5_000)]) == [None] * 5_000
    assert big.find([_question(i) for i in range(20_000)]) == [None] * 20_000
    assert 0 < big.checks <= 30 * 20_000
    assert big.checks / 20_000 <= 1.3 * small.checks / 5_000
    assert big.checks <= big.bands * big.bucket_size * 20_000


def test_planted_near_duplicates_among_templated_texts_are_found() -> None:
    """3,000 texts of one template (Jaccard 7/17 between any two: none are duplicates; the
    template's band keys are shared by far more kept texts than a key remembers), then a copy
    of every tenth with its last word changed (Jaccard 11/13): each copy is found, pointing at
    its original, however late the original came; nothing else is."""
    template = "How do I return item number {} that I bought online last week from your store?"
    originals = [template.format(i) for i in range(3_000)]
    copies = [originals[i].replace("store?", "shop?") for i in range(0, 3_000, 10)]
    finder = NearDedup()
    found = finder.find(originals + copies)
    assert found[:3_000] == [None] * 3_000
    assert found[3_000:] == [Match(i, False, pytest.approx(11 / 13)) for i in range(0, 3_000, 10)]
    assert finder.checks <= finder.bands * finder.bucket_size * len(found)


def test_near_dedup_keeps_the_first_and_never_matches_a_removed_text() -> None:
    a = " ".join(f"a{i}" for i in range(40))
    b = a.replace("a39", "b39")  # near a
    c = b.replace("a0 ", "c0 ")  # near b and near a
    found = NearDedup().find(["completely different words about cooking pasta", a, b, c])
    assert found[0] is None and found[1] is None
    assert found[2] is not None and found[2].index == 1
    assert found[3] is not None and found[3].index == 1  # the kept one, not b


def test_near_dedup_short_texts_use_whole_text() -> None:
    found = NearDedup().find(["Buy now!", "buy   NOW", "buy later", ""])
    assert found[0] is None and found[2] is None and found[3] is None
    assert found[1] == Match(0, False, 1.0)


def test_near_dedup_against_a_reference() -> None:
    changed = PARA.replace("committee", "board", 1)
    found = NearDedup().find([UNRELATED, changed], reference=["an eval question", PARA])
    assert found[0] is None
    assert found[1] is not None and (found[1].index, found[1].reference) == (1, True)


def test_near_dedup_banding_defaults() -> None:
    nd = NearDedup()
    assert nd.threshold == 0.7 and nd.ngram == 5
    assert (nd.rows, nd.bands, nd.num_perm) == (4, 17, 68) == (*lsh_params(0.7), 68)
    assert nd.candidate_probability(0.7) > 0.99
    assert nd.candidate_probability(0.2) < 0.03
    assert lsh_params(0.8) == (6, 16)


def test_shingle_hashes_match_shingles() -> None:
    texts = [PARA, "Buy now!", "", UNRELATED, PARA]
    flat, offsets = shingle_hashes(texts)
    for i, text in enumerate(texts):
        hashes = flat[offsets[i] : offsets[i + 1]].tolist()
        assert len(set(hashes)) == len(set(shingles(text)))
    assert flat[offsets[0] : offsets[1]].tolist() == flat[offsets[4] : offsets[5]].tolist()


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


# -- the dedup step -------------------------------------------------------------------------
def test_dedup_step_within_and_against_a_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.conftest import synthloom

    changed = PARA.replace("shelving", "parking", 1)
    rows = [
        ("a", PARA, "x"),
        ("b", PARA.upper(), "x"),  # exact (after normalising) of a
        ("c", changed, "x"),  # near a
        ("d", UNRELATED, "y"),  # repeats the evaluation set nearly
        ("e", "A short distinct text about trains.", "y"),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": i, "task": "t", "data": {"text": t, "label": lab}}) + "\n"
            for i, t, lab in rows
        )
    )
    evalset = tmp_path / "eval.csv"
    evalset.write_text(
        "question,answer\nq1,x\n" + f'"{UNRELATED.replace("predators", "sharks")}",y\n'
    )
    out = tmp_path / "clean"
    result = synthloom(
        "dedup", str(source), "--reference", str(evalset), "--reference-field", "question",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kept = [json.loads(x)["id"] for x in (out / "records.jsonl").read_text().splitlines()]
    assert kept == ["a", "e"]
    removed = {
        r["id"]: r for r in map(json.loads, (out / "removed.jsonl").read_text().splitlines())
    }
    assert removed["b"]["removed_by"] == "exact_duplicate"
    assert removed["b"]["duplicate_of"]["id"] == "a"
    assert removed["c"]["removed_by"] == "near_duplicate"
    assert removed["c"]["duplicate_of"] == {"id": "a", "text": PARA, "similarity": 0.7561}
    assert removed["d"]["removed_by"] == "reference_near"
    assert removed["d"]["duplicate_of"]["reference"] == f"{evalset}:3"
    stage = json.loads((out / "stage.json").read_text())
    assert stage["counts"] == {
        "records_in": 5,
        "dropped_exact_duplicate": 1,
        "dropped_near_duplicate": 1,
        "dropped_reference_near": 1,
        "records_out": 2,
    }
    assert "records in: 5" in result.stderr
