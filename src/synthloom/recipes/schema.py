"""The YAML recipe format: a whole job (sources, tasks, models, filters, outputs) in one file.

    out: runs/my-job                 # each step writes to <out>/<step name>/
    allow_paths_outside: false       # true: outputs may be written outside `out`
    model: {backend: embedded}       # default model settings for every step
    steps:
      - name: pairs
        task: qa                     # any task or model-free step (synthloom --help)
        params: {topic: product returns, n: 5}
        model: {temperature: 0.9}    # this step's overrides
        models: {judge: {model: ...}}  # extra model roles (judge, student, ...)
      - name: clean
        task: dedup
        params: {input: "${steps.pairs}", field: question}
      - name: sft
        task: export
        params: {input: "${steps.clean}", format: messages, path: "${out}/sft.jsonl"}

In params, `${steps.NAME}` becomes the output directory of the earlier step NAME and `${out}`
the recipe's output directory (`out:`, or `synthloom run --out DIR`; default
`runs/<recipe file name>`). Relative paths, in `out:` and in params, resolve against the
current directory, not the recipe's folder: run a recipe from the directory it was written
for (the examples in `recipes/` from the repository root).

Validation happens in two passes, both before anything runs or is written:
1. `load_recipe`: the YAML, every key, model settings and each step's params (types, ranges,
   unknown keys). Every error names the file, the line and the key.
2. `check_recipe` (run by `run_recipe` and `synthloom run --check`): every step that does not
   read an earlier step's output is built as it will run, so its input files are read and
   checked (a missing column, an empty seed file, a single label with balancing), its model
   settings are checked (a GGUF that is not there, an API-key variable that is not set, a
   `models:` role the task does not use) and its output directory must be free or hold the
   same job (to resume). Errors name the recipe file, the line and the step.
A step that reads an earlier step's output (`${steps.NAME}`, where NAME runs in the same
invocation) can only be fully checked when it runs, since that output does not exist yet; the
steps before it will have written their outputs by then (a rerun resumes them from the cache).
Export formats and output file names are checked for every step up front.

`overrides` (`synthloom run --set PATH=VALUE`) change values of the recipe before it is
validated: PATH is a dotted path into the recipe, with a step named by its name
(`steps.qa.params.n`, `steps.qa.model.max_tokens`, `model.backend`, `out`); a mapping on the
way is made if missing, a list item is named by its index. An error in an overridden value
names the `--set` instead of a line of the file.

Outputs stay under `out`: a step's directory is `<out>/<step name>` (a step name is a plain
directory name, never `.` or `..`), and every output param of a model-free step (its
`Step.outputs`: an export's `path`, a pairs step's `out`) must resolve under `out` (after
`..` and symbolic links), unless the recipe sets `allow_paths_outside: true`. A step whose
output is a directory (`Step.out_dir`, e.g. dedup) writes to its step directory unless given
`out`. No output may be an input of its own step or a run directory's records.jsonl,
failures.jsonl or manifest.json (`synthloom.outputs.check_not_input`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthloom.errors import UserError
from synthloom.settings import ModelSettings
from synthloom.steps.base import Step as ModelFreeStep
from synthloom.steps.registry import step_class, step_names
from synthloom.tasks.registry import task_class, task_names
from synthloom.validation import first_error

STEP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    task: str
    params: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        """The step's output directory is `<out>/<name>`: a plain directory name only."""
        if not STEP_NAME.fullmatch(name):
            raise ValueError(
                f"step name {name!r} must be a plain directory name: letters, digits, _ . -,"
                " starting with a letter, digit or _ (not '.', '..' or a path)"
            )
        return name


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out: Path | None = None
    allow_paths_outside: bool = False
    model: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


def step_kind(task: str) -> Any:
    """The class a recipe step's `task:` names: a task (`synthloom.tasks.registry`) or a
    model-free step (`synthloom.steps.registry`); KeyError if neither."""
    if task in task_names():
        return task_class(task)
    return step_class(task)


def is_model_free(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, ModelFreeStep)


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
            if nxt is None:  # an unknown or misspelt key: point at the key itself
                keynode = next((k for k, _ in node.value if k.value == key), None)
                return keynode.start_mark.line + 1 if keynode else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _fail(
    path: Path,
    root: yaml.Node | None,
    loc: tuple[Any, ...],
    msg: str,
    overridden: dict[tuple[Any, ...], str] | None = None,
) -> UserError:
    given = next((t for o, t in (overridden or {}).items() if loc[: len(o)] == o), None)
    if given is not None:  # the value came from the command line, not from a line of the file
        where = f"{path}: --set {given}"
    else:
        line = _line(root, loc)
        where = f"{path}:{line}" if line else str(path)
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return UserError(f"{where}: {key}: {msg}" if key else f"{where}: {msg}")


def _override_text(key: str, value: Any) -> str:
    """`PATH=VALUE` as given on the command line (a value from the Python API as JSON)."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value, default=str)}"


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`PATH=VALUE` strings (`synthloom run --set`) as {PATH: VALUE}, VALUE read as YAML
    (`3`, `true`, `[a, b]`, `{k: v}`; anything else is a string)."""
    found: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--set {item}: give PATH=VALUE, e.g. --set steps.qa.params.n=3")
        try:
            found[key.strip()] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserError(f"--set {item}: the value is not valid YAML: {problem}") from None
    return found


def _apply_overrides(
    path: Path, data: dict[str, Any], overrides: Mapping[str, Any]
) -> dict[tuple[Any, ...], str]:
    """Set each PATH of `overrides` in the recipe's data (see the module docstring); returns
    the location (as validation errors give it: steps by index) of each value set, with the
    `PATH=VALUE` it came from."""
    overridden: dict[tuple[Any, ...], str] = {}
    for key, value in overrides.items():
        given = _override_text(key, value)
        parts = key.split(".")
        if not all(parts):
            raise UserError(f"{path}: --set {given}: an empty name in the path {key!r}")
        node: Any = data
        loc: list[Any] = []
        i = 0
        while True:
            part = parts[i]
            if isinstance(node, list) and loc == ["steps"]:
                names = [s.get("name") if isinstance(s, dict) else None for s in node]
                # a step name may hold dots: the longest name that the path starts with
                for j in range(len(parts), i, -1):
                    if ".".join(parts[i:j]) in names:
                        index, i = names.index(".".join(parts[i:j])), j - 1
                        break
                else:
                    known = ", ".join(str(n) for n in names)
                    raise UserError(
                        f"{path}: --set {given}: no step named {part!r} (steps: {known})"
                    )
            elif isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(
                        f"{path}: --set {given}: {'.'.join(parts[:i]) or 'the recipe'} is a"
                        f" list of {len(node)}: name an item by its index (0 to {len(node) - 1})"
                    )
                index = int(part)
            elif isinstance(node, dict):
                index = part
            else:
                raise UserError(
                    f"{path}: --set {given}: {'.'.join(parts[:i])} is not a mapping or a list"
                )
            loc.append(index)
            if i == len(parts) - 1:
                node[index] = value
                break
            if isinstance(node, dict) and node.get(index) is None:
                node[index] = {}  # e.g. a step without `model:` yet
            node = node[index]
            i += 1
        overridden[tuple(loc)] = given
    return overridden


def load_recipe(
    path: Path | str,
    *,
    out: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Recipe, dict[str, BaseModel]]:
    """Parse and validate a recipe (schema, keys, model settings, each step's params); returns
    it and each step's validated params, with `${out}` and `${steps.NAME}` filled in.
    `out` overrides the recipe's `out:`; `overrides` ({"steps.qa.params.n": 3}) change any
    value first (see the module docstring). Input files are not read here: see
    `check_recipe`."""
    from synthloom.settings import load_yaml

    path = Path(path)
    data = load_yaml(path)
    root = yaml.compose(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise _fail(path, root, (), "a recipe is a mapping with `steps:`")
    overridden = _apply_overrides(path, data, overrides or {})

    def fail(loc: tuple[Any, ...], msg: str) -> UserError:
        return _fail(path, root, loc, msg, overridden)

    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        raise fail(loc, msg) from None
    if out is not None:
        recipe.out = Path(out)
    try:
        ModelSettings.model_validate(recipe.model)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        raise fail(("model", *loc), msg) from None
    names: set[str] = set()
    validated: dict[str, BaseModel] = {}
    for i, step in enumerate(recipe.steps):
        if step.name in names:
            raise fail(("steps", i, "name"), f"duplicate step name {step.name!r}")
        if step.task not in task_names() and step.task not in step_names():
            known = ", ".join([*task_names(), *step_names()])
            raise fail(("steps", i, "task"), f"unknown task {step.task!r} (known: {known})")
        for where, settings in [("model", step.model)] + [
            (f"models.{r}", s) for r, s in step.models.items()
        ]:
            try:
                ModelSettings.model_validate({**recipe.model, **settings})
            except ValidationError as exc:
                loc, msg = first_error(exc)
                raise fail(("steps", i, *where.split("."), *loc), msg) from None
        params = _substitute(step.params, names, path, fail, ("steps", i, "params"), recipe)
        cls = step_kind(step.task)
        try:
            validated[step.name] = cls.Params.model_validate(params)
        except ValidationError as exc:
            loc, msg = first_error(exc)
            if loc == ("max_tokens",) and msg == "unknown key":
                msg = "max_tokens is a model setting: put it under the step's model: (model: {max_tokens: N})"
            raise fail(("steps", i, "params", *loc), msg) from None
        if is_model_free(cls):
            validated[step.name] = _default_out(
                cls, validated[step.name], step_dir(recipe, path, step.name)
            )
            for key in () if recipe.allow_paths_outside else cls.outputs:
                value = getattr(validated[step.name], key, None)
                outside = _outside(Path(value), out_dir(recipe, path)) if value else None
                if outside:
                    raise fail(("steps", i, "params", key), outside)
        names.add(step.name)
    return recipe, validated


def _default_out(cls: Any, params: BaseModel, directory: Path) -> BaseModel:
    """A step whose output is a directory (`out_dir`) writes to its step directory unless
    the recipe gives `out`."""
    if cls.out_dir and getattr(params, "out", None) is None:
        return params.model_copy(update={"out": directory})
    return params


def _outside(target: Path, out: Path) -> str | None:
    """Why `target` may not be written (it does not resolve to a path under `out`), or None.
    Symbolic links that exist are followed, so a link out of `out` is outside too."""
    resolved, root = target.resolve(), out.resolve()
    if resolved != root and resolved.is_relative_to(root):
        return None
    return (
        f"{target} resolves to {resolved}, outside the recipe's output directory {out};"
        " write under it (e.g. ${out}/name.jsonl) or set `allow_paths_outside: true`"
        " at the top of the recipe"
    )


def out_dir(recipe: Recipe, recipe_path: Path) -> Path:
    """The recipe's output directory: `out:`, else runs/<recipe file name without suffix>."""
    return recipe.out or Path("runs") / recipe_path.stem


def step_dir(recipe: Recipe, recipe_path: Path, name: str) -> Path:
    return out_dir(recipe, recipe_path) / name


def references(step: Step) -> set[str]:
    """Names of the earlier steps whose output this step reads (`${steps.NAME}`)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            found.update(m.group(1) for m in STEP_REF.finditer(value))

    walk(step.params)
    return found


def locate(path: Path, loc: tuple[Any, ...]) -> str:
    """`path:line` of the key at `loc` in the recipe file (or just `path`)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        root = None
    line = _line(root, loc)
    return f"{path}:{line}" if line else str(path)


VARIABLE = re.compile(r"\$\{(out|steps\.([^}]*))\}")
STEP_REF = re.compile(r"\$\{steps\.([^}]*)\}")


def _substitute(
    value: Any,
    earlier: set[str],
    path: Path,
    fail: Callable[[tuple[Any, ...], str], UserError],
    loc: tuple[Any, ...],
    recipe: Recipe,
) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, earlier, path, fail, (*loc, k), recipe) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, earlier, path, fail, (*loc, j), recipe) for j, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        if match.group(1) == "out":
            return str(out_dir(recipe, path))
        name = match.group(2)
        if name not in earlier:
            raise fail(loc, f"${{steps.{name}}} names no earlier step")
        return str(step_dir(recipe, path, name))

    return VARIABLE.sub(fill, value)
