"""The data report: the two-sample test tells apart what differs and not what does not; the
report is one self-contained HTML page (plots inside, every data text escaped) plus JSON, and
it carries the warnings of every stage the data went through."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import synthloom
from synthloom.quality.twosample import term_contrast, two_sample_test
from tests.conftest import synthloom as cli

TWEETS = Path(synthloom.__file__).parent / "data" / "tweets_sentiment.csv"
SUBJECTS = "the train,my phone,the coffee,the weather,our team,the concert,lunch,the shop".split(
    ","
)
VERBS = "was,felt,looked,seemed,is,got".split(",")
WORDS = "great,late,cold,loud,cheap,slow,fine,busy,early,perfect,awful,quiet".split(",")


def sentences(rng: random.Random, n: int, words: list[str]) -> list[str]:
    return [
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(words)} and"
        f" {rng.choice(words)} today, {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(words)}."
        for _ in range(n)
    ]


def test_two_sample_about_half_for_two_halves_of_one_set() -> None:
    rng = random.Random(1)
    texts = sentences(rng, 800, WORDS)
    result = two_sample_test(texts[:400], texts[400:])
    assert result is not None and result.n_per_set == 400
    assert abs(result.accuracy - 0.5) < 0.08, result


def test_two_sample_near_one_for_clearly_different_sets() -> None:
    rng = random.Random(2)
    real = sentences(rng, 300, WORDS)
    other = [
        f"As an assistant I would say {rng.choice(['certainly', 'indeed'])} that item"
        f" {rng.randrange(1000)} is {rng.choice(['notable', 'remarkable'])}."
        for _ in range(300)
    ]
    result = two_sample_test(real, other)
    assert result is not None and result.accuracy > 0.97
    terms = term_contrast(other, real)
    assert {"assistant", "remarkable"} <= {t["term"] for t in terms["over"]}
    assert "train" in {t["term"] for t in terms["under"]}


def test_two_sample_needs_a_few_texts() -> None:
    assert two_sample_test(["a", "b"], ["c", "d"]) is None


def tweets() -> list[dict[str, str]]:
    return list(csv.DictReader(TWEETS.open()))


def test_report_on_the_shipped_tweets_is_self_contained_and_warns(tmp_path: Path) -> None:
    """Neutral tweets filtered away (a blocklist of their words): the filter warns, and the
    report on its output shows the warning, the stage counts and the starved label."""
    rows = tweets()
    source = tmp_path / "run.jsonl"
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> [product_name] rocks'
    with source.open("w") as f:
        for i, row in enumerate(rows):
            record = {"id": f"t{i}", "task": "augment", "status": "ok",
                      "data": {"text": row["text"], "label": row["label"], "topic": row["topic"]},
                      "provenance": {"model": "stub-model", "template": "augment_variation"}}  # fmt: skip
            f.write(json.dumps(record) + "\n")
        f.write(
            json.dumps(
                {"id": "evil", "task": "augment", "data": {"text": evil, "label": "positive"}}
            )
            + "\n"
        )
    neutral_words = "opens,renews,announced,sells,moves,closes,switched,clocks,standup,renovated"
    filtered = tmp_path / "filtered"
    result = cli("filter", str(source), "--blocklist", neutral_words, "--out", str(filtered))
    assert result.returncode == 0, result.stderr
    assert "warning: filter starved label 'neutral'" in " ".join(result.stderr.split())
    out = tmp_path / "report.html"
    result = cli(
        "report", str(filtered), "--reference", str(TWEETS), "--watch", "topic", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    report = json.loads(out.with_suffix(".json").read_text())
    # self-contained: no script, no external resource; plots are PNG data URIs
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert not re.search(r'(src|href)="(?!data:image/png;base64,)', page)
    assert page.count('src="data:image/png;base64,') >= 2
    # the stages and the warning
    assert [s["step"] for s in report["stages"]] == ["filter"]
    assert any(w.startswith("filter starved label 'neutral'") for w in report["warnings"])
    assert "filter starved label &#x27;neutral&#x27;" in page
    assert report["labels"]["reference"] == {"positive": 30, "negative": 24, "neutral": 18}
    assert report["leakage"]["placeholders"] == 1
    assert report["records"] == 73 - 10  # the 10 blocked neutral tweets are gone
    assert report["audit"]["by_model"] == {"stub-model": 62, "(none: human)": 1}
    assert set(report["audit"]["groups"]["topic"]) >= {"coffee", "transit"}
    # the synthetic set here is most of the real one: hard to tell apart
    assert report["reference"]["two_sample"]["accuracy"] < 0.75
    for key in ("distinct_1", "distinct_2", "self_bleu", "vendi_score", "near_duplicate_rate"):
        assert key in report["diversity"]
    assert "report:" in result.stderr
