"""Running a task from the command line: its default run directory and the command it records."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

from synthloom.runner import Summary, process_started, run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.base import Task


def default_out(command: str, task: Task, settings: dict[str, ModelSettings]) -> Path:
    """runs/<command>-<hash of the job>. The task's growable keys (qa's `n`) are not in the
    hash, so raising `-n` finds the same directory and extends that run."""
    identities = {role: s.identity() for role, s in settings.items()}
    config = task.config()
    growable = type(task).growable
    job = {k: v for k, v in config.items() if k not in growable}
    path = _runs_dir(command, [job, identities])
    if growable and not path.exists():
        legacy = _runs_dir(command, [config, identities])  # named before n was growable
        if legacy.exists():
            return legacy
    return path


def _runs_dir(command: str, job: object) -> Path:
    blob = json.dumps(job, sort_keys=True, default=str)
    return Path("runs") / f"{command}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def run_from_cli(
    command: str,
    task: Task,
    settings: ModelSettings | dict[str, ModelSettings],
    out: Path | None,
) -> Summary:
    roles = {"default": settings} if isinstance(settings, ModelSettings) else settings
    out = out or default_out(command, task, roles)
    command_line = " ".join(shlex.quote(a) for a in sys.argv)
    return run_task(task, settings, out, command=command_line, started=process_started())
