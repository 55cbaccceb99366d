from __future__ import annotations

from pathlib import Path

import click

from synthloom.recipes.runner import run_recipe
from synthloom.recipes.schema import load_recipe


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--step", "steps", multiple=True, help="Run only this step (repeatable).")
@click.option("--check", is_flag=True, help="Validate the recipe and exit.")
def run(recipe: Path, steps: tuple[str, ...], check: bool) -> None:
    """Run a YAML recipe (a whole job: sources, tasks, models, filters, outputs)."""
    if check:
        r, _ = load_recipe(recipe)
        click.echo(f"{recipe}: ok ({len(r.steps)} steps)")
        return
    run_recipe(recipe, only=list(steps) or None)
