"""Every model-free step by name, found in the modules of `synthloom.steps` (as tasks are
found in `synthloom.tasks`): `steps/<name>.py` holds one `Step` subclass named `<name>`."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

import synthloom.steps as _package

_NOT_STEPS = {"base", "registry"}


@cache
def step_names() -> tuple[str, ...]:
    modules = sorted(m.name for m in pkgutil.iter_modules(_package.__path__))
    return tuple(m.replace("_", "-") for m in modules if m not in _NOT_STEPS)


def step_class(name: str) -> Any:
    if name not in step_names():
        raise KeyError(name)
    from synthloom.steps.base import Step

    module = importlib.import_module(f"synthloom.steps.{name.replace('-', '_')}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Step) and value.name == name:
            return value
    raise LookupError(f"synthloom.steps.{name.replace('-', '_')} defines no step named {name!r}")
