"""`judge`: rate and pairwise (both orders, reconciled) judging into rankings.jsonl."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.errors import UserError
from synthloom.export.pairs import preference_data_from_files
from synthloom.preference.store import load_rankings, load_responses
from synthloom.runner import Summary, run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.judge import JudgeParams, JudgeTask
from synthloom.testing.stub_server import StubServer

PROMPT = "Explain quantum computing"
RESPONSES = {
    "A": "Quantum computers use qubits and unitary gates; Shor's algorithm factors integers.",
    "B": "Think of a coin spinning in the air: a qubit is heads and tails at once until you look.",
    "C": "Quantum computers are normal computers that are very fast because they are cold.",
    "D": "Qubits hold superpositions; entanglement and interference let some problems run faster.",
}
QUALITY = {"A": 2, "B": 3, "C": 1, "D": 4}
TEXT_ID = {text: rid for rid, text in RESPONSES.items()}


def write_responses(path: Path) -> Path:
    rows = [
        {"prompt_id": "qc", "prompt": PROMPT, "response_id": rid, "response": text}
        for rid, text in RESPONSES.items()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def user_text(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def shown_pair(body: dict[str, Any]) -> tuple[str, str]:
    """The response ids in the order the judge was shown them."""
    text = user_text(body)
    first = re.search(r"\[Response 1\]\n(.*?)\n\[End of Response 1\]", text, re.S)
    second = re.search(r"\[Response 2\]\n(.*?)\n\[End of Response 2\]", text, re.S)
    assert first and second
    return TEXT_ID[first.group(1)], TEXT_ID[second.group(1)]


def rated_answer(body: dict[str, Any]) -> str:
    match = re.search(r'Answer:\n"""\n(.*?)\n"""', user_text(body), re.S)
    assert match
    return match.group(1)


class PairJudge:
    """Records every order shown; `decide(first_id, second_id)` gives the verdict."""

    def __init__(self, decide: Callable[[str, str], str]) -> None:
        self.decide = decide
        self.shown: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        first, second = shown_pair(body)
        with self.lock:
            self.shown.append((first, second))
        verdict = self.decide(first, second)
        return json.dumps({"rationale": f"{first} vs {second}", "verdict": verdict})


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as srv:
        yield srv


def run_judge(server: StubServer, tmp_path: Path, **params: Any) -> Summary:
    params.setdefault("input", write_responses(tmp_path / "responses.jsonl"))
    task = JudgeTask(JudgeParams(**params))
    model = ModelSettings(backend="openai", base_url=server.base_url, model="stub-judge")
    return run_task(task, model, tmp_path / "judge", show_progress=False, cache=tmp_path / "c.db")


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def rankings(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]


def test_pairwise_judge_sees_both_orders_and_position_bias_gives_no_pairs(
    server: StubServer, tmp_path: Path
) -> None:
    biased = PairJudge(lambda first, second: "first")
    server.configure(responder=biased)
    summary = run_judge(server, tmp_path, mode="pairwise")
    assert len(biased.shown) == 12 and len(set(biased.shown)) == 12  # 6 pairs x 2 orders
    assert {(b, a) for a, b in biased.shown} == set(biased.shown)
    rows = [r["data"] for r in records(tmp_path / "judge")]
    assert len(rows) == 6
    assert all(r["winner"] is None and r["consistent"] is False for r in rows)
    assert all(r["verdict_ab"] == r["verdict_ba"] == "first" for r in rows)
    assert summary.counters["inconsistent_pairs"] == 6
    assert summary.counters["tied_pairs"] == 6
    assert summary.counters["all_tie_prompts"] == 1
    (ranking,) = rankings(tmp_path / "judge")
    assert ranking["order"] == "A = B = C = D"
    assert (
        ranking["annotator"] == "judge:stub-judge:pairwise" and ranking["annotator_kind"] == "judge"
    )
    # no pair at all: pairs refuses to write an empty dataset and says why
    with pytest.raises(UserError, match=r"ranks every response of prompt 'qc' equal \(A = B"):
        preference_data_from_files(
            tmp_path / "responses.jsonl", [tmp_path / "judge" / "rankings.jsonl"]
        )


def test_pairwise_consistent_judge_ranks(server: StubServer, tmp_path: Path) -> None:
    def decide(first: str, second: str) -> str:
        return "first" if QUALITY[first] > QUALITY[second] else "second"

    fair = PairJudge(decide)
    server.configure(responder=fair)
    summary = run_judge(server, tmp_path, mode="pairwise")
    assert summary.counters["inconsistent_pairs"] == 0
    assert summary.counters["tied_pairs"] == 0
    assert summary.counters["prompts_judged"] == 1
    (ranking,) = rankings(tmp_path / "judge")
    assert ranking["order"] == "D > B > A > C"
    assert ranking["scores"] == {"D": 3.0, "B": 2.0, "A": 1.0, "C": 0.0}
    rows = {(r["data"]["a_id"], r["data"]["b_id"]): r["data"] for r in records(tmp_path / "judge")}
    assert rows[("A", "B")]["winner"] == "B" and rows[("A", "B")]["verdict_ab"] == "second"
    assert rows[("A", "B")]["verdict_ba"] == "first" and rows[("A", "B")]["rationale_ab"]
    # a rerun resumes: nothing new, every call from the cache, the same rankings file
    before = (tmp_path / "judge" / "rankings.jsonl").read_text()
    again = run_judge(server, tmp_path, mode="pairwise")
    assert again.records_new == 0 and again.records_present == 6 and again.cache_hits == 12
    assert (tmp_path / "judge" / "rankings.jsonl").read_text() == before


def rating_judge(scores: dict[str, dict[str, int]]) -> Callable[[dict[str, Any]], str]:
    def respond(body: dict[str, Any]) -> str:
        rid = TEXT_ID[rated_answer(body)]
        return json.dumps({"rationale": f"about {rid}", **scores[rid]})

    return respond


def test_rate_mode_mean_aspect_score_and_ties(server: StubServer, tmp_path: Path) -> None:
    scores = {
        "A": {"helpfulness": 4, "honesty": 2},
        "B": {"helpfulness": 4, "honesty": 4},
        "C": {"helpfulness": 3, "honesty": 3},
        "D": {"helpfulness": 5, "honesty": 5},
    }
    server.configure(responder=rating_judge(scores))
    summary = run_judge(server, tmp_path, aspects=["helpfulness", "honesty"])
    (ranking,) = rankings(tmp_path / "judge")
    assert ranking["order"] == "D > B > A = C"
    assert summary.counters["tied_pairs"] == 1 and summary.counters["responses_rated"] == 4
    rows = {r["data"]["response_id"]: r["data"] for r in records(tmp_path / "judge")}
    assert rows["A"]["ratings"] == {"helpfulness": 4, "honesty": 2}
    assert rows["A"]["score"] == 3.0 and rows["A"]["rationale"] == "about A"
    assert rows["A"]["judge"] == "judge:stub-judge" and rows["A"]["mode"] == "rate"
    # the rankings file is in the store format and validates against the responses
    groups = load_responses(tmp_path / "responses.jsonl")
    (loaded,) = load_rankings([tmp_path / "judge" / "rankings.jsonl"], groups)
    assert loaded.order == [["D"], ["B"], ["A", "C"]] and loaded.scores is not None


def test_rate_mode_unusable_rating_leaves_the_response_out(
    server: StubServer, tmp_path: Path
) -> None:
    good = rating_judge({rid: {"helpfulness": q} for rid, q in QUALITY.items()})
    server.configure(responder=lambda b: "no idea" if "cold" in user_text(b) else good(b))
    summary = run_judge(server, tmp_path, aspects=["helpfulness"])
    (ranking,) = rankings(tmp_path / "judge")
    assert ranking["order"] == "D > B > A"
    assert summary.failures == {"invalid_output": 1}
    fails = (tmp_path / "judge" / "failures.jsonl").read_text()
    assert '"unit": "prompt:qc#C"' in fails


def test_summarize_style_aliases(server: StubServer, tmp_path: Path) -> None:
    rows = [{"group": "art1", "prompt": PROMPT, "response": t} for t in RESPONSES.values()]
    rows.append({"group": "art2", "prompt": "Say hi", "response": "hi"})  # one response: skipped
    path = tmp_path / "summaries.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server.configure(responder=rating_judge({r: {"helpfulness": q} for r, q in QUALITY.items()}))
    summary = run_judge(server, tmp_path, input=path, aspects=["helpfulness"])
    assert summary.counters["prompts_with_fewer_than_2_responses"] == 1
    (ranking,) = rankings(tmp_path / "judge")
    assert ranking["prompt_id"] == "art1" and ranking["order"] == "D > B > A > C"


def cli_run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_pairwise(server: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "c.sqlite"))
    server.configure(responder=PairJudge(lambda a, b: "tie"))
    out = tmp_path / "judge"
    args = ["judge", "--input", str(write_responses(tmp_path / "r.jsonl")), "--mode", "pairwise"]
    args += ["--backend", "openai", "--base-url", server.base_url, "--out", str(out)]
    assert cli_run(args) == 0
    (ranking,) = rankings(out)
    assert ranking["order"] == "A = B = C = D"


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"prompt": "p", "answer": "x"}], [], "r.jsonl:1: need non-empty 'prompt' and 'response'"),
        (
            [{"prompt_id": "p", "prompt": "p", "response_id": "A", "response": "x"}] * 2,
            [],
            "r.jsonl:2: prompt 'p' has response id 'A' twice",
        ),
        ([{"prompt": "p", "response": "x"}], ["--aspects", "Bad Aspect"], "--aspects"),
    ],
)
def test_cli_errors(
    rows: list[dict[str, Any]],
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judge"
    assert cli_run(["judge", "--input", str(path), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()
