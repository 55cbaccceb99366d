"""Audience and persona control: one instruction per (topic or instruction, audience, persona),
answered for that audience, in that persona's voice.

For topics the instruction is built by a fixed template ("Explain photosynthesis to a
5-year-old."), not by the model; given instructions get "Write for <audience>." appended.

`topics` may be a topic tree (a .yaml file from `synthloom topics`, or its run directory):
each leaf is a topic, kept with its path (data.topic_path). Attribute samplers (`--sample`)
draw per unit; a sampler named `audience` or `persona` fills that role instead of a crossed
list. Real examples (`--examples`, columns instruction and response) show the style wanted;
`--max-similar` asks a near-duplicate response again (see `synthloom.diversity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from synthloom import templates
from synthloom.diversity.draws import Diversity, Draw
from synthloom.diversity.options import ExamplesOption, MaxSimilarOption, SamplersOption
from synthloom.diversity.tree import TREE_FILE
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
TREE_SUFFIXES = (".yaml", ".yml")
ROLES = ("audience", "persona")  # sampled attributes that fill a role of the prompt


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
    path: tuple[str, ...] | None = None  # a topic tree's leaf: its path from the root

    @property
    def key(self) -> str:
        """What names the subject in its units' ids."""
        if self.path is not None:
            return " > ".join(self.path)
        return self.topic or self.given or ""

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


def tree_file(topics: list[str] | None) -> Path | None:
    """The topic tree `topics` names (a .yaml file or a topics run directory), if it does."""
    if not topics or len(topics) != 1:
        return None
    path = Path(topics[0])
    if path.suffix.lower() in TREE_SUFFIXES or (path.is_dir() and (path / TREE_FILE).is_file()):
        return path
    return None


class AudienceParams(SamplersOption, ExamplesOption, MaxSimilarOption):
    model_config = ConfigDict(extra="forbid")

    topics: list[str] | None = Field(
        None,
        description="topics: comma-separated, a file with one per line, or a topic tree"
        " (.yaml from `synthloom topics`, or its run directory: each leaf is a topic)",
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
        if isinstance(value, str) and tree_file([value]) is not None:
            return [value]  # a topic tree, read by the task
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
        for role in ROLES:
            if role in (self.samplers or {}) and getattr(self, f"{role}s"):
                raise ValueError(
                    f"{role} is both crossed ({role}s, --{role}s) and sampled (samplers,"
                    f" --sample {role}=...); give one"
                )
        return self


class AudienceTask(Task):
    """Instructions and responses written for an audience and/or in a persona's voice, for
    every topic (or instruction) crossed with every audience and persona."""

    name = "audience"
    Params = AudienceParams
    sampling = {"max_tokens": 384}
    growable = ("samples",)  # raising --samples on a run adds answers; the first are kept
    independent_units = True  # unless --max-similar (below)

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        return [Turn(data["instruction"], data["response"], data.get("system"))]

    def __init__(self, params: AudienceParams) -> None:
        self.params = params
        tree = tree_file(params.topics)
        self.diversity = Diversity(
            params,
            example_columns=(("instruction",), ("response",)),
            tree=tree,
            spread_units=False,
        )
        if self.diversity.max_similar:
            self.resume_by_unit = False  # dedup in unit order needs every unit's response
            self.independent_units = False
            self.dependent_units = (
                "--max-similar compares each response with those of the units before it"
            )
        if params.instructions is not None:
            self.subjects = read_instructions(params.instructions)
        elif tree is not None:
            self.subjects = [
                Subject(topic=leaf.topic, path=leaf.path) for leaf in self.diversity.leaves
            ]
        else:
            self.subjects = [Subject(topic=t.strip()) for t in params.topics or [] if t.strip()]
        sampled = set(params.samplers or {})
        audiences: list[str | None] = list(
            params.audiences
            or (() if params.personas or sampled & set(ROLES) else DEFAULT_AUDIENCES)
        )
        personas: list[str | None] = list(params.personas or ())
        self.pairs = list(product(audiences or [None], personas or [None]))

    def units(self) -> list[Unit]:
        units = []
        for subject in self.subjects:
            for audience, persona in self.pairs:
                for i in range(self.params.samples):
                    uid = f"{subject.key}|{audience or '-'}|{persona or '-'}|{i}"
                    units.append(Unit(uid, (subject, audience, persona, i)))
        return units

    def total(self) -> int:
        return len(self.subjects) * len(self.pairs) * self.params.samples

    async def execute(self, ctx: RunContext) -> None:
        run = self.diversity.start(ctx)

        async def write(numbered: Unit) -> list[Record]:
            order, unit = numbered.payload
            record = await run.generate(
                ctx,
                unit.id,
                order,
                lambda draw: self._write(ctx, unit, draw),
                lambda r: str(r.data["response"]),
            )
            return [record]

        units = self.units()
        await ctx.for_each((Unit(u.id, (i, u)) for i, u in enumerate(units)), write)

    async def _write(self, ctx: RunContext, unit: Unit, draw: Draw) -> Record:
        subject, audience, persona, sample = unit.payload
        audience = audience or draw.attributes.get("audience")
        persona = persona or draw.attributes.get("persona")
        instruction = subject.instruction(audience)
        template = templates.load("audience")
        variables = draw.variables()
        others = {k: v for k, v in draw.attributes.items() if k not in ROLES}
        if "attributes" in variables:
            variables["attributes"] = others
        messages = template.messages(
            instruction=instruction,
            audience=audience,
            persona=persona,
            length=self.params.length,
            **variables,
        )
        engine = ctx.engine
        result = await engine.complete(
            messages, sample=draw.sample(sample), max_tokens=self.sampling["max_tokens"]
        )
        data: dict[str, Any] = {
            "instruction": instruction,
            "response": result.value,
            "audience": audience,
            "persona": persona,
            "topic": subject.topic,
            "sample": sample,
        }
        if subject.path is not None:
            data["topic_path"] = list(subject.path)
        if subject.given is not None:
            data["base_instruction"] = subject.given
            data["source"] = subject.source
        return self.record(
            (unit.id, result.key),
            data,
            engine=engine,
            template=template,
            results=[result],
            parents=(subject.parent,) if subject.parent else (),
            max_tokens=self.sampling["max_tokens"],
        )
