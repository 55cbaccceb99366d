"""The filter step and its rules: each rule on a text it must remove and one it must keep;
the step counts every removal by rule, writes each removed record with its reason, and warns
when it empties or starves a label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.quality import filters
from synthloom.quality.leakage import (
    copied_prompt_text,
    placeholders,
    repeated_openings,
    template_phrases,
    template_source,
)
from tests.conftest import synthloom


@pytest.mark.parametrize(
    ("text", "kwargs", "reason"),
    [
        ("one two", {"min_words": 3}, "too_short: 2 words < 3"),
        ("one two three", {"min_words": 3}, None),
        ("one two three four", {"max_words": 3}, "too_long: 4 words > 3"),
        ("abc", {"min_chars": 4}, "too_short: 3 characters < 4"),
        ("abcdef", {"max_chars": 5}, "too_long: 6 characters > 5"),
        ("abcde", {"max_chars": 5}, None),
    ],
)
def test_length(text: str, kwargs: dict[str, Any], reason: str | None) -> None:
    assert filters.length_reason(text, **kwargs) == reason


def test_blocklist_whole_words_any_case() -> None:
    match = filters.blocklist_matcher(["kill", "credit card"])
    assert match("My CREDIT  card was charged") == "credit card"
    assert match("KILL the process") == "kill"
    assert match("Skills matter, killer app") is None  # not whole words
    assert filters.blocklist_matcher([])("anything") is None


@pytest.mark.parametrize(
    "text",
    [
        "As an AI language model, I cannot have opinions.",
        "I'm sorry, but I can't help with that.",
        "I\u2019m sorry, I cannot assist with this request.",
        "I apologize for the confusion.",
        "Unfortunately, I cannot provide that information.",
        "Here is the answer. As a language model I have no feelings.",
    ],
)
def test_refusals_are_found(text: str) -> None:
    assert filters.refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "The store said sorry and refunded me.",
        "Sorry for the late reply, here is the summary.",
        "I can help you draft the letter.",
        "Paris is the capital of France.",
    ],
)
def test_ordinary_text_is_not_a_refusal(text: str) -> None:
    assert filters.refusal(text) is None


def test_language() -> None:
    assert filters.language_of("The weather is lovely today and the park is full")[0] == "en"
    assert filters.language_of("Das Wetter ist heute wirklich sehr schön und warm")[0] == "de"
    assert filters.language_of("ok then") is None  # too short to tell


def test_cut_off() -> None:
    assert filters.cut_off({"provenance": {"finish_reason": "length"}, "data": {}})
    assert filters.cut_off({"notes": {"finish_reason": "length"}, "data": {}})
    assert not filters.cut_off({"provenance": {"model": "m"}, "data": {"text": "x"}})


def test_echo_of_prompt() -> None:
    assert filters.echo_of_prompt("What is the capital of France?", "what is the capital of france")
    assert not filters.echo_of_prompt("Paris.", "What is the capital of France?")
    assert not filters.echo_of_prompt("", "What is the capital of France?")


def test_placeholders() -> None:
    assert placeholders("Best [product_name] ever, thanks <name>!") == ["[product_name]", "<name>"]
    assert placeholders("Dear [NAME], see {user}") == ["[NAME]", "{user}"]
    assert placeholders("As shown in [1], it works [sic]. Use <b>bold</b>.") == []


def test_copied_prompt_text_and_openings() -> None:
    phrases = template_phrases(template_source("augment_variation"))
    assert copied_prompt_text("Honestly this product broke after one day, sad", phrases)
    assert copied_prompt_text("The 8:15 train was late again this morning", phrases) == ""
    texts = ["This product is great"] * 5 + ["I like it a lot", "The train was late"] * 10
    assert repeated_openings(texts) == {"i like it": 10, "the train was": 10, "this product is": 5}
    assert repeated_openings(["a b c d", "a b c e", "x y z"]) == {}


# -- the step -------------------------------------------------------------------------------
ROWS = [
    ("I love this new phone, the battery lasts all day long.", "positive", None),
    ("As an AI language model, I cannot share opinions about phones.", "neutral", None),
    ("The train was late again and nobody told us why.", "negative", None),
    ("Das Wetter ist heute wirklich sehr schön und warm.", "neutral", None),
    ("Great [product_name] ever, would buy again", "positive", None),
    ("   ", "neutral", None),
    ("The bus broke down and we waited an hour in the cold.", "negative", "length"),
    ("Replacement buses run between the two stations this weekend.", "neutral", None),
]


def write_records(path: Path, rows: list[tuple[str, str, str | None]]) -> Path:
    with path.open("w") as f:
        for i, (text, label, finish) in enumerate(rows):
            record = {
                "id": f"r{i}",
                "task": "t",
                "status": "ok",
                "data": {"text": text, "label": label},
            }
            if finish:
                record["provenance"] = {"template": "augment_variation", "finish_reason": finish}
            f.write(json.dumps(record) + "\n")
    return path


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_filter_step_counts_each_rule_and_warns_on_a_starved_label(tmp_path: Path) -> None:
    source = write_records(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "clean"
    result = synthloom("filter", str(source), "--language", "en", "--leakage", "--out", str(out))
    assert result.returncode == 0, result.stderr
    kept = read(out / "records.jsonl")
    assert [r["id"] for r in kept] == ["r0", "r2", "r7"]
    removed = {r["id"]: (r["removed_by"], r["detail"]) for r in read(out / "removed.jsonl")}
    assert removed == {
        "r1": ("refusal", "as an ai"),
        "r3": ("language", removed["r3"][1]),
        "r4": ("placeholder", "[product_name]"),
        "r5": ("empty", "no text"),
        "r6": ("cut_off", "finish reason length"),
    }
    assert removed["r3"][1].startswith("de (")
    stage = json.loads((out / "stage.json").read_text())
    counts = stage["counts"]
    assert (counts["records_in"], counts["records_out"]) == (8, 3)
    assert counts["dropped_refusal"] == counts["dropped_language"] == 1
    assert counts["dropped_echo"] == counts["dropped_too_long"] == 0  # every rule is counted
    # neutral kept 1 of 4 (25%), positive and negative 1 of 2 (50%): not starved (a group is
    # starved below half the best-kept group's share)
    assert stage["warnings"] == []
    again = synthloom(
        "filter", str(source), "--blocklist", "stations", "--out", str(tmp_path / "x.jsonl")
    )
    assert again.returncode == 0, again.stderr
    stage = json.loads((tmp_path / "x.stage.json").read_text())
    assert stage["counts"]["dropped_blocklist"] == 1
    (warning,) = stage["warnings"]  # positive now keeps 2 of 2, neutral 1 of 4
    assert warning == (
        "filter starved label 'neutral': kept 1 of 4 (25%; the best-kept label kept 100%);"
        " removed by: refusal 1, empty 1, blocklist 1"
    )
    assert f"warning: {warning}" in " ".join(again.stderr.split())


def test_filter_step_score_threshold_and_echo(tmp_path: Path) -> None:
    source = tmp_path / "scored.jsonl"
    rows = [
        {"prompt": "What is the capital of France?", "response": "Paris.", "score": 4.5},
        {"prompt": "Name a prime number.", "response": "Seven is prime.", "score": 2.0},
        {"prompt": "What is 2+2?", "response": "What is 2 + 2?", "score": 5},
        {"prompt": "Say hi", "response": "Hi there!"},
    ]
    source.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "task": "t", "data": d}) + "\n" for i, d in enumerate(rows)
        )
    )
    out = tmp_path / "kept.jsonl"
    result = synthloom("filter", str(source), "--min-score", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in read(out)] == ["s0"]
    removed = {r["id"]: r["removed_by"] for r in read(tmp_path / "kept.removed.jsonl")}
    assert removed == {"s1": "low_score", "s2": "echo", "s3": "no_score"}


def test_filter_step_names_a_missing_field(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "task": "t", "data": {"n": 1}}) + "\n")
    result = synthloom("filter", str(source), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "in.jsonl:1: record has no text field" in result.stderr
    assert "\n" not in result.stderr.strip()
