"""Start-up without the garbage collector (issue 12).

Importing click, pydantic, jinja2 and aiohttp and building a command make some 60,000 objects
that live as long as the process, and the collector went over them again and again while they
were made: ~40 ms of CPU of a `qa -n 1` (a bare aiohttp script: ~10 ms), and one more full
pass over all of them during the run. The cyclic garbage start-up leaves is ~600 objects.

So when this process is the synthloom program, the collector is paused while it starts
(`pause_gc`) and turned on again when the command starts its work (`started`: a task's command
before its run, a step's before its step, any other command once it is chosen); what start-up
made is frozen then (`gc.freeze`), so that later collections skip it. This is what the gc
documentation advises before a fork, for the same reason: long-lived objects made at start.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

_paused = False


def run_as_program() -> bool:
    """This process is `python -m synthloom` or the `synthloom` console script, which call
    `synthloom.cli.main()` once they imported it (not a program or test importing the CLI)."""
    program = sys.modules.get("__main__")
    spec = getattr(program, "__spec__", None)
    if spec is not None:
        return bool(spec.name == "synthloom.__main__")
    return Path(getattr(program, "__file__", None) or "").stem == "synthloom"


def pause_gc() -> None:
    """Pause the garbage collector until `started` (nothing if it is off already)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def started() -> None:
    """The command's work starts: the start-up's objects are frozen and the collector runs
    again (nothing unless `pause_gc` paused it)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
