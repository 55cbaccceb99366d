"""Judge scoring: a judge model rates any records on named criteria, with a rationale.

Each input record (a run, a records .jsonl, or a .jsonl/.csv file) is rated once on every
criterion from 1 to `scale` (5 or 10) through structured output; the output record is the
input's data with `scores` (criterion -> score), `score` (their mean), `score_rationale`,
`judge` (the model) and `scored_task` (the input record's task, so exports read the record as
that task's), and the input record as its parent. The `filter` step drops records under a
score (`--min-score`), the report plots the scores, and the review app shows them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloom import templates
from synthloom.errors import UserError
from synthloom.llm import structured
from synthloom.quality.audit import TEXT_FIELDS, pick_field
from synthloom.records import Record, Turn
from synthloom.runs import read_records
from synthloom.sources import InputRow, read_inputs
from synthloom.tasks.base import RunContext, Task, Unit

CRITERIA: dict[str, str] = {
    "quality": "is it a correct, useful, natural example of what it is meant to be?",
    "fluency": "does it read as fluent, natural language, with no garbled or cut-off text?",
    "relevance": "does it fit its prompt (or its label), staying on topic?",
    "correctness": "are its statements factually correct, with nothing invented?",
    "label_fit": "does the text clearly express its label?",
}
CRITERION_RE = re.compile(r"^[a-z][a-z0-9_]*$")
PROMPT_FIELDS = ("prompt", "instruction", "question", "original_text", "input")


def score_schema(criteria: list[str], scale: int, rationale_chars: int) -> type[BaseModel]:
    """{"rationale": str, <criterion>: 1..scale, ...} as a pydantic model."""
    score_type = structured.one_of(range(1, scale + 1))
    fields: dict[str, Any] = {"rationale": (str, Field(max_length=rationale_chars))}
    for name in criteria:
        fields[name] = (score_type, ...)
    return structured.schema("CriterionScores", **fields)


class ScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(..., description="records to rate: a run directory, .jsonl or .csv")
    field: str | None = Field(
        None,
        description="the data field to rate (default: the first of text, response, answer,"
        " summary, completion, output, instruction, question, prompt)",
    )
    prompt_field: str | None = Field(
        None,
        description="a field shown as the text's prompt (default: the first of prompt,"
        " instruction, question, original_text, input other than --field)",
    )
    label_field: str = Field("label", description="a field shown as the text's label, if any")
    criteria: list[str] = Field(
        ["quality", "fluency"],
        min_length=1,
        description="criteria, each `name` (quality, fluency, relevance, correctness,"
        " label_fit) or `name=what it asks`",
        json_schema_extra={"multiple": True},
    )
    scale: Literal[5, 10] = Field(5, description="the highest score (scores run from 1)")
    rationale_chars: int = Field(
        300, ge=10, le=4000, description="longest rationale the judge may write"
    )

    @field_validator("criteria")
    @classmethod
    def _criteria(cls, criteria: list[str]) -> list[str]:
        names = []
        for c in criteria:
            name, _, text = c.partition("=")
            name = name.strip()
            if not CRITERION_RE.match(name) or name == "rationale":
                raise ValueError(f"criterion {name!r} must be lowercase letters, digits and '_'")
            if not text.strip() and name not in CRITERIA:
                raise ValueError(
                    f"criterion {name!r} needs a description: {name}=what it asks"
                    f" (known without one: {', '.join(CRITERIA)})"
                )
            names.append(name)
        if len(set(names)) != len(names):
            raise ValueError("criteria repeat")
        return criteria


class ScoreTask(Task):
    """Rate records with a judge model on named criteria (1-5 or 1-10, with a rationale); the
    scores become fields (`scores`, `score`) that filter --min-score and the report use."""

    name = "score"
    Params = ScoreParams
    sampling = {"max_tokens": 384}
    independent_units = True  # each record rated on its own (what it needs is in its unit)

    def __init__(self, params: ScoreParams) -> None:
        self.params = params
        self.criteria: list[dict[str, str]] = []
        for c in params.criteria:
            name, _, text = c.partition("=")
            self.criteria.append(
                {"name": name.strip(), "description": text.strip() or CRITERIA[name.strip()]}
            )
        self.names = [c["name"] for c in self.criteria]
        self.schema = score_schema(self.names, params.scale, params.rationale_chars)
        self.rows = read_inputs(params.input)
        for row in self.rows:
            name = pick_field(row.data, params.field, TEXT_FIELDS)
            if name is None or not isinstance(row.data.get(name), str):
                have = ", ".join(k for k, v in row.data.items() if isinstance(v, str)) or "none"
                raise UserError(
                    f"{row.path}:{row.line}: no text field {name or ''!r} to rate (text fields"
                    f" here: {have}); choose --field"
                )

    def units(self) -> list[Unit]:
        """One unit per input row, with what its record keeps of the input record it rates
        (read here, by the driver: a worker elsewhere never reads the input)."""
        originals: dict[str, dict[str, Any]] | None = None
        units = []
        for row in self.rows:
            original: dict[str, Any] = {}
            if row.record_id is not None:
                if originals is None:  # the input is synthloom records: read them once
                    originals = {str(r["id"]): _kept(r) for _, r in read_records(row.path)}
                original = originals.get(str(row.record_id)) or {}
            units.append(Unit(row.record_id or f"line{row.line}", (row, original)))
        return units

    def total(self) -> int:
        return len(self.rows)

    async def execute(self, ctx: RunContext) -> None:
        await ctx.for_each(self.units(), lambda unit: self._score(ctx, unit))

    async def _score(self, ctx: RunContext, unit: Unit) -> list[Record]:
        row: InputRow = unit.payload[0]
        original: dict[str, Any] = unit.payload[1]
        p = self.params
        field = pick_field(row.data, p.field, TEXT_FIELDS) or ""
        prompt_name = p.prompt_field or next(
            (f for f in PROMPT_FIELDS if f != field and isinstance(row.data.get(f), str)), None
        )
        prompt = row.data.get(prompt_name) if prompt_name else None
        label = row.data.get(p.label_field)
        template = templates.load("score")
        messages = template.messages(
            text=row.data[field],
            prompt=prompt if isinstance(prompt, str) else "",
            label=str(label) if label is not None and not isinstance(label, dict | list) else "",
            criteria=self.criteria,
            scale=p.scale,
            rationale_chars=p.rationale_chars,
        )
        sampling = {"max_tokens": self.sampling["max_tokens"]}
        result = await ctx.engine.complete(messages, schema=self.schema, **sampling)
        scores = {name: int(getattr(result.value, name)) for name in self.names}
        data = {
            **row.data,
            "scores": scores,
            "score": round(sum(scores.values()) / len(scores), 3),
            "score_rationale": result.value.rationale,
            "judge": ctx.engine.backend.model,
        }
        if row.record_id is not None:
            data["scored_task"] = original.get("task")
        ctx.count("records_scored")
        record = self.record(
            (unit.id, result.key),
            data,
            engine=ctx.engine,
            template=template,
            results=[result],
            parents=(row.record_id,) if row.record_id else (),
            # a record flagged for review stays flagged, with its reason
            notes={
                **(original.get("notes") or {}),
                "source": {"file": str(row.path), "line": row.line},
            },
            status=str(original.get("status", "ok")),
            **sampling,
        )
        return [record]

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        """What the scored record teaches: what its own task's record teaches."""
        from synthloom.tasks.registry import task_class, task_names

        task = data.get("scored_task")
        return list(task_class(task).turns(data)) if task in task_names() else []

    @staticmethod
    def labelled(data: dict[str, Any]) -> tuple[str, Any] | None:
        from synthloom.tasks.registry import task_class, task_names

        task = data.get("scored_task")
        if task in task_names():
            return task_class(task).labelled(data)  # type: ignore[no-any-return]
        return Task.labelled(data)


def _kept(record: dict[str, Any]) -> dict[str, Any]:
    """What a score record keeps of the input record it rates: its task, status and notes."""
    return {k: record[k] for k in ("task", "status", "notes") if k in record}
