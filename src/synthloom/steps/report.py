"""`report`: a self-contained HTML report (and JSON) on a run's data (a step, no model).

RUN is a run directory, a curation step's output (dedup, filter: a directory or .jsonl) or a
records .jsonl file. The report follows each stage's `stage.json` back to the run that made
the data, to show the counts through every stage; see synthloom.quality.report for what it
measures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field

from synthloom.errors import UserError
from synthloom.outputs import write_atomic
from synthloom.quality.filter_run import dedup_target, sidecar
from synthloom.runs import read_records
from synthloom.sources import read_inputs
from synthloom.steps.base import Step
from synthloom.terminal import visible

MAX_STAGES = 20  # stage.json links followed back (a loop is a user error, not a hang)


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        ...,
        description="a run directory, a dedup/filter output, or a records .jsonl file",
        json_schema_extra={"argument": True, "metavar": "RUN"},
    )
    reference: list[Path] = Field(
        default_factory=list,
        description="real data to compare with (.jsonl/.csv or a run): the two-sample test,"
        " over- and under-used words, label mix and topic coverage; repeat for several files",
        json_schema_extra={"multiple": True},
    )
    field: str | None = Field(
        None,
        description="the data field holding the text (default: the first of text, response,"
        " answer, summary, completion, output, instruction, question, prompt)",
    )
    label_field: str = Field("label", description="the field holding the label")
    watch: list[str] = Field(
        default_factory=list,
        description="more data fields to count records by in the bias audit (e.g. topic)",
    )
    seed: int = Field(0, description="seed of the samples the metrics draw")
    out: Path | None = Field(
        None,
        description="the HTML file to write (a directory gets report.html; default: RUN's"
        " directory); the JSON is written beside it (report.json)",
    )


def _records_file(path: Path) -> Path:
    return dedup_target(path) if path.is_dir() else path


def trace_stages(path: Path) -> list[dict[str, Any]]:
    """The stages the records at `path` went through, oldest first: each curation stage's
    stage.json and each run's summary (from its manifest.json), following a run's `input`
    back while it is another run (score's input is the run it rated)."""
    stages: list[dict[str, Any]] = []
    current: Path | None = path
    for _ in range(MAX_STAGES):
        if current is None:
            break
        records = _records_file(current)
        manifest = records.parent / "manifest.json"
        stage_file = sidecar(records, "stage")
        if stage_file.is_file():
            stage = json.loads(stage_file.read_text(encoding="utf-8"))
            stages.append(stage)
            current = Path(stage["input"]) if stage.get("input") else None
        elif manifest.is_file() and records.name == "records.jsonl":
            run = json.loads(manifest.read_text(encoding="utf-8"))
            stages.append(_generation_stage(run))
            source = ((run.get("identity") or {}).get("config") or {}).get("input")
            current = Path(source) if isinstance(source, str) else None  # e.g. score's run
        else:
            break
    return list(reversed(stages))


def _generation_stage(manifest: dict[str, Any]) -> dict[str, Any]:
    summary = manifest.get("summary") or {}
    identity = manifest.get("identity") or {}
    counts: dict[str, Any] = {}
    units = (summary.get("units_ok") or 0) + (summary.get("units_failed") or 0)
    counts["records_in"] = f"{units} units"
    for cause, n in (summary.get("failures") or {}).items():
        counts[f"dropped_{cause}"] = n
    for name, n in (summary.get("counters") or {}).items():
        if name.startswith("dropped_"):
            counts[name] = n
    counts["records_out"] = (summary.get("records_new") or 0) + (
        summary.get("records_present") or 0
    )
    return {
        "step": f"{identity.get('task', 'a')} run",
        "counts": counts,
        "warnings": summary.get("warnings") or [],
    }


class Report(Step):
    """Write an HTML report (with a JSON copy) on a run's data: counts through each stage,
    lengths, labels, diversity, judge scores, synthetic-vs-real tests, bias audit, leakage."""

    name = "report"
    Params = ReportParams
    inputs = ("input", "reference")
    out_dir = True

    params: ReportParams

    def html_path(self) -> Path:
        p = self.params
        if p.out is None:
            base = p.input if p.input.is_dir() else p.input.parent
            return base / "report.html"
        return p.out if p.out.suffix.lower() in (".html", ".htm") else p.out / "report.html"

    def written(self) -> list[tuple[str, str, Path]]:
        html = self.html_path()
        return [("out", "", html), ("out", " (its JSON)", html.with_suffix(".json"))]

    def output_paths(self) -> list[Path]:
        return [self.html_path()]

    def check(self) -> None:
        next(iter(read_records(self.params.input)), None)
        for path in self.params.reference:
            read_inputs(path)

    def run(self) -> dict[str, Any]:
        from synthloom.quality.report import build_report, render_html

        p = self.params
        records = [r for _, r in read_records(p.input)]  # none left is reported, not refused
        reference = None
        if p.reference:
            reference = [row.data for path in p.reference for row in read_inputs(path)]
        report, plots = build_report(
            records,
            source=str(p.input),
            field=p.field,
            label_field=p.label_field,
            watch=p.watch,
            stages=trace_stages(p.input),
            reference=reference,
            reference_name=", ".join(str(x) for x in p.reference),
            seed=p.seed,
        )
        html_path = self.html_path()
        try:
            page = render_html(report, plots)
        except ImportError:
            raise UserError(
                "the report's plots need matplotlib: pip install 'synthloom[report]'"
            ) from None
        write_atomic(html_path, page)
        write_atomic(
            html_path.with_suffix(".json"), json.dumps(report, indent=2, ensure_ascii=True)
        )
        counts: dict[str, Any] = {"records": len(records)}
        two = (report.get("reference") or {}).get("two_sample")
        if two:
            counts["real_vs_synthetic_accuracy"] = round(two["accuracy"], 3)
        counts["warnings"] = report["warnings"]
        counts["report"] = str(html_path)
        return counts

    def after_cli(self, counts: dict[str, Any]) -> None:
        shown = {k: v for k, v in counts.items() if k not in ("warnings", "report")}
        super().after_cli(shown)
        for warning in counts.get("warnings", ()):
            click.echo(visible(f"warning: {warning}"), err=True)
        click.echo(visible(f"report: {counts['report']}"), err=True)
