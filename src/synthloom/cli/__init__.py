"""The `synthloom` command line: a thin layer over the Python API.

Every error a user can fix is one line on stderr and exit code 2; a run that fails exits 1;
Ctrl-C exits 130 after saving what is done (run the same command again to resume).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from synthloom import __version__
from synthloom.cli.audience import audience
from synthloom.cli.augment import augment
from synthloom.cli.curate import dedup, export
from synthloom.cli.distill import distill
from synthloom.cli.evol import evol
from synthloom.cli.judge import judge
from synthloom.cli.pairs import pairs
from synthloom.cli.qa import qa
from synthloom.cli.responses import responses
from synthloom.cli.run import run
from synthloom.cli.self_instruct import self_instruct
from synthloom.cli.show import show
from synthloom.cli.summarize import summarize
from synthloom.errors import SynthloomError, is_path_error, path_error
from synthloom.settings import load_config
from synthloom.terminal import visible


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


# Generating commands, then preference, then curation and inspection.
for command in (
    qa, augment, self_instruct, evol, distill, summarize, audience,
    responses, judge, pairs,
    run, dedup, export, show,
):  # fmt: skip
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
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
        click.echo(visible(f"synthloom: error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, OSError) and is_path_error(first):
            first = path_error(first)
        if isinstance(first, SynthloomError):
            click.echo(visible(f"synthloom: error: {first}"), err=True)
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
