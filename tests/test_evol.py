"""Evol-Instruct: scripted failures return to the pool (stub server), embedded run, bad input."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.errors import UserError
from synthloom.quality.evol_rules import OPERATIONS
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.evol import EvolParams, EvolTask
from synthloom.testing.stub_server import StubServer
from tests.example_recipes import REPO, ExampleRun

INSTRUCTIONS = ["Name a red fruit.", "Explain what rain is.", "Give one tip for sleeping well."]
SUFFIX = "Answer in exactly three short bullet points."
SUFFIX2 = "Use at most forty words."  # the second round's rewrite (a repeated sentence fails)
ANSWER = "Here is a careful answer: " + " ".join(["word"] * 20)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class Scripted:
    """Rewrites append SUFFIX, then SUFFIX2; the first answer about rain is a refusal, later
    ones are fine."""

    def __init__(self) -> None:
        self.refused = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        if "#Given Prompt#:" in text:
            given = text.split("#Given Prompt#:\n", 1)[1].split("\n\n#", 1)[0].strip()
            return f"{given} {SUFFIX2 if SUFFIX in given else SUFFIX}"
        with self.lock:
            if "rain" in text and not self.refused:
                self.refused += 1
                return "Sorry, I can't."
        return ANSWER


def run(tmp_path: Path, rounds: int, server: StubServer) -> tuple[list[dict[str, Any]], Any]:
    source = write_jsonl(tmp_path / "in.jsonl", [{"instruction": t} for t in INSTRUCTIONS])
    summary = run_task(
        EvolTask(EvolParams(input=source, rounds=rounds)),
        ModelSettings(backend="openai", base_url=server.base_url, model="stub"),
        tmp_path / "run",
        show_progress=False,
        cache=tmp_path / "cache.sqlite",
    )
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], summary


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer(responder=Scripted()) as srv:
        yield srv


def test_refusal_fails_and_instruction_returns_to_pool(tmp_path: Path, server: StubServer) -> None:
    records, summary = run(tmp_path, 2, server)
    assert summary.counters["evolutions_failed_refusal"] == 1
    assert summary.counters["evolutions_ok"] == 5
    assert (summary.units_ok, summary.units_failed) == (5, 1)
    (failure,) = read_failures(tmp_path / "run")
    assert failure["unit"] == "r1:1" and failure["cause"] == "eliminated:refusal"
    assert failure["detail"] == "Sorry, I can't."  # the rejected answer
    assert failure["instruction"] == f"{INSTRUCTIONS[1]} {SUFFIX}"
    by_round = {(r["data"]["round"], r["data"]["original_instruction"]): r for r in records}
    # rain failed in round 1: no record; round 2 evolves the unchanged original again
    assert (1, INSTRUCTIONS[1]) not in by_round
    again = by_round[(2, INSTRUCTIONS[1])]
    assert again["data"]["instruction"] == f"{INSTRUCTIONS[1]} {SUFFIX}"
    assert again["provenance"]["parents"] == []  # a plain file: no parent record
    assert again["notes"]["source"]["line"] == 2
    # the others evolved twice; round 2 builds on round 1's record
    for text in (INSTRUCTIONS[0], INSTRUCTIONS[2]):
        first = by_round[(1, text)]
        second = by_round[(2, first["data"]["instruction"])]
        assert second["provenance"]["parents"] == [first["id"]]
        assert second["data"]["instruction"] == f"{text} {SUFFIX} {SUFFIX2}"
    for r in records:
        assert r["data"]["operation"] in OPERATIONS
        assert r["data"]["response"] == ANSWER
        assert r["provenance"]["template"] == "evol_rewrite"
        assert len(r["provenance"]["call_keys"]) == 2


def read_failures(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]


REPEATED = "\n".join(["Rain is water that falls from clouds."] * 5)
FACTS = "Sleep helps the body recover. Most adults need seven to nine hours each night."
ECHO = "\n".join(["Red apples taste sweet and crisp."] * 5)


def degenerate(body: dict[str, Any]) -> str:
    """The 135M model's failures, scripted: a rewrite that is one line repeated five times, a
    rewrite that answers the prompt instead, and an answer repeating one line five times."""
    text = body["messages"][-1]["content"]
    if "#Given Prompt#:" in text:
        given = text.split("#Given Prompt#:\n", 1)[1].split("\n\n#", 1)[0].strip()
        if "rain" in given:
            return REPEATED
        if "sleeping" in given:
            return FACTS
        return f"{given} {SUFFIX2 if SUFFIX in given else SUFFIX}"
    return ECHO if SUFFIX2 in text else ANSWER


def test_eliminated_evolutions_are_failures_with_their_rule(tmp_path: Path) -> None:
    """5 of 6 evolutions eliminated: the summary says 1 ok, 5 failed (it said 6 ok, 0 failed),
    and each is a failures.jsonl line with its rule and the rejected text."""
    with StubServer(responder=degenerate) as server:
        records, summary = run(tmp_path, 2, server)
    assert [r["data"]["instruction"] for r in records] == [f"{INSTRUCTIONS[0]} {SUFFIX}"]
    assert (summary.units_ok, summary.units_failed) == (1, 5)
    assert summary.failures == {
        "eliminated:repeated_text": 3,  # rain twice (instruction), the fruit's 2nd answer
        "eliminated:not_an_instruction": 2,  # sleep twice
    }
    failures = {f["unit"]: f for f in read_failures(tmp_path / "run")}
    assert len(failures) == sum(summary.failures.values())  # the summary counts these lines
    assert failures["r1:1"]["cause"] == "eliminated:repeated_text"
    assert failures["r1:1"]["detail"] == REPEATED
    assert failures["r2:2"]["cause"] == "eliminated:not_an_instruction"
    assert failures["r2:2"]["detail"] == FACTS
    assert failures["r2:0"]["detail"] == ECHO  # an answer rule: the answer is the rejected text
    assert failures["r2:0"]["instruction"] == f"{INSTRUCTIONS[0]} {SUFFIX} {SUFFIX2}"
    assert all(f["operation"] in OPERATIONS for f in failures.values())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["summary"]
    assert (manifest["units_ok"], manifest["units_failed"]) == (1, 5)
    assert manifest["failures"] == summary.failures


def test_rerun_reproduces_the_same_records(tmp_path: Path, server: StubServer) -> None:
    first, _ = run(tmp_path, 2, server)
    server.reset_stats()
    second, summary = run(tmp_path, 2, server)  # resume: everything from cache
    assert server.stats.requests == 0
    assert summary.records_new == 0 and summary.records_present == len(first)
    assert summary.cache_hits == summary.calls
    assert [r["id"] for r in second] == [r["id"] for r in first]


def test_chains_from_a_previous_run(tmp_path: Path, server: StubServer) -> None:
    records, _ = run(tmp_path, 1, server)
    task = EvolTask(EvolParams(input=tmp_path / "run", rounds=1))
    assert [e.record_id for e in task.entries] == [r["id"] for r in records]


@pytest.mark.embedded
def test_embedded_run(example_run: ExampleRun) -> None:
    """recipes/evol.yaml's run on the embedded model (its three prompts, one round), made once
    for the session; every evolution eliminated is a failed run (exit 1): SmolLM2-135M often
    answers the prompt instead of rewriting it."""
    out, result, _ = example_run("evol")
    assert result.returncode in (0, 1), result.stderr[-2000:]
    run = out / "evolve"
    prompts = [json.loads(x)["prompt"] for x in (REPO / "examples/prompts.jsonl").open()]
    summary = json.loads((run / "manifest.json").read_text())["summary"]
    lines = (run / "records.jsonl").read_text().splitlines()
    failures = read_failures(run)
    # every evolution is a record or a failures.jsonl line with its cause; the summary agrees
    assert len(lines) + len(failures) == len(prompts)
    assert (summary["units_ok"], summary["units_failed"]) == (len(lines), len(failures))
    assert summary["counters"].get("evolutions_ok", 0) == len(lines)
    assert all(f["cause"] for f in failures)
    for line in lines:
        r = json.loads(line)
        assert r["data"]["instruction"] and r["data"]["response"]
        assert r["data"]["original_instruction"] in prompts
        assert r["provenance"]["backend"] == "embedded" and r["provenance"]["model"]
        assert r["provenance"]["call_keys"]


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["evol", "--input", str(empty), "--out", str(out)])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()
    source = write_jsonl(tmp_path / "in.jsonl", [{"instruction": "Hi there you"}, {"prompt": "x"}])
    with pytest.raises(UserError, match=rf"{source}:2: .*'instruction'"):
        EvolTask(EvolParams(input=source))
    csv = tmp_path / "in.csv"
    csv.write_text("prompt\nName a red fruit.\n")
    task = EvolTask(EvolParams(input=csv, instruction_column="prompt"))
    assert [e.instruction for e in task.entries] == ["Name a red fruit."]


def test_default_input_is_the_shipped_seed_set() -> None:
    assert len(EvolTask(EvolParams()).entries) >= 20
