"""Options every generating command shares, and running a task from the command line."""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from synthloom.errors import UserError
from synthloom.runner import Summary, run_task
from synthloom.settings import SETTING_NAMES, ModelSettings, validation_message
from synthloom.tasks.base import Task

MODEL_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option(
        "--backend",
        type=click.Choice(["embedded", "openai"]),
        help="Where the model runs. [default: embedded]",
    ),
    click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1."),
    click.option(
        "--model",
        help="Model name (openai) or GGUF path (embedded; default: bundled SmolLM2-135M).",
    ),
    click.option(
        "--api-key-env",
        help="Name of the environment variable holding the API key. [default: OPENAI_API_KEY]",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 4096),
        help="Most calls in flight (openai). [default: 16]",
    ),
    click.option(
        "--slots",
        type=click.IntRange(1, 64),
        help="Parallel llama.cpp slots (embedded). [default: 4]",
    ),
    click.option(
        "--threads",
        type=click.IntRange(1, 512),
        help="CPU threads (embedded); use fewer to run two jobs side by side."
        " [default: one per core]",
    ),
    click.option(
        "--seed", type=int, help="Sampling seed; change it to get new samples. [default: 0]"
    ),
    click.option("--temperature", type=click.FloatRange(0, 2), help="Sampling temperature."),
    click.option(
        "--max-tokens",
        type=click.IntRange(1),
        help="Longest answer per call, in tokens (default: per task).",
    ),
    click.option(
        "--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests-per-minute limit."
    ),
    click.option(
        "--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens-per-minute limit."
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        help="Seconds per call. [default: 120]",
    ),
    click.option("--max-retries", type=click.IntRange(0), help="Retries per call. [default: 6]"),
    click.option(
        "--out",
        type=click.Path(path_type=Path),
        help="Run directory (default: runs/<command>-<hash>).",
    ),
]


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared model/run options; the command receives `settings` and `out`."""

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        ctx = click.get_current_context()
        config = (ctx.find_root().obj or {}).get("config", {})
        values = {k: v for k, v in config.items() if k in SETTING_NAMES}
        values.update(
            {k: kwargs.pop(k) for k in list(kwargs) if k in SETTING_NAMES and kwargs[k] is not None}
        )
        for k in SETTING_NAMES:
            kwargs.pop(k, None)
        try:
            kwargs["settings"] = ModelSettings.model_validate(values)
        except ValidationError as exc:
            raise UserError(f"option {validation_message(exc)}") from None
        return fn(**kwargs)

    for option in reversed(MODEL_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def default_out(command: str, task: Task, settings: dict[str, ModelSettings]) -> Path:
    identities = {role: s.identity() for role, s in settings.items()}
    blob = json.dumps([task.config(), identities], sort_keys=True, default=str)
    return Path("runs") / f"{command}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def run_from_cli(
    command: str,
    task: Task,
    settings: ModelSettings | dict[str, ModelSettings],
    out: Path | None,
) -> Summary:
    roles = {"default": settings} if isinstance(settings, ModelSettings) else settings
    out = out or default_out(command, task, roles)
    return run_task(task, settings, out, command=" ".join(shlex.quote(a) for a in sys.argv))
