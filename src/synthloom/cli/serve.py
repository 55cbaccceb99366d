"""`synthloom serve`: the embedded model as an OpenAI-compatible HTTP server."""

from __future__ import annotations

import os
from pathlib import Path

import click

from synthloom.errors import UserError


@click.command()
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    help="GGUF file to serve. [default: the bundled SmolLM2-135M-Instruct]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0 picks a free one; the first line on stdout is 'READY <base URL>').",
)
@click.option(
    "--slots", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel requests."
)
@click.option(
    "--ctx",
    type=click.IntRange(256),
    default=2048,
    show_default=True,
    help="Context tokens per slot (prompt + answer).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 512),
    help="CPU threads. [default: one per core]",
)
@click.option(
    "--api-key-env",
    help="Require clients to send the API key held in this environment variable.",
)
def serve(
    model: Path | None,
    host: str,
    port: int,
    slots: int,
    ctx: int,
    threads: int | None,
    api_key_env: str | None,
) -> None:
    """Serve the embedded model over HTTP (OpenAI-compatible: /v1/chat/completions,
    /v1/models), so other tools and other synthloom runs share one loaded model.

    Point a run at it with --backend openai --base-url <the printed URL>. Stop with Ctrl-C.
    """
    from synthloom.llm.embedded import serve as run_server

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise UserError(f"environment variable {api_key_env} is not set; export the key first")

    def ready(base_url: str) -> None:
        click.echo(f"READY {base_url}")
        shown = model.name if model else "the bundled SmolLM2-135M-Instruct"
        click.echo(
            f"serving {shown} at {base_url} ({slots} slots, {ctx} tokens each);"
            f" use --backend openai --base-url {base_url}. Ctrl-C stops.",
            err=True,
        )

    run_server(
        str(model) if model else None,
        host=host,
        port=port,
        slots=slots,
        ctx_per_slot=ctx,
        threads=threads,
        api_key=api_key,
        ready=ready,
    )
