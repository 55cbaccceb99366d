"""`synthloom review serve|add-user|export|wait`: the human review and ranking app.

The work is in `synthloom.review`; `export` and `wait` are the `review-export` and `review`
steps' generated commands (the same params a recipe gives them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from synthloom.cli.options import apply, argument_help, build, options_for, values_for

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def _step_command(cmd_name: str, step: str) -> click.Command:
    from synthloom.cli.commands import step_command
    from synthloom.steps.registry import step_class

    return step_command(cmd_name, step_class(step))


class _Review(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["serve", "add-user", "export", "wait"]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "serve":
            return _serve_command()
        if name == "add-user":
            return add_user
        if name == "export":
            return _step_command("export", "review-export")
        if name == "wait":
            return _step_command("wait", "review")
        return None


@click.group(cls=_Review, context_settings={"max_content_width": 100})
def review() -> None:
    """Review and rank records in the browser: people approve, reject, edit and rank; every
    decision lands in a SQLite store beside the run and comes back out with `review export`.

    \b
    synthloom review add-user runs/summaries --name alice     (prints alice's token)
    synthloom review serve runs/summaries                     (http://127.0.0.1:8765/)
    synthloom review export runs/summaries --out runs/reviewed
    """


def _serve(**given: Any) -> None:
    from synthloom.review.server import ReviewServer, ServeParams, open_review

    params = build(ServeParams, values_for(ServeParams, given))
    store, info = open_review(params)
    server = ReviewServer(store, params).start()
    users = store.users()
    progress = store.progress()
    click.echo(
        f"review: {server.url} ({info['items']} {info['mode']} items, {progress['complete']}"
        f" reviewed; store {store.path})",
        err=True,
    )
    if users:
        click.echo(
            f"annotators: {', '.join(users)}; each opens {server.url}?token=THEIR_TOKEN", err=True
        )
    else:
        click.echo(
            f"no annotators yet: synthloom review add-user {params.input} --name NAME"
            " (works while this runs)",
            err=True,
        )
    click.echo("Ctrl-C stops the server; every decision is already saved.", err=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        click.echo("review: stopped", err=True)


def _serve_command() -> click.Command:
    from synthloom.review.server import ServeParams

    decorated = apply(options_for(ServeParams), _serve)
    return click.Command(
        "serve",
        callback=decorated,
        params=list(reversed(getattr(decorated, "__click_params__", []))),
        help="Serve the review app over a run's records (127.0.0.1 by default). Decisions are"
        " saved in SQLite beside the run as they are made.\n\n" + argument_help(ServeParams),
        context_settings={"max_content_width": 100},
    )


@click.command("add-user")
@click.argument("source", metavar="RUN_OR_FILE", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="The annotator's name (letters, digits, _ . -).")
@click.option(
    "--store",
    type=click.Path(path_type=Path),
    help="The review store, if not the one beside the run.",
)
@click.option("--new-token", is_flag=True, help="Replace the token of an existing annotator.")
@click.option(
    "--port", type=int, default=8765, show_default=True, help="The port the printed link uses."
)
def add_user(source: Path, name: str, store: Path | None, new_token: bool, port: int) -> None:
    """Add an annotator and print their token (stdout); only its hash is stored."""
    from synthloom.errors import UserError
    from synthloom.review.items import default_store
    from synthloom.review.store import ReviewStore

    if not NAME.fullmatch(name):
        raise UserError(
            f"--name {name!r}: use 1-40 letters, digits, _ . - (starting with a letter or digit)"
        )
    if not source.exists():
        raise UserError(f"{source}: not found; give the run directory or records file under review")
    path = store or default_store(source)
    token = ReviewStore(path).add_user(name, replace=new_token)
    click.echo(token)
    click.echo(f"{name} opens http://127.0.0.1:{port}/?token={token} (store {path})", err=True)
