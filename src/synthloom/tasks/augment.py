"""Classification augmentation: label-preserving variations of labelled examples.

Each input example (a text and its label, from a .csv/.jsonl file or an earlier run) gets
`per_example` variations, one model call each, with distinct sample indices and a rewrite
style cycling through `styles` (each example starts at a different style). Every variation is
checked in this order, and each removal is counted and written to failures.jsonl with its cause:

1. near copy of its original (`is_near_copy` at `max_similarity`)     -> near_copy_original
2. label fidelity: the variation is classified into one of the known labels by the same
   model (`model`), a separate judge model (`judge`), or a Naive Bayes classifier trained on
   the originals (`classifier`); a different label is drift      -> label_drift (or flagged)
3. near copy of an earlier kept variation of the same original, in sample order
   (never in completion order, so reruns and resumes keep the same records) -> near_copy_sibling

The output is a training-ready set: the originals (origin "human", unless
`include_originals=False`) and every kept variation, with data {text, label, original_text,
style} and the original's record id as its only parent.

The label check is tested before it is trusted: first it labels up to TRUST_SAMPLE originals
of each label (the model or judge with the same prompt and call as for variations; the
classifier with the original left out of its training). Its agreement per label is counted in
the summary (`check_agreed_<label>` of `check_tested_<label>`) and written to
label_check.json. A label is trusted when the check gives it to more of its own originals
than chance (1 / number of labels) and than it gives it to other labels' originals. A
variation of an untrusted label that the check relabels is kept and flagged
(`flagged_untrusted_check`), never dropped, and the run warns: a check that never answers a
label, or answers it at random, cannot starve that label.

Balancing (`balance=True`): let M be the count of the most frequent label. Every label aims at
M x (1 + per_example) examples, originals included, which is what the majority label reaches
with `per_example` variations each. A label with c originals gets M x (1 + per_example) - c
variations, spread evenly over its examples (earlier examples take the remainder). A label
that kept fewer variations than that is asked again, up to TOP_UP_ROUNDS times: the missing
number divided by the share of its variations kept so far, spread over its examples, each
example's sample numbers continuing (`variations_topped_up`), never more than
`max_per_example` (default 5 x per_example) for one example. After the run the output's label
counts are compared with the input's: when the output is still less balanced (largest over
smallest label count, 5% tolerance), the summary and the manifest carry a warning naming the
starved labels and what removed their variations. Without balancing, a label that kept less
than half the share of its variations that the best-kept label kept is a warning too.

The rewrite prompt shows no example sentence (an example from one domain, a product review,
leaked into rewrites of every other) and asks to keep the original's topic; a rewrite holding
a placeholder ([product_name], <name>) or copying the prompt's text is asked again.

Attribute samplers (`--sample`, e.g. a persona or a register) draw per variation, and real
texts (`--examples`, with the input's text and label columns) are shown for vocabulary and
tone, rotated per call (see `synthloom.diversity`); a variation keeps its draw.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from synthloom import templates
from synthloom.diversity.draws import Diversity, DiversityRun, Draw, annotate
from synthloom.diversity.options import ExamplesOption, SamplersOption
from synthloom.errors import UserError
from synthloom.llm import structured
from synthloom.llm.engine import CallResult, Engine
from synthloom.quality.audit import starved_warnings
from synthloom.quality.dedup import is_near_copy, near_copy_score, normalize
from synthloom.quality.label_classifier import NaiveBayes
from synthloom.quality.leakage import (
    copied_prompt_text,
    placeholders,
    template_phrases,
    template_source,
)
from synthloom.records import Record, human_record
from synthloom.sources import read_inputs
from synthloom.tasks.base import RunContext, Task, Unit
from synthloom.tasks.classify import ask_label, label_schema

StyleName = Literal["paraphrase", "formal", "casual", "shorter", "longer"]
Fidelity = Literal["model", "judge", "classifier", "none"]

# style -> its instruction; the texts live in the prompt template, the names also in
# StyleName (a test checks they agree)
STYLES: Mapping[str, str] = templates.load("augment_variation").constants["styles"]
VARY_TEMPERATURE = 0.8
CHECK_TEMPERATURE = 0.0
SHOTS_PER_LABEL = 2  # labelled originals shown to the model/judge label check
SHOT_CHARS = 300
TRUST_SAMPLE = 20  # originals of each label the label check is tested on before it is trusted
TOP_UP_ROUNDS = 3  # with balance: rounds asking more variations of labels short of the target
TOP_UP_MIN_RATE = 0.25  # the keep rate assumed for a label that kept (almost) nothing
COUNTERS = (
    "variations_asked",  # = kept + the three dropped_* + failed
    "variations_kept",  # flagged ones included
    "variations_failed",  # no usable rewrite or label check; cause in failures.jsonl
    "dropped_near_copy_original",
    "dropped_label_drift",
    "dropped_near_copy_sibling",
    "flagged_label_drift",
    "flagged_untrusted_check",  # relabelled by a check not trusted for that label (kept)
)


class AugmentParams(SamplersOption, ExamplesOption):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(..., description="a .csv/.jsonl file of labelled examples, or a run dir")
    text_column: str = Field("text", description="column holding the example text")
    label_column: str = Field("label", description="column holding the label")
    per_example: int = Field(
        2,
        ge=1,
        description="variations per example (one model call each)",
        json_schema_extra={"flags": ["-n"]},
    )
    styles: list[StyleName] = Field(
        default_factory=lambda: list(STYLES),  # type: ignore[arg-type]
        min_length=1,
        description="rewrite styles, cycled over each example's variations",
    )
    balance: bool = Field(
        False,
        description="ask more variations for minority labels: every label aims at M x (1 + N)"
        " examples, originals included (M = count of the largest label, N = per_example),"
        " spread evenly over its examples and capped by max_per_example",
    )
    max_per_example: int | None = Field(
        None,
        ge=1,
        description="with balance: most variations for one example (default 5 x per_example)",
    )
    fidelity: Fidelity = Field(
        "model",
        description="label check of every variation: the same model, a judge model, a Naive"
        " Bayes classifier trained on the originals, or none",
    )
    on_drift: Literal["drop", "flag"] = Field(
        "drop",
        description="a variation whose checked label differs: drop it (listed in failures.jsonl)"
        ' or keep it with status "flagged"',
    )
    max_similarity: float = Field(
        0.9,
        gt=0,
        le=1,
        description="drop variations at least this similar to their original or to an earlier"
        " kept variation of the same original",
    )
    include_originals: bool = Field(
        True,
        description="write the original examples too, so the output is the whole augmented set",
        json_schema_extra={"negative": "--no-originals"},
    )

    @field_validator("styles", mode="before")
    @classmethod
    def _known(cls, styles: Any) -> Any:
        if isinstance(styles, list):
            unknown = [x for x in styles if x not in STYLES]
            if unknown:
                raise ValueError(
                    f"unknown style {', '.join(map(str, unknown))}; choose from {', '.join(STYLES)}"
                )
        return styles

    @field_validator("styles")
    @classmethod
    def _unique(cls, styles: list[str]) -> list[str]:
        if len(set(styles)) != len(styles):
            raise ValueError("styles repeat")
        return styles

    @model_validator(mode="after")
    def _cap(self) -> AugmentParams:
        if self.max_per_example is not None and self.max_per_example < self.per_example:
            raise ValueError(
                f"max_per_example ({self.max_per_example}) must be at least per_example"
                f" ({self.per_example})"
            )
        return self


@dataclass(frozen=True)
class Example:
    index: int  # position in the input
    line: int
    text: str
    label: str  # the label as a class name (str of the input value)
    value: Any  # the label as written in the input, copied to the output
    source: str
    input_id: str | None = None  # record id when the input is an earlier synthloom run

    def record(self) -> Record:
        """The original passed through as a human record; its id is the variations' parent."""
        data = {"text": self.text, "label": self.value}
        record = human_record(AugmentTask.name, data, self.source, self.line - 1)
        if self.input_id is not None:
            record.notes["input_record"] = self.input_id
        return record

    @property
    def record_id(self) -> str:
        return self.record().id


@dataclass(frozen=True)
class Job:
    example: Example
    k: int  # sample index among this example's variations
    style: str


@dataclass
class Verdict:
    predicted: str | None  # None: not checked (fidelity "none")
    method: str
    results: list[CallResult[Any]] = field(default_factory=list)


def plan_variations(
    labels: Sequence[str],
    per_example: int,
    *,
    balance: bool = False,
    max_per_example: int | None = None,
) -> list[int]:
    """Variations to ask for each example (same order as `labels`); see the module docstring."""
    if not balance:
        return [per_example] * len(labels)
    cap = max_per_example or 5 * per_example
    counts = Counter(labels)
    target = max(counts.values()) * (1 + per_example)
    seen: Counter[str] = Counter()
    plan = []
    for label in labels:
        base, extra = divmod(target - counts[label], counts[label])
        plan.append(min(cap, base + (1 if seen[label] < extra else 0)))
        seen[label] += 1
    return plan


def imbalance(counts: Mapping[str, int], labels: Sequence[str]) -> float:
    """Largest over smallest count among `labels` (inf when one has none)."""
    values = [counts.get(label, 0) for label in labels]
    return max(values) / min(values) if min(values) else float("inf")


def balance_warning(
    labels: Sequence[str],
    before: Mapping[str, int],
    after: Mapping[str, int],
    asked: Mapping[str, int],
    kept: Mapping[str, int],
    lost: Mapping[str, Counter[str]],
    relabelled: Mapping[str, Counter[str]],
    method: str,
) -> str | None:
    """A warning when the output (`after`) is less balanced than the input (`before`), else
    None. Starved labels are those that kept less than half the share of their asked
    variations that the best-served label kept (at least the worst-served one); for each,
    what removed the rest (`lost`: cause -> count; `relabelled`: label the check gave)."""
    ratio_in, ratio_out = imbalance(before, labels), imbalance(after, labels)
    if ratio_out <= ratio_in * 1.05:
        return None
    labels = sorted(labels, key=lambda x: (-before.get(x, 0), x))  # the input's largest first
    share = {x: kept.get(x, 0) / asked[x] if asked.get(x) else 1.0 for x in labels}
    best = max(share.values())
    starved = [x for x in labels if share[x] < best / 2] or [min(labels, key=share.__getitem__)]
    parts, drifted = [], Counter[str]()
    for x in starved:
        causes = ", ".join(f"{c} {n}" for c, n in lost.get(x, Counter()).most_common())
        asked_x = asked.get(x, 0)
        parts.append(f"{x!r} kept {kept.get(x, 0)} of {asked_x} variations ({causes or 'no loss'})")
        drifted.update(relabelled.get(x, Counter()))
    causes = Counter[str]()
    for x in starved:
        causes.update(lost.get(x, Counter()))
    top = causes.most_common(1)[0][0] if causes else None
    if top == "label_drift":
        to = ", ".join(f"{n} as {x!r}" for x, n in drifted.most_common())
        hint = (
            f"the label check (fidelity {method}) relabelled them ({to}); check it on a few"
            " by hand, or use --fidelity classifier or a stronger --fidelity judge model"
        )
    elif top in ("near_copy_original", "near_copy_sibling"):
        hint = "the rewrites were near copies; try other --styles or a higher --max-similarity"
    elif top == "failed":
        hint = "the model gave no usable rewrite; see failures.jsonl"
    else:
        hint = "fewer variations were asked for them than the target (--max-per-example)"

    def show(counts: Mapping[str, int], ratio: float) -> str:
        return ", ".join(f"{x} {counts.get(x, 0)}" for x in labels) + f" (max/min {ratio:.1f})"

    return (
        f"balance made the labels less balanced: input {show(before, ratio_in)}, output"
        f" {show(after, ratio_out)}. Starved: {'; '.join(parts)}. Likely cause: {hint}."
    )


def style_for(index: int, k: int, styles: Sequence[str]) -> str:
    """Style of variation `k` of example `index`: cycling, starting one further per example."""
    return styles[(index + k) % len(styles)]


def load_examples(path: Path, text_column: str, label_column: str) -> list[Example]:
    """Labelled examples with one-line errors naming file:line and column."""
    examples = []
    for i, row in enumerate(read_inputs(path, [text_column, label_column])):
        text, value = row.data[text_column], row.data[label_column]
        where = f"{row.path}:{row.line}"
        if not isinstance(text, str):
            raise UserError(f"{where}: column {text_column!r} must be text, not {_kind(text)}")
        if isinstance(value, dict | list):
            raise UserError(
                f"{where}: column {label_column!r} must be one label, not {_kind(value)}"
            )
        label = str(value).strip()
        examples.append(
            Example(i, row.line, text.strip(), label, value, str(row.path), row.record_id)
        )
    return examples


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def clean_variation(text: str, style: str, labels: Sequence[str] = ()) -> str:
    """The rewrite without wrapping quotes. ValueError (the call is re-asked) if it is empty,
    only a label name, holds an unfilled placeholder ([product_name], <name>) or copies text
    from the prompt (small models do all of these)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    norm = normalize(text)
    if not norm:
        raise ValueError("empty rewrite")
    if norm in {normalize(label) for label in labels}:
        raise ValueError("the rewrite is only a label name")
    if marks := placeholders(text):
        raise ValueError(f"the rewrite holds a placeholder: {', '.join(marks)}")
    if copied := copied_prompt_text(text, _PROMPT_PHRASES):
        raise ValueError(f"the rewrite copies the prompt: {copied!r}")
    return text


_PROMPT_PHRASES = template_phrases(template_source("augment_variation"))


class AugmentTask(Task):
    """Label-preserving variations of labelled examples for classification training.

    Each variation is dropped if it is a near copy of its original or of an earlier kept
    variation, and label-checked (--fidelity). Every removal is counted in the summary.
    """

    name = "augment"
    Params = AugmentParams
    optional_roles = {"judge": "checks labels with --fidelity judge"}
    sampling: dict[str, Any] = {"max_tokens": None}  # computed from the longest input
    dependent_units = (
        "it keeps each original's variations in sample order (a near copy of an earlier kept"
        " one is dropped) and balances labels in rounds"
    )

    @classmethod
    def spread_texts(cls, data: dict[str, Any]) -> list[str]:
        return [data["text"]]  # the variation (originals are human records: not counted)

    def __init__(self, params: AugmentParams) -> None:
        self.params = params
        self.examples = load_examples(params.input, params.text_column, params.label_column)
        self.diversity = Diversity(
            params, example_columns=((params.text_column,), (params.label_column,))
        )
        self._order: dict[str, int] = {}  # variation unit id -> its place, for its draw
        self.labels = sorted({e.label for e in self.examples})
        if params.balance and len(self.labels) < 2:
            raise UserError(
                f"{params.input}: balancing needs at least two labels, but column"
                f" {params.label_column!r} only has {self.labels[0]!r}; drop --balance"
                " or choose another --label-column"
            )
        self.plan = plan_variations(
            [e.label for e in self.examples],
            params.per_example,
            balance=params.balance,
            max_per_example=params.max_per_example,
        )
        longest = max(len(e.text) for e in self.examples)
        self.sampling = {"max_tokens": max(128, longest // 2 + 64)}  # from the longest input
        self.variation_schema = structured.schema(
            "Variation", text=(str, Field(min_length=1, max_length=2 * longest + 80))
        )
        self.label_schema = label_schema(tuple(self.labels))
        self.classifier = (
            NaiveBayes(fit_prior=False).fit(
                [e.text for e in self.examples], [e.label for e in self.examples]
            )
            if params.fidelity == "classifier"
            else None
        )

    def total(self) -> int:
        return sum(self.plan)

    def engine_roles(self) -> tuple[str, ...]:
        return ("default", "judge") if self.params.fidelity == "judge" else ("default",)

    def unused_role_hint(self, role: str) -> str:
        return "the judge model options need --fidelity judge (in a recipe: fidelity: judge)"

    def units(self) -> list[Unit]:
        styles = self.params.styles
        return [
            Unit(f"line{e.line}:v{k}", Job(e, k, style_for(e.index, k, styles)))
            for e, n in zip(self.examples, self.plan, strict=True)
            for k in range(n)
        ]

    # -- the run ------------------------------------------------------------------------
    async def execute(self, ctx: RunContext) -> None:
        self.lost: defaultdict[str, Counter[str]] = defaultdict(Counter)  # label -> cause -> n
        self.relabelled: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for name in COUNTERS:
            ctx.count(name, 0)  # every counter in the summary, zeros included
        self.run: DiversityRun = self.diversity.start(ctx)
        self.trusted = await self._test_check(ctx)
        kept: dict[int, list[tuple[str, str]]] = defaultdict(list)  # example -> (unit, text)
        variations: dict[int, list[Record]] = defaultdict(list)
        asked = list(self.plan)  # variations asked of each example so far
        units = self.units()
        asked_by_label: Counter[str] = Counter()
        for round_ in range(TOP_UP_ROUNDS + 1):
            if not units:
                break
            ctx.count("variations_asked", len(units))
            if round_:
                ctx.count("variations_topped_up", len(units))
            asked_by_label.update(unit.payload.example.label for unit in units)
            for unit in units:
                self._order.setdefault(unit.id, len(self._order))
            answers = await ctx.gather(units, lambda unit: self._vary(ctx.engine, unit))
            candidates = self._unlike_originals(ctx, units, answers)
            verdicts = await self._check_labels(ctx, candidates)
            self._keep(ctx, candidates, verdicts, kept, variations)
            units = self._top_up(asked, variations) if self.params.balance else []
        for example in self.examples:  # each original, then its variations in sample order
            if self.params.include_originals:
                ctx.emit(example.record())
            for record in variations[example.index]:
                ctx.emit(record)
        if self.params.include_originals:
            ctx.count("originals_included", len(self.examples))
        self._check_balance(ctx, asked_by_label, variations)

    def _variation_target(self) -> dict[str, int]:
        """With balance: the variations each label aims at (see the module docstring)."""
        counts = Counter(e.label for e in self.examples)
        total = max(counts.values()) * (1 + self.params.per_example)
        return {label: total - n for label, n in counts.items()}

    def _top_up(self, asked: list[int], variations: dict[int, list[Record]]) -> list[Unit]:
        """More variations for the labels that kept fewer than their target: the missing
        number divided by the share the label kept so far (at least TOP_UP_MIN_RATE), spread
        over its examples in input order, never more than max_per_example for one example.
        The new units continue each example's sample numbers, so a rerun asks the same."""
        cap = self.params.max_per_example or 5 * self.params.per_example
        styles = self.params.styles
        target = self._variation_target()
        units: list[Unit] = []
        for label in self.labels:
            examples = [e for e in self.examples if e.label == label]
            have = sum(len(variations[e.index]) for e in examples)
            missing = target[label] - have
            if missing <= 0:
                continue
            tried = sum(asked[e.index] for e in examples)
            rate = max(TOP_UP_MIN_RATE, have / tried if tried else 1.0)
            need = math.ceil(missing / rate)
            while need > 0:
                room = [e for e in examples if asked[e.index] < cap]
                if not room:
                    break
                for e in room:
                    if need == 0:
                        break
                    k = asked[e.index]
                    units.append(
                        Unit(f"line{e.line}:v{k}", Job(e, k, style_for(e.index, k, styles)))
                    )
                    asked[e.index] += 1
                    need -= 1
        return units

    def _check_balance(
        self, ctx: RunContext, asked: Counter[str], variations: dict[int, list[Record]]
    ) -> None:
        """Warn when balancing left the output less balanced than the input, or (without
        balance) when a label kept much less of what was asked than the others."""
        before = Counter(e.label for e in self.examples)
        kept = Counter({e.label: 0 for e in self.examples})
        for example in self.examples:
            kept[example.label] += len(variations[example.index])
        if not self.params.balance:
            for warning in starved_warnings("augment", "label", asked, kept, self.lost):
                ctx.warn(warning)
            return
        after = kept + before if self.params.include_originals else kept
        args = (self.labels, before, after, asked, kept, self.lost, self.relabelled)
        if warning := balance_warning(*args, self.params.fidelity):
            ctx.warn(warning)

    # -- is the label check worth trusting? ----------------------------------------------
    async def _test_check(self, ctx: RunContext) -> dict[str, bool]:
        """Label up to TRUST_SAMPLE originals of each label with the label check (the same
        prompt and call as for variations; the classifier leaves the original out of its
        training) and compare with their labels. A label is trusted when the check gives it
        to more of its own originals than chance (1 / number of labels) and than it gives it
        to the others' originals. The agreement is counted (`check_agreed_<label>` of
        `check_tested_<label>`), written to label_check.json, and an untrusted label is a
        warning: its variations the check relabels are flagged, never dropped."""
        method = self.params.fidelity
        if method == "none" or len(self.labels) < 2:
            return {label: True for label in self.labels}
        tested = [
            e
            for label in self.labels
            for e in [x for x in self.examples if x.label == label][:TRUST_SAMPLE]
        ]
        if self.classifier is not None:
            predicted: list[str | None] = [self._loo_predict(e) for e in tested]
        else:
            units = [Unit(f"line{e.line}:trust", (Job(e, -1, ""), e.text)) for e in tested]
            ctx.set_total(len(units), "testing the label check on the originals")
            verdicts = await ctx.gather(units, lambda unit: self._ask(ctx, unit, method))
            predicted = [v.predicted if v is not None else None for v in verdicts]
        return self._trust(ctx, tested, predicted, method)

    def _loo_predict(self, example: Example) -> str:
        others = [e for e in self.examples if e.index != example.index]
        if len({e.label for e in others}) < 2:
            return example.label
        clf = NaiveBayes(fit_prior=False).fit([e.text for e in others], [e.label for e in others])
        return clf.predict(example.text)

    def _trust(
        self, ctx: RunContext, tested: list[Example], predicted: list[str | None], method: str
    ) -> dict[str, bool]:
        answered = [(e.label, p) for e, p in zip(tested, predicted, strict=True) if p is not None]
        chance = 1 / len(self.labels)
        table: dict[str, Any] = {}
        trusted: dict[str, bool] = {}
        for label in self.labels:
            own = [p for t, p in answered if t == label]
            others = [p for t, p in answered if t != label]
            agreed = sum(p == label for p in own)
            agreement = agreed / len(own) if own else 0.0
            given_to_others = sum(p == label for p in others) / len(others) if others else 0.0
            trusted[label] = bool(own) and agreement > max(chance, given_to_others)
            table[label] = {
                "tested": len(own),
                "agreed": agreed,
                "agreement": round(agreement, 3),
                "given_to_other_labels": round(given_to_others, 3),
                "said": dict(Counter(p for p in own if p is not None)),
                "trusted": trusted[label],
            }
            ctx.count(f"check_tested_{label}", len(own))
            ctx.count(f"check_agreed_{label}", agreed)
            if not trusted[label]:
                said = ", ".join(f"{x} {n}" for x, n in Counter(own).most_common()) or "nothing"
                ctx.warn(
                    f"the label check (fidelity {method}) is not trusted for {label!r}: tested on"
                    f" {len(own)} of its originals it agreed on {agreed} ({agreement:.0%}; it"
                    f" said {said}), no better than chance ({chance:.0%}) or than it says"
                    f" {label!r} of other labels' originals ({given_to_others:.0%}). Its"
                    f" variations that the check relabels are flagged for review, not dropped;"
                    f" try --fidelity classifier or a stronger --fidelity judge model"
                )
        report = {"method": method, "chance": round(chance, 3), "labels": table}
        ctx.write_artifact("label_check.json", json.dumps(report, indent=2, ensure_ascii=True))
        return trusted

    def _unlike_originals(
        self, ctx: RunContext, units: list[Unit], answers: list[CallResult[Any] | None]
    ) -> list[tuple[Unit, CallResult[Any]]]:
        """The answered variations that are not near copies of their original."""
        candidates = []
        for unit, answer in zip(units, answers, strict=True):
            original = unit.payload.example.text
            if answer is None:
                ctx.count("variations_failed")  # the runner wrote the failure and its cause
                self.lost[unit.payload.example.label]["failed"] += 1
            elif self._near(answer.value, original):
                score = near_copy_score(answer.value, original)
                self._drop(ctx, unit, answer.value, "near_copy_original", f"similarity {score:.2f}")
            else:
                candidates.append((unit, answer))
        return candidates

    def _keep(
        self,
        ctx: RunContext,
        candidates: list[tuple[Unit, CallResult[Any]]],
        verdicts: list[Verdict | None],
        kept: dict[int, list[tuple[str, str]]],
        records: dict[int, list[Record]],
    ) -> None:
        """Add to `records` (by example index) the variations that pass the label check and
        are not near copies of an earlier kept variation of the same original (`kept`: unit id
        and text of each kept one). Candidates come in unit order (example, then sample), so
        the outcome never depends on completion order."""
        for (unit, answer), verdict in zip(candidates, verdicts, strict=True):
            job: Job = unit.payload
            example, text = job.example, answer.value
            if verdict is None:
                ctx.count("variations_failed")
                self.lost[example.label]["failed"] += 1
                continue
            drift = verdict.predicted is not None and verdict.predicted != example.label
            if drift and self.params.on_drift == "drop" and self.trusted[example.label]:
                detail = f"label {example.label!r}, {verdict.method} says {verdict.predicted!r}"
                self.relabelled[example.label][str(verdict.predicted)] += 1
                self._drop(ctx, unit, text, "label_drift", detail)
                continue
            sibling = next(
                (uid for uid, other in kept[example.index] if self._near(text, other)), None
            )
            if sibling is not None:
                self._drop(ctx, unit, text, "near_copy_sibling", f"near copy of {sibling}")
                continue
            kept[example.index].append((unit.id, text))
            records[example.index].append(self._record(ctx, unit, answer, verdict, drift))
            ctx.count("variations_kept")

    def _near(self, a: str, b: str) -> bool:
        return is_near_copy(a, b, self.params.max_similarity)

    def _draw(self, unit: Unit) -> Draw:
        """The variation's draw (attributes, real examples): the same each time it is asked."""
        return self.run.draw(unit.id, self._order[unit.id])

    async def _vary(self, engine: Engine, unit: Unit) -> CallResult[Any]:
        job: Job = unit.payload
        variables = self._draw(unit).variables()
        if "examples" in variables:  # the input's columns, named as the template reads them
            text, label = self.params.text_column, self.params.label_column
            variables["examples"] = [
                {"text": x[text], "label": x.get(label)} for x in variables["examples"]
            ]
        messages = templates.load("augment_variation").messages(
            style=job.style, text=job.example.text, label=job.example.label, **variables
        )
        return await engine.complete(
            messages,
            schema=self.variation_schema,
            validate=lambda v: clean_variation(v.text, job.style, self.labels),
            sample=job.k,
            **self.sampling,
            temperature=VARY_TEMPERATURE,
        )

    async def _check_labels(
        self, ctx: RunContext, candidates: list[tuple[Unit, CallResult[Any]]]
    ) -> list[Verdict | None]:
        method = self.params.fidelity
        if method == "none":
            return [Verdict(None, method) for _ in candidates]
        if len(self.labels) == 1:  # nothing to tell apart: no calls
            return [Verdict(self.labels[0], method) for _ in candidates]
        if self.classifier is not None:
            clf = self.classifier
            return [Verdict(clf.predict(answer.value), method) for _, answer in candidates]
        checks = [
            Unit(f"{unit.id}:check", (unit.payload, answer.value)) for unit, answer in candidates
        ]
        ctx.set_total(len(checks), "label checks")
        return await ctx.gather(checks, lambda unit: self._ask(ctx, unit, method))

    async def _ask(self, ctx: RunContext, unit: Unit, method: str) -> Verdict:
        """The model or judge label check of one text (`unit.payload`: its job and text),
        shown labelled originals other than its own."""
        job, text = unit.payload
        engine = ctx.engines["judge"] if method == "judge" else ctx.engine
        messages = templates.load("augment_classify").messages(
            labels=self.labels, examples=self._shots(job.example.index), text=text
        )
        label, _, result = await ask_label(
            engine,
            messages,
            self.labels,
            confidence=False,
            max_tokens=16 + 4 * max(len(x) for x in self.labels),
            temperature=CHECK_TEMPERATURE,
        )
        return Verdict(label, method, [result])

    def _shots(self, exclude: int) -> list[dict[str, str]]:
        """Labelled originals shown to the label check: the first few of each label, in input
        order, never the variation's own original (it would make every check pass)."""
        shots = []
        for label in self.labels:
            picked = [e for e in self.examples if e.label == label and e.index != exclude]
            shots += [
                {"text": e.text[:SHOT_CHARS], "label": label} for e in picked[:SHOTS_PER_LABEL]
            ]
        return shots

    # -- records ------------------------------------------------------------------------
    def _drop(self, ctx: RunContext, unit: Unit, text: str, cause: str, detail: str) -> None:
        job: Job = unit.payload
        ctx.count(f"dropped_{cause}")
        self.lost[job.example.label][cause] += 1
        ctx.fail(unit.id, cause, detail, text=text, original=job.example.record_id, style=job.style)

    def _record(
        self,
        ctx: RunContext,
        unit: Unit,
        answer: CallResult[Any],
        verdict: Verdict,
        drift: bool,
    ) -> Record:
        job: Job = unit.payload
        example = job.example
        results = [answer] + (verdict.results if verdict.method == "model" else [])
        notes: dict[str, Any] = {"source": {"file": example.source, "line": example.line}}
        if verdict.predicted is not None:
            notes["fidelity"] = {"method": verdict.method, "predicted": verdict.predicted}
        if verdict.method == "judge":
            judge = ctx.engines["judge"].backend
            notes["fidelity"]["judge"] = {"backend": judge.kind, "model": judge.model}
            notes["fidelity"]["call_keys"] = [k for r in verdict.results for k in r.keys]
        data = {
            "text": answer.value,
            "label": example.value,
            "original_text": example.text,
            "style": job.style,
        }
        record = self.record(
            (unit.id, answer.key),
            data,
            engine=ctx.engine,
            template=templates.load("augment_variation"),
            results=results,
            parents=(example.record_id,),
            notes=notes,
            **self.sampling,
            temperature=VARY_TEMPERATURE,
        )
        if drift:
            record.status = "flagged"
            record.notes["label_drift"] = {
                "expected": example.label,
                "predicted": verdict.predicted,
            }
            ctx.count("flagged_label_drift")
            if not self.trusted[example.label]:
                record.notes["label_drift"]["check_trusted"] = False
                ctx.count("flagged_untrusted_check")
        return annotate(record, self._draw(unit))
