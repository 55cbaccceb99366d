"""Position-bias reconciliation for pairwise LLM judging, and pointwise aspect scores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import fmean
from typing import Literal

Verdict = Literal["first", "second", "tie"]
_VERDICTS = ("first", "second", "tie")


def _winner(verdict: str, first_id: str, second_id: str) -> str | None:
    v = str(verdict).strip().lower()
    if v not in _VERDICTS:
        raise ValueError(f"verdict must be one of {_VERDICTS}, got {verdict!r}")
    return {"first": first_id, "second": second_id, "tie": None}[v]


@dataclass(frozen=True, slots=True)
class PairwiseResult:
    """Reconciled outcome of judging ``a_id`` vs ``b_id`` in both orders."""

    a_id: str
    b_id: str
    winner: str | None
    consistent: bool

    def __post_init__(self) -> None:
        if self.a_id == self.b_id:
            raise ValueError(f"a response cannot be compared with itself: {self.a_id!r}")
        if self.winner not in (None, self.a_id, self.b_id):
            raise ValueError(f"winner {self.winner!r} is neither {self.a_id!r} nor {self.b_id!r}")


def judge_pair(a_id: str, b_id: str, verdict_ab: Verdict, verdict_ba: Verdict) -> PairwiseResult:
    """Reconcile verdicts from order (a, b) and order (b, a).

    A preference counts only if both orders pick the same response; otherwise it is a tie.
    ``consistent`` is False when the two orders disagree (a sign of position bias).
    """
    first = _winner(verdict_ab, a_id, b_id)
    second = _winner(verdict_ba, b_id, a_id)
    agree = first == second
    return PairwiseResult(a_id, b_id, first if agree else None, agree)


def reconcile(verdict_ab: Verdict, verdict_ba: Verdict, a_id: str, b_id: str) -> str | None:
    """Winner id if both orders agree on it, else ``None`` (tie)."""
    return judge_pair(a_id, b_id, verdict_ab, verdict_ba).winner


def scores_from_pairwise(results: Iterable[PairwiseResult]) -> dict[str, float]:
    """Win counts per response (a tie gives each side 0.5), for ``Ranking.from_scores``."""
    scores: dict[str, float] = {}
    for r in results:
        scores.setdefault(r.a_id, 0.0)
        scores.setdefault(r.b_id, 0.0)
        if r.winner is None:
            scores[r.a_id] += 0.5
            scores[r.b_id] += 0.5
        else:
            scores[r.winner] += 1.0
    return scores


def mean_aspect_score(ratings: Mapping[str, int]) -> float:
    """Mean of UltraFeedback-style aspect ratings (integers 1..5)."""
    if not ratings:
        raise ValueError("no aspect ratings given")
    for aspect, value in ratings.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"rating for aspect {aspect!r} must be an int, got {value!r}")
        if not 1 <= value <= 5:
            raise ValueError(f"rating for aspect {aspect!r} must be in 1..5, got {value}")
    return fmean(ratings.values())
