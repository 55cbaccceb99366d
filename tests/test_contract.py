"""The task contract: every registered task's and model-free step's command and recipe step
are the same thing.

Options are generated from each task's (and step's) `Params`, so these tests check what a
user relies on: every param is settable from the command line under its documented name (or
as its positional argument), with the same default and range the recipe uses, and the CLI
and a recipe refuse the same bad values."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import annotated_types
import click
import pytest
from pydantic.fields import FieldInfo

from synthloom.cli import cli
from synthloom.cli.options import option_name
from synthloom.errors import UserError
from synthloom.recipes.schema import load_recipe
from synthloom.settings import ModelSettings
from synthloom.steps.registry import step_class, step_names
from synthloom.tasks.registry import task_class, task_names

TASKS = task_names()
STEPS = step_names()
ALL = (*TASKS, *(s for s in STEPS if step_class(s).command))  # those with a command


def _class(name: str) -> Any:
    return task_class(name) if name in TASKS else step_class(name)


def _extra(info: FieldInfo) -> dict[str, Any]:
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


def _command(name: str) -> click.Command:
    ctx = click.Context(cli)
    command = cli.get_command(ctx, name)
    assert command is not None, f"no command for task {name}"
    return command


def _cli_fields(info: FieldInfo) -> bool:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return extra.get("cli") is not False


def _bounds(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for rule in info.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if isinstance(rule, getattr(annotated_types, attr.capitalize())):
                found[attr] = getattr(rule, attr)
    return found


@pytest.mark.parametrize("name", ALL)
def test_every_param_is_an_option_with_the_same_default_and_range(name: str) -> None:
    cls = _class(name)
    command = _command(name)
    by_dest = {p.name: p for p in command.params if isinstance(p, click.Option)}
    arguments = {p.name: p for p in command.params if isinstance(p, click.Argument)}
    for field, info in cls.Params.model_fields.items():
        if not _cli_fields(info):
            continue
        if _extra(info).get("argument"):  # positional: required exactly when the model says
            argument = arguments.get(field)
            assert argument is not None, f"{name}: param {field} has no argument"
            assert argument.required == info.is_required()
            assert option_name(field, info) in command.collect_usage_pieces(click.Context(command))
            continue
        option = by_dest.get(field)
        assert option is not None, f"{name}: param {field} has no option"
        assert option_name(field, info) in option.opts + option.secondary_opts
        help_text = option.help or ""
        if info.is_required():
            assert "required" in help_text, f"{name} {field}: required but not said so"
            continue
        default = info.get_default(call_default_factory=True)
        if typing.get_origin(info.annotation) is None and default not in (None, [], {}):
            if info.annotation is bool:
                assert option.show_default, f"{name} --{field}: default not shown"
            else:
                assert f"default: {default}" in help_text, f"{name} {field}: {help_text!r}"
        bounds = _bounds(info)
        for value in bounds.values():
            assert str(value) in help_text, f"{name} {field}: range {bounds} not in help"
        # the option itself never decides: an absent option leaves the model's default (or,
        # `required: true` for the command line, there is no default: click asks for it)
        assert option.default is None or (option.required and _extra(info).get("required"))


@pytest.mark.parametrize("name", ALL)
def test_every_option_is_a_param_or_a_model_setting(name: str) -> None:
    cls = _class(name)
    roles = set(getattr(cls, "optional_roles", {}))
    extras = {p.name for decorator in cls.cli_options() for p in _params_of(decorator)}
    known = set(cls.Params.model_fields) | extras
    if name in TASKS:  # a task also takes the model options and its run directory
        known |= set(ModelSettings.model_fields) | {"out"}
    for param in _command(name).params:
        if any(param.name.startswith(f"{role}_") for role in roles):
            continue
        assert param.name in known, f"{name}: option {param.opts} maps to no param or setting"


def _params_of(decorator: Any) -> list[click.Parameter]:
    def f() -> None: ...

    decorator(f)
    return list(getattr(f, "__click_params__", []))


def _bad_value(info: FieldInfo) -> Any:
    bounds = _bounds(info)
    if "ge" in bounds:
        return bounds["ge"] - 1
    if "gt" in bounds:
        return bounds["gt"]
    if "le" in bounds:
        return bounds["le"] + 1
    return None


def _given(info: FieldInfo) -> str:
    """A value a required field accepts: the first choice of a Literal, else a file name."""
    if typing.get_origin(info.annotation) is typing.Literal:
        return str(typing.get_args(info.annotation)[0])
    return "in.jsonl"


CASES = [
    (name, field)
    for name in ALL
    for field, info in _class(name).Params.model_fields.items()
    if _cli_fields(info) and _bad_value(info) is not None
]


@pytest.mark.parametrize(("name", "field"), CASES)
def test_cli_and_recipe_refuse_the_same_out_of_range_value(
    name: str, field: str, tmp_path: Path
) -> None:
    fields = _class(name).Params.model_fields
    info = fields[field]
    bad = _bad_value(info)
    flag = option_name(field, info)
    required = [f for f, i in fields.items() if i.is_required()]  # given, so the bad value is
    args = [  # the error; a positional argument is given as one
        a
        for f in required
        for a in (
            ("in.jsonl",)
            if _extra(fields[f]).get("argument")
            else (option_name(f, fields[f]), _given(fields[f]))
        )
    ]
    with pytest.raises(UserError) as from_cli:
        cli.main(
            args=[name, *args, flag, str(bad), "--out", str(tmp_path / "o")], standalone_mode=False
        )
    assert flag in str(from_cli.value)
    params = ", ".join([f"{f}: {_given(fields[f])}" for f in required] + [f"{field}: {bad}"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"steps:\n  - name: s\n    task: {name}\n    params: {{{params}}}\n")
    with pytest.raises(UserError) as from_recipe:
        load_recipe(recipe)
    assert f"params.{field}" in str(from_recipe.value)
    # the same rule, in the same words
    assert str(from_cli.value).split(": ", 1)[1] in str(from_recipe.value)


REQUIRED_ON_CLI = [
    (name, field)
    for name in ALL
    for field, info in _class(name).Params.model_fields.items()
    if _cli_fields(info) and _extra(info).get("required")
]


@pytest.mark.parametrize(("name", "field"), REQUIRED_ON_CLI)
def test_an_option_required_on_the_command_line_only_is_asked_for(name: str, field: str) -> None:
    """e.g. dedup's --out: a recipe gives the step's directory, the command line must say."""
    fields = _class(name).Params.model_fields
    args = [
        a
        for f, i in fields.items()
        if i.is_required()
        for a in (("in.jsonl",) if _extra(i).get("argument") else (option_name(f, i), "x"))
    ]
    with pytest.raises(click.MissingParameter) as missing:
        cli.main(args=[name, *args], standalone_mode=False)
    assert option_name(field, fields[field]) in str(missing.value.format_message())


def test_a_name_is_a_task_or_a_step_never_both() -> None:
    assert not set(TASKS) & set(STEPS)
    assert {"dedup", "export", "pairs"} <= set(STEPS)


def test_readme_table_has_a_row_per_task() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [name for name in TASKS if f"| `{name}` |" not in readme]
    assert not missing, f"README's task table has no row for {missing}"


def test_python_api_takes_str_paths_as_the_readme_shows(tmp_path: Path) -> None:
    import synthloom
    from synthloom.tasks.qa import QAParams, QATask
    from synthloom.testing.stub_server import StubServer

    with StubServer() as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="m")
        summary = synthloom.run_task(
            QATask(QAParams(topic="product returns", n=2)),
            settings,
            str(tmp_path / "runs" / "qa"),
            show_progress=False,
        )
    assert summary.units_ok == 2 and (tmp_path / "runs" / "qa" / "records.jsonl").is_file()
