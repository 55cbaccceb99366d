from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--step", "steps", multiple=True, help="Run only this step (repeatable).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output directory instead of the recipe's `out:` (steps write to DIR/<step name>/,"
    " and `${out}` in params becomes DIR).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Validate the recipe (keys, params, input files, models, output directories) and"
    " exit without running or writing anything.",
)
def run(recipe: Path, steps: tuple[str, ...], out: Path | None, check: bool) -> None:
    """Run a YAML recipe (a whole job: sources, tasks, models, filters, outputs).

    The whole recipe is checked before the first step runs; a step that reads an earlier
    step's output (${steps.NAME}) is checked when it runs. Relative paths resolve against
    the current directory. Run it again to resume: finished calls come from the cache.
    """
    from synthloom.recipes.runner import check_recipe, run_recipe
    from synthloom.terminal import visible

    only = list(steps) or None
    if check:
        plan = check_recipe(recipe, only=only, out=out)
        later = f"; checked when they run: {', '.join(plan.deferred)}" if plan.deferred else ""
        click.echo(visible(f"{recipe}: ok ({len(plan.steps)} steps{later})"))
        return
    run_recipe(recipe, only=only, out=out)
