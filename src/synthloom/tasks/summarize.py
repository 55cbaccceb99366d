"""Summaries: K candidate summaries per article, with lengths and styles crossed and cycled
across the K, for human review or a judge.

Every candidate of one article shares `data.group` (the article id) and carries `prompt`,
`response` (the summary) and `response_id` (A, B, C... by candidate index), so a judge can
rank the K summaries of an article like K responses to one prompt. `instruction` is exactly
what the model was asked; `prompt` is the part all K candidates share: the same text when
there is one length and one style, else without the varying length/style line (the judge
loader requires one prompt text per group).

Attribute samplers (`--sample`, e.g. an audience or a focus) draw per candidate and are part
of its `instruction`, not of the shared `prompt`; real summaries (`--examples`, column
summary) are shown for style, in the system message: part of neither (see
`synthloom.diversity`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from synthloom import templates
from synthloom.diversity.draws import Diversity, Draw
from synthloom.diversity.options import ExamplesOption, SamplersOption
from synthloom.errors import UserError
from synthloom.preference.types import response_letter
from synthloom.records import Record, Turn
from synthloom.sources import DOC_SUFFIXES, find_documents, read_inputs, read_text
from synthloom.tasks.base import RunContext, Task, Unit

# style name -> what the prompt asks for; the texts live in the prompt template
STYLE_HINTS: Mapping[str, str] = templates.load("summarize").constants["hints"]


class SummarizeParams(SamplersOption, ExamplesOption):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="articles: a .txt/.md file or a directory of them (one article per file),"
        " or a .jsonl/.csv file or previous run (one per row)",
    )
    text_column: str = Field("text", description="JSONL/CSV column holding the article")
    id_column: str | None = Field(
        None, description="JSONL/CSV column holding the article id (default: file:line)"
    )
    title_column: str | None = Field(None, description="JSONL/CSV column holding the title")
    k: int = Field(
        3, ge=1, description="candidate summaries per article", json_schema_extra={"flags": ["-k"]}
    )
    lengths: list[str] = Field(
        ["three sentences"],
        min_length=1,
        description='target lengths, e.g. "one sentence,about 50 words,a bullet list of 3"',
    )
    styles: list[str] = Field(
        ["neutral"],
        min_length=1,
        description=f"styles ({', '.join(STYLE_HINTS)}, or your own words)",
    )
    max_chars: int = Field(6000, ge=200, description="longer articles are truncated (and counted)")


@dataclass(frozen=True)
class Article:
    id: str
    title: str | None
    text: str  # truncated to max_chars
    chars: int  # length before truncation
    source: dict[str, Any]
    parent: str | None = None

    @property
    def truncated(self) -> bool:
        return self.chars > len(self.text)


def summary_messages(
    title: str | None, article: str, length: str | None, style: str | None, **draw: Any
) -> list[dict[str, str]]:
    """The messages asking for one summary of `article` (the style given by name or words;
    `draw`: a unit's diversity variables, see synthloom.diversity)."""
    return templates.load("summarize").messages(
        title=title, article=article, length=length, style=style, **draw
    )


def sft_prompt(data: dict[str, Any]) -> str:
    """The prompt a summary record teaches: what the model was asked for this candidate (the
    article once, with its length and style target). `instruction` holds exactly that; a
    record without it (made by hand) gets the same text rebuilt from its fields."""
    instruction = data.get("instruction")
    if isinstance(instruction, str) and instruction.strip():
        return instruction
    messages = summary_messages(
        data.get("title"), data["article"], data.get("length"), data.get("style")
    )
    return messages[-1]["content"]


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars`, at the last sentence (else word) end before it."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for pattern in (r"[.!?][\"')\]]*\s", r"\s"):
        ends = [m.end() for m in re.finditer(pattern, head)]
        if ends and ends[-1] > max_chars // 2:
            return head[: ends[-1]].rstrip()
    return head.rstrip()


def load_articles(p: SummarizeParams) -> list[Article]:
    raw: list[tuple[str, str | None, str, dict[str, Any], str | None]] = []
    run_dir = p.input.is_dir() and (p.input / "records.jsonl").is_file()
    if p.input.suffix.lower() in DOC_SUFFIXES or (p.input.is_dir() and not run_dir):
        base = p.input if p.input.is_dir() else p.input.parent
        for file in find_documents(p.input):
            text = read_text(file).strip()
            raw.append((file.relative_to(base).as_posix(), None, text, {"file": str(file)}, None))
    else:
        columns = [c for c in (p.text_column, p.id_column, p.title_column) if c]
        for row in read_inputs(p.input, columns):
            text = row.data[p.text_column]
            if not isinstance(text, str):
                raise UserError(f"{row.path}:{row.line}: column {p.text_column!r} is not text")
            default_id = row.record_id or f"{row.path.name}:{row.line}"
            article_id = str(row.data[p.id_column]) if p.id_column else default_id
            title = str(row.data[p.title_column]) if p.title_column else None
            source = {"file": str(row.path), "line": row.line}
            raw.append((article_id, title, text.strip(), source, row.record_id))
    seen: dict[str, dict[str, Any]] = {}
    articles = []
    for article_id, title, text, source, parent in raw:
        if article_id in seen:
            where = ":".join(str(v) for v in source.values())
            raise UserError(
                f"{where}: duplicate article id {article_id!r} (first at"
                f" {':'.join(str(v) for v in seen[article_id].values())}); ids must be unique"
            )
        seen[article_id] = source
        short = truncate(text, p.max_chars)
        articles.append(Article(article_id, title, short, len(text), source, parent))
    return articles


class SummarizeTask(Task):
    """K candidate summaries per article, lengths and styles crossed and cycled across the K,
    ready for human review or a judge (the K candidates of an article share data.group)."""

    name = "summarize"
    Params = SummarizeParams
    sampling = {"max_tokens": 320}
    # each candidate on its own: its draw (attributes, shown examples) depends only on its
    # place among the units, the same in every copy of the task
    independent_units = True

    def __init__(self, params: SummarizeParams) -> None:
        self.params = params
        self.articles = load_articles(params)
        variants = list(product(params.lengths, params.styles))
        self.variants = [variants[k % len(variants)] for k in range(params.k)]
        lengths = {length for length, _ in self.variants}
        styles = {style for _, style in self.variants}
        # what every candidate of an article is asked alike goes in the shared `prompt`
        self.shared = (
            lengths.pop() if len(lengths) == 1 else None,
            styles.pop() if len(styles) == 1 else None,
        )
        self.diversity = Diversity(params, example_columns=(("summary",), ()))

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        """One SFT turn: this candidate's own prompt (never the shared `prompt`, which leaves
        out the length and style that differ between candidates) and its summary."""
        return [Turn(sft_prompt(data), data["summary"])]

    def units(self) -> list[Unit]:
        return [Unit(f"{a.id}:{k}", (a, k)) for a in self.articles for k in range(self.params.k)]

    def total(self) -> int:
        return len(self.articles) * self.params.k

    async def execute(self, ctx: RunContext) -> None:
        truncated = sum(a.truncated for a in self.articles)
        if truncated:
            ctx.count("articles_truncated", truncated)
        run = self.diversity.start(ctx)

        async def summarize(numbered: Unit) -> list[Record]:
            order, unit = numbered.payload
            record = await run.generate(
                ctx, unit.id, order, lambda draw: self._summarize(ctx, unit, draw), _summary
            )
            return [record]

        units = self.units()
        await ctx.for_each((Unit(u.id, (i, u)) for i, u in enumerate(units)), summarize)

    async def _summarize(self, ctx: RunContext, unit: Unit, draw: Draw) -> Record:
        article: Article = unit.payload[0]
        k: int = unit.payload[1]
        length, style = self.variants[k]
        messages = summary_messages(article.title, article.text, length, style, **draw.variables())
        shared = summary_messages(article.title, article.text, *self.shared)
        engine = ctx.engine
        result = await engine.complete(
            messages, sample=draw.sample(k), max_tokens=self.sampling["max_tokens"]
        )
        summary: str = result.value
        data = {
            "article_id": article.id,
            "title": article.title,
            "article": article.text,
            "summary": summary,
            "length": length,
            "style": style,
            "candidate": k,
            "group": article.id,
            "instruction": messages[-1]["content"],
            "prompt": shared[-1]["content"],
            "response": summary,
            "response_id": response_letter(k),
            "truncated": article.truncated,
            "article_chars": article.chars,
            "source": article.source,
        }
        record = self.record(
            (unit.id, result.key),
            data,
            engine=engine,
            template=templates.load("summarize"),
            results=[result],
            parents=(article.parent,) if article.parent else (),
            max_tokens=self.sampling["max_tokens"],
        )
        if len(summary.split()) >= len(article.text.split()):
            record.status = "flagged"
            record.notes["not_shorter"] = "the summary is not shorter than the article"
            ctx.count("summaries_not_shorter_flagged")
        return record


def _summary(record: Record) -> str:
    return str(record.data["summary"])
