"""Tests for pairwise judge reconciliation and aspect scores."""

from __future__ import annotations

from itertools import combinations

import pytest

from synthloom.preference.judge_reconcile import (
    PairwiseResult,
    judge_pair,
    mean_aspect_score,
    reconcile,
    scores_from_pairwise,
)
from synthloom.preference.rankings import Ranking, pairs


def test_always_first_judge_gives_tie() -> None:
    assert reconcile("first", "first", "A", "B") is None
    assert reconcile("second", "second", "A", "B") is None
    result = judge_pair("A", "B", "first", "first")
    assert result.winner is None and not result.consistent


def test_consistent_judge_gives_preference() -> None:
    # A shown first and preferred; then B shown first and A (second) preferred.
    assert reconcile("first", "second", "A", "B") == "A"
    assert reconcile("second", "first", "A", "B") == "B"


def test_ties() -> None:
    both_tie = judge_pair("A", "B", "tie", "tie")
    assert both_tie.winner is None and both_tie.consistent
    assert reconcile("first", "tie", "A", "B") is None
    assert reconcile(" First ", "SECOND", "A", "B") == "A"  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        reconcile("A", "second", "A", "B")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="itself"):
        judge_pair("A", "A", "first", "second")
    with pytest.raises(ValueError, match="neither"):
        PairwiseResult("A", "B", "C", True)


def test_scores_from_pairwise_feed_ranking() -> None:
    truth = ["D", "B", "A", "C"]
    results = []
    for a, b in combinations(sorted(truth), 2):
        better_a = truth.index(a) < truth.index(b)
        ab = "first" if better_a else "second"
        ba = "second" if better_a else "first"
        results.append(judge_pair(a, b, ab, ba))  # type: ignore[arg-type]
    results.append(judge_pair("A", "C", "first", "first"))  # biased repeat: a tie
    scores = scores_from_pairwise(results)
    assert scores == {"D": 3.0, "B": 2.0, "A": 1.5, "C": 0.5}
    ranking = Ranking.from_scores(scores, prompt_id="p", annotator="judge", annotator_kind="judge")
    assert ranking.order == [["D"], ["B"], ["A"], ["C"]]
    assert [p.margin for p in pairs(ranking)] == [1.0, 1.5, 2.5, 0.5, 1.5, 1.0]


def test_scores_from_pairwise_all_biased_is_all_tie() -> None:
    results = [judge_pair(a, b, "first", "first") for a, b in combinations("ABC", 2)]
    scores = scores_from_pairwise(results)
    assert scores == {"A": 1.0, "B": 1.0, "C": 1.0}
    ranking = Ranking.from_scores(scores, prompt_id="p", annotator="j")
    assert pairs(ranking) == []


def test_mean_aspect_score() -> None:
    ratings = {"helpfulness": 5, "honesty": 4, "instruction_following": 4, "truthfulness": 3}
    assert mean_aspect_score(ratings) == 4.0


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ({}, "no aspect ratings"),
        ({"helpfulness": 6}, "in 1..5"),
        ({"helpfulness": 0}, "in 1..5"),
        ({"helpfulness": 4.5}, "must be an int"),
        ({"helpfulness": True}, "must be an int"),
        ({"helpfulness": "4"}, "must be an int"),
    ],
)
def test_mean_aspect_score_validation(ratings: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mean_aspect_score(ratings)
