"""The data report: what a run made, measured, in JSON and in one self-contained HTML page.

`build_report` takes the records (dicts as in records.jsonl), the stages they went through
and, optionally, a real reference set, and returns a JSON-serialisable dict: counts through
each stage, length and label distributions, diversity (distinct-n, self-BLEU, Vendi,
duplicate rates), judge scores, a classifier two-sample test and term contrast against the
reference, a bias audit (label balance, topic/keyword coverage, records per model and
template, warnings) and template leakage. `render_html` turns it into a page that someone who
never ran the tool can read: each number comes with a sentence saying what it means; plots
are PNG images inside the page (matplotlib), every text from the data is HTML-escaped, and
the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from synthloom.quality import leakage, metrics
from synthloom.quality.audit import TEXT_FIELDS, counts_by, group_value, pick_field
from synthloom.quality.dedup import words
from synthloom.quality.twosample import term_contrast, two_sample_test

__all__ = ["build_report", "render_html"]

IMBALANCE_WARN = 1.5  # largest over smallest label count above this is a warning
KEYWORDS = 30  # the reference's most frequent content words checked for coverage
EXAMPLES = 5  # examples listed per leakage kind
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves im ive dont cant its it's s t""".split()
)


def _text_of(data: Mapping[str, Any], field: str | None) -> str | None:
    name = pick_field(data, field, TEXT_FIELDS)
    value = data.get(name) if name else None
    return value if isinstance(value, str) else None


def build_report(
    records: Sequence[Mapping[str, Any]],
    *,
    source: str,
    field: str | None = None,
    label_field: str = "label",
    watch: Sequence[str] = (),
    stages: Sequence[Mapping[str, Any]] = (),
    reference: Sequence[Mapping[str, Any]] | None = None,
    reference_name: str = "",
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything the report shows (see the module docstring), and the raw series its plots
    need (`render_html` takes both). `stages` are the generating
    run's manifest summary ({"step": "generate", ...}) and each curation stage's stage.json,
    oldest first; `reference` rows are plain dicts (a text field and maybe a label)."""
    texts, labels = [], []
    for r in records:
        text = _text_of(r.get("data") or {}, field)
        if text is not None:
            texts.append(text)
            labels.append(group_value(r.get("data") or {}, label_field))
    has_labels = any(x is not None for x in labels)
    report: dict[str, Any] = {
        "source": source,
        "field": field,
        "records": len(records),
        "records_with_text": len(texts),
        "status": dict(Counter(str(r.get("status", "ok")) for r in records)),
        "origin": dict(Counter(str(r.get("origin", "synthetic")) for r in records)),
        "stages": [dict(s) for s in stages],
    }
    report["lengths"] = {
        "synthetic": metrics.length_stats(texts),
        "synthetic_words": [len(t.split()) for t in texts],
    }
    report["labels"] = (
        {"field": label_field, "synthetic": dict(Counter(x for x in labels if x is not None))}
        if has_labels
        else None
    )
    report["diversity"] = _diversity(texts, seed)
    report["scores"] = _scores(records)
    report["leakage"] = _leakage(records, texts, field)
    ref_texts: list[str] = []
    if reference is not None:
        ref_labels = []
        for row in reference:
            text = _text_of(row, field)
            if text is not None:
                ref_texts.append(text)
                ref_labels.append(group_value(row, label_field))
        report["lengths"]["reference"] = metrics.length_stats(ref_texts)
        report["lengths"]["reference_words"] = [len(t.split()) for t in ref_texts]
        if report["labels"] is not None:
            report["labels"]["reference"] = dict(Counter(x for x in ref_labels if x is not None))
        report["reference"] = {
            "name": reference_name,
            "texts": len(ref_texts),
            "diversity": _diversity(ref_texts, seed),
            "two_sample": _two_sample(ref_texts, texts, seed),
            "terms": term_contrast(texts, ref_texts),
        }
    else:
        report["reference"] = None
    report["audit"] = _audit(records, texts, labels if has_labels else None, ref_texts, watch)
    report["warnings"] = _warnings(report)
    plots = {k: report["lengths"].pop(k, []) for k in ("synthetic_words", "reference_words")}
    return report, plots


def _diversity(texts: Sequence[str], seed: int) -> dict[str, Any]:
    if not texts:
        return {}
    return {
        "distinct_1": metrics.distinct_n(texts, 1),
        "distinct_2": metrics.distinct_n(texts, 2),
        "self_bleu": metrics.self_bleu(texts, seed=seed),
        "vendi_score": metrics.vendi_score(texts),
        "vendi_n": min(len(texts), 1000),
        "exact_duplicate_rate": metrics.exact_duplicate_rate(texts),
        "near_duplicate_rate": metrics.near_duplicate_rate(texts),
    }


def _two_sample(real: Sequence[str], synthetic: Sequence[str], seed: int) -> dict[str, Any] | None:
    result = two_sample_test(real, synthetic, seed=seed)
    if result is None:
        return None
    return {
        "accuracy": result.accuracy,
        "stderr": result.stderr,
        "n_per_set": result.n_per_set,
        "folds": result.folds,
    }


def _scores(records: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Judge scores by criterion: `scores` (score task) or `ratings` (judge task) per
    criterion, and the overall `score`."""
    found: dict[str, list[float]] = {}
    for r in records:
        data = r.get("data") or {}
        for key in ("scores", "ratings"):
            block = data.get(key)
            if isinstance(block, dict):
                for name, value in block.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        found.setdefault(str(name), []).append(float(value))
        score = data.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            found.setdefault("score (overall)", []).append(float(score))
    return found


def _leakage(
    records: Sequence[Mapping[str, Any]], texts: Sequence[str], field: str | None
) -> dict[str, Any]:
    placeholder_hits, copied_hits = [], []
    for r in records:
        text = _text_of(r.get("data") or {}, field)
        if text is None:
            continue
        if marks := leakage.placeholders(text):
            placeholder_hits.append({"id": r.get("id"), "found": marks, "text": text})
        template = (r.get("provenance") or {}).get("template") or ""
        phrases = leakage.template_phrases(leakage.template_source(template))
        if copied := leakage.copied_prompt_text(text, phrases):
            copied_hits.append({"id": r.get("id"), "found": copied, "text": text})
    openings = leakage.repeated_openings(texts)
    return {
        "placeholders": len(placeholder_hits),
        "placeholder_examples": placeholder_hits[:EXAMPLES],
        "copied_prompt": len(copied_hits),
        "copied_prompt_examples": copied_hits[:EXAMPLES],
        "repeated_openings": openings,
        "records_with_repeated_opening": sum(openings.values()),
    }


def _keywords(texts: Sequence[str]) -> list[str]:
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(w for w in set(words(t)) if w not in STOPWORDS and len(w) > 2)
    return [w for w, c in counts.most_common(KEYWORDS) if c >= 2]


def _audit(
    records: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
    labels: Sequence[str | None] | None,
    ref_texts: Sequence[str],
    watch: Sequence[str],
) -> dict[str, Any]:
    audit: dict[str, Any] = {}
    if labels is not None:
        counts = Counter(x for x in labels if x is not None)
        audit["label_imbalance"] = max(counts.values()) / min(counts.values()) if counts else None
    prov = [r.get("provenance") or {} for r in records]
    audit["by_model"] = dict(Counter(str(p.get("model", "(none: human)")) for p in prov))
    audit["by_template"] = dict(Counter(str(p.get("template", "(none: human)")) for p in prov))
    audit["by_task"] = dict(Counter(str(r.get("task", "?")) for r in records))
    audit["groups"] = {f: dict(counts_by(records, f)) for f in watch if counts_by(records, f)}
    if ref_texts:
        keywords = _keywords(ref_texts)
        present = Counter()  # type: Counter[str]
        for t in texts:
            present.update(set(words(t)) & set(keywords))
        audit["keywords"] = {
            "checked": keywords,
            "covered": sum(1 for k in keywords if present[k]),
            "missing": [k for k in keywords if not present[k]],
            "share_of_records": {k: present[k] / len(texts) if texts else 0.0 for k in keywords},
        }
    return audit


def _warnings(report: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if not report["records"]:
        out.append("no records are left: the counts through each stage show what removed them")
    for stage in report["stages"]:
        out.extend(stage.get("warnings") or ())
    audit = report["audit"]
    labels = report["labels"]
    if labels is not None:
        ratio = audit.get("label_imbalance")
        syn = labels["synthetic"]
        if ratio is not None and ratio > IMBALANCE_WARN:
            top, low = max(syn, key=syn.__getitem__), min(syn, key=syn.__getitem__)
            out.append(
                f"labels are imbalanced: {top!r} has {syn[top]} records, {low!r} only"
                f" {syn[low]} ({ratio:.1f}x)"
            )
        for label, n in (labels.get("reference") or {}).items():
            if n and not syn.get(label):
                out.append(f"label {label!r} is in the reference set ({n}) but has no records")
    ref = report.get("reference")
    if ref and ref.get("two_sample") and ref["two_sample"]["accuracy"] >= 0.8:
        out.append(
            f"a simple classifier tells synthetic from real {ref['two_sample']['accuracy']:.0%}"
            " of the time: the synthetic set does not look like the real one"
        )
    leak = report["leakage"]
    if leak["placeholders"]:
        out.append(f"{leak['placeholders']} records hold unfilled placeholders")
    if leak["copied_prompt"]:
        out.append(f"{leak['copied_prompt']} records copy text from their prompt")
    for opening, n in leak["repeated_openings"].items():
        out.append(f"{n} records begin {opening!r}")
    return out


# -- HTML -----------------------------------------------------------------------------------
CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2433;
background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 8px;border-bottom:2px solid
#e3e6ea;padding-bottom:4px}h3{font-size:16px;margin:20px 0 6px}
p.lead{color:#4a5568;margin-top:0}
table{border-collapse:collapse;margin:8px 0 12px;font-size:14px}
td,th{border:1px solid #dde1e6;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.explain{color:#4a5568;font-size:14px;max-width:760px}
.warn{background:#fff4e5;border-left:4px solid #f59e0b;padding:8px 12px;margin:6px 0}
.ok{background:#ecfdf3;border-left:4px solid #16a34a;padding:8px 12px;margin:6px 0}
.metric{display:inline-block;min-width:150px;margin:0 16px 12px 0}
.metric b{display:block;font-size:22px}
img{max-width:100%;height:auto;border:1px solid #eee}
q{font-style:italic}code{background:#f0f2f5;padding:0 3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        if math.isinf(x):
            return "infinite"
        return f"{x:.{digits}f}"
    return str(x)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure(width: float = 7.5, height: float = 3.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def _bars(groups: Mapping[str, Mapping[str, float]], title: str, ylabel: str) -> str:
    """Grouped bars: series name -> {category: value}."""
    cats = sorted({c for series in groups.values() for c in series})
    fig, ax = _figure()
    width = 0.8 / max(1, len(groups))
    for i, (name, series) in enumerate(groups.items()):
        xs = [j + i * width for j in range(len(cats))]
        ax.bar(xs, [series.get(c, 0) for c in cats], width=width, label=name)
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(len(cats))])
    ax.set_xticklabels([c[:24] for c in cats], rotation=20 if len(cats) > 5 else 0, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(groups) > 1:
        ax.legend()
    return _png(fig)


def _hist(series: Mapping[str, Sequence[float]], title: str, xlabel: str, bins: Any = 20) -> str:
    import numpy as np

    fig, ax = _figure()
    if isinstance(bins, int):  # the same bins for every series, so their bars compare
        bins = np.histogram_bin_edges([v for values in series.values() for v in values], bins)
    for name, values in series.items():
        if values:
            ax.hist(values, bins=bins, alpha=0.6, label=name, density=len(series) > 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of records" if len(series) > 1 else "records")
    if len(series) > 1:
        ax.legend()
    return _png(fig)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        cells = []
        for v in row:
            cls = ' class="n"' if isinstance(v, int | float) else ""
            cells.append(f"<td{cls}>{_e(_fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


DIVERSITY_TEXT = {
    "distinct_1": "share of all words that are different words (higher: richer vocabulary)",
    "distinct_2": "share of all two-word sequences that are different (higher: less repetitive"
    " phrasing)",
    "self_bleu": "how much each text shares its wording with the others, 0 to 1 (lower: more"
    " varied; above about 0.5 the texts sound alike)",
    "vendi_score": "the effective number of distinct texts among those measured (up to 1,000):"
    " if it is much smaller than the count, many texts say nearly the same thing",
    "exact_duplicate_rate": "share of texts that repeat an earlier one exactly (after case and"
    " spacing are ignored)",
    "near_duplicate_rate": "share of texts that are near copies of an earlier one (word"
    " 5-gram overlap of 70% or more)",
}


def render_html(report: Mapping[str, Any], plots: Mapping[str, Any]) -> str:
    """The report as one HTML page. `plots` holds the raw series the figures need
    (`synthetic_words`, `reference_words`)."""
    parts: list[str] = []
    add = parts.append
    add("<!doctype html><html lang=en><head><meta charset=utf-8>")
    add('<meta name="viewport" content="width=device-width,initial-scale=1">')
    add(f"<title>synthloom report: {_e(report['source'])}</title><style>{CSS}</style></head>")
    add("<body><main>")
    add(f"<h1>Data report</h1><p class=lead>{_e(report['source'])}</p>")
    add(
        "<p class=explain>This page describes a synthetic dataset made with synthloom: how many"
        " records each stage kept and why it removed the others, what the texts look like, how"
        " varied they are, and, where a real reference set was given, how they differ from"
        " real data. Warnings first: each is something to look at before training on the"
        " data.</p>"
    )
    add("<h2>Warnings</h2>")
    if report["warnings"]:
        parts.extend(f"<div class=warn>{_e(w)}</div>" for w in report["warnings"])
    else:
        add(
            "<div class=ok>Nothing here needs a look: no stage starved a group, the labels are"
            " balanced and no template leakage was found.</div>"
        )
    _overview(report, add)
    _stages(report, add)
    _lengths(report, plots, add)
    _labels(report, add)
    _diversity_section(report, add)
    _scores_section(report, add)
    _reference_section(report, add)
    _audit_section(report, add)
    _leakage_section(report, add)
    add("</main></body></html>")
    return "\n".join(parts)


def _overview(report: Mapping[str, Any], add: Any) -> None:
    add("<h2>What is in it</h2>")
    status = ", ".join(f"{n} {s}" for s, n in report["status"].items()) or "none"
    origin = ", ".join(f"{n} {o}" for o, n in report["origin"].items()) or "none"
    add(
        f"<p>{report['records']} records ({_e(status)}; {_e(origin)}). Records marked"
        " <i>flagged</i> are kept for a person to check and are left out of exports unless"
        " asked for; <i>human</i> records are the real examples a task was given.</p>"
    )


def _stages(report: Mapping[str, Any], add: Any) -> None:
    stages = report["stages"]
    if not stages:
        return
    add("<h2>Counts through each stage</h2>")
    add(
        "<p class=explain>Each row is one stage, oldest first: how many records went in, what"
        " each rule removed, and how many came out. Nothing is removed silently: each removed"
        " record is listed with its reason in the stage's removed.jsonl (generation failures in"
        " failures.jsonl).</p>"
    )
    rows = []
    for s in stages:
        counts = s.get("counts") or {}
        removed = ", ".join(
            f"{k.removeprefix('dropped_').replace('_', ' ')} {v}"
            for k, v in counts.items()
            if k.startswith("dropped_") and v
        )
        rows.append(
            [
                s.get("step", "?"),
                counts.get("records_in", ""),
                removed or "nothing",
                counts.get("records_out", ""),
            ]
        )
    add(_table(["stage", "in", "removed (by rule)", "out"], rows))


def _lengths(report: Mapping[str, Any], plots: Mapping[str, Any], add: Any) -> None:
    add("<h2>Lengths</h2>")
    stats = report["lengths"]["synthetic"]
    add(
        f"<p>Texts are {stats['min']} to {stats['max']} words long, {stats['mean']:.1f} on"
        f" average; half are at most {stats['p50']:.0f} words and 90% at most"
        f" {stats['p90']:.0f}.</p>"
    )
    series = {"synthetic": plots.get("synthetic_words") or []}
    if plots.get("reference_words"):
        series["reference"] = plots["reference_words"]
        ref = report["lengths"]["reference"]
        add(
            f"<p>The reference texts average {ref['mean']:.1f} words (90% at most {ref['p90']:.0f}).</p>"
        )
    if series["synthetic"]:
        add(_hist(series, "Length of each text", "words"))


def _labels(report: Mapping[str, Any], add: Any) -> None:
    labels = report["labels"]
    if labels is None:
        return
    add(f"<h2>Labels (<code>{_e(labels['field'])}</code>)</h2>")
    add(
        "<p class=explain>How many records carry each label. A classifier trained on skewed"
        " labels learns the skew; the reference bars show the real set's mix.</p>"
    )
    rows = [
        [k, v, (labels.get("reference") or {}).get(k, "")] for k, v in labels["synthetic"].items()
    ]
    add(_table(["label", "records", "reference"], rows))
    if labels.get("reference"):
        series = {name: _shares(labels[name]) for name in ("synthetic", "reference")}
        add(_bars(series, "Share of records per label", "share of records"))
    else:
        add(_bars({"synthetic": labels["synthetic"]}, "Records per label", "records"))


def _diversity_section(report: Mapping[str, Any], add: Any) -> None:
    div = report["diversity"]
    if not div:
        return
    ref = (report.get("reference") or {}).get("diversity") or {}
    add("<h2>Diversity</h2>")
    add(
        "<p class=explain>Generated data is often repetitive: the same phrasing, the same"
        " openings, near copies. These numbers measure it; the reference column gives the real"
        " set's value for comparison.</p>"
    )
    rows = [
        [k.replace("_", " "), div[k], ref.get(k, ""), DIVERSITY_TEXT[k]]
        for k in DIVERSITY_TEXT
        if k in div
    ]
    add(_table(["measure", "synthetic", "reference", "what it means"], rows))


def _scores_section(report: Mapping[str, Any], add: Any) -> None:
    scores = report["scores"]
    if not scores:
        return
    add("<h2>Judge scores</h2>")
    add(
        "<p class=explain>A judge model rated each record on named criteria; higher is better."
        " The filter step can drop records under a score (<code>--min-score</code>).</p>"
    )
    rows = [[name, len(v), sum(v) / len(v), min(v), max(v)] for name, v in scores.items() if v]
    add(_table(["criterion", "records", "mean", "lowest", "highest"], rows))
    top = int(max(max(v) for v in scores.values() if v))
    bins = [x + 0.5 for x in range(0, top + 1)]
    add(_hist({k: v for k, v in scores.items()}, "Judge scores", "score", bins=bins))


def _reference_section(report: Mapping[str, Any], add: Any) -> None:
    ref = report.get("reference")
    if not ref:
        return
    add(f"<h2>Synthetic against real ({_e(ref['name'])})</h2>")
    two = ref.get("two_sample")
    if two:
        acc = two["accuracy"]
        verdict = (
            "they are hard to tell apart"
            if acc < 0.6
            else "they differ noticeably"
            if acc < 0.8
            else "they are easy to tell apart"
        )
        add(
            f"<div class=metric>classifier accuracy<b>{acc:.2f} &plusmn; {two['stderr']:.2f}</b></div>"
        )
        add(
            f"<p>A simple classifier (Naive Bayes on words and letter triples) was trained to"
            f" tell {two['n_per_set']} real texts from {two['n_per_set']} synthetic ones and"
            f" tested on texts it had not seen ({two['folds']}-fold cross-validation). 0.50 means"
            f" it can do no better than a coin toss, so the sets look alike; 1.00 means it is"
            f" never wrong. Here {acc:.2f}: {verdict}.</p>"
        )
    else:
        add("<p>Too few texts for the two-sample test.</p>")
    terms = ref.get("terms") or {}
    for key, title, text in (
        ("over", "Words the synthetic set over-uses", "more often than the real texts"),
        ("under", "Words the synthetic set under-uses", "less often than the real texts"),
    ):
        rows = [
            [t["term"], t["synthetic_per_1k"], t["real_per_1k"], t["z"]] for t in terms.get(key, [])
        ]
        add(f"<h3>{title}</h3>")
        if rows:
            add(
                f"<p class=explain>Words the synthetic texts use {text}, per 1,000 words, with a"
                " z-score (beyond &plusmn;2 the difference is unlikely to be chance).</p>"
            )
            add(_table(["word", "synthetic per 1k", "real per 1k", "z"], rows))
        else:
            add("<p class=explain>None stands out.</p>")


def _audit_section(report: Mapping[str, Any], add: Any) -> None:
    audit = report["audit"]
    add("<h2>Bias audit</h2>")
    add(
        "<p class=explain>A generating model carries its own habits and skews. These counts show"
        " where the records came from and what they cover, so a skew is visible before it is"
        " trained into a model.</p>"
    )
    if audit.get("label_imbalance") is not None:
        ratio = audit["label_imbalance"]
        add(
            f"<p>Label balance: the largest label has {_fmt(ratio, 2)} times the records of the"
            f" smallest (1.00 is perfectly balanced; above {IMBALANCE_WARN} is a warning).</p>"
        )
    for key, title in (
        ("by_model", "model"),
        ("by_template", "prompt template"),
        ("by_task", "task"),
    ):
        rows = sorted(audit[key].items(), key=lambda kv: -kv[1])
        add(f"<h3>Records per {title}</h3>" + _table([title, "records"], rows))
    for name, counts in (audit.get("groups") or {}).items():
        rows = sorted(counts.items(), key=lambda kv: -kv[1])
        add(f"<h3>Records per {_e(name)}</h3>" + _table([name, "records"], rows))
    kw = audit.get("keywords")
    if kw:
        add("<h3>Topic coverage</h3>")
        add(
            f"<p>Of the reference set's {len(kw['checked'])} most common content words,"
            f" {kw['covered']} appear in the synthetic texts."
            + (
                f" Missing: {_e(', '.join(kw['missing']))}: topics of the real data the synthetic"
                " data does not cover.</p>"
                if kw["missing"]
                else " None is missing.</p>"
            )
        )


def _leakage_section(report: Mapping[str, Any], add: Any) -> None:
    leak = report["leakage"]
    add("<h2>Template leakage</h2>")
    add(
        "<p class=explain>Signs that the model copied its prompt instead of doing the task:"
        " unfilled placeholders such as <code>[product_name]</code>, sentences copied from the"
        " prompt's own wording or examples, and one opening repeated across many records.</p>"
    )
    add(
        f"<p>{leak['placeholders']} records with placeholders; {leak['copied_prompt']} copying"
        f" prompt text; {leak['records_with_repeated_opening']} starting with a repeated"
        " opening.</p>"
    )
    for key, title in (
        ("placeholder_examples", "Placeholders"),
        ("copied_prompt_examples", "Copied from the prompt"),
    ):
        rows = [
            [x["found"] if isinstance(x["found"], str) else ", ".join(x["found"]), x["text"]]
            for x in leak[key]
        ]
        if rows:
            add(f"<h3>{title}</h3>" + _table(["found", "text"], rows))
    if leak["repeated_openings"]:
        rows = list(leak["repeated_openings"].items())
        add("<h3>Repeated openings</h3>" + _table(["opening words", "records"], rows))
