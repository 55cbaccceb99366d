import random

import pytest

from synthloom.quality.rouge import (
    SELF_INSTRUCT_THRESHOLD,
    NoveltyIndex,
    rouge_l_f1,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("It's 10:30 -- time_to go!", ["it", "s", "10", "30", "time", "to", "go"]),
        ("Café crème", ["caf", "cr", "me"]),  # non-ASCII letters are separators
        ("  \n\t ", []),
        ("", []),
    ],
)
def test_tokenize_matches_rouge_score(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_hand_computed_lcs() -> None:
    # "one two three four" vs "one three five": LCS = "one three" = 2 tokens.
    # P = 2/3, R = 2/4, F1 = 2PR/(P+R) = 4/7.
    assert rouge_l_f1("one two three four", "one three five") == pytest.approx(4 / 7)
    # the cat sat on the mat / the cat lay on a mat: LCS "the cat on mat" = 4 of 6 each.
    assert rouge_l_f1("The cat sat on the mat.", "the cat lay on a mat") == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [  # values printed by rouge_score 0.1.2, RougeScorer(["rougeL"], use_stemmer=False)
        ("The cat sat on the mat.", "the cat lay on a mat", 0.6666666666666666),
        (
            "Give three tips for staying healthy.",
            "Give three tips for staying healthy and fit.",
            0.8571428571428571,
        ),
        (
            "What is the capital of France?",
            "Name the capital city of France, please.",
            0.6153846153846153,
        ),
        ("Running runs ran", "run running", 0.4),  # no stemming
        ("It's 10:30 -- time_to go!", "its 10 30 time to go", 0.7692307692307692),
        ("Café crème", "cafe creme", 0.0),
        ("a b c d e f g h i j", "a b c d e f g x y z", 0.7),
    ],
)
def test_matches_rouge_score_exactly(a: str, b: str, expected: float) -> None:
    assert rouge_l_f1(a, b) == expected
    assert rouge_l_f1(b, a) == expected


def test_identical_empty_and_disjoint() -> None:
    assert rouge_l_f1("Hello world", "hello, WORLD!") == 1.0
    assert rouge_l_f1("", "hello") == 0.0
    assert rouge_l_f1("...", "...") == 0.0
    assert rouge_l_f1("red green", "blue yellow") == 0.0


def test_empty_index() -> None:
    index = NoveltyIndex()
    assert len(index) == 0
    assert index.max_similarity("anything at all") == (0.0, None)
    assert index.is_novel("anything at all")


def test_index_finds_most_similar() -> None:
    index = NoveltyIndex(["Give three tips for staying healthy.", "Name the capital of France."])
    index.add("Translate the sentence into German.")
    assert len(index) == 3
    score, best = index.max_similarity("Give three tips for staying healthy and fit.")
    assert best == "Give three tips for staying healthy."
    assert score == pytest.approx(12 / 14)
    assert not index.is_novel("Give three tips for staying healthy and fit.")
    assert index.is_novel("Explain how photosynthesis works in plants.")


def test_index_ties_go_to_earliest_and_unseen_tokens_do_not_match() -> None:
    index = NoveltyIndex(["alpha beta", "beta alpha"])
    assert index.max_similarity("alpha gamma") == (0.5, "alpha beta")
    assert index.max_similarity("gamma delta")[0] == 0.0
    assert index.max_similarity("!!!")[0] == 0.0


def test_threshold_is_strictly_above() -> None:
    index = NoveltyIndex(["a b c d e f g h i j"])
    score, _ = index.max_similarity("a b c d e f g x y z")
    assert score == SELF_INSTRUCT_THRESHOLD  # exactly 0.7 is still novel
    assert index.is_novel("a b c d e f g x y z")
    assert not index.is_novel("a b c d e f g h y z")  # 0.8


def test_index_agrees_with_pairwise_scores() -> None:
    rng = random.Random(7)
    words = "the a cat dog runs fast slow red blue over under it is 1 2".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(300)]
    index = NoveltyIndex(texts[:200])
    for query in texts[200:]:
        expected = max(rouge_l_f1(query, t) for t in texts[:200])
        score, best = index.max_similarity(query)
        assert score == expected
        assert best is not None and rouge_l_f1(query, best) == expected
