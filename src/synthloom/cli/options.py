"""Click options generated from pydantic models: a field is declared once, in the model.

Every task's `Params`, every step's params and `ModelSettings` become command-line options
here, so the CLI and a recipe accept and refuse exactly the same values: the CLI only turns
text into the shapes the model reads (a comma-separated list, `NAME=VALUE` pairs) and hands
what the user gave to the model, whose defaults, ranges and rules decide.

How a field becomes an option (override any of it with `Field(json_schema_extra=...)`):
  name           `--field-name`; `flags` adds others (e.g. ["-n", "--num"]); `flag` replaces it
  bool           `--x/--no-x` (`negative` names the off switch)
  Literal        a click.Choice of its values
  list[...]      one comma-separated value (`multiple: true`: a repeatable option instead;
                 `split: false`: the text goes to the model as it is)
  dict[str, str] a repeatable `NAME=VALUE`
  help           the field's `description`, with its default and range
  argument: true a positional argument instead of an option (`metavar` names it in the usage
                 line, e.g. SOURCE); `argument_help` lists it in the command's help
  required: true the command line requires the option although the model has a default
                 (a value a recipe fills in, such as a step's output directory)
  cli: false     the field is left out of the command (set only by recipes or the API)
  later: N       listed after the model's own fields, by N (options a model inherits from
                 shared bases, e.g. the diversity options, which pydantic puts first)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import annotated_types
import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from synthloom.errors import UserError

F = Callable[..., Any]


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _literal_values(annotation: Any) -> tuple[Any, ...] | None:
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    return None


def _kind(annotation: Any) -> str:
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "bool"
    if origin in (list, tuple, set):
        return "list"
    if origin is dict:
        return "dict"
    return "scalar"


def _range(info: FieldInfo) -> str:
    lo = hi = None
    lo_op = hi_op = ""
    for rule in info.metadata:
        if isinstance(rule, annotated_types.Ge):
            lo, lo_op = rule.ge, "<="
        elif isinstance(rule, annotated_types.Gt):
            lo, lo_op = rule.gt, "<"
        elif isinstance(rule, annotated_types.Le):
            hi, hi_op = rule.le, "<="
        elif isinstance(rule, annotated_types.Lt):
            hi, hi_op = rule.lt, "<"
    if lo is None and hi is None:
        return ""
    left = f"{lo}{lo_op}" if lo is not None else ""
    right = f"{hi_op}{hi}" if hi is not None else ""
    return f"{left}x{right}"


def _shown_default(info: FieldInfo, kind: str) -> str | None:
    if info.is_required():
        return None
    default = info.get_default(call_default_factory=True)
    if default is None or default == [] or default == {}:
        return None
    if kind == "list":
        return ",".join(str(x) for x in default)
    if kind == "bool":
        return None  # shown by click from the switch
    return str(default)


def option_name(name: str, info: FieldInfo) -> str:
    """The long option a field is set with on the command line (for an argument: its
    metavar, e.g. SOURCE)."""
    if _extra(info).get("argument"):
        return _argument_metavar(name, info)
    return str(_extra(info).get("flag") or "--" + name.replace("_", "-"))


def _argument_metavar(name: str, info: FieldInfo) -> str:
    return str(_extra(info).get("metavar") or name.upper())


def argument_help(model: type[BaseModel]) -> str:
    """A paragraph for the command's help naming each positional argument, e.g.
    `SOURCE: a run directory or its records .jsonl file.` (click lists options only)."""
    lines = []
    for name, info in _fields(model, None):
        if _extra(info).get("argument"):
            text = (info.description or "").strip()
            text = text[:1].upper() + text[1:]
            if text and not text.endswith("."):
                text += "."
            lines.append(f"{_argument_metavar(name, info)}: {text}")
    return "\n\n".join(lines)


def _fields(model: type[BaseModel], only: Iterable[str] | None) -> list[tuple[str, FieldInfo]]:
    wanted = set(only) if only is not None else None
    fields = [
        (name, info)
        for name, info in model.model_fields.items()
        if (wanted is None or name in wanted) and _extra(info).get("cli") is not False
    ]
    return sorted(fields, key=lambda field: int(_extra(field[1]).get("later") or 0))


def options_for(
    model: type[BaseModel], *, prefix: str = "", only: Iterable[str] | None = None
) -> list[F]:
    """Click option decorators for the fields of `model` (each passes None when not given).
    With `prefix` (a model role such as "judge"), options are `--judge-model` and so on."""
    decorators: list[F] = []
    for name, info in _fields(model, only):
        extra = _extra(info)
        kind = _kind(info.annotation)
        long = option_name(name, info)
        if prefix:
            long = f"--{prefix}-{long.removeprefix('--')}"
        flags = [] if prefix else list(extra.get("flags", ()))
        dest = f"{prefix}_{name}" if prefix else name
        if extra.get("argument") and not prefix:
            annotation = _strip_optional(info.annotation)
            decorators.append(
                click.argument(
                    dest,
                    metavar=_argument_metavar(name, info),
                    required=info.is_required(),
                    type=click.Path(path_type=Path) if annotation is Path else None,
                )
            )
            continue
        help_text = (info.description or "").strip()
        help_text = help_text[:1].upper() + help_text[1:]
        if help_text and not help_text.endswith("."):
            help_text += "."
        if prefix:
            help_text = f"The {prefix} model's setting: {help_text[:1].lower()}{help_text[1:]}"
        notes = []
        rng = _range(info)
        if rng:
            notes.append(rng)
        shown = None if prefix else _shown_default(info, kind)
        if shown is not None:
            notes.append(f"default: {shown}")
        cli_required = bool(extra.get("required")) and not prefix
        if info.is_required() and not prefix and not cli_required:
            notes.append("required")  # the model requires it (click says so itself otherwise)
        if notes:
            help_text = f"{help_text} [{'; '.join(notes)}]".strip()
        choices = _literal_values(info.annotation)
        kwargs: dict[str, Any] = {"help": help_text, "default": None}
        if cli_required:  # no default at all: click >= 8.3 counts default=None as given
            kwargs["required"] = True
            del kwargs["default"]
        if kind == "bool":
            negative = extra.get("negative") or "--no-" + long.removeprefix("--")
            default = None if prefix or info.is_required() else info.get_default()
            shown_switch = (long if default else negative).removeprefix("--")
            decorators.append(
                click.option(
                    f"{long}/{negative}",
                    dest,
                    default=None,  # not given: the model's default applies
                    show_default=shown_switch if default is not None else False,
                    help=help_text,
                )
            )
            continue
        if kind == "dict":
            kwargs.update(multiple=True, metavar=extra.get("metavar", "NAME=VALUE"))
        elif kind == "list" and extra.get("multiple"):
            kwargs.update(multiple=True, metavar=extra.get("metavar") or _item_metavar(info))
        elif choices is not None and kind == "scalar":
            kwargs["type"] = click.Choice([str(c) for c in choices])
        else:
            kwargs["metavar"] = extra.get("metavar") or _metavar(info, kind)
        decorators.append(click.option(*flags, long, dest, **kwargs))
    return decorators


def _item_metavar(info: FieldInfo) -> str:
    """PATH, TEXT, ... for one value of a repeatable option (`list[Path]` -> PATH)."""
    args = typing.get_args(_strip_optional(info.annotation))
    return {Path: "PATH", int: "INTEGER", float: "NUMBER"}.get(args[0] if args else str, "TEXT")


def _metavar(info: FieldInfo, kind: str) -> str:
    annotation = _strip_optional(info.annotation)
    if kind == "list":
        return "A,B,..."
    if annotation is Path:
        return "PATH"
    if annotation is int:
        return "INTEGER"
    if annotation is float:
        return "NUMBER"
    return "TEXT"


def values_for(
    model: type[BaseModel],
    given: dict[str, Any],
    *,
    prefix: str = "",
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """What the user set on the command line for `model`'s fields, in the model's shapes
    (options left out are absent, so the model's own defaults apply)."""
    values: dict[str, Any] = {}
    for name, info in _fields(model, only):
        dest = f"{prefix}_{name}" if prefix else name
        value = given.get(dest)
        if value is None or value == ():
            continue
        kind = _kind(info.annotation)
        long = option_name(name, info)
        if prefix:
            long = f"--{prefix}-{long.removeprefix('--')}"
        if kind == "list" and _extra(info).get("split") is False:
            pass  # the model reads the text itself (e.g. a list or a file of one per line)
        elif kind == "list" and not _extra(info).get("multiple"):
            value = [x.strip() for x in str(value).split(",") if x.strip()]
        elif kind == "list":
            value = list(value)
        elif kind == "dict":
            pairs: dict[str, str] = {}
            for spec in value:
                key, sep, text = str(spec).partition("=")
                if not sep or not key.strip() or not text.strip():
                    metavar = _extra(info).get("metavar", "NAME=VALUE")
                    raise UserError(f"{long}: expected {metavar}, got {spec!r}")
                pairs[key.strip()] = text.strip()
            value = pairs
        values[name] = value
    return values


def build(model: type[BaseModel], values: dict[str, Any], *, prefix: str = "") -> Any:
    """Validate `values` with `model`; a problem is one line naming the option."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise UserError(cli_message(model, exc, prefix=prefix)) from None


def cli_message(model: type[BaseModel], exc: ValidationError, *, prefix: str = "") -> str:
    """One line for the first validation error, naming the option rather than the field."""
    from synthloom.validation import first_error

    loc, msg = first_error(exc)
    if loc and isinstance(loc[0], str) and loc[0] in model.model_fields:
        long = option_name(loc[0], model.model_fields[loc[0]])
        if prefix:
            long = f"--{prefix}-{long.removeprefix('--')}"
        return f"{long}: {msg}"
    return msg


def apply(decorators: list[F], fn: F) -> F:
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn
