"""synthloom: synthetic training data for language models.

The Python API: `run_task(task, models, out)` runs one task (see `synthloom.tasks.registry`);
`run_recipe(path)` runs a YAML recipe and `load_recipe(path)` / `check_recipe(path)` validate
one. They are imported on first use, so `import synthloom` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "check_recipe", "load_recipe", "run_recipe", "run_task"]

_LAZY = {
    "check_recipe": "synthloom.recipes.runner",
    "run_recipe": "synthloom.recipes.runner",
    "load_recipe": "synthloom.recipes.schema",
    "run_task": "synthloom.runner",
}

if TYPE_CHECKING:
    from synthloom.recipes.runner import check_recipe, run_recipe
    from synthloom.recipes.schema import load_recipe
    from synthloom.runner import run_task


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthloom' has no attribute {name!r}")
