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
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=VALUE",
    help="Change one value of the recipe for this run (repeatable): PATH is a dotted path"
    " into the recipe with steps named, e.g. steps.qa.params.n=3,"
    " steps.qa.model.max_tokens=200, model.backend=openai; VALUE is read as YAML (3, true,"
    " [a, b]).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Validate the recipe (keys, params, input files, models, output directories) and"
    " exit without running or writing anything.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the steps run: in this process, or on Ray (pip install 'synthloom[ray]'):"
    " tasks' units on a pool of Ray actors and near-dup dedup on the cluster, with the same"
    " records as locally. See docs/RAY.md.",
)
@click.option(
    "--address",
    help="The Ray cluster to connect to (e.g. auto, or ray://HEAD:10001); default: the"
    " RAY_ADDRESS environment variable, else a Ray instance started on this machine.",
)
@click.option(
    "--actors",
    type=click.IntRange(min=1),
    help="Ray actors per task step, each with its own engine and `concurrency` calls in"
    " flight [default: the cluster's CPUs].",
)
@click.option(
    "--shards",
    type=click.Choice(["jsonl", "parquet"]),
    help="With --executor ray: also write each task step's records as shards, written by the"
    " cluster's workers, in <step dir>/shards/.",
)
def run(
    recipe: Path,
    steps: tuple[str, ...],
    out: Path | None,
    sets: tuple[str, ...],
    check: bool,
    executor: str,
    address: str | None,
    actors: int | None,
    shards: str | None,
) -> None:
    """Run a YAML recipe (a whole job: sources, tasks, models, filters, outputs).

    The whole recipe is checked before the first step runs; a step that reads an earlier
    step's output (${steps.NAME}) is checked when it runs. Relative paths resolve against
    the current directory. Run it again to resume: finished calls come from the cache.
    """
    from synthloom.recipes.runner import check_recipe, run_recipe
    from synthloom.recipes.schema import parse_overrides
    from synthloom.terminal import visible

    only = list(steps) or None
    overrides = parse_overrides(sets)
    if check:
        plan = check_recipe(recipe, only=only, out=out, overrides=overrides)
        later = f"; checked when they run: {', '.join(plan.deferred)}" if plan.deferred else ""
        click.echo(visible(f"{recipe}: ok ({len(plan.steps)} steps{later})"))
        return
    if executor == "local" and (address or actors or shards):
        raise click.UsageError("--address, --actors and --shards go with --executor ray")
    ray = None
    if executor == "ray":
        check_recipe(recipe, only=only, out=out, overrides=overrides)  # before a cluster starts
        from synthloom.executors.ray import RayExecutor

        ray = RayExecutor(address, actors=actors, shards=shards)
    run_recipe(recipe, only=only, out=out, executor=ray, overrides=overrides)
