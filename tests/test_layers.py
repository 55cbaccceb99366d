"""The floors of the code: a module imports only from its own floor or the ones below it,
and no two modules import each other (directly or round a loop). See DESIGN.md's shape."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "synthloom"

# lowest first; a module takes the floor of the longest prefix listed
FLOORS: list[tuple[str, ...]] = [
    (
        "synthloom.errors",
        "synthloom.validation",
        "synthloom.terminal",
        "synthloom.outputs",
        "synthloom.records",
        "synthloom.templates",
        "synthloom.settings",
        "synthloom.idset",
    ),
    (
        "synthloom.llm",
        "synthloom.sources",
        "synthloom.quality",
        "synthloom.diversity",
        "synthloom.preference.rankings",
        "synthloom.preference.judge_reconcile",
        "synthloom.preference.types",
    ),  # fmt: skip
    ("synthloom.runs",),
    ("synthloom.tasks.base",),
    (
        "synthloom.tasks",
        "synthloom.export",
        "synthloom.preference",
        "synthloom.quality.filter_run",
        "synthloom.review",
    ),  # fmt: skip
    ("synthloom.steps", "synthloom.runner", "synthloom.executors"),
    ("synthloom.recipes",),
    ("synthloom.cli", "synthloom.testing", "synthloom.__main__", "synthloom"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def floor(module: str) -> int:
    best, level = -1, -1
    for i, names in enumerate(FLOORS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level >= 0, f"{module} is on no floor: add it to FLOORS"
    return level


def imports(module: str) -> set[str]:
    """The synthloom modules `module` imports, anywhere in it (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("synthloom"):
                continue
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            found |= subs or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("synthloom")}
    return found - {module}


def test_no_module_imports_a_higher_floor() -> None:
    wrong = [
        f"{m} (floor {floor(m)}) imports {i} (floor {floor(i)})"
        for m in sorted(MODULES)
        for i in sorted(imports(m))
        if floor(i) > floor(m)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = {m: imports(m) & set(MODULES) for m in MODULES}
    # a package imports its own modules lazily (registry discovery): not a cycle of code
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
