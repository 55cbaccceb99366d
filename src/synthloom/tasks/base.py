"""What a task is: build prompts, call the model through the engine, turn answers into records.

Tasks know nothing of threads, retries, caches or files. `execute` receives a RunContext and
uses `ctx.for_each` (records stream out as units finish) or `ctx.gather` (results in order,
for tasks that work in rounds).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synthloom.records import Provenance
from synthloom.templates import Template

if TYPE_CHECKING:
    from synthloom.llm.engine import CallResult, Engine
    from synthloom.runner import RunContext


@dataclass(frozen=True)
class Unit:
    """One piece of work with a stable id (for failure reports and resume)."""

    id: str
    payload: Any


class Task(ABC):
    name: str = "task"

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The task's own settings; they are part of the run's identity."""

    def total(self) -> int | None:
        """Number of units, for the progress bar (None if unknown)."""
        return None

    def engine_roles(self) -> tuple[str, ...]:
        """Names of the models this task calls; most use one, "default"."""
        return ("default",)

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
    """Provenance for a record made from one or more calls of `engine`."""
    keys: list[str] = []
    for r in results:
        keys.extend(r.keys)
    return Provenance(
        backend=engine.backend.kind,
        model=engine.backend.model,
        template=template.name,
        template_hash=template.hash,
        params=engine.provenance_params(**sampling),
        seed=engine.seed,
        parents=parents,
        created_at=max((r.completion.created for r in results), default=0.0),
        call_keys=tuple(keys),
    )
