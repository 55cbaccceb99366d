"""Run a recipe: each step through the same functions the CLI uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthloom.export.sft import export_records
from synthloom.preference.dataset import PairsParams, run_pairs
from synthloom.quality.filter_run import dedup_records
from synthloom.recipes.schema import DedupParams, ExportParams, load_recipe, step_dir
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.registry import task_class

console = Console(stderr=True)


def run_recipe(
    path: Path, *, only: list[str] | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Validate the whole recipe first (nothing runs on an error), then run its steps in order.
    A rerun resumes: finished steps replay from the cache and write nothing twice."""
    recipe, params = load_recipe(path)
    results: dict[str, Any] = {}
    for step in recipe.steps:
        if only and step.name not in only:
            continue
        out = step_dir(recipe, path, step.name)
        p = params[step.name]
        console.print(f"[bold]step {step.name}[/] ({step.task}) -> {out}")
        if isinstance(p, DedupParams):
            results[step.name] = dict(
                dedup_records(p.input, out, field=p.field, near=p.near, min_words=p.min_words)
            )
        elif isinstance(p, ExportParams):
            results[step.name] = dict(
                export_records(p.input, p.path, p.format, include_flagged=p.include_flagged)
            )
        elif isinstance(p, PairsParams):
            results[step.name] = run_pairs(p)
        else:
            main = ModelSettings.model_validate({**recipe.model, **step.model})
            task = task_class(step.task)(p)
            models = {role: main for role in task.engine_roles()}
            for role, extra in step.models.items():
                models[role] = ModelSettings.model_validate({**recipe.model, **extra})
            summary = run_task(
                task,
                models,
                out,
                command=f"recipe {path} step {step.name}",
                show_progress=show_progress,
            )
            results[step.name] = summary.as_dict()
        if not show_progress:
            continue
        if step.task in ("dedup", "export", "pairs"):
            console.print(results[step.name])
    return results
