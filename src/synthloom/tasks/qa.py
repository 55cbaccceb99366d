"""Q&A pairs: from a topic (customer-service style) or grounded in document chunks.

With a topic tree (`--topics`), the n pairs are spread over its leaves and the leaf is the
question's topic; attribute samplers (`--sample`), real examples (`--examples`, columns
question and answer) and dedup while generating (`--max-similar`, on the question) apply to
both kinds (see `synthloom.diversity`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthloom import templates
from synthloom.diversity.draws import Diversity, Draw
from synthloom.diversity.options import (
    ExamplesOption,
    MaxSimilarOption,
    SamplersOption,
    TopicsOption,
)
from synthloom.quality.text import normalize  # not .dedup: no numpy on start-up
from synthloom.records import Record, Turn
from synthloom.tasks.base import RunContext, Task, Unit

if TYPE_CHECKING:
    from synthloom.sources import Chunk


class QAPair(BaseModel):
    question: str = Field(min_length=8, max_length=400)
    answer: str = Field(min_length=8, max_length=1200)


class QAParams(TopicsOption, SamplersOption, ExamplesOption, MaxSimilarOption):
    model_config = ConfigDict(extra="forbid")

    topic: str | None = Field(
        None, description='what the questions are about, e.g. "product returns"'
    )
    from_docs: Path | None = Field(None, description="a .txt/.md file or a directory of them")
    n: int = Field(
        10,
        ge=1,
        description="pairs for the topic, or per document chunk",
        json_schema_extra={"flags": ["-n"], "flag": "--num"},
    )
    chunk_size: int = Field(1500, ge=200, description="characters per document chunk")
    chunk_overlap: int = Field(200, ge=0, description="characters shared by neighbouring chunks")

    @model_validator(mode="after")
    def _one_source(self) -> QAParams:
        if self.topics is not None and (self.topic or self.from_docs):
            raise ValueError(
                "give topics (--topics, a tree: its leaves are the topics) or"
                f" {'topic (--topic)' if self.topic else 'from_docs (--from-docs)'}, not both"
            )
        if self.topics is None and bool(self.topic) == bool(self.from_docs):
            raise ValueError("give exactly one of topic (--topic) or from_docs (--from-docs)")
        return self


class QATask(Task):
    """Question/answer pairs about a topic, or grounded in documents."""

    name = "qa"
    Params = QAParams
    sampling = {"max_tokens": 384}
    growable = ("n",)  # raising -n on a run adds pairs; the first ones are kept
    # unless --max-similar (below); exact repeats are flagged in the driver (for_each's then)
    independent_units = True

    @classmethod
    def spread_texts(cls, data: dict[str, Any]) -> list[str]:
        return [data["question"]]

    @staticmethod
    def turns(data: dict[str, Any]) -> list[Turn]:
        """A grounded pair teaches answering from its chunk; a topic pair, the bare question."""
        if "context" in data:
            return [Turn(f"{data['context']}\n\nQuestion: {data['question']}", data["answer"])]
        return [Turn(data["question"], data["answer"])]

    def __init__(self, params: QAParams) -> None:
        self.params = params
        self.topic = params.topic
        self.n = params.n
        self.docs = params.from_docs
        self.chunks: list[Chunk] = []
        if self.docs is not None:
            from synthloom.sources import load_documents  # documents: not on --topic's start-up

            self.chunks = load_documents(self.docs, params.chunk_size, params.chunk_overlap)
        self._seen: dict[str, str] = {}  # normalized question -> id of the first record
        self.diversity = Diversity(params, example_columns=(("question",), ("answer",)))
        if self.diversity.max_similar:
            self.resume_by_unit = False  # dedup in unit order needs every unit's question
            self.independent_units = False
            self.dependent_units = (
                "--max-similar compares each question with those of the units before it"
            )

    def units(self) -> list[Unit]:
        if self.docs is None:
            return [Unit(f"topic:{i}", i) for i in range(self.n)]
        return [
            Unit(f"{c.file}#chunk{c.index}:{k}", (c, k)) for c in self.chunks for k in range(self.n)
        ]

    def total(self) -> int:
        return len(self.chunks) * self.n if self.docs is not None else self.n

    def size_detail(self) -> str | None:
        """Where the number of calls comes from (shown before a large job starts)."""
        if self.docs is None:
            return None
        return f"{len(self.chunks):,} chunks x {self.n}"

    async def execute(self, ctx: RunContext) -> None:
        run = self.diversity.start(ctx)

        async def pair(numbered: Unit) -> list[Record]:
            order, unit = numbered.payload
            record = await run.generate(
                ctx,
                unit.id,
                order,
                lambda draw: self._pair(ctx, unit, draw),
                lambda r: str(r.data["question"]),
            )
            return [record]

        def flag_repeats(records: list[Record]) -> None:
            for record in records:
                self._flag_repeat(ctx, record)

        units = self.units()
        numbered = (Unit(u.id, (i, u)) for i, u in enumerate(units))
        await ctx.for_each(numbered, pair, then=flag_repeats)

    @staticmethod
    def _check(pair: QAPair) -> None:
        if normalize(pair.question) == normalize(pair.answer):
            raise ValueError("question and answer are the same text")

    async def _pair(self, ctx: RunContext, unit: Unit, draw: Draw) -> Record:
        engine = ctx.engine
        if self.docs is None:
            i = unit.payload
            template = templates.load("qa_topic")
            sample = draw.sample(i)
            # the template reads `sample` only as angles[sample % len(angles)]: passing that
            # remainder gives the same prompt, and ten prompts are rendered once each
            # (Template.messages remembers them), not once per unit (issue 12)
            angle = sample % len(template.constants["angles"])
            messages = template.messages(
                **{"topic": self.topic, "sample": angle, **draw.variables()}
            )
            extra: dict[str, Any] = {"topic": self.topic}
        else:
            chunk, k = unit.payload
            template = templates.load("qa_document")
            sample = draw.sample(k)
            messages = template.messages(
                source=Path(chunk.file).name, chunk=chunk.text, sample=sample, **draw.variables()
            )
            extra = {
                "context": chunk.text,
                "source": {
                    "file": chunk.file,
                    "chunk": chunk.index,
                    "start": chunk.start,
                    "end": chunk.end,
                },
            }
        result = await engine.complete(
            messages, schema=QAPair, validate=self._check, sample=sample, **self.sampling
        )
        pair: QAPair = result.value
        return self.record(
            (unit.id, result.key),
            {"question": pair.question.strip(), "answer": pair.answer.strip(), **extra},
            engine=engine,
            template=template,
            results=[result],
            **self.sampling,
        )

    def _flag_repeat(self, ctx: RunContext, record: Record) -> None:
        # An exact repeat of an earlier question is kept but flagged, never silently dropped;
        # `synthloom dedup` removes them. (Rejecting it here would make resume order-dependent;
        # --max-similar asks again instead, in unit order.) Run in the driver, as units finish
        # (for_each's then): one set of questions for the run, wherever the units ran.
        first = self._seen.setdefault(normalize(record.data["question"]), record.id)
        if first != record.id:
            record.status = "flagged"
            record.notes["duplicate_of"] = first
            ctx.count("duplicate_questions_flagged")
