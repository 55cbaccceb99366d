"""Running a task from the command line: its default run directory and the command it records."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

from synthloom.runner import Summary, run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.base import Task


def default_out(command: str, task: Task, settings: dict[str, ModelSettings]) -> Path:
    identities = {role: s.identity() for role, s in settings.items()}
    blob = json.dumps([task.config(), identities], sort_keys=True, default=str)
    return Path("runs") / f"{command}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def run_from_cli(
    command: str,
    task: Task,
    settings: ModelSettings | dict[str, ModelSettings],
    out: Path | None,
) -> Summary:
    roles = {"default": settings} if isinstance(settings, ModelSettings) else settings
    out = out or default_out(command, task, roles)
    return run_task(task, settings, out, command=" ".join(shlex.quote(a) for a in sys.argv))
