"""The step contract: a model-free stage of a job, the same kind of thing as a task.

A step is one class in one module of `synthloom.steps`. It declares:

    name      the command and recipe `task:` name
    Params    a pydantic model of its options (extra keys forbidden); the CLI command, the
              recipe step and the docs are generated from it, as for tasks
    inputs    the params that name files it reads
    outputs   the params that name files or directories it writes; an output may never be
              one of the step's inputs or a run directory's own files (checked for it), and
              in a recipe it must resolve under the recipe's `out`
    datasets  the outputs that are dataset files: .jsonl or .parquet (checked for it)
    dataset_dirs  those of them that may also be a `datasets` save_to_disk directory
    out_dir   True when `out` is a directory: in a recipe it defaults to `<out>/<step name>`
    command   False for a recipe-only step (no `synthloom NAME` command is generated for it)

and implements `run()`, returning its counts (`records_in`, what each rule removed, ...),
and optionally `check()`, which reads its inputs just enough to fail before a recipe runs.
The command line and a recipe call the same methods: `check_outputs()` before anything is
read, then `run()`; the command prints the counts with `after_cli()`, a recipe shows them and
returns them with `out`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import click
from pydantic import BaseModel

from synthloom.outputs import check_not_input, check_output_path
from synthloom.terminal import visible


class Step(ABC):
    name: ClassVar[str] = "step"
    Params: ClassVar[type[BaseModel]]
    inputs: ClassVar[tuple[str, ...]] = ("input",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    datasets: ClassVar[tuple[str, ...]] = ()
    dataset_dirs: ClassVar[tuple[str, ...]] = ()
    out_dir: ClassVar[bool] = False
    command: ClassVar[bool] = True

    params: Any

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def input_paths(self) -> list[Path]:
        found: list[Path] = []
        for name in self.inputs:
            value = getattr(self.params, name, None)
            if isinstance(value, (list, tuple)):
                found.extend(Path(v) for v in value)
            elif value is not None:
                found.append(Path(value))
        return found

    def output_paths(self) -> list[Path]:
        return [Path(v) for name in self.outputs if (v := getattr(self.params, name, None))]

    def written(self) -> list[tuple[str, str, Path]]:
        """Every path this step writes: (the output param, a note, the path). By default the
        output params themselves; a step that writes beside them (a sidecar file, a file in
        its directory) lists those too, so they are checked the same way."""
        return [
            (name, "", Path(v)) for name in self.outputs if (v := getattr(self.params, name, None))
        ]

    def check_outputs(self, labels: Mapping[str, str] | None = None) -> None:
        """Refuse (UserError) a dataset output that is not .jsonl/.parquet, and any written
        path that is one of this step's inputs or a run directory's own file. `labels` names
        each output param in messages (the command line's option, e.g. `--out`); by default
        the param's name, as a recipe spells it. Nothing is read or written."""
        labels = labels or {}
        inputs = self.input_paths()
        for name in self.datasets:
            value = getattr(self.params, name, None)
            if value is not None:
                check_output_path(
                    Path(value), what=labels.get(name, name), directory=name in self.dataset_dirs
                )
        for name, note, path in self.written():
            check_not_input(path, inputs, what=labels.get(name, name) + note)

    def check(self) -> None:  # noqa: B027 - optional hook
        """Read the inputs just enough to fail early (a recipe's --check calls this)."""

    @abstractmethod
    def run(self) -> dict[str, Any]:
        """Do the work; return the counts the summary shows."""

    def after_cli(self, counts: dict[str, Any]) -> None:
        """What the command prints once it has run: by default one line of counts on stderr,
        e.g. `records in: 6, dropped exact duplicate: 1, records out: 5`."""
        line = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
        click.echo(visible(line), err=True)  # a count's name can hold a task name from a file

    @classmethod
    def cli_options(cls) -> list[Callable[..., Any]]:
        """Extra click options beyond the generated ones (rarely needed)."""
        return []

    @classmethod
    def from_cli(cls, values: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """Turn extra options (`cli_options`) into params; the default adds nothing."""
        return values
