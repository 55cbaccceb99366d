from __future__ import annotations

from pathlib import Path

import click

from synthloom.cli.common import model_options, run_from_cli
from synthloom.errors import UserError
from synthloom.settings import ModelSettings
from synthloom.tasks.responses import STYLES, ResponsesParams, ResponsesTask


def parse_temperatures(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--temperatures: {text!r} is not a comma-separated list of numbers"
        ) from None
    if not values or any(not 0 <= t <= 2 for t in values):
        raise UserError(f"--temperatures: {text!r}: give numbers between 0 and 2, e.g. 0.7,1.0")
    return values


def parse_named(option: str, spec: str, form: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise UserError(f"{option}: expected {form}, got {spec!r}")
    return name.strip(), value.strip()


def extra_model_settings(spec: str, main: ModelSettings) -> tuple[str, ModelSettings]:
    """`NAME=MODEL` (main backend and endpoint, another model) or `NAME=BASE_URL|MODEL`
    (an OpenAI-compatible endpoint); everything else is inherited from the main model."""
    name, value = parse_named("--extra-model", spec, "NAME=MODEL or NAME=BASE_URL|MODEL")
    url, bar, model = value.rpartition("|")
    if bar and not (url.strip() and model.strip()):
        raise UserError(f"--extra-model: expected NAME=BASE_URL|MODEL, got {spec!r}")
    update = {"backend": "openai", "base_url": url.strip(), "model": model.strip()} if bar else {}
    return name, main.model_copy(update=update or {"model": value})


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="Prompts: a .jsonl/.csv file or a previous run directory.",
)
@click.option(
    "--prompt-column", default="prompt", show_default=True, help="Column holding the prompt."
)
@click.option("--prompt", "prompts", multiple=True, help="A prompt (repeatable).")
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 26),
    default=4,
    show_default=True,
    help="Responses per prompt (ids A, B, C, ...).",
)
@click.option(
    "--temperatures",
    help="Sampling temperatures cycled over the K responses. [default: 0.7,1.0]",
)
@click.option(
    "--styles",
    default="",
    help="Comma-separated styles cycled over the K responses (each a system prompt): "
    + ", ".join(STYLES)
    + ", or a --custom-style name.",
)
@click.option(
    "--custom-style",
    "custom_styles",
    multiple=True,
    metavar="NAME=SYSTEM PROMPT",
    help="Define a style (repeatable); it is used even if --styles does not name it.",
)
@click.option(
    "--extra-model",
    "extra_models",
    multiple=True,
    metavar="NAME=[BASE_URL|]MODEL",
    help="Another model, cycled with the main one over the K responses (repeatable). "
    "NAME=MODEL uses the main backend and endpoint; NAME=BASE_URL|MODEL an "
    "OpenAI-compatible endpoint.",
)
@click.option(
    "--max-regenerations",
    type=click.IntRange(0),
    default=3,
    show_default=True,
    help="Re-asks for a response that duplicates an earlier one of the same prompt.",
)
@model_options
def responses(
    input_path: Path | None,
    prompt_column: str,
    prompts: tuple[str, ...],
    k: int,
    temperatures: str | None,
    styles: str,
    custom_styles: tuple[str, ...],
    extra_models: tuple[str, ...],
    max_regenerations: int,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """K diverse responses per prompt, to be ranked into preference pairs."""
    if input_path is None and not prompts:
        raise UserError("give --input PATH or at least one --prompt TEXT")
    if temperatures is not None and settings.temperature is not None:
        raise UserError("give --temperatures or --temperature, not both")
    custom = dict(parse_named("--custom-style", s, "NAME=SYSTEM PROMPT") for s in custom_styles)
    names = [s.strip() for s in styles.split(",") if s.strip()]
    names += [name for name in custom if name not in names]
    models: dict[str, ModelSettings] = {"default": settings}
    for spec in extra_models:
        name, extra = extra_model_settings(spec, settings)
        if name in models:
            raise UserError(f"--extra-model: name {name!r} is used twice (or is 'default')")
        models[name] = extra
    try:
        params = ResponsesParams(
            input=input_path,
            prompt_column=prompt_column,
            prompts=list(prompts),
            k=k,
            temperatures=parse_temperatures(temperatures or "0.7,1.0"),
            styles=names,
            custom_styles=custom,
            extra_models=[m for m in models if m != "default"],
            max_regenerations=max_regenerations,
        )
    except ValueError as exc:
        raise UserError(first_error(exc)) from None
    task = ResponsesTask(params)
    run_from_cli("responses", task, models, out)


def first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        msg = str(errors()[0].get("msg", exc))
        return msg.removeprefix("Value error, ")
    return str(exc)
