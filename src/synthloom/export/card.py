"""The dataset card: a README.md for an export, as the Hugging Face Hub reads one.

YAML front matter (licence and language to fill in, tags, the files of each split as
`configs`), then what a person needs before training on it: rows per split and the format
(with the trainers that read it), where the rows came from (tasks, models, templates, the
share of synthetic rows), what the generation runs and curation steps removed and why,
people's review decisions, how the split was made, and what is left to fill in.

The lineage is read from the files beside the input: a run directory's `manifest.json` (its
task, models, failures and filter counts) and a curation step's `lineage.json` (the step,
its inputs and counts), followed back to the runs they read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.export.formats import Format
from synthloom.export.write import Written
from synthloom.outputs import LINEAGE

REMOVAL_WORDS = ("dropped", "removed", "eliminated", "filtered", "flagged", "skipped", "rejected")


@dataclass
class CardInfo:
    """What a card says. `records` are the exported synthloom records (empty for rows
    that are not records, e.g. preference pairs, whose `sources` say where they came from)."""

    title: str
    fmt: Format
    written: Written
    out: Path
    command: str
    sources: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    origins: Counter[str] = field(default_factory=Counter)  # rows by origin
    sections: list[tuple[str, str]] = field(default_factory=list)  # extra (title, markdown)
    warnings: list[str] = field(default_factory=list)


def lineage(sources: Iterable[Path], depth: int = 6) -> list[dict[str, Any]]:
    """Each run and curation step behind `sources`, nearest first: {"path", "kind": "run" |
    "step", ...}; a source with neither file beside it gives {"kind": "file"}. A directory
    (or its records.jsonl) is read through its manifest.json or lineage.json; another file
    through `<file>.lineage.json`."""
    found: list[dict[str, Any]] = []
    seen: set[Path] = set()

    def visit(path: Path, level: int) -> None:
        if path.name in ("records.jsonl", "rankings.jsonl"):
            path = path.parent
        key = path.resolve()
        if key in seen or level > depth:
            return
        seen.add(key)
        manifest = path / "manifest.json"
        step = _step_file(path)
        if manifest.is_file():
            found.append({"kind": "run", "path": str(path), **_json(manifest)})
        elif step is not None:
            data = _json(step)
            inputs = data.get("inputs") or ([data["input"]] if data.get("input") else [])
            found.append({"kind": "step", "path": str(path), **data})
            for parent in inputs:
                visit(Path(parent), level + 1)
        else:
            found.append({"kind": "file", "path": str(path)})

    for source in sources:
        visit(Path(source), 0)
    return found


def _step_file(path: Path) -> Path | None:
    """What a curation step wrote beside its output: `lineage.json` (review export), or the
    `stage.json` of filter and dedup (`<name>.stage.json` beside a .jsonl output)."""
    if path.is_dir():
        candidates = [path / LINEAGE, path / "stage.json"]
    else:
        candidates = [
            path.with_name(f"{path.name}.{LINEAGE}"),
            path.with_name(f"{path.stem}.stage.json"),
        ]
    return next((c for c in candidates if c.is_file()), None)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _md(text: Any) -> str:
    """Text from records or files, safe inside a table cell or a list item."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _counter_lines(counter: Counter[str], limit: int = 12) -> list[str]:
    lines = [f"- {_md(k)}: {n}" for k, n in counter.most_common(limit)]
    if len(counter) > limit:
        lines.append(f"- ... and {len(counter) - limit} more")
    return lines


def _front_matter(info: CardInfo) -> str:
    total = sum(info.written.rows.values())
    size = (
        "n<1K"
        if total < 1000
        else "1K<n<10K"
        if total < 10_000
        else "10K<n<100K"
        if total < 100_000
        else "100K<n<1M"
        if total < 1_000_000
        else "n>1M"
    )
    task = {
        "classification": "text-classification",
        "data": "other",
    }.get(info.fmt.kind, "text-generation")
    lines = [
        "---",
        "license: other  # TODO: fill in (the generating models' terms and your inputs' licences apply)",
        "language:",
        "  - en  # TODO: check",
        "task_categories:",
        f"  - {task}",
        "size_categories:",
        f"  - {size}",
        "tags:",
        "  - synthetic",
        "  - synthloom",
        f"  - {info.fmt.name}",
    ]
    if not info.out.is_dir() and info.written.files:
        lines += ["configs:", "  - config_name: default", "    data_files:"]
        splits = [s for s, n in info.written.rows.items() if n]
        for split, path in zip(splits, info.written.files, strict=True):
            lines += [f"      - split: {split}", f"        path: {path.name}"]
    lines.append("---")
    return "\n".join(lines)


def render(info: CardInfo) -> str:
    """The card's markdown."""
    f, w = info.fmt, info.written
    total = sum(w.rows.values())
    parts = [_front_matter(info), "", f"# {_md(info.title)}", ""]
    parts += [
        f"{total} rows of training data in the `{f.name}` format, written by synthloom"
        f" (`{_md(info.command)}`).",
        "",
        "## Files and splits",
        "",
        "| split | rows | file |",
        "|---|---|---|",
    ]
    names = iter(w.files) if not info.out.is_dir() else iter(())
    for split, n in w.rows.items():
        where = (
            "(empty: not written)"
            if n == 0
            else (
                f'`{info.out.name}` (load_from_disk)["{split}"]'
                if info.out.is_dir()
                else f"`{next(names).name}`"
            )
        )
        parts.append(f"| {split} | {n} | {where} |")
    if w.ids_files:
        parts += [
            "",
            "Beside each file, `<file>.ids.jsonl` holds row for row the record id,"
            " task, origin, model, template and split group it came from.",
        ]
    if w.stale:
        parts += [
            "",
            "Not part of this export (left from an earlier one): "
            + ", ".join(f"`{p.name}`" for p in w.stale),
        ]
    parts += ["", "## Format", "", f"The `{f.name}` format holds {_md(f.summary)}.", ""]
    parts += [f"- **{who}**: {_md(how)}" for who, how in f.trainers()]
    if not f.trl:
        parts.append("- **TRL**: does not read this format")
    parts += _provenance(info)
    parts += _curation(info)
    parts += _review(info.records)
    parts += _split(info)
    for title, body in info.sections:
        parts += ["", f"## {title}", "", body]
    if info.warnings:
        parts += ["", "## Warnings", ""] + [f"- {_md(x)}" for x in info.warnings]
    parts += [
        "",
        "## To fill in",
        "",
        "- **Licence**: the licence of this data (front matter `license:`). Synthetic rows carry"
        " the terms of the models that wrote them (see Provenance) and of any input documents,"
        " seed tasks or labelled examples they were made from.",
        "- **Intended use and limits**: what this data is for, and what it must not be used for.",
        "- **Known biases**: the generating models' biases carry over; say what you checked.",
        "- **Personal data**: whether any row can hold personal data, and what was done about it.",
        "",
    ]
    return "\n".join(parts)


def _provenance(info: CardInfo) -> list[str]:
    lines = ["", "## Provenance", ""]
    origins = info.origins
    if origins:
        total = sum(origins.values())
        synthetic = origins.get("synthetic", 0)
        lines.append(
            f"Synthetic share: {synthetic / total:.1%} ({synthetic} of {total} rows; "
            + ", ".join(f"{k}: {v}" for k, v in sorted(origins.items()))
            + ")."
        )
    records = info.records
    if records:
        tasks = Counter(str(r.get("task")) for r in records)
        models: Counter[str] = Counter()
        templates: Counter[str] = Counter()
        for r in records:
            prov = r.get("provenance") or {}
            if prov.get("model"):
                via = f" ({prov['backend']})" if prov.get("backend") else ""
                models[f"{prov['model']}{via}"] += 1
            if prov.get("template"):
                digest = f" (hash {prov['template_hash']})" if prov.get("template_hash") else ""
                templates[f"{prov['template']}{digest}"] += 1
        lines += ["", f"Records: {len(records)}, by task:", "", *_counter_lines(tasks)]
        if models:
            lines += ["", "Models (records each wrote):", "", *_counter_lines(models)]
        if templates:
            lines += ["", "Prompt templates:", "", *_counter_lines(templates)]
    sources = [str(s) for s in info.sources]
    if sources:
        lines += ["", "Read from: " + ", ".join(f"`{_md(s)}`" for s in sources)]
    return lines


def _curation(info: CardInfo) -> list[str]:
    lines = ["", "## Generation, filters and what they removed", ""]
    found = lineage(info.sources)
    for entry in found:
        if entry["kind"] == "run":
            identity = entry.get("identity") or {}
            summary = entry.get("summary") or {}
            lines.append(
                f"- run `{_md(entry['path'])}` (task `{_md(identity.get('task', '?'))}`,"
                f" {_md(entry.get('status', '?'))}): {summary.get('units_ok', '?')} units done,"
                f" {summary.get('units_failed', 0)} failed, {summary.get('records_new', '?')}"
                " records written"
            )
            for role, backend in (summary.get("backends") or {}).items():
                if isinstance(backend, dict):
                    lines.append(
                        f"  - model ({_md(role)}): {_md(backend.get('model'))}"
                        f" via {_md(backend.get('backend') or backend.get('kind'))}"
                    )
            for cause, n in sorted((summary.get("failures") or {}).items()):
                lines.append(f"  - failed or removed, {_md(cause)}: {n}")
            for name, n in sorted((summary.get("counters") or {}).items()):
                if any(word in name for word in REMOVAL_WORDS):
                    lines.append(f"  - {_md(name.replace('_', ' '))}: {n}")
            for warning in summary.get("warnings") or []:
                lines.append(f"  - warning: {_md(warning)}")
        elif entry["kind"] == "step":
            counts = entry.get("counts") or {}
            detail = ", ".join(f"{_md(k.replace('_', ' '))}: {v}" for k, v in counts.items())
            lines.append(
                f"- step `{_md(entry.get('step', '?'))}` -> `{_md(entry['path'])}`: {detail}"
            )
        else:
            lines.append(f"- `{_md(entry['path'])}`: no run manifest or lineage beside it")
    skipped = {k: v for k, v in info.counts.items() if k.startswith("skipped") or "left_out" in k}
    for name, n in skipped.items():
        lines.append(f"- this export, {_md(name.replace('_', ' '))}: {n}")
    if len(lines) == 3:
        lines.append("- nothing recorded")
    return lines


def _review(records: Sequence[dict[str, Any]]) -> list[str]:
    reviewed = [r for r in records if isinstance((r.get("notes") or {}).get("review"), dict)]
    if not reviewed:
        return [
            "",
            "## Human review",
            "",
            "No row was reviewed by people in synthloom's review app.",
        ]
    annotators: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    edited = 0
    for r in reviewed:
        review = r["notes"]["review"]
        edited += bool(review.get("edits"))
        for d in review.get("decisions") or []:
            annotators[str(d.get("annotator"))] += 1
            actions[str(d.get("action"))] += 1
    return [
        "",
        "## Human review",
        "",
        f"{len(reviewed)} of {len(records)} exported records were approved by people in the"
        f" review app, {edited} of them edited (the original text is kept in each record's"
        " `notes.review`); records people rejected are not in this export.",
        "",
        f"Decisions: {sum(actions.values())} ("
        + ", ".join(f"{k}: {v}" for k, v in sorted(actions.items()))
        + f") by {len(annotators)} annotator(s): "
        + ", ".join(f"{_md(k)} ({v})" for k, v in sorted(annotators.items())),
    ]


def _split(info: CardInfo) -> list[str]:
    opts = info.options
    lines = ["", "## How it was made", ""]
    shares = opts.get("split")
    if shares:
        lines.append(
            f"- split: {', '.join(f'{s:g}' for s in shares)}"
            f" ({', '.join(('train', 'validation', 'test')[: len(shares)])}) with seed"
            f" {opts.get('seed', 0)}; rows derived from one original (provenance parents"
            + (f", equal `{_md(opts['group_by'])}`" if opts.get("group_by") else "")
            + ") are in one split"
        )
    else:
        lines.append("- no split: every row is in `train`")
    if opts.get("system"):
        lines.append(f'- system prompt added where a row had none: "{_md(opts["system"])}"')
    if opts.get("include_flagged"):
        lines.append("- records flagged for review were included")
    for key in sorted(set(opts) - {"split", "seed", "group_by", "system", "include_flagged"}):
        lines.append(f"- {_md(key.replace('_', ' '))}: {_md(opts[key])}")
    return lines
