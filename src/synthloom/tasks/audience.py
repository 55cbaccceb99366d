"""Audience and persona control: one instruction per (topic or instruction, audience, persona),
answered for that audience, in that persona's voice.

For topics the instruction is built by a fixed template ("Explain photosynthesis to a
5-year-old."), not by the model; given instructions get "Write for <audience>." appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthloom import templates
from synthloom.errors import UserError
from synthloom.records import Record, Turn
from synthloom.sources import read_inputs, read_text
from synthloom.tasks.base import RunContext, Task, Unit

DEFAULT_AUDIENCES = (
    "a 5-year-old",
    "a high-school student",
    "a busy professional with no background in the subject",
    "an expert in the field",
)
LIST_SUFFIXES = (".txt", ".md", ".list")


def split_list(value: str) -> list[str]:
    """A comma-separated list, or a file with one item per line (blank lines skipped)."""
    path = Path(value)
    if "," not in value and (path.is_file() or path.suffix.lower() in LIST_SUFFIXES):
        return [line.strip() for line in read_text(path).splitlines() if line.strip()]
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Subject:
    """What to write about: a topic, or an instruction read from a file."""

    topic: str | None = None
    given: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None

    def instruction(self, audience: str | None) -> str:
        if self.topic is not None:
            return f"Explain {self.topic} to {audience}." if audience else f"Explain {self.topic}."
        given = self.given or ""
        if not audience:
            return given
        return f"{given}{'' if given[-1] in '.?!' else '.'} Write for {audience}."


def read_instructions(path: Path) -> list[Subject]:
    """A .txt file with one instruction per line, or a .jsonl/.csv file or previous run with
    an "instruction" column."""
    if path.suffix.lower() in LIST_SUFFIXES:
        lines = read_text(path).splitlines()
        return [
            Subject(given=line.strip(), source={"file": str(path), "line": i})
            for i, line in enumerate(lines, start=1)
            if line.strip()
        ]
    subjects = []
    for row in read_inputs(path, ["instruction"]):
        if not isinstance(row.data["instruction"], str):
            raise UserError(f"{row.path}:{row.line}: column 'instruction' is not text")
        source = {"file": str(row.path), "line": row.line}
        subjects.append(Subject(None, row.data["instruction"].strip(), source, row.record_id))
    return subjects


class AudienceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topics: list[str] | None = Field(
        None,
        description="topics: comma-separated, or a file with one per line",
        json_schema_extra={"split": False},
    )
    instructions: Path | None = Field(
        None,
        description="instructions: a .txt file (one per line), or .jsonl/.csv/run with"
        " 'instruction'",
    )
    audiences: list[str] | None = Field(
        None,
        description="readers to write for: comma-separated, or a file (default:"
        f" {'; '.join(DEFAULT_AUDIENCES)}, unless personas are given)",
        json_schema_extra={"split": False},
    )
    personas: list[str] | None = Field(
        None,
        description='writers (e.g. "a patient kindergarten teacher"): comma-separated, or a file',
        json_schema_extra={"split": False},
    )
    samples: int = Field(
        1, ge=1, description="responses per combination", json_schema_extra={"flags": ["-n"]}
    )
    length: str | None = Field(
        None, description='how long each answer should be, e.g. "one short paragraph"'
    )

    @field_validator("topics", "audiences", "personas", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> AudienceParams:
        if bool(self.topics) == bool(self.instructions):
            raise ValueError(
                "give exactly one of topics (--topics) or instructions (--instructions)"
            )
        for name in ("topics", "audiences", "personas"):
            value = getattr(self, name)
            if value is not None and not [v for v in value if v.strip()]:
                raise ValueError(f"{name} is empty")
        return self


class AudienceTask(Task):
    """Instructions and responses written for an audience and/or in a persona's voice, for
    every topic (or instruction) crossed with every audience and persona."""

    name = "audience"
    Params = AudienceParams
    sampling = {"max_tokens": 384}
    growable = ("samples",)  # raising --samples on a run adds answers; the first are kept

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        return [Turn(data["instruction"], data["response"], data.get("system"))]

    def __init__(self, params: AudienceParams) -> None:
        self.params = params
        if params.instructions is not None:
            self.subjects = read_instructions(params.instructions)
        else:
            self.subjects = [Subject(topic=t.strip()) for t in params.topics or [] if t.strip()]
        audiences: list[str | None] = list(
            params.audiences or (() if params.personas else DEFAULT_AUDIENCES)
        )
        personas: list[str | None] = list(params.personas or ())
        self.pairs = list(product(audiences or [None], personas or [None]))

    def units(self) -> list[Unit]:
        units = []
        for subject in self.subjects:
            for audience, persona in self.pairs:
                for i in range(self.params.samples):
                    uid = f"{subject.topic or subject.given}|{audience or '-'}|{persona or '-'}|{i}"
                    units.append(Unit(uid, (subject, audience, persona, i)))
        return units

    def total(self) -> int:
        return len(self.subjects) * len(self.pairs) * self.params.samples

    async def execute(self, ctx: RunContext) -> None:
        await ctx.for_each(self.units(), lambda unit: self._write(ctx, unit))

    async def _write(self, ctx: RunContext, unit: Unit) -> list[Record]:
        subject, audience, persona, sample = unit.payload
        instruction = subject.instruction(audience)
        template = templates.load("audience")
        messages = template.messages(
            instruction=instruction, audience=audience, persona=persona, length=self.params.length
        )
        engine = ctx.engine
        result = await engine.complete(
            messages, sample=sample, max_tokens=self.sampling["max_tokens"]
        )
        data: dict[str, Any] = {
            "instruction": instruction,
            "response": result.value,
            "audience": audience,
            "persona": persona,
            "topic": subject.topic,
            "sample": sample,
        }
        if subject.given is not None:
            data["base_instruction"] = subject.given
            data["source"] = subject.source
        record = self.record(
            (unit.id, result.key),
            data,
            engine=engine,
            template=template,
            results=[result],
            parents=(subject.parent,) if subject.parent else (),
            max_tokens=self.sampling["max_tokens"],
        )
        return [record]
