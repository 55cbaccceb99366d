"""Evol-Instruct (Xu et al. 2023, WizardLM): make instructions harder, round by round.

Each round, every instruction in the pool gets one operation picked by a seeded rng (one of
the in-depth rewrites, or an in-breadth new prompt; see `synthloom.quality.evol_rules`); the
model rewrites the instruction, then answers the rewritten one. The elimination rules decide
whether the evolution failed (no information gain, copied template words, an "instruction"
that is empty, repeats itself or is really an answer, a short "sorry" answer, an answer of
only stop words, repeating itself or its instruction; see `check_evolution`). A failed
evolution is a failed unit: a failures.jsonl line with cause `eliminated:<rule>` and the
rejected text, counted as failed in the summary; its instruction stays in the pool unchanged
for the next round. A successful one replaces it and becomes a record whose parent is the
record it evolved from. Results are processed in pool order, so a rerun reproduces the same
records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthloom import templates
from synthloom.errors import UserError
from synthloom.llm.engine import Engine
from synthloom.quality.evol_rules import OPERATIONS, check_evolution
from synthloom.records import Record, Turn
from synthloom.sources import read_inputs
from synthloom.tasks.base import Eliminated, RunContext, Task, Unit, clip
from synthloom.tasks.self_instruct import DEFAULT_SEEDS


class EvolParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path | None = Field(
        None,
        description="instructions: a .jsonl/.csv file or a synthloom run directory (default:"
        " shipped seeds)",
    )
    instruction_column: str = Field(
        "instruction", description="column (or record field) holding the instruction"
    )
    rounds: int = Field(
        3, ge=1, description="evolution rounds; each round evolves every instruction once"
    )


@dataclass(frozen=True)
class _Entry:
    """The current version of one pool instruction."""

    index: int  # position in the pool (input order)
    instruction: str
    record_id: str | None  # the record this version is; None for a plain-file input
    source: dict[str, Any]  # file and line of the input it started from


class EvolTask(Task):
    """Harder, more varied instructions with answers, evolved round by round (Evol-Instruct)."""

    name = "evol"
    Params = EvolParams
    sampling = {"max_tokens": 512}
    dependent_units = "it works in rounds, each evolving the instructions of the one before"

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        return [Turn(data["instruction"], data["response"], data.get("system"))]

    def __init__(self, params: EvolParams) -> None:
        self.params = params
        column = params.instruction_column
        self.entries: list[_Entry] = []
        for row in read_inputs(params.input or DEFAULT_SEEDS, [column]):
            text = row.data[column]
            if not isinstance(text, str):
                raise UserError(f"{row.path}:{row.line}: column {column!r} must be a string")
            source = {"file": str(row.path), "line": row.line}
            self.entries.append(_Entry(len(self.entries), text.strip(), row.record_id, source))

    def total(self) -> int:
        return len(self.entries)

    def _sampling(self) -> dict[str, Any]:
        return {"temperature": 0.7, "max_tokens": self.sampling["max_tokens"]}

    async def execute(self, ctx: RunContext) -> None:
        engine = ctx.engine
        pool = list(self.entries)
        for rnd in range(1, self.params.rounds + 1):
            rng = random.Random(f"{engine.seed}:{rnd}")
            units = [Unit(f"r{rnd}:{e.index}", (rnd, rng.choice(OPERATIONS), e)) for e in pool]
            ctx.set_total(len(units), f"round {rnd}: evolving")
            results = await ctx.gather(units, lambda u: self._evolve(ctx, engine, u))
            for entry, result in zip(pool.copy(), results, strict=True):
                if result is None:  # failed or eliminated: a failed unit, entry unchanged
                    continue
                ctx.emit(result)
                ctx.count("evolutions_ok")
                pool[entry.index] = _Entry(
                    entry.index, result.data["instruction"], result.id, entry.source
                )

    async def _evolve(self, ctx: RunContext, engine: Engine, unit: Unit) -> Record:
        """The evolved record; raises Eliminated with the rule it failed."""
        rnd, operation, entry = unit.payload
        sample = rnd * len(self.entries) + entry.index
        rewrite = templates.load("evol_rewrite")
        evolved = await engine.complete(
            rewrite.messages(operation=operation, instruction=entry.instruction),
            sample=sample,
            **self._sampling(),
        )
        instruction: str = evolved.value  # stripped; newlines kept (tables, code)
        if reason := check_evolution(entry.instruction, instruction):
            ctx.count(f"evolutions_failed_{reason}")  # fails before paying for an answer
            raise Eliminated(reason, instruction, operation=operation)
        answer = await engine.complete(
            templates.load("evol_answer").messages(instruction=instruction),
            sample=sample,
            **self._sampling(),
        )
        if reason := check_evolution(entry.instruction, instruction, answer.value):
            ctx.count(f"evolutions_failed_{reason}")  # the instruction passed: an answer rule
            raise Eliminated(
                reason, answer.value, operation=operation, instruction=clip(instruction)
            )
        data = {
            "instruction": instruction,
            "response": answer.value,
            "operation": operation,
            "round": rnd,
            "original_instruction": entry.instruction,
        }
        return self.record(
            (unit.id, entry.instruction, answer.key),
            data,
            engine=engine,
            template=rewrite,
            results=[evolved, answer],
            parents=(entry.record_id,) if entry.record_id else (),
            notes={"source": entry.source, "answer_template": "evol_answer"},
            **self._sampling(),
        )
