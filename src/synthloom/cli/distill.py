from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

import click

from synthloom.cli.common import model_options
from synthloom.errors import UserError
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.distill import DistillParams, DistillTask, cache_clash


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Prompts: a .jsonl/.csv file, or a previous run directory.",
)
@click.option(
    "--prompt-column", default="prompt", show_default=True, help="Column holding the prompt."
)
@click.option("--system", help="System prompt given to teacher and student.")
@click.option(
    "-n",
    "--samples",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Teacher responses per prompt.",
)
@click.option(
    "--student-backend",
    type=click.Choice(["embedded", "openai"]),
    help="Student's backend (default: the teacher's; openai if --student-base-url is given).",
)
@click.option("--student-base-url", help="Student's OpenAI-compatible endpoint.")
@click.option("--student-model", help="Student's model name or GGUF path.")
@click.option("--student-api-key-env", help="Variable holding the student's API key.")
@model_options
def distill(
    input_path: Path,
    prompt_column: str,
    system: str | None,
    samples: int,
    student_backend: str | None,
    student_base_url: str | None,
    student_model: str | None,
    student_api_key_env: str | None,
    settings: ModelSettings,
    out: Path | None,
) -> None:
    """A teacher model answers prompts from a file; a student model optionally answers them
    too, so the gap can be inspected. The model options configure the teacher."""
    models = {"teacher": settings}
    if student_api_key_env and not (student_backend or student_base_url or student_model):
        raise UserError(
            "--student-api-key-env needs a student: add --student-model, --student-base-url"
            " or --student-backend"
        )
    if student_backend or student_base_url or student_model:
        backend = student_backend or ("openai" if student_base_url else settings.backend)
        update: dict[str, object] = {"backend": backend}
        if backend != settings.backend:
            update["model"] = None  # a model name means nothing to another backend
        for key, value in (
            ("base_url", student_base_url),
            ("model", student_model),
            ("api_key_env", student_api_key_env),
        ):
            if value is not None:
                update[key] = value
        models["student"] = settings.model_copy(update=update)
        clash = cache_clash(settings, models["student"])
        if clash:
            raise UserError(clash)
    params = DistillParams(
        input=input_path,
        prompt_column=prompt_column,
        system=system,
        samples=samples,
        student="student" in models,
    )
    task = DistillTask(params)
    if out is None:
        identity = [task.config(), {role: s.identity() for role, s in models.items()}]
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        out = Path("runs") / f"distill-{hashlib.sha256(blob).hexdigest()[:8]}"
    # not run_from_cli: it needs a "default" role and hashes only one model into the out dir
    run_task(task, models, out, command=shlex.join(sys.argv))
