from __future__ import annotations

from pathlib import Path

import click

from synthloom.cli.common import model_options, run_from_cli
from synthloom.errors import UserError
from synthloom.settings import ModelSettings
from synthloom.tasks.augment import STYLES, AugmentParams, AugmentTask


def _styles(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in names if s not in STYLES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown style {', '.join(unknown) or '(none given)'}; choose from {', '.join(STYLES)}"
        )
    if len(set(names)) != len(names):
        raise click.BadParameter("a style is listed twice")
    return names


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Labelled examples: a .csv or .jsonl file, or an earlier run directory.",
)
@click.option("--text-column", default="text", show_default=True, help="Column with the text.")
@click.option("--label-column", default="label", show_default=True, help="Column with the label.")
@click.option(
    "-n",
    "--per-example",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Variations per example (one model call each).",
)
@click.option(
    "--styles",
    default=",".join(STYLES),
    show_default=True,
    callback=_styles,
    help="Comma-separated rewrite styles, cycled over each example's variations.",
)
@click.option(
    "--balance/--no-balance",
    default=False,
    show_default=True,
    help="Ask more variations for minority labels: every label aims at M x (1 + N) examples,"
    " originals included (M = count of the largest label, N = --per-example), spread evenly"
    " over its examples and capped by --max-per-example. Dropped variations are not replaced,"
    " so counts approach the target.",
)
@click.option(
    "--max-per-example",
    type=click.IntRange(1),
    help="With --balance: most variations for one example. [default: 5 x --per-example]",
)
@click.option(
    "--fidelity",
    type=click.Choice(["model", "judge", "classifier", "none"]),
    default="model",
    show_default=True,
    help="Label check of every variation: the same model, a judge model, a Naive Bayes"
    " classifier trained on the originals, or none.",
)
@click.option(
    "--on-drift",
    type=click.Choice(["drop", "flag"]),
    default="drop",
    show_default=True,
    help="A variation whose checked label differs: drop it (listed in failures.jsonl) or keep"
    ' it with status "flagged".',
)
@click.option(
    "--max-similarity",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Drop variations at least this similar to their original or to an earlier kept"
    " variation of the same original.",
)
@click.option(
    "--include-originals/--no-originals",
    default=True,
    show_default=True,
    help="Write the original examples too, so the output is the whole augmented set.",
)
@click.option(
    "--judge-backend",
    type=click.Choice(["embedded", "openai"]),
    help="With --fidelity judge: the judge's backend. [default: --backend]",
)
@click.option("--judge-base-url", help="With --fidelity judge: the judge's endpoint.")
@click.option("--judge-model", help="With --fidelity judge: the judge model. [default: --model]")
@model_options
def augment(
    input_path: Path,
    text_column: str,
    label_column: str,
    per_example: int,
    styles: list[str],
    balance: bool,
    max_per_example: int | None,
    fidelity: str,
    on_drift: str,
    max_similarity: float,
    include_originals: bool,
    judge_backend: str | None,
    judge_base_url: str | None,
    judge_model: str | None,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """Label-preserving variations of labelled examples for classification training.

    Each variation is dropped if it is a near copy of its original or of an earlier kept
    variation, and label-checked (--fidelity). Every removal is counted in the summary.
    """
    judge = {"backend": judge_backend, "base_url": judge_base_url, "model": judge_model}
    judge = {k: v for k, v in judge.items() if v is not None}
    if judge and fidelity != "judge":
        raise UserError("--judge-backend/--judge-base-url/--judge-model need --fidelity judge")
    if max_per_example is not None and max_per_example < per_example:
        raise UserError(
            f"--max-per-example ({max_per_example}) must be at least --per-example ({per_example})"
        )
    params = AugmentParams(
        input=input_path,
        text_column=text_column,
        label_column=label_column,
        per_example=per_example,
        styles=styles,  # type: ignore[arg-type]
        balance=balance,
        max_per_example=max_per_example,
        fidelity=fidelity,  # type: ignore[arg-type]
        on_drift=on_drift,  # type: ignore[arg-type]
        max_similarity=max_similarity,
        include_originals=include_originals,
    )
    task = AugmentTask(params)
    models: ModelSettings | dict[str, ModelSettings] = settings
    if fidelity == "judge":
        judge_settings = ModelSettings.model_validate(settings.model_dump() | judge)
        models = {"default": settings, "judge": judge_settings}
    run_from_cli("augment", task, models, out)
