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
from rich.text import Text

from synthloom.errors import SynthloomError, UserError
from synthloom.export.sft import FORMATS, export_records, read_records
from synthloom.outputs import READ_FROM_DIR, RUN_FILES, check_not_input, check_output_path
from synthloom.preference.dataset import (
    PairsParams,
    check_pairs_output,
    preference_data_from_files,
    run_pairs,
)
from synthloom.quality.filter_run import dedup_records, dedup_target
from synthloom.recipes.schema import (
    CURATION_STEPS,
    OUTPUT_PARAMS,
    DedupParams,
    ExportParams,
    Recipe,
    Step,
    load_recipe,
    locate,
    references,
    step_dir,
)
from synthloom.runner import earlier_identities, make_backend, run_identity, run_task
from synthloom.runs import RunDir
from synthloom.settings import ModelSettings
from synthloom.tasks.base import Task
from synthloom.tasks.registry import task_class
from synthloom.terminal import visible

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
    _check_output_collisions(path, recipe, params)
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
            line = Text.assemble(
                ("step " + visible(ps.step.name), "bold"), f" ({ps.step.task}) -> {visible(ps.out)}"
            )
            console.print(line)  # Text: names and paths are never markup
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
        role: ModelSettings.model_validate({**recipe.model, **step.model, **s})
        for role, s in step.models.items()
    }
    return main, extra


def _models(
    task: Task, step: Step, main: ModelSettings, extra: dict[str, ModelSettings]
) -> dict[str, ModelSettings]:
    """Each role the task calls: the step's model, or its entry under `models:`."""
    return task.models(main, extra, where="models.{role}")


def _check_records(source: Path) -> None:
    """The input of a dedup or export step exists and starts with a synthloom record."""
    next(iter(read_records(source)), None)


def _check_output_collisions(path: Path, recipe: Recipe, params: dict[str, BaseModel]) -> None:
    """No output param is a file a step keeps in its directory (`<out>/<step>/records.jsonl`,
    failures.jsonl, manifest.json, rankings.jsonl): checked up front, as those directories
    may not exist yet."""
    dirs = {step_dir(recipe, path, s.name).resolve(): s.name for s in recipe.steps}
    for i, step in enumerate(recipe.steps):
        for key in OUTPUT_PARAMS.get(step.task, ()):
            target = Path(getattr(params[step.name], key)).resolve()
            owner = dirs.get(target.parent)
            if owner is not None and target.name in (*RUN_FILES, *READ_FROM_DIR):
                where = locate(path, ("steps", i, "params", key))
                raise UserError(
                    f"{where}: step {step.name!r} ({step.task}): {key} {target}: that is"
                    f" {target.name} of step {owner!r}, which it would replace; choose another"
                    " file name"
                )


def _task_inputs(params: BaseModel) -> list[Path]:
    """The paths a task step reads (every Path-valued param: input, seeds, from_docs...)."""
    found: list[Path] = []
    for name in type(params).model_fields:
        value = getattr(params, name)
        values = value if isinstance(value, list | tuple) else [value]
        found += [v for v in values if isinstance(v, Path)]
    return found


def _check_step(recipe: Recipe, ps: PlannedStep) -> None:
    p = ps.params
    if isinstance(p, ExportParams):
        if p.format not in FORMATS:
            raise UserError(f"unknown format {p.format!r}; choose one of {', '.join(FORMATS)}")
        check_output_path(p.path, what="path")
        check_not_input(p.path, [p.input], what="path")
        if not ps.deferred:
            _check_records(p.input)
    elif isinstance(p, DedupParams):
        check_not_input(ps.out, [p.input], what="step directory")
        check_not_input(dedup_target(ps.out), [p.input], what="step output")
        if not ps.deferred:
            _check_records(p.input)
    elif isinstance(p, PairsParams):
        check_pairs_output(p.out, p.responses, p.rankings, ids=p.ids, what="out")
        if not ps.deferred:
            preference_data_from_files(
                p.responses, p.rankings, mode=p.mode, aggregate_method=p.aggregate, fmt=p.format
            )
    else:
        check_not_input(ps.out, _task_inputs(p), what="step directory")
        main, extra = _settings(recipe, ps.step)
        for settings in (main, *extra.values()):
            make_backend(settings)  # the GGUF file is there, the API-key variable is set
        if ps.deferred:
            return
        task = task_class(ps.step.task)(p)
        models = _models(task, ps.step, main, extra)
        RunDir(
            ps.out, "", run_identity(task, models), earlier=earlier_identities(task, models)
        ).check()
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
