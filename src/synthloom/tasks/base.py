"""The task contract: what a generation task declares, and what the base does for it.

A task is one class in one module of `synthloom.tasks` (plus its prompt, a Jinja file in
`tasks/prompts/`). It declares:

    name        the command and recipe `task:` name
    Params      a pydantic model of its options (extra keys forbidden); the CLI options, the
                recipe params and the docs are generated from it
    roles       the model roles it calls; the first is configured by the model options
    optional_roles  roles a user may add (`--judge-model`, recipe `models: {judge: ...}`)
    sampling    its sampling defaults, e.g. {"max_tokens": 384}: the one place they live
                (a task may compute one from its input in __init__, declaring it None here).
                Precedence: the step's / command's model options > the task's defaults.
    growable    config keys that only extend a job (raising `n` adds units to a run)
    turns()     what one of its records teaches (SFT turns), so export never guesses
    labelled()  the (text, label) it teaches a classifier (by default data's text/label)

and implements `execute(ctx)`, usually `await ctx.for_each(self.units(), self.unit)`; a task
whose unit function needs nothing from other units says so (`independent_units`: the Ray
executor may then run its units on its actors). The base builds record ids, provenance and
records (`record()`), the run identity (`config()`), and resolves the models a run needs
(`models()`). Tasks import nothing above this floor:
the run context they get (`RunContext`, here) offers `fail`, `count`, `warn`,
`write_artifact` and the ids already written; nothing reaches into the run directory.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel

from synthloom.diversity.options import if_set_fields
from synthloom.diversity.spread import Spread
from synthloom.errors import UserError
from synthloom.llm.engine import CallFailed, Engine
from synthloom.outputs import write_atomic
from synthloom.records import Provenance, Record, Turn, stable_id
from synthloom.runs import RunDir
from synthloom.templates import Template

if TYPE_CHECKING:
    from synthloom.diversity.draws import Diversity
    from synthloom.llm.engine import CallResult
    from synthloom.settings import ModelSettings

T = TypeVar("T")
Then = Callable[[list[Record]], None]  # see RunContext.for_each
DETAIL_CHARS = 300  # longest detail (or other text) in a failures.jsonl line


def clip(text: str, limit: int = DETAIL_CHARS) -> str:
    """`text` cut to `limit` characters for a failure line, the cut marked with "..."."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Eliminated(CallFailed):
    """Raised by a task for a unit whose answer a quality rule rejected. The unit fails like a
    failed call: counted as failed, and a failures.jsonl line with cause `eliminated:<rule>`,
    the rejected text (clipped) as detail, and the `extra` fields."""

    def __init__(self, rule: str, text: str = "", **extra: Any) -> None:
        super().__init__(f"eliminated:{rule}", clip(text))
        self.rule = rule
        self.extra = extra


@dataclass(frozen=True)
class Unit:
    """One piece of work with a stable id (for failure reports and resume)."""

    id: str
    payload: Any


class ProgressBar(Protocol):
    """Where a run shows its progress (the runner's rich bar; nothing in tests or the API)."""

    def set_total(self, total: int | None, description: str | None) -> None: ...

    def advance(self) -> None: ...


@dataclass
class RunContext:
    """What a task gets to do its work: the engines of its model roles, and the run's
    records, counters, failures, warnings and artifacts. Files are the runner's business."""

    engines: dict[str, Engine]
    run: RunDir
    progress: ProgressBar | None = None
    counters: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    spread: Spread | None = None  # the run's spread summary, fed by emit (runner: spread_texts)
    # the task resumes by unit (Task.resume_by_unit): for_each skips the units an earlier run
    # finished (all their records written, all "ok") and records those it finishes
    resume_by_unit: bool = False
    # runs for_each's units somewhere else (synthloom.executors.ray: on Ray actors, each
    # with its own engines); None: here, in this event loop
    executor: UnitExecutor | None = None

    @property
    def engine(self) -> Engine:
        return self.engines.get("default") or next(iter(self.engines.values()))

    @property
    def existing(self) -> Container[str]:
        """Ids of the records already in the run (written by an earlier run or this one)."""
        return self.run.existing

    def emit(self, record: Record) -> None:
        self.run.add(record)
        self.counters[f"records_{record.status}"] += 1
        if self.spread is not None:
            self.spread.observe(record)

    def count(self, name: str, n: int = 1) -> None:
        """Count something the summary should show (e.g. a filter's removals)."""
        self.counters[name] += n

    def fail(self, key: str, cause: str, detail: str = "", **extra: Any) -> None:
        """A failures.jsonl line for something that made no record, e.g. an item a rule
        eliminated (cause `eliminated:<rule>`, the rejected text as detail, clipped). `key` is
        a unit id, or `<unit id>#<item>:<n>` for one of several items of a unit. A whole unit
        that fails raises (CallFailed, Eliminated) instead, so it is counted as failed."""
        self.run.fail(key, cause, clip(detail), **extra)

    def warn(self, message: str) -> None:
        """Something wrong with the result the user must read: printed under the summary and
        kept in the manifest (`summary.warnings`)."""
        self.warnings.append(message)

    def write_artifact(self, name: str, text: str) -> None:
        """A file beside the run's records (e.g. judge's rankings.jsonl), written atomically."""
        if "/" in name or name.startswith(".") or name in ("records.jsonl", "failures.jsonl"):
            raise ValueError(f"not an artifact name: {name!r}")
        write_atomic(self.run.path / name, text)

    def set_total(self, total: int | None, description: str | None = None) -> None:
        if self.progress is not None:
            self.progress.set_total(total, description)

    async def for_each(
        self,
        units: Iterable[Unit],
        fn: Callable[[Unit], Awaitable[list[Record]]],
        *,
        then: Then | None = None,
    ) -> None:
        """Run `fn` on every unit; records are written as each unit finishes. `units` may be
        a generator: units are made as workers take them (a huge input is never all in
        memory).

        `then(records)`, if given, is called here (in this process, also when an executor
        runs `fn` elsewhere) with each finished unit's records, in the order units finish,
        before they are written: the task's bookkeeping across units (flagging a repeat of
        an earlier unit's question, collecting rankings) goes there, not in `fn`, so that `fn`
        needs nothing from other units (Task.independent_units)."""
        if self.resume_by_unit:
            units = self._not_done(units)
        if self.executor is not None:
            await self.executor.for_each(self, units, fn, then)
            return
        await self.run_here(units, fn, then)

    async def run_here(
        self,
        units: Iterable[Unit],
        fn: Callable[[Unit], Awaitable[list[Record]]],
        then: Then | None = None,
    ) -> None:
        """`for_each`'s units in this event loop (the local executor)."""

        async def handle(unit: Unit) -> None:
            self.finished(unit.id, await fn(unit), then)

        await self._run(units, handle)

    def finished(self, unit: str, records: list[Record], then: Then | None = None) -> None:
        """A unit's records (made here or by an executor): given to `then` (see for_each),
        then written; with resume_by_unit, the unit is marked done once they all are "ok"."""
        if then is not None:
            then(records)
        for record in records:
            self.emit(record)
        if self.resume_by_unit and all(r.status == "ok" for r in records):
            self.run.mark_done(unit, len(records))

    def _not_done(self, units: Iterable[Unit]) -> Iterator[Unit]:
        """The units an earlier run did not finish; the finished ones count as done again
        (their records as already there), without a call or a record built."""
        run, counters, progress = self.run, self.counters, self.progress
        it = iter(units)
        while chunk := list(itertools.islice(it, 4096)):  # looked up 4,096 at a time
            for unit, present in zip(
                chunk, run.done_records_of([u.id for u in chunk]), strict=True
            ):
                if present is None:
                    yield unit
                    continue
                run.already_present += present
                counters["records_ok"] += present
                counters["units_ok"] += 1
                if progress is not None:
                    progress.advance()

    async def gather(self, units: list[Unit], fn: Callable[[Unit], Awaitable[T]]) -> list[T | None]:
        """Run `fn` on every unit; results in unit order, None where the unit failed."""
        results: list[T | None] = [None] * len(units)
        index = {u.id: i for i, u in enumerate(units)}

        async def handle(unit: Unit) -> None:
            results[index[unit.id]] = await fn(unit)

        await self._run(units, handle)
        return results

    async def _run(self, units: Iterable[Unit], handle: Callable[[Unit], Awaitable[None]]) -> None:
        it = iter(units)
        # enough workers to fill every engine's slots at once (a unit calls one engine at a
        # time); more would only queue in the limiters, each wait a future to make (issue 12)
        workers = sum(e.limiter.maximum for e in self.engines.values())

        async def worker() -> None:
            for unit in it:
                try:
                    await handle(unit)
                    self.counters["units_ok"] += 1
                except CallFailed as exc:
                    extra = exc.extra if isinstance(exc, Eliminated) else {}
                    self.run.fail(unit.id, exc.cause, exc.detail, **extra)
                    self.counters["units_failed"] += 1
                if self.progress is not None:
                    self.progress.advance()

        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())


class UnitExecutor(Protocol):
    """Runs `for_each`'s units elsewhere: calls `fn` on each unit, hands each unit's records
    to `ctx.finished` (with `then`) and each failed unit to `ctx.run.fail` (counting
    units_ok/units_failed in `ctx.counters`), as `RunContext.run_here` does here."""

    async def for_each(
        self,
        ctx: RunContext,
        units: Iterable[Unit],
        fn: Callable[[Unit], Awaitable[list[Record]]],
        then: Then | None,
    ) -> None: ...

    def describe(self) -> dict[str, Any]:
        """Where the step's units ran, for the summary (`summary.executor`)."""
        ...


class Task(ABC):
    name: ClassVar[str] = "task"
    Params: ClassVar[type[BaseModel]]
    roles: ClassVar[tuple[str, ...]] = ("default",)
    optional_roles: ClassVar[dict[str, str]] = {}
    sampling: ClassVar[dict[str, Any]] = {}
    growable: ClassVar[tuple[str, ...]] = ()
    # The function a task gives `ctx.for_each` needs nothing from the other units: no state
    # carried from one unit to the next, nothing it keeps in the task for later (bookkeeping
    # across units goes in for_each's `then`, which runs in the driver). A copy of the task
    # per worker then makes the same records, so the Ray executor runs the units on its
    # actors (synthloom.executors.ray); otherwise they run in the driver, and the run says
    # why (`dependent_units`). A task may turn it off for a run (qa with --max-similar).
    independent_units: ClassVar[bool] = False
    dependent_units: ClassVar[str] = "its units depend on one another"
    # A rerun skips the units an earlier run finished instead of redoing them from the cache
    # (a million-prompt rerun takes seconds). Only for tasks whose units are independent
    # (above), and with no counters a skipped unit would have added.
    resume_by_unit: ClassVar[bool] = False

    params: Any
    diversity: Diversity | None = None  # the diversity options, for a task that takes them

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    # -- identity -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The task's own settings; they are part of the run's identity. The task's default
        `max_tokens` is part of it (it was a task param before it moved to `sampling`, and
        keeping it keeps earlier run directories resumable)."""
        config = self.params.model_dump(mode="json")
        declared = type(self).sampling
        if "max_tokens" in declared:
            config["max_tokens"] = declared["max_tokens"]
        # the diversity options (synthloom.diversity.options) only when given, with what their
        # files hold: runs made without them keep their identity
        for name, default in if_set_fields(type(self.params)).items():
            if getattr(self.params, name) == default:
                config.pop(name, None)
        if self.diversity is not None:
            config.update(self.diversity.identity())
        return config

    def total(self) -> int | None:
        """Number of units, for the progress bar (None if unknown)."""
        return None

    # -- models -------------------------------------------------------------------------
    def engine_roles(self) -> tuple[str, ...]:
        """Names of the models this run calls (the declared roles, by default)."""
        return self.roles

    def models(
        self,
        main: ModelSettings,
        extra: dict[str, ModelSettings] | None = None,
        *,
        where: str = "models.{role}",
    ) -> dict[str, ModelSettings]:
        """Each role this run calls: `extra[role]` where given, else `main`. A role given but
        not used is an error (the same for the CLI and recipes; `where` names the setting)."""
        extra = extra or {}
        used = self.engine_roles()
        for role in extra:
            if role not in used:
                hint = self.unused_role_hint(role)
                raise UserError(
                    f"{where.format(role=role)}: this run does not use a {role!r} model"
                    f" (it uses: {', '.join(used)}){'; ' + hint if hint else ''}"
                )
        models = {role: extra.get(role, main) for role in used}
        self.check_models(models)
        return models

    def unused_role_hint(self, role: str) -> str:
        """How to make the task use `role` (shown when a role is given but unused)."""
        return ""

    def check_models(self, models: dict[str, ModelSettings]) -> None:  # noqa: B027
        """Rules between the task's params and its model settings; raise UserError."""

    # -- the command line -----------------------------------------------------------------
    @classmethod
    def cli_options(cls) -> list[Callable[..., Any]]:
        """Extra click options beyond the generated ones (rarely needed)."""
        return []

    @classmethod
    def from_cli(
        cls,
        values: dict[str, Any],
        given: dict[str, Any],
        main: ModelSettings,
        extra: dict[str, ModelSettings],
    ) -> tuple[dict[str, Any], dict[str, ModelSettings]]:
        """Turn extra options (`cli_options`) into params and models; the default adds nothing."""
        return values, extra

    def after_cli(self, summary: Any) -> None:  # noqa: B027
        """Say something after a command-line run (e.g. where an artifact is)."""

    # -- records --------------------------------------------------------------------------
    def record(
        self,
        id_parts: tuple[Any, ...],
        data: dict[str, Any],
        *,
        engine: Engine,
        template: Template,
        results: list[CallResult[Any]],
        parents: tuple[str, ...] = (),
        notes: dict[str, Any] | None = None,
        status: str = "ok",
        **sampling: Any,
    ) -> Record:
        """A record of this task: id `stable_id(name, *id_parts)` (stable across reruns: the
        parts are what makes this record, in a fixed order), provenance from the calls that
        made it (`sampling`: the sampling options they were asked with), `status` "ok" or
        "flagged" (with the reason in `notes`)."""
        return Record(
            id=stable_id(self.name, *id_parts),
            task=self.name,
            data=data,
            provenance=provenance(engine, template, results, parents=parents, **sampling),
            status=status,
            notes=dict(notes or {}),
        )

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        """The SFT turns one record teaches (none by default: not SFT data)."""
        return []

    @classmethod
    def spread_texts(cls, data: dict[str, Any]) -> list[str]:
        """The generated text(s) of one record the run's spread summary measures (distinct-2,
        near-duplicates): by default the response of its first SFT turn."""
        turns = cls.turns(data)
        return [turns[0].response] if turns else []

    @staticmethod
    def labelled(data: dict[str, Any]) -> tuple[str, Any] | None:
        """The (text, label) one record teaches a classifier (export's `classification`
        format): by default its data's `text` and `label`, when it has both; None if not."""
        if isinstance(data.get("text"), str) and data.get("label") is not None:
            return data["text"], data["label"]
        return None

    @abstractmethod
    async def execute(self, ctx: RunContext) -> None:
        """Do the work, emitting records through `ctx`."""


def provenance(
    engine: Engine,
    template: Template,
    results: list[CallResult[Any]],
    *,
    parents: tuple[str, ...] = (),
    **sampling: Any,
) -> Provenance:
    """Provenance for a record made from one or more calls of `engine`. `model` is the model
    the server reported answering (`model_requested` the name asked for, when different)."""
    keys: list[str] = []
    for r in results:
        keys.extend(r.keys)
    asked = engine.backend.model
    served = next((r.completion.model for r in results if r.completion.model), None)
    return Provenance(
        backend=engine.backend.kind,
        model=served or asked,
        model_requested=asked if served and served != asked else None,
        template=template.name,
        template_hash=template.hash,
        params=engine.provenance_params(**sampling),
        seed=engine.seed,
        parents=parents,
        created_at=max((r.completion.created for r in results), default=0.0),
        call_keys=tuple(keys),
    )
