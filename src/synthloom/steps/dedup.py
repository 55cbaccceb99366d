"""`dedup`: drop exact, near and (optionally) semantic duplicates of a run's records, within
the run and against reference sets (a curation step, no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field

from synthloom.errors import UserError
from synthloom.quality.dedup import DEFAULT_THRESHOLD
from synthloom.quality.filter_run import dedup_records, stage_files
from synthloom.runs import read_records
from synthloom.steps.base import Step
from synthloom.terminal import visible


class DedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "SOURCE"},
    )
    field: str | None = Field(
        None,
        description="the data field to compare, e.g. question (default: the first of text,"
        " response, answer, summary, completion, output, instruction, question, prompt)",
    )
    near: bool = Field(
        True,
        description="also drop near duplicates (MinHash LSH over word n-grams, confirmed on"
        " their Jaccard similarity); --exact-only drops exact duplicates only",
        json_schema_extra={"negative": "--exact-only"},
    )
    threshold: float = Field(
        DEFAULT_THRESHOLD,
        gt=0,
        le=1,
        description="near duplicates: the word n-gram Jaccard similarity from which two texts"
        " are duplicates",
    )
    ngram: int = Field(5, ge=1, le=20, description="near duplicates: words per shingle")
    min_words: int = Field(0, ge=0, description="also drop texts shorter than this many words")
    reference: list[Path] = Field(
        default_factory=list,
        description="a reference set (e.g. your evaluation set: .jsonl/.csv or a run) whose"
        " texts the output must not repeat, exactly or nearly; repeat the option for several",
        json_schema_extra={"multiple": True},
    )
    reference_field: str | None = Field(
        None, description="the reference's text column (default: --field, or the first text one)"
    )
    semantic: float | None = Field(
        None,
        gt=0,
        le=1,
        description="also drop texts whose meaning repeats an earlier one: the cosine"
        " similarity of their embeddings from which they are duplicates (e.g. 0.95; needs"
        " --embed-model)",
    )
    embed_model: str | None = Field(
        None,
        description="with --semantic: the embedding model, at --embed-base-url"
        " (an OpenAI-compatible /embeddings endpoint)",
    )
    embed_base_url: str | None = Field(
        None, description="with --semantic: the embeddings server, e.g. http://localhost:8000/v1"
    )
    embed_api_key_env: str | None = Field(
        None, description="with --semantic: the environment variable holding its API key"
    )
    watch: list[str] = Field(
        default_factory=lambda: ["label"],
        description="data fields whose groups are watched: a group this step empties or"
        " starves is a warning",
    )
    out: Path | None = Field(
        None,
        description="output: a .jsonl file, or a directory that gets records.jsonl (in a"
        " recipe: the step's directory unless given); removed.jsonl and stage.json beside it",
        json_schema_extra={"required": True},
    )


class Dedup(Step):
    """Drop exact, near and semantic duplicates of a run's records, and anything repeating a
    reference set (keeps the first of each; removed.jsonl names what each one repeats)."""

    name = "dedup"
    Params = DedupParams
    inputs = ("input", "reference")
    out_dir = True

    params: DedupParams

    def written(self) -> list[tuple[str, str, Path]]:
        out = self.params.out
        if out is None:
            return []
        return [("out", "", out)] + [("out", "", p) for p in stage_files(out) if p != out]

    def check(self) -> None:
        next(iter(read_records(self.params.input)), None)
        if self.params.semantic is not None and not self.params.embed_model:
            raise UserError("dedup: --semantic needs --embed-model (and --embed-base-url)")

    def run(self) -> dict[str, Any]:
        p = self.params
        if p.out is None:  # the command requires --out; a recipe gives the step's directory
            raise UserError("dedup: give `out`, a .jsonl file or a directory")
        semantic = None
        if p.semantic is not None:
            from synthloom.quality.semantic import EmbeddingClient, semantic_finder

            if not p.embed_model:
                raise UserError("dedup: --semantic needs --embed-model (and --embed-base-url)")
            client = EmbeddingClient(p.embed_model, p.embed_base_url, p.embed_api_key_env)
            semantic = semantic_finder(client, p.semantic)
        return dedup_records(
            p.input,
            p.out,
            field=p.field,
            near=p.near,
            threshold=p.threshold,
            ngram=p.ngram,
            min_words=p.min_words,
            reference=p.reference,
            reference_field=p.reference_field,
            watch=p.watch,
            semantic=semantic,
        )

    def after_cli(self, counts: dict[str, Any]) -> None:
        super().after_cli({k: v for k, v in counts.items() if k != "warnings"})
        for warning in counts.get("warnings", ()):
            click.echo(visible(f"warning: {warning}"), err=True)
