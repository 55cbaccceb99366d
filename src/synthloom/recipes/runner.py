"""Check and run a recipe: each step through the same functions the CLI uses.

`check_recipe` validates everything that can be known before the first step runs (see the
`synthloom.recipes.schema` docstring); `run_recipe` calls it, then runs the steps in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from synthloom.errors import SynthloomError, UserError
from synthloom.export.sft import FORMATS, check_output_path, export_records, read_records
from synthloom.preference.dataset import PairsParams, preference_data_from_files, run_pairs
from synthloom.quality.filter_run import dedup_records
from synthloom.recipes.schema import (
    CURATION_STEPS,
    DedupParams,
    ExportParams,
    Recipe,
    Step,
    load_recipe,
    locate,
    references,
    step_dir,
)
from synthloom.runner import make_backend, run_identity, run_task
from synthloom.runs import RunDir
from synthloom.settings import ModelSettings
from synthloom.tasks.base import Task
from synthloom.tasks.registry import task_class

console = Console(stderr=True)


@dataclass
class PlannedStep:
    """A step as it will run. `deferred`: it reads the output of a step that runs before it
    in this invocation, so its task can only be built (and its inputs checked) then."""

    step: Step
    index: int
    params: BaseModel
    out: Path
    deferred: bool
    task: Task | None = None
    models: dict[str, ModelSettings] | None = None


@dataclass
class Plan:
    path: Path
    recipe: Recipe
    steps: list[PlannedStep]

    @property
    def deferred(self) -> list[str]:
        return [p.step.name for p in self.steps if p.deferred]


def check_recipe(
    path: Path | str, *, only: list[str] | None = None, out: Path | str | None = None
) -> Plan:
    """Validate a whole recipe without running or writing anything: the schema and params
    (`load_recipe`), then every step that does not read an earlier step's output is built as
    it will run (its input files read and checked, its models and output directory checked).
    `only` limits the work to those steps; `out` overrides the recipe's `out:`."""
    path = Path(path)
    recipe, params = load_recipe(path, out=out)
    names = [s.name for s in recipe.steps]
    for name in only or ():
        if name not in names:
            raise UserError(f"{path}: no step named {name!r} (steps: {', '.join(names)})")
    running: set[str] = set()
    planned: list[PlannedStep] = []
    for i, step in enumerate(recipe.steps):
        if only and step.name not in only:
            continue
        ps = PlannedStep(
            step,
            i,
            params[step.name],
            step_dir(recipe, path, step.name),
            deferred=bool(references(step) & running),
        )
        with _in_step(path, ps):
            _check_step(recipe, ps)
        running.add(step.name)
        planned.append(ps)
    return Plan(path, recipe, planned)


def run_recipe(
    path: Path | str,
    *,
    only: list[str] | None = None,
    out: Path | str | None = None,
    show_progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Check the whole recipe first (nothing runs or is written on an error), then run its
    steps in order. Returns each step's result by step name: a task's run summary
    (`Summary.as_dict()`), or the counts of a dedup / export / pairs step, each with `out`.
    A rerun resumes: finished steps replay from the cache and write nothing twice."""
    plan = check_recipe(path, only=only, out=out)
    results: dict[str, dict[str, Any]] = {}
    for ps in plan.steps:
        if show_progress:
            console.print(f"[bold]step {ps.step.name}[/] ({ps.step.task}) -> {ps.out}")
        with _in_step(plan.path, ps):
            results[ps.step.name] = _run_step(plan, ps, show_progress)
        if show_progress and ps.step.task in CURATION_STEPS:
            console.print(results[ps.step.name])
    return results


@contextmanager
def _in_step(path: Path, ps: PlannedStep) -> Iterator[None]:
    """Name the recipe file, the step's line and the step in any error raised inside."""
    try:
        yield
    except SynthloomError as exc:
        where = locate(path, ("steps", ps.index, "params"))
        raise type(exc)(f"{where}: step {ps.step.name!r} ({ps.step.task}): {exc}") from None


def _settings(recipe: Recipe, step: Step) -> tuple[ModelSettings, dict[str, ModelSettings]]:
    main = ModelSettings.model_validate({**recipe.model, **step.model})
    extra = {
        role: ModelSettings.model_validate({**recipe.model, **s}) for role, s in step.models.items()
    }
    return main, extra


def _models(
    task: Task, step: Step, main: ModelSettings, extra: dict[str, ModelSettings]
) -> dict[str, ModelSettings]:
    """Each role the task calls: the step's model, or its entry under `models:`."""
    roles = task.engine_roles()
    for role in extra:
        if role not in roles:
            hint = "; set `student: true` in params" if role == "student" else ""
            raise UserError(
                f"models.{role}: this task does not use a {role!r} model"
                f" (it uses: {', '.join(roles)}){hint}"
            )
    models = {role: extra.get(role, main) for role in roles}
    if "teacher" in models and "student" in models:
        from synthloom.tasks.distill import cache_clash

        if clash := cache_clash(models["teacher"], models["student"]):
            raise UserError(clash)
    return models


def _check_records(source: Path) -> None:
    """The input of a dedup or export step exists and starts with a synthloom record."""
    next(iter(read_records(source)), None)


def _check_step(recipe: Recipe, ps: PlannedStep) -> None:
    p = ps.params
    if isinstance(p, ExportParams):
        if p.format not in FORMATS:
            raise UserError(f"unknown format {p.format!r}; choose one of {', '.join(FORMATS)}")
        check_output_path(p.path)
        if not ps.deferred:
            _check_records(p.input)
    elif isinstance(p, DedupParams):
        if not ps.deferred:
            _check_records(p.input)
    elif isinstance(p, PairsParams):
        if p.out.suffix.lower() not in (".jsonl", ".parquet"):
            raise UserError(f"out {p.out}: use a .jsonl or .parquet file name")
        if not ps.deferred:
            preference_data_from_files(
                p.responses, p.rankings, mode=p.mode, aggregate_method=p.aggregate, fmt=p.format
            )
    else:
        main, extra = _settings(recipe, ps.step)
        for settings in (main, *extra.values()):
            make_backend(settings)  # the GGUF file is there, the API-key variable is set
        if ps.deferred:
            return
        task = task_class(ps.step.task)(p)
        models = _models(task, ps.step, main, extra)
        RunDir(ps.out, "", run_identity(task, models)).check()
        ps.task, ps.models = task, models


def _run_step(plan: Plan, ps: PlannedStep, show_progress: bool) -> dict[str, Any]:
    p = ps.params
    if isinstance(p, DedupParams):
        counts = dedup_records(p.input, ps.out, field=p.field, near=p.near, min_words=p.min_words)
        return {**counts, "out": str(ps.out)}
    if isinstance(p, ExportParams):
        counts = export_records(p.input, p.path, p.format, include_flagged=p.include_flagged)
        return {**counts, "out": str(p.path)}
    if isinstance(p, PairsParams):
        return run_pairs(p)
    if ps.task is None or ps.models is None:  # deferred: its input exists only now
        main, extra = _settings(plan.recipe, ps.step)
        ps.task = task_class(ps.step.task)(p)
        ps.models = _models(ps.task, ps.step, main, extra)
    summary = run_task(
        ps.task,
        ps.models,
        ps.out,
        command=f"recipe {plan.path} step {ps.step.name}",
        show_progress=show_progress,
    )
    return summary.as_dict()
