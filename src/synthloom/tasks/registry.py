"""Every task by name: the CLI, recipes and Python API all find tasks here.

A task class has a `Params` pydantic model (extra keys forbidden) and is built as
`TaskClass(params)`. Entries are import strings so that `synthloom --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

TASKS: dict[str, str] = {
    "qa": "synthloom.tasks.qa:QATask",
    "augment": "synthloom.tasks.augment:AugmentTask",
    "self-instruct": "synthloom.tasks.self_instruct:SelfInstructTask",
    "evol": "synthloom.tasks.evol:EvolTask",
    "distill": "synthloom.tasks.distill:DistillTask",
    "summarize": "synthloom.tasks.summarize:SummarizeTask",
    "audience": "synthloom.tasks.audience:AudienceTask",
    "responses": "synthloom.tasks.responses:ResponsesTask",
    "judge": "synthloom.tasks.judge:JudgeTask",
}


def task_class(name: str) -> Any:
    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
