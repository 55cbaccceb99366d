"""Every task by name, found in the modules of `synthloom.tasks`: the CLI, recipes, exports
and the Python API all look tasks up here, so adding a task is adding its module.

A module `synthloom/tasks/<name>.py` holds one `Task` subclass whose `name` is the module's
name with `-` for `_` (`self_instruct.py` -> `self-instruct`). Modules are imported on first
use, so `synthloom --help` and `synthloom show` stay fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

import synthloom.tasks as _package

_NOT_TASKS = {"base", "registry"}


@cache
def task_names() -> tuple[str, ...]:
    """Every registered task name, in module order."""
    modules = sorted(m.name for m in pkgutil.iter_modules(_package.__path__))
    return tuple(m.replace("_", "-") for m in modules if m not in _NOT_TASKS)


def task_class(name: str) -> Any:
    """The Task class registered under `name` (KeyError if there is none)."""
    if name not in task_names():
        raise KeyError(name)
    from synthloom.tasks.base import Task

    module = importlib.import_module(f"synthloom.tasks.{name.replace('-', '_')}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Task) and value.name == name:
            return value
    raise LookupError(f"synthloom.tasks.{name.replace('-', '_')} defines no task named {name!r}")


class _Names:
    """`name in TASKS` and iteration, for code that only needs the names."""

    def __contains__(self, name: object) -> bool:
        return name in task_names()

    def __iter__(self) -> Any:
        return iter(task_names())


TASKS = _Names()
