"""An LLM judge ranks each prompt's responses; the rankings feed `synthloom pairs`.

`rate` (UltraFeedback-like): each response is rated 1-5 on every aspect, with a rationale;
the ranking orders responses by mean aspect score (equal means tie).
`pairwise`: every pair is judged in both orders; a preference counts only if both orders
agree (`judge_reconcile`), so a judge that favours a position yields ties, not pairs. The
ranking orders responses by reconciled wins (`scores_from_pairwise`).

Records: one per response (rate) or per pair (pairwise) with verdicts and rationales. At
the end the run directory gets `rankings.jsonl` (one judge ranking per prompt, written
atomically) in the rankings-store format of `synthloom.preference.store`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloom import templates
from synthloom.llm import structured
from synthloom.llm.engine import CallFailed, CallResult
from synthloom.preference.judge_reconcile import (
    PairwiseResult,
    judge_pair,
    mean_aspect_score,
    scores_from_pairwise,
)
from synthloom.preference.rankings import Ranking
from synthloom.preference.store import load_responses, ranking_row
from synthloom.preference.types import RANKINGS_FILE, PromptResponses
from synthloom.records import Record
from synthloom.tasks.base import RunContext, Task, Unit
from synthloom.tasks.responses import settle

# aspect name -> what the judge is told it means; the texts live in the prompt template
ASPECTS: Mapping[str, str] = templates.load("judge_rate").constants["descriptions"]
ASPECT_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def rating_schema(aspects: list[str], rationale_chars: int = 400) -> type[BaseModel]:
    """{"rationale": str, <aspect>: 1..5, ...} as a pydantic model (for structured output)."""
    fields: dict[str, Any] = {"rationale": (str, Field(max_length=rationale_chars))}
    for aspect in aspects:
        fields[aspect] = (Literal[1, 2, 3, 4, 5], ...)
    return structured.schema("AspectRatings", **fields)


def verdict_schema(rationale_chars: int = 400) -> type[BaseModel]:
    """{"rationale": str, "verdict": "first" | "second" | "tie"}."""
    return structured.schema(
        "PairVerdict",
        rationale=(str, Field(max_length=rationale_chars)),
        verdict=(Literal["first", "second", "tie"], ...),
    )


class JudgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="a responses run directory, or a .jsonl/.csv with prompt_id, prompt,"
        " response_id, response (group/prompt/response also accepted)",
    )
    mode: Literal["rate", "pairwise"] = Field(
        "rate",
        description="rate: 1-5 per aspect for each response; pairwise: every pair judged in"
        " both orders",
    )
    aspects: list[str] = Field(
        list(ASPECTS), min_length=1, description="criteria the judge uses, 1-5 each"
    )
    rationale_chars: int = Field(
        400, ge=10, le=4000, description="longest rationale the judge may write (shorter is faster)"
    )

    @field_validator("aspects")
    @classmethod
    def _aspects(cls, v: list[str]) -> list[str]:
        for a in v:
            if not ASPECT_RE.match(a) or a == "rationale":
                raise ValueError(f"aspect {a!r} must be lowercase letters, digits and '_'")
        if len(set(v)) != len(v):
            raise ValueError("aspects repeat")
        return v


class JudgeTask(Task):
    """Rank each prompt's responses with a judge model (the main model options)."""

    name = "judge"
    Params = JudgeParams
    sampling = {"max_tokens": 384}
    # each prompt judged on its own; its ranking is made from its records in the driver
    independent_units = True

    def after_cli(self, summary: Any) -> None:
        import click

        click.echo(f"rankings: {summary.out / RANKINGS_FILE}", err=True)

    def __init__(self, params: JudgeParams) -> None:
        self.params = params
        groups = load_responses(params.input)
        self.groups = [g for g in groups.values() if len(g.responses) >= 2]
        self.too_few = len(groups) - len(self.groups)
        self.rating = rating_schema(params.aspects, params.rationale_chars)
        self.verdict = verdict_schema(params.rationale_chars)
        self.rankings: dict[str, Ranking] = {}

    def total(self) -> int:
        return len(self.groups)

    async def execute(self, ctx: RunContext) -> None:
        if self.too_few:
            ctx.count("prompts_with_fewer_than_2_responses", self.too_few)
        units = [Unit(f"prompt:{g.prompt_id}", g) for g in self.groups]
        judge = self._rate if self.params.mode == "rate" else self._pairwise
        await ctx.for_each(
            units, lambda unit: judge(ctx, unit), then=lambda records: self._rank(ctx, records)
        )
        done = [self.rankings[g.prompt_id] for g in self.groups if g.prompt_id in self.rankings]
        rows = (json.dumps(ranking_row(r), ensure_ascii=False, default=str) + "\n" for r in done)
        ctx.write_artifact(RANKINGS_FILE, "".join(rows))

    def _rank(self, ctx: RunContext, records: list[Record]) -> None:
        """A judged prompt's ranking, from its records (one per rated response, in response
        order, or one per pair): run in the driver as each prompt is done (for_each's then),
        wherever the prompt was judged."""
        first = records[0].data
        if first["mode"] == "rate":
            scores = {r.data["response_id"]: r.data["score"] for r in records}
        else:
            scores = scores_from_pairwise(
                PairwiseResult(
                    r.data["a_id"], r.data["b_id"], r.data["winner"], r.data["consistent"]
                )
                for r in records
            )
        ranking = Ranking.from_scores(
            scores, prompt_id=first["prompt_id"], annotator=first["judge"], annotator_kind="judge"
        )
        self.rankings[ranking.prompt_id] = ranking
        ctx.count("prompts_judged")
        if first["mode"] == "rate":  # pairwise counts its ties pair by pair
            ctx.count("tied_pairs", sum(len(t) * (len(t) - 1) // 2 for t in ranking.order))
        else:
            ctx.count("tied_pairs", 0)
        if len(ranking.order) == 1:
            ctx.count("all_tie_prompts")

    def _annotator(self, ctx: RunContext) -> str:
        # The mode is part of the name: rating and pairwise runs of one model are two annotators.
        mode = "" if self.params.mode == "rate" else f":{self.params.mode}"
        return f"judge:{ctx.engine.backend.model}{mode}"

    def _sampling(self) -> dict[str, Any]:
        return {"max_tokens": self.sampling["max_tokens"]}

    # -- rate ---------------------------------------------------------------------------
    async def _rate(self, ctx: RunContext, unit: Unit) -> list[Record]:
        group: PromptResponses = unit.payload
        template = templates.load("judge_rate")
        ids = list(group.responses)
        calls = (
            ctx.engine.complete(
                template.messages(
                    prompt=group.prompt,
                    response=group.responses[rid],
                    aspects=self.params.aspects,
                    rationale_chars=self.params.rationale_chars,
                ),
                schema=self.rating,
                **self._sampling(),
            )
            for rid in ids
        )
        results = await settle(calls)
        failed = [
            (rid, r) for rid, r in zip(ids, results, strict=True) if isinstance(r, CallFailed)
        ]
        rated = [
            (rid, r) for rid, r in zip(ids, results, strict=True) if not isinstance(r, CallFailed)
        ]
        if len(rated) < 2:
            cause = failed[0][1]
            raise CallFailed(
                cause.cause, f"{len(failed)} of {len(ids)} ratings failed: {cause.detail}"
            )
        for rid, exc in failed:
            ctx.fail(f"{unit.id}#{rid}", exc.cause, exc.detail)
        annotator = self._annotator(ctx)
        records: list[Record] = []
        scores: dict[str, float] = {}
        for rid, result in rated:
            ratings = {a: int(getattr(result.value, a)) for a in self.params.aspects}
            scores[rid] = mean_aspect_score(ratings)
            record_id = group.record_ids.get(rid)
            data = {
                "prompt_id": group.prompt_id,
                "prompt": group.prompt,
                "mode": "rate",
                "response_id": rid,
                "response": group.responses[rid],
                "ratings": ratings,
                "score": scores[rid],
                "rationale": result.value.rationale,
                "judge": annotator,
            }
            record = self.record(
                (group.prompt_id, rid, result.key),
                data,
                engine=ctx.engine,
                template=template,
                results=[result],
                parents=(record_id,) if record_id else (),
                **self._sampling(),
            )
            records.append(record)
        ctx.count("responses_rated", len(rated))
        return records

    # -- pairwise -------------------------------------------------------------------------
    async def _pairwise(self, ctx: RunContext, unit: Unit) -> list[Record]:
        group: PromptResponses = unit.payload
        template = templates.load("judge_pairwise")
        criteria = ", ".join(a.replace("_", " ") for a in self.params.aspects)
        pairs = list(combinations(group.responses, 2))

        def ask(first: str, second: str) -> Any:
            messages = template.messages(
                prompt=group.prompt,
                first=group.responses[first],
                second=group.responses[second],
                criteria=criteria,
                rationale_chars=self.params.rationale_chars,
            )
            return ctx.engine.complete(messages, schema=self.verdict, **self._sampling())

        results = await settle(ask(x, y) for a, b in pairs for x, y in ((a, b), (b, a)))
        failed = [r for r in results if isinstance(r, CallFailed)]
        if failed:  # a ranking from some of the pairs would be biased: judge the prompt again
            raise CallFailed(
                failed[0].cause,
                f"{len(failed)} of {len(results)} verdicts failed: {failed[0].detail}",
            )
        annotator = self._annotator(ctx)
        records: list[Record] = []
        for i, (a, b) in enumerate(pairs):
            ab: CallResult[Any] = results[2 * i]  # type: ignore[assignment]
            ba: CallResult[Any] = results[2 * i + 1]  # type: ignore[assignment]
            outcome = judge_pair(a, b, ab.value.verdict, ba.value.verdict)
            ctx.count("pairs_judged")
            ctx.count("inconsistent_pairs", not outcome.consistent)
            ctx.count("tied_pairs", outcome.winner is None)
            parents = tuple(p for p in (group.record_ids.get(a), group.record_ids.get(b)) if p)
            data = {
                "prompt_id": group.prompt_id,
                "prompt": group.prompt,
                "mode": "pairwise",
                "a_id": a,
                "b_id": b,
                "verdict_ab": ab.value.verdict,
                "verdict_ba": ba.value.verdict,
                "rationale_ab": ab.value.rationale,
                "rationale_ba": ba.value.rationale,
                "winner": outcome.winner,
                "consistent": outcome.consistent,
                "judge": annotator,
            }
            record = self.record(
                (group.prompt_id, a, b, ab.key, ba.key),
                data,
                engine=ctx.engine,
                template=template,
                results=[ab, ba],
                parents=parents,
                notes={} if outcome.consistent else {"position_bias": True},
                **self._sampling(),
            )
            records.append(record)
        return records
