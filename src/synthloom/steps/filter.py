"""`filter`: drop records that fail heuristic quality rules (a curation step, no model).

Rules, in this order (the first that fails names the removal): flagged (unless
--include-flagged), empty, cut_off, too_short / too_long, refusal, echo (a near copy of the
record's prompt), blocklist, language, placeholder / copied_prompt (template leakage, when
asked), low_score / no_score (a judge score threshold). Each removal is counted
(`dropped_<rule>`) and written to removed.jsonl with its detail; groups of the watched fields
(e.g. label) that the filter empties or starves are warnings on screen and in stage.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthloom.errors import UserError
from synthloom.quality import filters as rules
from synthloom.quality.filter_run import (
    PROMPT_FIELDS,
    TEXT_FIELDS,
    Stage,
    dedup_target,
    pick_field,
    stage_files,
)
from synthloom.quality.leakage import (
    copied_prompt_text,
    placeholders,
    template_phrases,
    template_source,
)
from synthloom.runs import read_records
from synthloom.sources import read_text
from synthloom.steps.base import Step
from synthloom.terminal import visible


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="a run directory or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "SOURCE"},
    )
    field: str | None = Field(
        None,
        description="the data field to check (default: the first of text, response, answer,"
        " summary, completion, output, instruction, question, prompt)",
    )
    prompt_field: str | None = Field(
        None,
        description="the field holding the record's prompt, for the echo check (default: the"
        " first of prompt, question, instruction, original_text, input other than --field)",
    )
    min_words: int = Field(1, ge=0, description="drop texts of fewer words")
    max_words: int | None = Field(None, ge=1, description="drop texts of more words")
    min_chars: int = Field(0, ge=0, description="drop texts of fewer characters")
    max_chars: int | None = Field(None, ge=1, description="drop texts of more characters")
    blocklist: list[str] = Field(
        default_factory=list,
        description="words or phrases that drop a text (whole words, any case)",
    )
    blocklist_file: Path | None = Field(
        None, description="a file of blocked words or phrases, one per line (# comments)"
    )
    refusals: bool = Field(
        True,
        description='drop refusals and apologies ("As an AI...", "I\'m sorry, but I can\'t")',
        json_schema_extra={"negative": "--keep-refusals"},
    )
    echo: bool = Field(
        True,
        description="drop answers that only repeat their prompt",
        json_schema_extra={"negative": "--keep-echoes"},
    )
    cut_off: bool = Field(
        True,
        description="drop answers the model cut off at its token limit (finish reason length)",
        json_schema_extra={"negative": "--keep-cut-off"},
    )
    language: str | None = Field(
        None,
        description="keep only this language (ISO 639-1, e.g. en): a text confidently in"
        f" another is dropped; texts under {rules.LANGUAGE_MIN_WORDS} words are not judged",
    )
    leakage: bool = Field(
        False,
        description="drop template leakage: unfilled placeholders ([product_name], <name>) and"
        " text copied from the record's own prompt",
    )
    min_score: float | None = Field(
        None, description="drop records whose judge score (--score-field) is below this"
    )
    score_field: str = Field(
        "score", description="the data field holding the judge score (see `synthloom score`)"
    )
    include_flagged: bool = Field(
        False, description="check flagged records too (by default they are removed as flagged)"
    )
    watch: list[str] = Field(
        default_factory=lambda: ["label"],
        description="data fields whose groups are watched: a group the filters empty or"
        " starve is a warning",
    )
    out: Path | None = Field(
        None,
        description="output: a .jsonl file, or a directory that gets records.jsonl (in a"
        " recipe: the step's directory unless given); removed.jsonl and stage.json beside it",
        json_schema_extra={"required": True},
    )

    @model_validator(mode="after")
    def _bounds(self) -> FilterParams:
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")
        if self.language is not None and not (
            len(self.language) == 2 and self.language.isalpha() and self.language.islower()
        ):
            raise ValueError(f"language {self.language!r}: give a two-letter code such as en")
        return self


class Filter(Step):
    """Drop records that fail quality rules: length, blocklist, refusals, language, cut-off,
    empty or echoed answers, template leakage, judge score; counts each rule's removals."""

    name = "filter"
    Params = FilterParams
    inputs = ("input", "blocklist_file")
    out_dir = True

    params: FilterParams

    def written(self) -> list[tuple[str, str, Path]]:
        out = self.params.out
        if out is None:
            return []
        return [("out", "", out)] + [("out", "", p) for p in stage_files(out) if p != out]

    def check(self) -> None:
        next(iter(read_records(self.params.input)), None)
        self._blocklist()
        if self.params.language is not None:
            rules.language_of("a check that the language identifier loads")

    def _blocklist(self) -> list[str]:
        terms = list(self.params.blocklist)
        if self.params.blocklist_file is not None:
            for line in read_text(self.params.blocklist_file).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    terms.append(line)
        return terms

    def run(self) -> dict[str, Any]:
        p = self.params
        if p.out is None:  # the command requires --out; a recipe gives the step's directory
            raise UserError("filter: give `out`, a .jsonl file or a directory")
        stage = Stage("filter", p.input, p.out, p.watch)
        stage.counts["records_in"] = 0
        for name in self._rules():  # every rule in the counts, in the order they apply
            stage.counts[f"dropped_{name}"] = 0
        blocked = rules.blocklist_matcher(self._blocklist())
        for line, record in read_records(p.input):
            stage.seen(record)
            found = self._reason(line, record, blocked)
            if found is None:
                stage.keep(record)
            else:
                stage.remove(record, *found)
        return stage.write()

    def _rules(self) -> list[str]:
        p = self.params
        names = ["flagged"] if not p.include_flagged else []
        names += ["empty"] + (["cut_off"] if p.cut_off else []) + ["too_short", "too_long"]
        names += (["refusal"] if p.refusals else []) + (["echo"] if p.echo else [])
        names += ["blocklist"] if (p.blocklist or p.blocklist_file) else []
        names += ["language"] if p.language else []
        names += ["placeholder", "copied_prompt"] if p.leakage else []
        names += ["low_score", "no_score"] if p.min_score is not None else []
        return names

    def _reason(self, line: int, record: dict[str, Any], blocked: Any) -> tuple[str, str] | None:
        p = self.params
        data = record.get("data") or {}
        if record.get("status", "ok") != "ok" and not p.include_flagged:
            return "flagged", "flagged for review (--include-flagged checks it)"
        name = pick_field(data, p.field, TEXT_FIELDS)
        text = data.get(name) if name else None
        if not isinstance(text, str):
            have = ", ".join(k for k, v in data.items() if isinstance(v, str)) or "none"
            raise UserError(
                f"{p.input}:{line}: record has no text field {name or ''!r} (text fields"
                f" here: {have}); choose --field"
            )
        if not rules.normalize(text):
            return "empty", "no text"
        if p.cut_off and rules.cut_off(record):
            return "cut_off", "finish reason length"
        if reason := rules.length_reason(
            text,
            min_words=p.min_words,
            max_words=p.max_words,
            min_chars=p.min_chars,
            max_chars=p.max_chars,
        ):
            rule, _, detail = reason.partition(": ")
            return rule, detail
        if p.refusals and (phrase := rules.refusal(text)):
            return "refusal", phrase
        if p.echo:
            prompt_name = p.prompt_field or next(
                (f for f in PROMPT_FIELDS if f != name and isinstance(data.get(f), str)), None
            )
            prompt = data.get(prompt_name) if prompt_name else None
            if isinstance(prompt, str) and rules.echo_of_prompt(text, prompt):
                return "echo", f"repeats {prompt_name}"
        if term := blocked(text):
            return "blocklist", term
        if p.language is not None and (found := rules.language_of(text)) is not None:
            code, prob = found
            if code != p.language and prob >= rules.LANGUAGE_MIN_PROB:
                return "language", f"{code} ({prob:.2f})"
        if p.leakage:
            if marks := placeholders(text):
                return "placeholder", ", ".join(marks)
            template = (record.get("provenance") or {}).get("template") or ""
            if copied := copied_prompt_text(text, template_phrases(template_source(template))):
                return "copied_prompt", copied
        if p.min_score is not None:
            score = data.get(p.score_field)
            if isinstance(score, bool) or not isinstance(score, int | float):
                return "no_score", f"no number in {p.score_field!r}"
            if score < p.min_score:
                return "low_score", f"{score} < {p.min_score}"
        return None

    def after_cli(self, counts: dict[str, Any]) -> None:
        super().after_cli({k: v for k, v in counts.items() if k != "warnings"})
        for warning in counts.get("warnings", ()):
            click.echo(visible(f"warning: {warning}"), err=True)
        click.echo(visible(f"kept: {dedup_target(self.params.out or Path())}"), err=True)
