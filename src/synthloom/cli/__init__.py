"""The `synthloom` command line: a thin layer over the Python API.

Every error a user can fix is one line on stderr and exit code 2; a run that fails exits 1;
Ctrl-C exits 130 after saving what is done (run the same command again to resume).

The floors below name a setting in backquotes, as a recipe or the Python API calls it
(`base_url`); an error raised while a command runs names that command's option instead
(--base-url). A recipe run (`synthloom run`) keeps the recipe's key names.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from synthloom.cli.startup import pause_gc, run_as_program, started

if run_as_program():
    pause_gc()  # until the command starts its work: see synthloom.cli.startup

# pydantic looks for plugins in every installed package's entry points when its first model
# is made (~35 ms with this project's 87 packages); the command line uses none. Set before
# synthloom.settings makes its models; an explicit PYDANTIC_DISABLE_PLUGINS wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import click  # noqa: E402

from synthloom import __version__  # noqa: E402
from synthloom.errors import SynthloomError, is_path_error, path_error  # noqa: E402
from synthloom.settings import load_config  # noqa: E402
from synthloom.terminal import visible  # noqa: E402

# Commands that are not generated from a task or step; imported when used, so --help is fast.
OTHER_COMMANDS = {
    "run": "synthloom.cli.run:run",
    "show": "synthloom.cli.show:show",
    "review": "synthloom.cli.review:review",
    "serve": "synthloom.cli.serve:serve",
}
# In --help: the tasks (generating first, then preference), then the model-free steps, then
# the other commands; a name not listed here follows the listed ones of its kind.
ORDER = (
    "topics", "qa", "augment", "self-instruct", "evol", "distill", "summarize", "audience",
    "responses", "judge",
    "pairs", "dedup", "export",
    "run", "show", "serve",
)  # fmt: skip


def _ordered(names: Iterable[str]) -> list[str]:
    names = list(names)
    return [n for n in ORDER if n in names] + sorted(set(names) - set(ORDER))


def _has_command(step: str) -> bool:
    """A step has a generated command unless it says it is recipe-only (`command = False`)."""
    from synthloom.steps.registry import step_class

    return bool(step_class(step).command)


class Commands(click.Group):
    """Every task and step of the registry, plus the other commands, loaded on demand."""

    active: click.Command | None = None  # the command this process runs, once resolved

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        self.active = command
        if name in OTHER_COMMANDS:
            started()  # a task's or step's command says when its work starts (commands.py)
        return name, command, rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        from synthloom.steps.registry import step_names
        from synthloom.tasks.registry import task_names

        steps = [n for n in step_names() if n not in OTHER_COMMANDS and _has_command(n)]
        tasks = [n for n in task_names() if n not in OTHER_COMMANDS]
        return _ordered(tasks) + _ordered(steps) + _ordered(OTHER_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        import importlib

        if name in OTHER_COMMANDS:
            module, _, attr = OTHER_COMMANDS[name].partition(":")
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        from synthloom.steps.registry import step_class, step_names
        from synthloom.tasks.registry import task_class, task_names

        if name in task_names():
            from synthloom.cli.commands import task_command

            return task_command(name, task_class(name))
        if name in step_names() and _has_command(name):
            from synthloom.cli.commands import step_command

            return step_command(name, step_class(name))
        return None


@click.group(
    cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="synthloom")
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="YAML file with defaults for the model options (else $SYNTHLOOM_CONFIG or ./synthloom.yaml).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """synthloom: generate, curate and export synthetic training data for language models."""
    ctx.obj = {"config": load_config(config)}


_SETTING = re.compile(r"`([a-z][a-z0-9_]*)`")


def with_flags(message: str, command: click.Command | None) -> str:
    """`message` with each backquoted setting that is an option of `command` written as that
    option (`base_url` -> --base-url); unchanged for a recipe run or no command."""
    if command is None or command.name == "run":
        return message
    flags = {
        p.name: max(p.opts, key=len)
        for p in command.params
        if isinstance(p, click.Option) and p.name and any(o.startswith("--") for o in p.opts)
    }
    return _SETTING.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


def _error(exc: BaseException) -> str:
    return visible(f"synthloom: error: {with_flags(str(exc), cli.active)}")


def main(argv: list[str] | None = None) -> None:
    """The command line. Run as the program (no `argv`), it leaves without the interpreter's
    teardown once the command is done and everything is written (`_leave`)."""
    if argv is not None:
        _main(argv)
        return
    pause_gc()  # (if importing this module did not: see synthloom.cli.startup)
    try:
        _main(None)
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code: object) -> None:
    """Exit now: run the atexit handlers (Ray's shutdown...), flush stdout and stderr, and
    skip freeing every module's objects one by one, which took ~0.3 s of CPU after each
    command (issue 12). With a non-daemon thread still running, or under a profiler or a
    tracer (cProfile, coverage, a debugger), exit the ordinary way."""
    import atexit
    import threading

    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    status = code if isinstance(code, int) else 0 if code is None else 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not t.daemon for t in others) or sys.getprofile() or sys.gettrace():
        sys.exit(status)  # (a profiler or debugger writes its results after the program)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="synthloom", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "synthloom"
        click.echo(visible(f"{cmd}: error: {exc.format_message()} (see '{cmd} --help')"), err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(visible(f"synthloom: error: {exc.format_message()}"), err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        click.echo("synthloom: interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    except SynthloomError as exc:
        click.echo(_error(exc), err=True)
        sys.exit(exc.exit_code)
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, OSError) and is_path_error(first):
            first = path_error(first)
        if isinstance(first, SynthloomError):
            click.echo(_error(first), err=True)
            sys.exit(first.exit_code)
        _internal(first)
    except OSError as exc:
        if not is_path_error(exc):
            _internal(exc)
        # an unwritable, full or read-only output (an export, a rankings file): the user's to fix
        click.echo(visible(f"synthloom: error: {path_error(exc)}"), err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: one line unless asked for the traceback
        _internal(exc)


def _internal(exc: BaseException) -> None:
    if os.environ.get("SYNTHLOOM_DEBUG"):
        raise exc
    click.echo(
        visible(
            f"synthloom: internal error: {type(exc).__name__}: {exc}"
            " (set SYNTHLOOM_DEBUG=1 for the traceback)"
        ),
        err=True,
    )
    sys.exit(1)
