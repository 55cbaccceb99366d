"""Tests for rankings: parsing, pairs, aggregation, agreement."""

from __future__ import annotations

import math
import random

import pytest

from synthloom.preference.rankings import (
    Pair,
    Ranking,
    aggregate,
    agreement_report,
    collect_pairs,
    group_by_prompt,
    kendall_tau,
    krippendorff_alpha,
    pairs,
)

QC = "explain-quantum-computing"


def rk(text: str, annotator: str = "ann1", prompt_id: str = QC, **kw: object) -> Ranking:
    return Ranking.from_string(text, prompt_id=prompt_id, annotator=annotator, **kw)  # type: ignore[arg-type]


def as_tuples(ps: list[Pair]) -> list[tuple[str, str]]:
    return [(p.chosen_id, p.rejected_id) for p in ps]


# --- parsing and validation -------------------------------------------------


def test_from_string_tiers() -> None:
    assert rk("D > B = A > C").order == [["D"], ["B", "A"], ["C"]]
    assert rk(" D>B>A>C ").order == [["D"], ["B"], ["A"], ["C"]]


def test_from_scores_ties_and_order() -> None:
    r = Ranking.from_scores(
        {"A": 3.5, "B": 4, "C": 1, "D": 4},
        prompt_id=QC,
        annotator="judge-1",
        annotator_kind="judge",
    )
    assert r.order == [["B", "D"], ["A"], ["C"]]
    assert r.scores == {"A": 3.5, "B": 4.0, "C": 1.0, "D": 4.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("D > B > D", "duplicate response id 'D'"),
        ("D > > A", "empty tier at position 1"),
        ("D = > A", "empty response id in tier 0"),
        ("A < B", "not '<'"),
    ],
)
def test_from_string_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rk(text)


def test_unknown_id_with_response_set() -> None:
    with pytest.raises(ValueError, match=r"unknown response id\(s\) \['E'\]"):
        rk("D > E > A", response_ids={"A", "B", "C", "D"})
    assert rk("D > A", response_ids="ABCD").ids == ["D", "A"]
    with pytest.raises(ValueError, match="misses id"):
        rk("D > A").check_ids("ABCD", complete=True)


def test_direct_construction_validates() -> None:
    with pytest.raises(ValueError, match="empty tier at position 0"):
        Ranking(prompt_id="p", annotator="a", order=[[], ["A"]])
    with pytest.raises(ValueError, match="strictly decreasing"):
        Ranking(prompt_id="p", annotator="a", order=[["A"], ["B"]], scores={"A": 1, "B": 2})
    with pytest.raises(ValueError, match="non-finite"):
        Ranking.from_scores({"A": math.nan, "B": 1}, prompt_id="p", annotator="a")


def test_positions_average_ties() -> None:
    assert rk("D > B = A > C").positions() == {"D": 1, "B": 2.5, "A": 2.5, "C": 4}


# --- pairs ------------------------------------------------------------------


def test_quantum_computing_all_pairs() -> None:
    got = pairs(rk("D > B > A > C"), "all")
    assert as_tuples(got) == [
        ("D", "B"),
        ("D", "A"),
        ("D", "C"),
        ("B", "A"),
        ("B", "C"),
        ("A", "C"),
    ]
    assert [p.margin for p in got] == [1, 2, 3, 1, 2, 1]


def test_ties_give_no_pair() -> None:
    got = as_tuples(pairs(rk("D > B = A > C")))
    assert ("B", "A") not in got and ("A", "B") not in got
    assert got == [("D", "B"), ("D", "A"), ("D", "C"), ("B", "C"), ("A", "C")]


def test_score_margins() -> None:
    r = Ranking.from_scores({"A": 3.5, "B": 4, "C": 1}, prompt_id="p", annotator="a")
    assert {(p.chosen_id, p.rejected_id): p.margin for p in pairs(r)} == {
        ("B", "A"): 0.5,
        ("B", "C"): 3.0,
        ("A", "C"): 2.5,
    }


@pytest.mark.parametrize("mode", ["all", "best_worst", "best_random"])
def test_all_tie_and_single_give_nothing(mode: str) -> None:
    assert pairs(rk("A = B = C"), mode) == []  # type: ignore[arg-type]
    assert pairs(rk("A"), mode) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["best_worst", "best_random"])
def test_sampled_modes_never_pair_tied_items(mode: str) -> None:
    r = rk("A = B > C = D > E = F")
    tiers = r.tier_index
    rng = random.Random(7)
    seen_chosen, seen_rejected = set(), set()
    for _ in range(300):
        (p,) = pairs(r, mode, rng)  # type: ignore[arg-type]
        assert p.chosen_id != p.rejected_id
        assert tiers[p.chosen_id] == 0 < tiers[p.rejected_id]
        assert p.margin == tiers[p.rejected_id]
        seen_chosen.add(p.chosen_id)
        seen_rejected.add(p.rejected_id)
    assert seen_chosen == {"A", "B"}
    assert seen_rejected == ({"E", "F"} if mode == "best_worst" else {"C", "D", "E", "F"})


def test_sampled_modes_deterministic() -> None:
    r = rk("A = B > C = D > E")
    assert pairs(r, "best_random") == pairs(r, "best_random")
    assert pairs(r, "best_random", random.Random(3)) == pairs(r, "best_random", random.Random(3))


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown pair mode"):
        pairs(rk("A > B"), "every")  # type: ignore[arg-type]


def test_collect_pairs_counts() -> None:
    rankings = [
        rk("D > B > A > C"),
        rk("A = B = C", prompt_id="all-tie"),
        rk("A", prompt_id="single"),
        rk("A > B = C", prompt_id="partial-tie"),
    ]
    by_prompt, stats = collect_pairs(rankings, "all")
    assert stats.as_dict() == {
        "prompts_in": 4,
        "pairs_out": 8,
        "all_tie_prompts": 1,
        "too_few_responses": 1,
    }
    assert by_prompt["all-tie"] == [] and len(by_prompt[QC]) == 6
    with pytest.raises(ValueError, match="aggregate"):
        collect_pairs([rk("A > B"), rk("B > A", annotator="ann2")])


# --- aggregation ------------------------------------------------------------


def three_annotators() -> list[Ranking]:
    return [rk("D > B > A > C", "h1"), rk("D > A > B > C", "h2"), rk("B > D > A = C", "h3")]


def test_aggregate_borda() -> None:
    agg = aggregate(three_annotators(), "borda")
    # points: D 3+3+2=8, B 2+1+3=6, A 1+2+0.5=3.5, C 0+0+0.5=0.5
    assert agg.scores == {"D": 8, "B": 6, "A": 3.5, "C": 0.5}
    assert agg.order == [["D"], ["B"], ["A"], ["C"]]
    assert agg.annotator == "aggregate" and agg.annotator_kind == "human"


def test_aggregate_mean_rank() -> None:
    agg = aggregate(three_annotators(), "mean_rank")
    # mean positions: D (1+1+2)/3, B (2+3+1)/3, A (3+2+3.5)/3, C (4+4+3.5)/3
    assert agg.order == [["D"], ["B"], ["A"], ["C"]]
    assert agg.scores is not None
    assert agg.scores["A"] == pytest.approx(-8.5 / 3)


def test_aggregate_ties_and_mixed_kinds() -> None:
    rankings = [rk("A > B", "h1"), rk("B > A", "j1", annotator_kind="judge")]
    for method in ("borda", "mean_rank"):
        agg = aggregate(rankings, method)
        assert agg.order in ([["A", "B"]], [["B", "A"]])
        assert agg.annotator_kind == "judge"
        assert pairs(agg) == []


def test_aggregate_partial_rankings_differ_by_method() -> None:
    rankings = [rk("A > B > C", "h1"), rk("C > D", "h2")]
    # Borda counts only items each annotator ranked: A 2, B 1, C 0+1, D 0.
    assert aggregate(rankings, "borda").order == [["A"], ["B", "C"], ["D"]]
    # Mean rank ignores annotators who did not rank the item: A 1, C 2, B 2, D 2.
    assert aggregate(rankings, "mean_rank").order == [["A"], ["B", "C", "D"]]


def test_aggregate_rejects_mixed_prompts_and_duplicates() -> None:
    with pytest.raises(ValueError, match="different prompts"):
        aggregate([rk("A > B"), rk("A > B", "ann2", prompt_id="other")])
    with pytest.raises(ValueError, match="twice"):
        aggregate([rk("A > B"), rk("B > A")])


# --- agreement --------------------------------------------------------------


def test_kendall_tau_identical_and_reversed() -> None:
    assert kendall_tau(rk("D > B > A > C"), rk("D > B > A > C", "b")) == 1.0
    assert kendall_tau(rk("D > B > A > C"), rk("C > A > B > D", "b")) == -1.0


def test_kendall_tau_with_ties() -> None:
    r1, r2 = rk("A > B = C > D"), rk("A = B > D > C", "b")
    # 6 pairs: concordant AC AD BD, discordant CD, tied-in-r1 BC, tied-in-r2 AB
    expected = (3 - 1) / math.sqrt(5 * 5)
    assert kendall_tau(r1, r2) == pytest.approx(expected)
    try:
        from scipy.stats import kendalltau
    except ImportError:  # pragma: no cover - scipy is optional
        return
    ids = ["A", "B", "C", "D"]
    p1, p2 = r1.positions(), r2.positions()
    ref = kendalltau([p1[i] for i in ids], [p2[i] for i in ids], variant="b").statistic
    assert kendall_tau(r1, r2) == pytest.approx(ref)


def test_kendall_tau_undefined() -> None:
    assert math.isnan(kendall_tau(rk("A = B"), rk("A > B", "b")))
    assert math.isnan(kendall_tau(rk("A > B"), rk("C > D", "b")))


def prompts(orders: dict[str, list[str]]) -> list[Ranking]:
    return [
        rk(text, annotator=f"ann{i}", prompt_id=pid)
        for pid, texts in orders.items()
        for i, text in enumerate(texts)
    ]


def test_krippendorff_alpha_identical_vs_disagreeing() -> None:
    same = prompts({"p1": ["A > B > C > D"] * 3, "p2": ["B > A = C"] * 3})
    assert krippendorff_alpha(group_by_prompt(same)) == pytest.approx(1.0)
    mixed = prompts(
        {"p1": ["A > B > C > D", "D > C > B > A", "B > A > D > C"], "p2": ["B > A = C"] * 3}
    )
    assert krippendorff_alpha(group_by_prompt(mixed)) < 0.5


def test_krippendorff_alpha_undefined_for_single_annotator() -> None:
    assert math.isnan(krippendorff_alpha(group_by_prompt([rk("A > B > C")])))


def test_agreement_report() -> None:
    rankings = [*prompts({"p1": ["A > B > C", "A > B > C"], "p2": ["A > B", "B > A"]}), rk("A")]
    report = agreement_report(rankings)
    assert report["n_prompts"] == 3
    assert report["n_prompts_multi_annotator"] == 2
    assert report["kendall_tau_per_prompt"] == {"p1": 1.0, "p2": -1.0}
    assert report["mean_kendall_tau"] == 0.0
    assert isinstance(report["krippendorff_alpha"], float)
    assert agreement_report([rk("A > B")])["krippendorff_alpha"] is None
