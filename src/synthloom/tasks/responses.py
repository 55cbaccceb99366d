"""K diverse responses per prompt, the raw material of preference data.

Diversity comes from three independent cycles over the K response slots (slot i uses
temperature `temperatures[i % T]`, style `styles[i % S]`, model `roles[i % M]`) and from a
distinct sample index (hence seed) per slot. Exact duplicates among one prompt's responses
(normalized text) are decided in slot order once all K are in, and regenerated with the next
sample index up to `max_regenerations` times; a slot still duplicated is reported as a failure
with cause "duplicate_response".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthloom import templates
from synthloom.errors import UserError
from synthloom.llm.engine import CallFailed, CallResult
from synthloom.preference.types import prompt_key, response_letter
from synthloom.quality.dedup import normalize
from synthloom.records import Record, Turn
from synthloom.sources import read_inputs
from synthloom.tasks.base import RunContext, Task, Unit

T = TypeVar("T")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")

# Style name -> system prompt (None: no system prompt); the texts live in the prompt template.
STYLES: Mapping[str, str | None] = templates.load("responses").constants["styles"]


async def settle(calls: Iterable[Awaitable[T]]) -> list[T | CallFailed]:
    """Await all calls; a CallFailed becomes the result of its call, anything else propagates."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, CallFailed):
            raise r
    return cast(list[T | CallFailed], results)


class ResponsesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path | None = Field(
        None, description="prompts: a .jsonl/.csv file or a previous run directory"
    )
    prompt_column: str = Field("prompt", description="column holding the prompt")
    prompts: list[str] = Field(
        default_factory=list,
        description="a prompt (repeatable)",
        json_schema_extra={"flag": "--prompt", "multiple": True},
    )
    k: int = Field(
        4,
        ge=1,
        le=26,
        description="responses per prompt (ids A, B, C, ...)",
        json_schema_extra={"flags": ["-k"]},
    )
    temperatures: list[float] = Field(
        [0.7, 1.0], min_length=1, description="sampling temperatures cycled over the K responses"
    )
    styles: list[str] = Field(
        default_factory=list,
        description="styles cycled over the K responses (each a system prompt): "
        + ", ".join(STYLES)
        + ", or a custom style's name",
    )
    custom_styles: dict[str, str] = Field(
        default_factory=dict,
        description="define a style (repeatable); it is used even if styles does not name it",
        json_schema_extra={"flag": "--custom-style", "metavar": "NAME=SYSTEM PROMPT"},
    )
    extra_models: list[str] = Field(
        default_factory=list,
        description="model roles besides 'default', cycled over the K responses",
        json_schema_extra={"cli": False},  # the command line's --extra-model defines them
    )
    max_regenerations: int = Field(
        3, ge=0, description="re-asks for a response that duplicates an earlier one of its prompt"
    )

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, v: list[float]) -> list[float]:
        if any(not 0 <= t <= 2 for t in v):
            raise ValueError("temperatures must be between 0 and 2")
        return v

    @model_validator(mode="after")
    def _check(self) -> ResponsesParams:
        if self.input is None and not self.prompts:
            raise ValueError(
                "give --input PATH or at least one --prompt TEXT (in a recipe: input or prompts)"
            )
        for name in [*self.custom_styles, *self.extra_models]:
            if not NAME_RE.match(name):
                raise ValueError(f"name {name!r} may only use letters, digits, '_' and '-'")
        self.styles += [name for name in self.custom_styles if name not in self.styles]
        known = {**STYLES, **self.custom_styles}
        unknown = [s for s in self.styles if s not in known]
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; known: {', '.join(known)}")
        roles = ["default", *self.extra_models]
        if len(set(roles)) != len(roles):
            raise ValueError("extra model names must be unique and not 'default'")
        return self


@dataclass(frozen=True)
class PromptItem:
    prompt_id: str
    prompt: str
    parents: tuple[str, ...]  # input record id, when the input is a run
    source: dict[str, Any] | None = None  # file and line, when the input is a file


@dataclass(frozen=True)
class Slot:
    index: int
    response_id: str
    style: str | None
    system: str | None
    temperature: float
    role: str


class ResponsesTask(Task):
    """K diverse responses per prompt, to be ranked into preference pairs."""

    name = "responses"
    Params = ResponsesParams
    sampling = {"max_tokens": 512}
    independent_units = True  # a prompt's K responses are deduplicated among themselves only

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        """One response to its prompt (usually ranked into pairs rather than used as SFT)."""
        return [Turn(data["prompt"], data["response"], data.get("system"))]

    def engine_roles(self) -> tuple[str, ...]:
        return ("default", *self.params.extra_models)

    def check_models(self, models: dict[str, Any]) -> None:
        if "temperatures" in self.params.model_fields_set and any(
            s.temperature is not None for s in models.values()
        ):
            raise UserError(
                "give temperatures (--temperatures) or a model temperature (--temperature),"
                " not both"
            )

    @classmethod
    def cli_options(cls) -> list[Any]:
        import click

        return [
            click.option(
                "--extra-model",
                "extra_model_specs",
                multiple=True,
                metavar="NAME=[BASE_URL|]MODEL",
                help="Another model, cycled with the main one over the K responses"
                " (repeatable). NAME=MODEL uses the main backend and endpoint;"
                " NAME=BASE_URL|MODEL an OpenAI-compatible endpoint.",
            )
        ]

    @classmethod
    def from_cli(
        cls, values: dict[str, Any], given: dict[str, Any], main: Any, extra: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from synthloom.settings import role_settings

        for spec in given.get("extra_model_specs") or ():
            name, sep, value = spec.partition("=")
            url, bar, model = value.rpartition("|")
            if not sep or not name.strip() or not value.strip() or (bar and not url.strip()):
                raise UserError(
                    f"--extra-model: expected NAME=MODEL or NAME=BASE_URL|MODEL, got {spec!r}"
                )
            name = name.strip()
            if name in extra or name == "default":
                raise UserError(f"--extra-model: name {name!r} is used twice (or is 'default')")
            overrides = (
                {"backend": "openai", "base_url": url.strip(), "model": model.strip()}
                if bar
                else {"model": value.strip()}
            )
            extra[name] = role_settings(main, overrides, where="--extra-model: ")
        values["extra_models"] = list(extra)
        return values, extra

    def __init__(self, params: ResponsesParams) -> None:
        self.params = params
        self.items, self.duplicate_prompts = self._read_prompts()
        systems = {**STYLES, **params.custom_styles}
        styles: list[str | None] = list(params.styles) or [None]
        roles = ["default", *params.extra_models]
        self.slots = [
            Slot(
                index=i,
                response_id=response_letter(i),
                style=styles[i % len(styles)],
                system=systems.get(styles[i % len(styles)] or "none"),
                temperature=params.temperatures[i % len(params.temperatures)],
                role=roles[i % len(roles)],
            )
            for i in range(params.k)
        ]

    def _read_prompts(self) -> tuple[list[PromptItem], int]:
        p = self.params
        rows: list[tuple[PromptItem, str]] = []  # item, where
        if p.input is not None:
            for row in read_inputs(p.input, [p.prompt_column]):
                given = row.data.get("prompt_id")
                text = str(row.data[p.prompt_column]).strip()
                parents = (row.record_id,) if row.record_id else ()
                source = None if parents else {"file": str(row.path), "line": row.line}
                item = PromptItem(str(given or prompt_key(text)), text, parents, source)
                rows.append((item, f"{row.path}:{row.line}"))
        for i, text in enumerate(p.prompts, start=1):
            if not text.strip():
                raise UserError(f"--prompt number {i} is empty")
            rows.append((PromptItem(prompt_key(text.strip()), text.strip(), ()), f"--prompt {i}"))
        items: dict[str, PromptItem] = {}
        duplicates = 0
        for item, where in rows:
            old = items.setdefault(item.prompt_id, item)
            if old.prompt != item.prompt:
                raise UserError(
                    f"{where}: prompt_id {item.prompt_id!r} is used for two different prompts"
                )
            duplicates += old is not item  # the same prompt twice (e.g. a responses run): once
        return list(items.values()), duplicates

    def total(self) -> int:
        return len(self.items)

    async def execute(self, ctx: RunContext) -> None:
        if self.duplicate_prompts:
            ctx.count("duplicate_prompts_skipped", self.duplicate_prompts)
        units = [Unit(f"prompt:{item.prompt_id}", item) for item in self.items]
        await ctx.for_each(units, lambda unit: self._responses(ctx, unit))

    async def _call(
        self, ctx: RunContext, item: PromptItem, slot: Slot, sample: int
    ) -> CallResult[Any]:
        custom = self.params.custom_styles.get(slot.style) if slot.style else None
        messages = templates.load("responses").messages(
            style=slot.style, custom=custom, prompt=item.prompt
        )
        return await ctx.engines[slot.role].complete(
            messages,
            sample=sample,
            max_tokens=self.sampling["max_tokens"],
            temperature=slot.temperature,
        )

    async def _responses(self, ctx: RunContext, unit: Unit) -> list[Record]:
        item: PromptItem = unit.payload
        first = await settle(self._call(ctx, item, s, s.index) for s in self.slots)
        next_sample = len(self.slots)
        accepted: dict[str, str] = {}  # normalized text -> response id
        records: list[Record] = []
        failures: list[tuple[str, str, str]] = []
        for slot, result in zip(self.slots, first, strict=True):
            sample, regenerated = slot.index, 0
            while (
                not isinstance(result, CallFailed)
                and normalize(result.value) in accepted
                and regenerated < self.params.max_regenerations
            ):
                ctx.count("duplicates_regenerated")
                sample, next_sample, regenerated = next_sample, next_sample + 1, regenerated + 1
                try:
                    result = await self._call(ctx, item, slot, sample)
                except CallFailed as exc:
                    result = exc
            where = f"{unit.id}#{slot.response_id}"
            if isinstance(result, CallFailed):
                failures.append((where, result.cause, result.detail))
                continue
            key = normalize(result.value)
            if key in accepted:
                ctx.count("duplicate_responses")
                detail = f"same text as response {accepted[key]} after {regenerated} regenerations"
                failures.append((where, "duplicate_response", detail))
                continue
            accepted[key] = slot.response_id
            records.append(self._record(ctx, item, slot, result, sample, regenerated))
        if not records:
            _, cause, detail = failures[0]
            raise CallFailed(cause, f"all {len(self.slots)} responses failed; first: {detail}")
        for where, cause, detail in failures:
            ctx.fail(where, cause, detail)
        ctx.count("responses", len(records))
        if len(records) < 2:
            ctx.count("prompts_with_fewer_than_2_responses")
        return records

    def _record(
        self,
        ctx: RunContext,
        item: PromptItem,
        slot: Slot,
        result: CallResult[Any],
        sample: int,
        regenerated: int,
    ) -> Record:
        engine = ctx.engines[slot.role]
        sampling = {"max_tokens": self.sampling["max_tokens"], "temperature": slot.temperature}
        notes: dict[str, Any] = {"sample": sample, "role": slot.role}
        if item.source:
            notes["source"] = item.source
        if regenerated:
            notes["regenerated"] = regenerated
        data = {
            "prompt_id": item.prompt_id,
            "prompt": item.prompt,
            "system": slot.system,
            "response_id": slot.response_id,
            "response": result.value,
            "style": slot.style,
            "temperature": engine.provenance_params(**sampling).get("temperature"),
            "model": engine.backend.model,
        }
        return self.record(
            (item.prompt_id, slot.response_id, result.key),
            data,
            engine=engine,
            template=templates.load("responses"),
            results=[result],
            parents=item.parents,
            notes=notes,
            **sampling,
        )
