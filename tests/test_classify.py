"""classify: every record gets one label of the given set (an answer outside it is asked
again, then reported, never written); `confidence` comes from the backend's token
log-probabilities and is absent without them (also after a cache hit it is the same); the
command and a recipe step are the same task; the embedded model labels within the set."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from synthloom.tasks.classify import label_confidence
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom

LABELS = ["positive", "negative", "neutral"]
ROWS = [
    {"text": "The headphones sound amazing.", "label": "positive"},
    {"text": "The toaster stopped heating after two days.", "label": "negative"},
    {"text": "It arrived on Tuesday in a brown box.", "label": "neutral"},
    {"text": "Great value, I would buy it again.", "label": "negative"},
]


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _input(tmp_path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _classify(server: StubServer, tmp_path: Path, out: str, *args: str) -> Any:
    return synthloom(
        "classify",
        "--input",
        str(_input(tmp_path)),
        "--labels",
        ",".join(LABELS),
        *args,
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "m",
        "--out",
        str(tmp_path / out),
    )


def _text(body: dict[str, Any]) -> str:
    """The text being labelled (between the fence lines of the classify prompt)."""
    return body["messages"][-1]["content"].split('"""\n')[1].strip()


def _summary(run: Path) -> dict[str, Any]:
    return json.loads((run / "manifest.json").read_text())["summary"]  # type: ignore[no-any-return]


def test_every_record_has_a_label_of_the_set_and_agreement_is_counted(tmp_path: Path) -> None:
    with StubServer(record=True) as server:
        result = _classify(server, tmp_path, "run", "--label-column", "label")
        bodies = server.bodies
    assert result.returncode == 0, result.stderr
    records = _lines(tmp_path / "run" / "records.jsonl")
    assert sorted(r["data"]["text"] for r in records) == sorted(r["text"] for r in ROWS)
    original = {r["text"]: r["label"] for r in ROWS}
    for r in records:
        assert r["task"] == "classify" and r["data"]["label"] in LABELS
        assert r["data"]["original_label"] == original[r["data"]["text"]]
        assert "confidence" not in r["data"]  # the stub gives no log-probabilities
        assert r["provenance"]["template"] == "classify" and r["notes"]["source"]["line"]
    # the answer is constrained to the label set, in the order given
    schema = bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == LABELS
    summary = _summary(tmp_path / "run")
    agree = sum(r["data"]["label"] == r["data"]["original_label"] for r in records)
    assert summary["counters"]["agree"] == agree
    assert summary["counters"]["disagree"] == len(ROWS) - agree
    assert summary["counters"]["without_confidence"] == len(ROWS)


def test_an_answer_outside_the_set_is_asked_again_then_reported_not_written(
    tmp_path: Path,
) -> None:
    asked: dict[str, int] = {}

    def answer(body: dict[str, Any]) -> str:
        text = _text(body)
        asked[text] = asked.get(text, 0) + 1
        if text.startswith("The toaster"):  # always outside the set
            return '{"label": "mixed"}'
        if text.startswith("Great value") and asked[text] == 1:  # outside once, then fine
            return '{"label": "Positive!"}'
        return '{"label": "positive"}'

    with StubServer(responder=answer) as server:
        result = _classify(server, tmp_path, "run")
    assert result.returncode == 0, result.stderr
    records = _lines(tmp_path / "run" / "records.jsonl")
    failures = _lines(tmp_path / "run" / "failures.jsonl")
    assert sorted(r["data"]["text"] for r in records) == sorted(
        r["text"] for r in ROWS if not r["text"].startswith("The toaster")
    )
    assert all(r["data"]["label"] == "positive" for r in records)
    assert [f["cause"] for f in failures] == ["invalid_output"] and "label" in failures[0]["detail"]
    assert asked["The toaster stopped heating after two days."] == 3  # asked, then twice again
    summary = _summary(tmp_path / "run")
    assert summary["invalid_outputs"] == 4 and summary["units_failed"] == 1


# -- confidence from log-probabilities --------------------------------------------------------
# What the stub's model "thinks" at the first token of the label: the chosen label's first
# token, and how likely the other labels' first tokens were.
FIRST = {
    "The headphones sound amazing.": ("positive", {"pos": -0.05, "neg": -3.5, "neu": -4.0}),
    "The toaster stopped heating after two days.": (
        "negative",
        {"neg": -0.7, "pos": -0.9, "neu": -3.0},
    ),
    "It arrived on Tuesday in a brown box.": ("neutral", {"neu": -0.3, "pos": -1.6}),
    "Great value, I would buy it again.": ("positive", {"pos": -0.2, "neg": -2.0, "neu": -2.5}),
}


class LogprobStub(StubServer):
    """A server that returns token log-probabilities when asked (OpenAI's shape)."""

    def _completion(self, body: dict[str, Any], digest: str) -> dict[str, Any]:
        label, first = FIRST[_text(body)]
        reply = super()._completion({**body, "response_format": None}, digest)
        reply["choices"][0]["message"]["content"] = json.dumps({"label": label})
        if body.get("logprobs"):
            tokens = ['{"', "label", '":', ' "', label[:3], label[3:], '"}']
            top = [{"token": t, "logprob": lp} for t, lp in first.items()]
            top += [{"token": "The", "logprob": -5.0}][: body["top_logprobs"] - len(top)]
            content = [
                {"token": t, "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": 0.0}]}
                for t in tokens
            ]
            content[4] = {"token": label[:3], "logprob": first[label[:3]], "top_logprobs": top}
            reply["choices"][0]["logprobs"] = {"content": content}
        return reply


def _expected(text: str) -> float:
    """The chosen label's share among the three labels at its first token; a label whose
    token the server did not list counts at the smallest listed probability."""
    label, first = FIRST[text]
    p = {t: math.exp(lp) for t, lp in first.items()}
    floor = min([*p.values(), math.exp(-5.0)])
    mass = {lab[:3]: p.get(lab[:3], floor) for lab in LABELS}
    return mass[label[:3]] / sum(mass.values())


def test_confidence_comes_from_logprobs_and_survives_the_cache(tmp_path: Path) -> None:
    with LogprobStub(record=True) as server:
        first = _classify(server, tmp_path, "run")
        asked = server.bodies
        server.reset_stats()
        again = _classify(server, tmp_path, "again")  # a new run: every answer from the cache
        assert server.stats.requests == 0
        off = _classify(server, tmp_path, "off", "--no-confidence")
        plain = server.bodies
    assert first.returncode == again.returncode == off.returncode == 0, first.stderr
    assert all(b["logprobs"] is True and b["top_logprobs"] == 10 for b in asked)
    assert not any("logprobs" in b for b in plain)
    records = _lines(tmp_path / "run" / "records.jsonl")
    assert len(records) == len(ROWS)
    for r in records:
        text = r["data"]["text"]
        assert r["data"]["label"] == FIRST[text][0]
        assert r["data"]["confidence"] == pytest.approx(_expected(text), abs=1e-4)
    by_text = {r["data"]["text"]: r["data"]["confidence"] for r in records}
    assert by_text["The headphones sound amazing."] > 0.9 > 0.6 > by_text[ROWS[1]["text"]]
    cached = _lines(tmp_path / "again" / "records.jsonl")
    assert {r["data"]["text"]: r["data"]["confidence"] for r in cached} == by_text
    assert _summary(tmp_path / "again")["cache_hits"] == len(ROWS)
    assert "without_confidence" not in _summary(tmp_path / "run")["counters"]
    for r in _lines(tmp_path / "off" / "records.jsonl"):
        assert "confidence" not in r["data"] and r["data"]["label"] == FIRST[r["data"]["text"]][0]


def test_confidence_where_the_token_does_not_decide_alone() -> None:
    """Labels that share a first token are told apart where they part; an answer whose tokens
    do not spell it, or without alternatives, has no confidence."""
    labels = ["very good", "very bad", "ok"]
    text = '{"label": "very bad"}'

    def tok(t: str, lp: float, top: dict[str, float]) -> dict[str, Any]:
        alternatives = [{"token": k, "logprob": v} for k, v in top.items()]
        return {"token": t, "logprob": lp, "top_logprobs": alternatives}

    lps = [
        tok('{"label": "', 0.0, {'{"label": "': 0.0}),
        tok("very", -0.1, {"very": -0.1, "ok": -2.4}),  # "very" keeps both "very ..." labels
        tok(" bad", -0.5, {" bad": -0.5, " good": -1.0, " ok": -6.0}),
        tok('"}', 0.0, {'"}': 0.0}),
    ]
    share_very = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4))
    share_bad = math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.0))
    assert label_confidence(text, lps, "very bad", labels) == pytest.approx(share_very * share_bad)
    assert label_confidence(text, lps[:-1], "very bad", labels) is None  # tokens != answer
    bare = [{**t, "top_logprobs": []} for t in lps]
    assert label_confidence(text, bare, "very bad", labels) is None
    assert label_confidence(text, None, "very bad", labels) is None


# -- the same task as a recipe step, and its errors ---------------------------------------------
def test_a_recipe_step_classifies_like_the_command(tmp_path: Path) -> None:
    path = _input(tmp_path)
    with StubServer() as server:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            f"model: {{backend: openai, base_url: '{server.base_url}', model: m}}\n"
            "steps:\n"
            "  - name: labels\n"
            "    task: classify\n"
            f"    params: {{input: '{path}', labels: [{', '.join(LABELS)}],"
            " label_column: label, guidelines: 'neutral: only facts'}\n",
            encoding="utf-8",
        )
        result = synthloom("run", str(recipe), "--out", str(tmp_path / "out"))
        same = ["--label-column", "label", "--guidelines", "neutral: only facts"]
        command = _classify(server, tmp_path, "cli", *same)
    assert result.returncode == 0 and command.returncode == 0, result.stderr + command.stderr
    step = _lines(tmp_path / "out" / "labels" / "records.jsonl")
    cli = _lines(tmp_path / "cli" / "records.jsonl")
    assert len(step) == len(ROWS) and all(r["data"]["label"] in LABELS for r in step)
    assert sorted(r["id"] for r in step) == sorted(r["id"] for r in cli)  # the same job


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--labels", "positive"], "--labels: List should have at least 2 items"),
        (["--labels", "a,b,a"], "--labels: labels repeat: a"),
        (["--labels", "a,b", "--text-column", "label"], "in.jsonl:1: column 'label'"),
    ],
)
def test_bad_labels_or_columns_are_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    rows = [{"text": "fine", "label": {"a": 1}}]
    result = synthloom(
        "classify", "--input", str(_input(tmp_path, rows)), *args, "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.embedded
def test_embedded_model_labels_within_the_set(tmp_path: Path) -> None:
    rows = [{"text": r["text"]} for r in ROWS[:3]]
    result = synthloom(
        "classify",
        "--input",
        str(_input(tmp_path, rows)),
        "--labels",
        "positive,negative",
        "--slots",
        "2",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    records = _lines(tmp_path / "run" / "records.jsonl")
    assert len(records) == 3
    for r in records:
        assert r["data"]["label"] in ("positive", "negative")
        assert 0.0 < r["data"]["confidence"] <= 1.0  # llama.cpp gives log-probabilities
        assert r["provenance"]["backend"] == "embedded"
