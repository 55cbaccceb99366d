"""Classification: label each text of a file with one label of a fixed set.

The model answers through structured output whose `label` is a `Literal` of the label set,
so an answer outside the set does not parse: it is asked again (new seed) and, if it stays
outside, the row is reported in failures.jsonl (cause `invalid_output`), never written.

Confidence: the call asks for token log-probabilities (`logprobs`, `top_logprobs`). When the
server returns them, `confidence` is the chosen label's share of the probability among the
allowed labels, read where the label is written in the JSON answer: at each token of the label
value, p(chosen token) / (p(chosen token) + p(listed alternatives that lead only to other
labels)). Servers report the model's probabilities before constrained decoding, so this
renormalisation over the label set is what makes the number a confidence in the label. An
allowed label that the server did not list among the top alternatives is counted at the
smallest listed probability, so the confidence errs low, never high. Without log-probabilities
(a server that ignores the option, or `confidence: false`) records have no `confidence`.

`label_schema`, `ask_label` and `classify_text` are also the label check other tasks can use.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloom import templates
from synthloom.errors import UserError
from synthloom.llm import structured
from synthloom.records import Record
from synthloom.sources import InputRow, Inputs
from synthloom.tasks.base import Task, Unit

if TYPE_CHECKING:
    from synthloom.llm.engine import CallResult, Engine

TOP_LOGPROBS = 10  # alternatives asked per token (OpenAI allows up to 20)


class ClassifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(..., description="texts to label: a .jsonl/.csv file or a run directory")
    labels: list[str] = Field(
        ..., min_length=2, description="the label set; each text gets exactly one of them"
    )
    text_column: str = Field("text", description="the column holding the text")
    guidelines: str | None = Field(
        None, description="what the labels mean (definitions, edge cases), shown to the model"
    )
    label_column: str | None = Field(
        None,
        description="a column holding an existing label: kept as original_label and counted"
        " as agree/disagree",
    )
    confidence: bool = Field(
        True,
        description="ask for token log-probabilities and record the model's confidence in"
        " each label (turn off for servers that refuse logprobs)",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        labels = [label.strip() for label in labels]
        if not all(labels):
            raise ValueError("a label is empty")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels repeat: {', '.join(repeated)}")
        return labels


@cache
def label_schema(labels: tuple[str, ...]) -> type[BaseModel]:
    """The structured answer {"label": one of `labels`} (in the order given)."""
    return structured.schema("LabelChoice", label=(structured.one_of(labels), ...))


async def ask_label(
    engine: Engine,
    messages: list[dict[str, str]],
    labels: Sequence[str],
    *,
    confidence: bool = True,
    sample: int = 0,
    **sampling: Any,
) -> tuple[str, float | None, CallResult[Any]]:
    """Ask `engine` for one label of `labels`: (label, confidence or None, the call).
    With `confidence=False` the request is the plain structured call (no logprobs asked)."""
    extra: dict[str, Any] = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if confidence else {}
    result = await engine.complete(
        messages, schema=label_schema(tuple(labels)), sample=sample, **sampling, **extra
    )
    label = str(result.value.label)
    completion = result.completion
    score = label_confidence(completion.text, completion.logprobs, label, labels)
    return label, (score if confidence else None), result


async def classify_text(
    engine: Engine,
    text: str,
    labels: Sequence[str],
    *,
    guidelines: str | None = None,
    confidence: bool = True,
    sample: int = 0,
    **sampling: Any,
) -> tuple[str, float | None, CallResult[Any]]:
    """Label `text` with the `classify` prompt: (label, confidence or None, the call)."""
    messages = templates.load("classify").messages(
        text=text, labels=list(labels), guidelines=guidelines
    )
    return await ask_label(
        engine, messages, labels, confidence=confidence, sample=sample, **sampling
    )


def label_confidence(
    text: str, logprobs: list[dict[str, Any]] | None, label: str, labels: Sequence[str]
) -> float | None:
    """The chosen label's share of probability among `labels` (see the module docstring),
    or None when the answer has no usable token log-probabilities."""
    if not logprobs or "".join(t["token"] for t in logprobs) != text:
        return None
    found = _label_span(text, label)
    if found is None:
        return None
    start, spelled = found
    spell = _spelled if spelled == _spelled(label) else (lambda x: json.dumps(x)[1:-1])
    others = [spell(other) for other in labels if other != label]
    score, offset = 1.0, 0
    for token in logprobs:
        begin, offset = offset, offset + len(token["token"])
        if offset <= start or begin >= start + len(spelled):
            continue  # not a token of the label value
        lead = text[begin:start] if begin < start else ""  # e.g. the opening quote
        prefix = spelled[: max(0, begin - start)]  # the value written before this token
        live = {o for o in others if o.startswith(prefix)}  # labels still possible here
        if not live:
            break  # the label is decided; nothing later changes it
        chosen = prefix + token["token"][len(lead) :]
        covered = {o for o in live if _fits(chosen, o)}  # labels sharing the chosen token
        if not token["top_logprobs"]:
            return None  # no alternatives listed: the share cannot be told
        other_mass = 0.0
        for alt in token["top_logprobs"]:
            if alt["token"] == token["token"] or not alt["token"].startswith(lead):
                continue
            written = prefix + alt["token"][len(lead) :]
            if not written:
                continue  # e.g. only the opening quote: it could lead to any label
            fits = {o for o in live if _fits(written, o)}
            covered |= fits
            if fits and not _fits(written, spelled):
                other_mass += math.exp(alt["logprob"])
        floor = min(math.exp(a["logprob"]) for a in token["top_logprobs"])
        other_mass += floor * len(live - covered)  # unlisted labels: at most the smallest
        p = math.exp(token["logprob"])
        score *= p / (p + other_mass) if p + other_mass > 0 else 0.0
    return score


def _spelled(label: str) -> str:
    """How a label is written inside a JSON string."""
    return json.dumps(label, ensure_ascii=False)[1:-1]


def _fits(written: str, spelled: str) -> bool:
    """`written` can still become the JSON string `spelled` (or already closed it)."""
    return spelled.startswith(written) or written.startswith(spelled + '"')


def _label_span(text: str, label: str) -> tuple[int, str] | None:
    """Where the value of "label" starts in the answer, and how it is spelled there."""
    match = re.search(r'"label"\s*:\s*"', text)
    if match is None:
        return None
    start = match.end()
    for spelled in dict.fromkeys((_spelled(label), json.dumps(label)[1:-1])):
        if text.startswith(spelled + '"', start):
            return start, spelled
    return None


class ClassifyTask(Task):
    """Label each text of a file with one label of a fixed set (structured output), with the
    model's confidence when the backend gives token log-probabilities."""

    name = "classify"
    Params = ClassifyParams
    sampling: dict[str, Any] = {"max_tokens": None, "temperature": 0.0}  # tokens: from labels
    independent_units = True  # each text labelled on its own

    def __init__(self, params: ClassifyParams) -> None:
        self.params = params
        columns = [params.text_column] + ([params.label_column] if params.label_column else [])
        # checked in full now, then read again as the units are made: constant memory
        self.rows = Inputs(params.input, columns, check=self._check_row)
        longest = max(len(_spelled(label)) for label in params.labels)
        self.sampling = {**type(self).sampling, "max_tokens": 16 + 4 * longest}

    def _check_row(self, row: InputRow) -> None:
        params = self.params
        if not isinstance(row.data[params.text_column], str):
            raise UserError(
                f"{row.path}:{row.line}: column {params.text_column!r} is not text;"
                " choose the text column with --text-column"
            )
        if params.label_column and isinstance(row.data[params.label_column], dict | list):
            raise UserError(
                f"{row.path}:{row.line}: column {params.label_column!r} is not one label;"
                " choose the label column with --label-column"
            )

    def units(self) -> Iterator[Unit]:
        """One unit per row, made as the run takes them (the input is streamed)."""
        for row in self.rows:
            yield Unit(row.record_id or f"line{row.line}", row)

    def total(self) -> int:
        return len(self.rows)

    async def execute(self, ctx: Any) -> None:
        if self.params.label_column:
            ctx.count("agree", 0)
            ctx.count("disagree", 0)
        await ctx.for_each(self.units(), lambda unit: self._classify(ctx, unit))

    async def _classify(self, ctx: Any, unit: Unit) -> list[Record]:
        row: InputRow = unit.payload
        params = self.params
        text = row.data[params.text_column].strip()
        label, confidence, result = await classify_text(
            ctx.engine,
            text,
            params.labels,
            guidelines=params.guidelines,
            confidence=params.confidence,
            **self.sampling,
        )
        data: dict[str, Any] = {"text": text, "label": label}
        if confidence is not None:
            data["confidence"] = round(confidence, 4)
        elif params.confidence:
            ctx.count("without_confidence")  # the backend gave no log-probabilities
        if params.label_column:
            original = row.data[params.label_column]
            data["original_label"] = original
            ctx.count("agree" if str(original).strip() == label else "disagree")
        record = self.record(
            (unit.id, result.key),
            data,
            engine=ctx.engine,
            template=templates.load("classify"),
            results=[result],
            parents=(row.record_id,) if row.record_id else (),
            **self.sampling,
        )
        record.notes["source"] = {"file": str(row.path), "line": row.line}
        return [record]
