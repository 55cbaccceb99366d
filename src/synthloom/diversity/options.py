"""The diversity options a task opts into by adding these models to its `Params` bases:

    class QAParams(TopicsOption, SamplersOption, ExamplesOption, MaxSimilarOption): ...

Each becomes a command-line option and a recipe param like any other field, listed after the
task's own options (`later`). They are marked `{"identity": "if-set"}`: left out of a run's
identity while at their default, so a run made before the options existed (or without them)
keeps its identity and resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthloom.diversity.samplers import SamplerSpec

IF_SET = {"identity": "if-set"}


def _shared(rank: int, **extra: Any) -> dict[str, Any]:
    """Field metadata: out of the identity until set, listed after the task's own options."""
    return {**IF_SET, "later": rank, **extra}


class TopicsOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topics: Path | None = Field(
        None,
        description="a topic tree (the YAML `synthloom topics` writes, or its run directory):"
        " the units are spread over its leaves, by their weights or evenly, and each record"
        " keeps its leaf as data.topic and the path as data.topic_path",
        json_schema_extra=_shared(1),
    )


class SamplersOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samplers: dict[str, SamplerSpec] | None = Field(
        None,
        description="an attribute each unit draws (repeatable): NAME=a,b,c | a:3,b:1 (weights)"
        " | 20..80 | @personas (the shipped list) | @file.txt | OTHER{v1: a,b; v2: c; *: d}"
        " (by another attribute's value); kept in data.attributes and the provenance",
        json_schema_extra=_shared(2, flag="--sample", metavar="NAME=SPEC"),
    )


class ExamplesOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: Path | None = Field(
        None,
        description="real examples (.jsonl/.csv or a run): --shots of them go into each"
        " prompt, rotated from call to call",
        json_schema_extra=_shared(3),
    )
    shots: int = Field(
        3, ge=1, le=20, description="real examples per prompt (with --examples)",
        json_schema_extra=_shared(3),
    )  # fmt: skip

    @model_validator(mode="after")
    def _shots_need_examples(self) -> Any:
        if "shots" in self.model_fields_set and self.examples is None:
            raise ValueError("shots (--shots) needs examples (--examples FILE)")
        return self


class MaxSimilarOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_similar: float | None = Field(
        None,
        gt=0,
        le=1,
        description="dedup while generating: an answer at least this similar (word 5-gram"
        " Jaccard, as `synthloom dedup`) to one the run already made is asked again with a"
        " new draw of attributes, up to --max-reasks times, and counted (e.g. 0.7)",
        json_schema_extra=_shared(4),
    )
    max_reasks: int = Field(
        3,
        ge=1,
        le=20,
        description="with max_similar: most times one unit is asked again; a near-duplicate"
        " still left is kept, flagged",
        json_schema_extra=_shared(4),
    )

    @model_validator(mode="after")
    def _reasks_need_max_similar(self) -> Any:
        if "max_reasks" in self.model_fields_set and self.max_similar is None:
            raise ValueError("max_reasks (--max-reasks) needs max_similar (--max-similar)")
        return self


def if_set_fields(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of `model` left out of a run's identity at their default: name -> default."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("identity") == "if-set":
            out[name] = info.get_default(call_default_factory=True)
    return out
