"""Rankings of responses per prompt: parsing, pair extraction, aggregation and agreement."""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from statistics import fmean
from typing import Any, Literal, Self

import krippendorff
import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

AnnotatorKind = Literal["human", "judge"]
PairMode = Literal["all", "best_worst", "best_random"]
AggregateMethod = Literal["borda", "mean_rank"]

_PAIR_MODES = ("all", "best_worst", "best_random")
_AGG_METHODS = ("borda", "mean_rank")


class Ranking(BaseModel):
    """One annotator's ranking of one prompt's responses: tiers best first, ties share a tier."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    annotator: str
    annotator_kind: AnnotatorKind = "human"
    order: list[list[str]]
    scores: dict[str, float] | None = None

    @model_validator(mode="after")
    def _validate(self) -> Self:
        where = f"in ranking for prompt {self.prompt_id!r} by {self.annotator!r}"
        if not self.order:
            raise ValueError(f"no responses {where}")
        seen: set[str] = set()
        for i, tier in enumerate(self.order):
            if not tier:
                raise ValueError(f"empty tier at position {i} {where}")
            for rid in tier:
                if not rid.strip():
                    raise ValueError(f"empty response id in tier {i} {where}")
                if rid in seen:
                    raise ValueError(f"duplicate response id {rid!r} {where}")
                seen.add(rid)
        if self.scores is not None:
            _validate_scores(self.order, self.scores, seen, where)
        return self

    @classmethod
    def from_string(
        cls,
        text: str,
        *,
        prompt_id: str,
        annotator: str,
        annotator_kind: AnnotatorKind = "human",
        response_ids: Iterable[str] | None = None,
    ) -> Ranking:
        """Parse ``"D > B = A > C"`` (best first, ``=`` ties)."""
        if "<" in text:
            raise ValueError(f"use '>' with the best response first, not '<': {text!r}")
        order: list[list[str]] = []
        for i, part in enumerate(text.split(">")):
            tier = [tok.strip() for tok in part.split("=")]
            if tier == [""]:
                raise ValueError(f"empty tier at position {i} in {text!r}")
            if "" in tier:
                raise ValueError(f"empty response id in tier {i} of {text!r}")
            order.append(tier)
        ranking = cls(
            prompt_id=prompt_id, annotator=annotator, annotator_kind=annotator_kind, order=order
        )
        return ranking if response_ids is None else ranking.check_ids(response_ids)

    @classmethod
    def from_scores(
        cls,
        scores: Mapping[str, float],
        *,
        prompt_id: str,
        annotator: str,
        annotator_kind: AnnotatorKind = "human",
        response_ids: Iterable[str] | None = None,
    ) -> Ranking:
        """Build from scores (higher is better, equal scores tie); scores are kept for margins."""
        if not scores:
            raise ValueError(f"no scores for prompt {prompt_id!r}")
        clean = {rid: float(s) for rid, s in scores.items()}
        bad = [rid for rid, s in clean.items() if not math.isfinite(s)]
        if bad:
            raise ValueError(f"non-finite score for {bad} in prompt {prompt_id!r}")
        order: list[list[str]] = []
        for rid in sorted(clean, key=lambda r: -clean[r]):
            if order and clean[order[-1][0]] == clean[rid]:
                order[-1].append(rid)
            else:
                order.append([rid])
        ranking = cls(
            prompt_id=prompt_id,
            annotator=annotator,
            annotator_kind=annotator_kind,
            order=order,
            scores=clean,
        )
        return ranking if response_ids is None else ranking.check_ids(response_ids)

    @property
    def ids(self) -> list[str]:
        """All ranked response ids, best first."""
        return [rid for tier in self.order for rid in tier]

    @property
    def tier_index(self) -> dict[str, int]:
        """Tier number (0 = best) of each response id."""
        return {rid: i for i, tier in enumerate(self.order) for rid in tier}

    def positions(self) -> dict[str, float]:
        """1-based rank positions; tied items get the average of the positions they span."""
        out: dict[str, float] = {}
        start = 1
        for tier in self.order:
            mid = start + (len(tier) - 1) / 2
            out.update(dict.fromkeys(tier, mid))
            start += len(tier)
        return out

    def check_ids(self, response_ids: Iterable[str], *, complete: bool = False) -> Ranking:
        """Raise if the ranking names an id outside ``response_ids`` (or misses one if complete)."""
        known = set(response_ids)
        unknown = [rid for rid in self.ids if rid not in known]
        if unknown:
            raise ValueError(
                f"unknown response id(s) {unknown} in ranking for prompt {self.prompt_id!r}; "
                f"known ids: {sorted(known)}"
            )
        missing = sorted(known - set(self.ids))
        if complete and missing:
            raise ValueError(f"ranking for prompt {self.prompt_id!r} misses id(s) {missing}")
        return self


def _validate_scores(
    order: list[list[str]], scores: dict[str, float], ids: set[str], where: str
) -> None:
    if set(scores) != ids:
        raise ValueError(
            f"scores do not match ranked ids {where}: "
            f"missing {sorted(ids - set(scores))}, extra {sorted(set(scores) - ids)}"
        )
    tier_scores = []
    for i, tier in enumerate(order):
        if len({scores[rid] for rid in tier}) != 1:
            raise ValueError(f"tier {i} has unequal scores {where}")
        tier_scores.append(scores[tier[0]])
    if any(a <= b for a, b in zip(tier_scores, tier_scores[1:], strict=False)):
        raise ValueError(f"scores are not strictly decreasing across tiers {where}")


@dataclass(frozen=True, slots=True)
class Pair:
    """A preference: ``chosen_id`` beats ``rejected_id`` by ``margin`` (> 0)."""

    chosen_id: str
    rejected_id: str
    margin: float


def _margin(ranking: Ranking, tiers: dict[str, int], chosen: str, rejected: str) -> float:
    if ranking.scores is not None:
        return ranking.scores[chosen] - ranking.scores[rejected]
    return float(tiers[rejected] - tiers[chosen])


def _default_rng(ranking: Ranking) -> random.Random:
    return random.Random(zlib.crc32(ranking.prompt_id.encode("utf-8")))


def pairs(ranking: Ranking, mode: PairMode = "all", rng: random.Random | None = None) -> list[Pair]:
    """Preference pairs from a ranking; tied items are never paired.

    ``all``: every cross-tier pair, best first. ``best_worst``: one best-tier item vs one
    worst-tier item. ``best_random``: one best-tier item vs a uniformly drawn item from the
    other tiers. Choices within a tier use ``rng`` (default: seeded from the prompt id).
    """
    if mode not in _PAIR_MODES:
        raise ValueError(f"unknown pair mode {mode!r}; expected one of {_PAIR_MODES}")
    order = ranking.order
    if len(order) < 2:
        return []
    tiers = ranking.tier_index
    if mode == "all":
        return [
            Pair(a, b, _margin(ranking, tiers, a, b))
            for i, tier in enumerate(order)
            for a in tier
            for lower in order[i + 1 :]
            for b in lower
        ]
    rng = rng if rng is not None else _default_rng(ranking)
    chosen = rng.choice(order[0])
    if mode == "best_worst":
        rejected = rng.choice(order[-1])
    else:
        rejected = rng.choice([rid for tier in order[1:] for rid in tier])
    return [Pair(chosen, rejected, _margin(ranking, tiers, chosen, rejected))]


@dataclass(slots=True)
class PairStats:
    """Counters for a pair-extraction run."""

    prompts_in: int = 0
    pairs_out: int = 0
    all_tie_prompts: int = 0
    too_few_responses: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict for logs and manifests."""
        return asdict(self)


def collect_pairs(
    rankings: Iterable[Ranking], mode: PairMode = "all", rng: random.Random | None = None
) -> tuple[dict[str, list[Pair]], PairStats]:
    """Pairs per prompt id plus counters; expects one ranking per prompt (aggregate first)."""
    out: dict[str, list[Pair]] = {}
    stats = PairStats()
    for ranking in rankings:
        if ranking.prompt_id in out:
            raise ValueError(
                f"several rankings for prompt {ranking.prompt_id!r}; aggregate() them first"
            )
        stats.prompts_in += 1
        if len(ranking.ids) < 2:
            stats.too_few_responses += 1
        elif len(ranking.order) == 1:
            stats.all_tie_prompts += 1
        out[ranking.prompt_id] = pairs(ranking, mode, rng)
        stats.pairs_out += len(out[ranking.prompt_id])
    return out, stats


def group_by_prompt(rankings: Iterable[Ranking]) -> dict[str, list[Ranking]]:
    """Group rankings by prompt id, rejecting two rankings by one annotator for one prompt."""
    grouped: dict[str, list[Ranking]] = {}
    for ranking in rankings:
        group = grouped.setdefault(ranking.prompt_id, [])
        if any(r.annotator == ranking.annotator for r in group):
            raise ValueError(
                f"annotator {ranking.annotator!r} ranked prompt {ranking.prompt_id!r} twice"
            )
        group.append(ranking)
    return grouped


def aggregate(rankings: Sequence[Ranking], method: AggregateMethod = "borda") -> Ranking:
    """Combine several annotators' rankings of one prompt into one (annotator ``"aggregate"``).

    ``borda``: each annotator gives an item one point per item it beats and half a point per
    item it ties with, among the items that annotator ranked; points are summed.
    ``mean_rank``: average of the item's tie-averaged positions over annotators who ranked it.
    Equal results tie. The result keeps the Borda points (or negated mean ranks) as scores.
    """
    if method not in _AGG_METHODS:
        raise ValueError(f"unknown aggregation method {method!r}; expected one of {_AGG_METHODS}")
    if not rankings:
        raise ValueError("aggregate() needs at least one ranking")
    prompt_ids = sorted({r.prompt_id for r in rankings})
    if len(prompt_ids) != 1:
        raise ValueError(f"aggregate() got rankings of different prompts: {prompt_ids}")
    prompt_id = prompt_ids[0]
    group_by_prompt(rankings)  # rejects duplicate annotators
    universe = list(dict.fromkeys(rid for r in rankings for rid in r.ids))
    sums = dict.fromkeys(universe, 0.0)
    counts = dict.fromkeys(universe, 0)
    for ranking in rankings:
        n = len(ranking.ids)
        for rid, pos in ranking.positions().items():
            sums[rid] += (n - pos) if method == "borda" else pos
            counts[rid] += 1
    if method == "borda":
        scores = sums
    else:
        scores = {rid: -sums[rid] / counts[rid] for rid in universe}
    kinds = {r.annotator_kind for r in rankings}
    return Ranking.from_scores(
        scores,
        prompt_id=prompt_id,
        annotator="aggregate",
        annotator_kind="human" if kinds == {"human"} else "judge",
    )


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def kendall_tau(r1: Ranking, r2: Ranking) -> float:
    """Kendall tau-b over the responses both rankings share; NaN if undefined."""
    p1, p2 = r1.positions(), r2.positions()
    common = [rid for rid in p1 if rid in p2]
    concordant = discordant = untied1 = untied2 = 0
    for a, b in combinations(common, 2):
        s1, s2 = _sign(p1[a] - p1[b]), _sign(p2[a] - p2[b])
        untied1 += s1 != 0
        untied2 += s2 != 0
        concordant += s1 * s2 > 0
        discordant += s1 * s2 < 0
    denom = math.sqrt(untied1 * untied2)
    return (concordant - discordant) / denom if denom else math.nan


def krippendorff_alpha(rankings_by_prompt: Mapping[str, Sequence[Ranking]]) -> float:
    """Ordinal Krippendorff's alpha; units are (prompt, response), values rank positions.

    Returns NaN when there is nothing to compare (fewer than two annotators on any unit, or
    a single distinct value).
    """
    annotators = sorted({r.annotator for rs in rankings_by_prompt.values() for r in rs})
    row = {name: i for i, name in enumerate(annotators)}
    columns: list[list[float]] = []
    for prompt_id, rankings in rankings_by_prompt.items():
        if any(r.prompt_id != prompt_id for r in rankings):
            raise ValueError(f"ranking filed under prompt {prompt_id!r} has another prompt id")
        group_by_prompt(rankings)
        positions = [(row[r.annotator], r.positions()) for r in rankings]
        for rid in dict.fromkeys(rid for r in rankings for rid in r.ids):
            column = [math.nan] * len(annotators)
            for i, pos in positions:
                column[i] = pos.get(rid, math.nan)
            columns.append(column)
    if not columns:
        return math.nan
    data = np.array(columns, dtype=float).T
    pairable = np.sum(~np.isnan(data), axis=0) >= 2
    if not pairable.any() or np.unique(data[:, pairable][~np.isnan(data[:, pairable])]).size < 2:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))
    return value if math.isfinite(value) else math.nan


def agreement_report(rankings: Iterable[Ranking]) -> dict[str, Any]:
    """Inter-annotator agreement summary; undefined values are ``None`` (JSON-safe).

    ``mean_kendall_tau`` is the mean over prompts of each prompt's mean pairwise tau-b.
    """
    grouped = group_by_prompt(rankings)
    per_prompt: dict[str, float | None] = {}
    for prompt_id, group in grouped.items():
        if len(group) < 2:
            continue
        taus = [kendall_tau(a, b) for a, b in combinations(group, 2)]
        defined = [t for t in taus if not math.isnan(t)]
        per_prompt[prompt_id] = fmean(defined) if defined else None
    prompt_taus = [t for t in per_prompt.values() if t is not None]
    alpha = krippendorff_alpha(grouped)
    return {
        "n_prompts": len(grouped),
        "n_prompts_multi_annotator": len(per_prompt),
        "kendall_tau_per_prompt": per_prompt,
        "mean_kendall_tau": fmean(prompt_taus) if prompt_taus else None,
        "krippendorff_alpha": None if math.isnan(alpha) else alpha,
    }
