"""Commands generated from the registry: one per task and per model-free step.

A task's command is its `Params` fields as options (see `synthloom.cli.options`), the model
options (`ModelSettings`), and `--ROLE-backend/--ROLE-base-url/--ROLE-model/--ROLE-api-key-env`
for each optional model role the task declares. Nothing is checked here that the models do
not check: the CLI and recipes accept and refuse the same things.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthloom.cli.options import (
    apply,
    argument_help,
    build,
    option_name,
    options_for,
    values_for,
)
from synthloom.cli.startup import started
from synthloom.settings import ModelSettings, role_settings

ROLE_FIELDS = ("backend", "base_url", "model", "api_key_env")
_OUT = click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory. [default: runs/<command>-<hash of the job>]",
)


def model_settings_from(given: dict[str, Any]) -> ModelSettings:
    """The main model settings: the config file's defaults, then the command's options."""
    ctx = click.get_current_context()
    config = (ctx.find_root().obj or {}).get("config", {})
    values = {k: v for k, v in config.items() if k in ModelSettings.model_fields}
    values.update(values_for(ModelSettings, given))
    return build(ModelSettings, values)  # type: ignore[no-any-return]


def _command(
    name: str, cls: Any, decorators: list[Callable[..., Any]], fn: Callable[..., Any]
) -> click.Command:
    decorated = apply(decorators, fn)
    params = list(reversed(getattr(decorated, "__click_params__", [])))
    arguments = argument_help(cls.Params)
    return click.Command(
        name,
        callback=decorated,
        params=params,
        help="\n\n".join(x for x in ((cls.__doc__ or "").strip(), arguments) if x),
        context_settings={"max_content_width": 100},
    )


def task_command(name: str, cls: Any) -> click.Command:
    """The `synthloom NAME` command of a task class."""
    roles: dict[str, str] = dict(getattr(cls, "optional_roles", {}) or {})
    # a task whose params have their own `out` (topics: the tree file) takes --out for it; its
    # run directory is then the default one (runs/<command>-<hash of the job>)
    own_out = "out" in cls.Params.model_fields

    def callback(**given: Any) -> None:
        from synthloom.cli.common import run_from_cli

        out = None if own_out else given.pop("out", None)
        settings = model_settings_from(given)
        values = values_for(cls.Params, given)
        extra: dict[str, ModelSettings] = {}
        for role in roles:
            overrides = values_for(ModelSettings, given, prefix=role, only=ROLE_FIELDS)
            if overrides:
                extra[role] = role_settings(settings, overrides, where=f"--{role}-")
                field = cls.Params.model_fields.get(role)
                if field is not None and field.annotation is bool and role not in values:
                    values[role] = True  # `--student-model X` asks for a student
        values, extra = cls.from_cli(values, given, settings, extra)
        task = cls(build(cls.Params, values))
        models = task.models(settings, extra, where="--{role}-model")
        started()  # the start-up is over (synthloom.cli.startup)
        summary = run_from_cli(name, task, models, out)
        task.after_cli(summary)

    decorators = options_for(cls.Params)
    for role in roles:
        decorators += options_for(ModelSettings, prefix=role, only=ROLE_FIELDS)
    decorators += cls.cli_options()
    decorators += options_for(ModelSettings) + ([] if own_out else [_OUT])
    return _command(name, cls, decorators, callback)


def step_command(name: str, cls: Any) -> click.Command:
    """The `synthloom NAME` command of a model-free step (dedup, export, pairs, ...): its
    outputs are checked before anything is read, then it runs and prints its counts."""
    labels = {f: option_name(f, info) for f, info in cls.Params.model_fields.items()}

    def callback(**given: Any) -> None:
        started()  # the start-up is over (synthloom.cli.startup)
        step = cls(build(cls.Params, cls.from_cli(values_for(cls.Params, given), given)))
        step.check_outputs(labels)
        step.after_cli(step.run())

    return _command(name, cls, options_for(cls.Params) + cls.cli_options(), callback)
