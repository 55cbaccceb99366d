"""Check and run a recipe: each step through the same functions the CLI uses.

`check_recipe` validates everything that can be known before the first step runs (see the
`synthloom.recipes.schema` docstring); `run_recipe` calls it, then runs the steps in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from synthloom.errors import SynthloomError, UserError
from synthloom.outputs import READ_FROM_DIR, RUN_FILES, check_not_input
from synthloom.recipes.schema import (
    Recipe,
    Step,
    is_model_free,
    load_recipe,
    locate,
    references,
    step_dir,
    step_kind,
)
from synthloom.runner import Executor, earlier_identities, make_backend, run_identity, run_task
from synthloom.runs import RunDir
from synthloom.settings import ModelSettings
from synthloom.steps.base import Step as ModelFreeStep
from synthloom.tasks.base import Task
from synthloom.terminal import visible

console = Console(stderr=True)


@dataclass
class PlannedStep:
    """A step as it will run. `deferred`: it reads the output of a step that runs before it
    in this invocation, so its task can only be built (and its inputs checked) then.
    A task step gets `task` and `models`; a model-free step (dedup, export, ...) `model_free`."""

    step: Step
    index: int
    params: BaseModel
    out: Path
    deferred: bool
    task: Task | None = None
    models: dict[str, ModelSettings] | None = None
    model_free: ModelFreeStep | None = None


@dataclass
class Plan:
    path: Path
    recipe: Recipe
    steps: list[PlannedStep]

    @property
    def deferred(self) -> list[str]:
        return [p.step.name for p in self.steps if p.deferred]


def check_recipe(
    path: Path | str,
    *,
    only: list[str] | None = None,
    out: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Plan:
    """Validate a whole recipe without running or writing anything: the schema and params
    (`load_recipe`), then every step that does not read an earlier step's output is built as
    it will run (its input files read and checked, its models and output directory checked).
    `only` limits the work to those steps; `out` overrides the recipe's `out:`; `overrides`
    ({"steps.qa.params.n": 3}, `synthloom run --set`) change values of the recipe first."""
    path = Path(path)
    recipe, params = load_recipe(path, out=out, overrides=overrides)
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
    executor: Executor | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Check the whole recipe first (nothing runs or is written on an error), then run its
    steps in order. Returns each step's result by step name: a task's run summary
    (`Summary.as_dict()`), or the counts of a model-free step (dedup, export, pairs...) with
    `out`.
    A rerun resumes: finished steps replay from the cache and write nothing twice.
    `executor` (synthloom.executors.ray.RayExecutor) runs the tasks' units and the near-dup
    dedup elsewhere, with the same results. `overrides` as for `check_recipe`."""
    plan = check_recipe(path, only=only, out=out, overrides=overrides)
    results: dict[str, dict[str, Any]] = {}
    for ps in plan.steps:
        if show_progress:
            line = Text.assemble(
                ("step " + visible(ps.step.name), "bold"), f" ({ps.step.task}) -> {visible(ps.out)}"
            )
            console.print(line)  # Text: names and paths are never markup
        with _in_step(plan.path, ps):
            results[ps.step.name] = _run_step(plan, ps, show_progress, executor)
        if show_progress and ps.model_free is not None:
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


def _check_output_collisions(path: Path, recipe: Recipe, params: dict[str, BaseModel]) -> None:
    """No path a model-free step writes is a file another step keeps in its directory
    (`<out>/<step>/records.jsonl`, failures.jsonl, manifest.json, rankings.jsonl): checked up
    front, as those directories may not exist yet."""
    dirs = {step_dir(recipe, path, s.name).resolve(): s.name for s in recipe.steps}
    for i, step in enumerate(recipe.steps):
        cls = step_kind(step.task)
        if not is_model_free(cls):
            continue
        for key, _, written in cls(params[step.name]).written():
            target = written.resolve()
            owner = dirs.get(target.parent)
            if owner not in (None, step.name) and target.name in (*RUN_FILES, *READ_FROM_DIR):
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
    """A model-free step: its outputs (never an input, dataset files .jsonl/.parquet), then
    its inputs (`Step.check()`) unless they are written by an earlier step of this run. A
    task: its step directory, its models, and (unless deferred) the task built from its inputs
    and its run directory."""
    cls = step_kind(ps.step.task)
    if is_model_free(cls):
        ps.model_free = cls(ps.params)
        ps.model_free.check_outputs()
        if not ps.deferred:
            ps.model_free.check()
        return
    check_not_input(ps.out, _task_inputs(ps.params), what="step directory")
    main, extra = _settings(recipe, ps.step)
    for settings in (main, *extra.values()):
        make_backend(settings)  # the GGUF file is there, the API-key variable is set
    if ps.deferred:
        return
    task = cls(ps.params)
    models = _models(task, ps.step, main, extra)
    RunDir(ps.out, "", run_identity(task, models), earlier=earlier_identities(task, models)).check()
    ps.task, ps.models = task, models


def _run_step(
    plan: Plan, ps: PlannedStep, show_progress: bool, executor: Executor | None = None
) -> dict[str, Any]:
    if ps.model_free is not None:
        ps.model_free.check_outputs()  # again: an earlier step may have written since
        with executor.model_free() if executor is not None else nullcontext():
            counts = ps.model_free.run()
        written = ps.model_free.output_paths()
        return {**counts, "out": str(written[0] if written else ps.out)}
    if ps.task is None or ps.models is None:  # deferred: its input exists only now
        main, extra = _settings(plan.recipe, ps.step)
        ps.task = step_kind(ps.step.task)(ps.params)
        ps.models = _models(ps.task, ps.step, main, extra)
    summary = run_task(
        ps.task,
        ps.models,
        ps.out,
        command=f"recipe {plan.path} step {ps.step.name}",
        show_progress=show_progress,
        executor=executor,
    )
    if executor is not None:
        executor.after_task(ps.out)
    return summary.as_dict()
