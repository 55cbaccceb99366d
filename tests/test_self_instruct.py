"""Self-Instruct: filters applied exactly (scripted stub server), a real embedded run, bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.errors import UserError
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.self_instruct import (
    DEFAULT_SEEDS,
    SelfInstructParams,
    SelfInstructTask,
    load_seed_tasks,
)
from synthloom.testing.stub_server import StubServer
from tests.example_recipes import ExampleRun

GOOD = [
    "Suggest three names for a bakery that sells vegan desserts.",
    "Explain the difference between weather and climate in simple terms.",
]
GENERATED = "\n".join(
    [
        "9. Describe the image below in a few sentences.",  # blocked word
        "10. Classify the sentiment of this product review as positive, negative or mixed.",
        "11. Write a program that sorts a list of numbers.",
        f"12. {GOOD[0]}",
        f"13. {GOOD[1]}",
    ]
)
INSTANCES = (
    "Example 1\nInput: hello there\nOutput: hello there\n"  # input == output
    "Example 2\nInput: \nOutput: A short, useful answer.\n"
    "Example 3\nInput: something\nOutput:\n"  # empty output
)


def user_text(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


def responder(body: dict[str, Any]) -> str:
    if body.get("response_format"):
        return json.dumps({"answer": "no"})
    if "Continue the list" in user_text(body):
        return GENERATED
    return INSTANCES


def read_failures(out: Path) -> dict[str, dict[str, Any]]:
    lines = (out / "failures.jsonl").read_text().splitlines()
    return {f["unit"]: f for f in map(json.loads, lines)}


def read_run(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = (out / "records.jsonl").read_text().splitlines()
    manifest = json.loads((out / "manifest.json").read_text())
    return [json.loads(line) for line in lines], manifest


def test_filters_applied_exactly(tmp_path: Path) -> None:
    params = SelfInstructParams(num_instructions=5, per_call=5, batch=1, max_rounds=1)
    with StubServer(responder=responder) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        summary = run_task(
            SelfInstructTask(params),
            settings,
            tmp_path / "run",
            show_progress=False,
            cache=tmp_path / "cache.sqlite",
        )
    records, manifest = read_run(tmp_path / "run")
    assert [r["data"]["instruction"] for r in records] == GOOD
    counters = summary.counters
    assert counters["instructions_generated"] == 5
    assert counters["instructions_removed_blocked_word"] == 1
    assert counters["instructions_removed_too_similar"] == 1  # near-copy of seed_task_1
    assert counters["instructions_removed_write_a_program"] == 1
    assert counters["instructions_kept"] == 2
    assert counters["instances_removed_input_equals_output"] == 2
    assert counters["instances_removed_empty_output"] == 2
    assert counters["instances_kept"] == 2
    assert counters["shortfall"] == 3
    assert manifest["summary"]["counters"] == counters
    # every removed instruction and instance is a failures.jsonl line with its rule
    failures = read_failures(tmp_path / "run")
    assert Counter(f["cause"] for f in failures.values()) == {
        "eliminated:blocked_word": 1,
        "eliminated:too_similar": 1,
        "eliminated:write_a_program": 1,
        "eliminated:input_equals_output": 2,
        "eliminated:empty_output": 2,
    }
    assert summary.failures == manifest["summary"]["failures"]
    assert sum(summary.failures.values()) == len(failures)
    blocked = failures["r1:g0#instruction:0"]
    assert blocked["detail"] == "Describe the image below in a few sentences."
    same = failures["r1:t0#instance:0"]
    assert (same["cause"], same["detail"], same["input"]) == (
        "eliminated:input_equals_output",
        "hello there",
        "hello there",
    )
    assert same["instruction"] == GOOD[0]
    assert (summary.units_ok, summary.units_failed) == (3, 0)  # one generation call, two tasks
    seed_ids = {s.id for s in load_seed_tasks(DEFAULT_SEEDS)}
    for r in records:
        assert r["data"]["instances"] == [{"input": "", "output": "A short, useful answer."}]
        assert r["data"]["is_classification"] is False
        prov = r["provenance"]
        assert prov["template"] == "self_instruct_generate"
        assert len(prov["parents"]) == 8 and set(prov["parents"]) <= seed_ids
        assert len(prov["call_keys"]) == 3  # generate, classify, instances


def test_task_without_instances_is_dropped_and_rounds_continue(tmp_path: Path) -> None:
    def scripted(body: dict[str, Any]) -> str:
        text = user_text(body)
        if body.get("response_format"):
            return json.dumps({"answer": "no"})
        if "Continue the list" in text:  # round 2 offers the same lines: all too similar
            return f"9. {GOOD[0]}\n10. {GOOD[1]}"
        if text.endswith(GOOD[1]):
            return "Example 1\nInput: same\nOutput: same"
        return "Example 1\nInput: x\nOutput: y"

    params = SelfInstructParams(num_instructions=2, per_call=2, batch=1, max_rounds=2)
    with StubServer(responder=scripted) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        summary = run_task(
            SelfInstructTask(params),
            settings,
            tmp_path / "run",
            show_progress=False,
            cache=tmp_path / "cache.sqlite",
        )
    records, _ = read_run(tmp_path / "run")
    assert [r["data"]["instruction"] for r in records] == [GOOD[0]]
    c = summary.counters
    assert c["tasks_dropped_no_instances"] == 1
    assert c["rounds"] == 2
    assert c["instructions_removed_too_similar"] == 2  # round 2 repeats both
    assert c["shortfall"] == 1
    # the task left without instances is a failed unit, its removed instance a line of its own
    assert (summary.units_ok, summary.units_failed) == (3, 1)
    failures = read_failures(tmp_path / "run")
    assert failures["r1:t1"]["cause"] == "eliminated:no_instances"
    assert failures["r1:t1"]["detail"] == GOOD[1]
    assert failures["r1:t1#instance:0"]["cause"] == "eliminated:input_equals_output"
    assert failures["r2:g0#instruction:1"]["cause"] == "eliminated:too_similar"
    assert len(failures) == sum(summary.failures.values()) == 4


def test_no_repeated_or_duplicate_instances_are_exported(tmp_path: Path) -> None:
    """The defect seen in the Self-Instruct recipe: instances whose output repeats the
    instruction and copies of one nonsense instance were exported as training rows."""
    again = GOOD[0].upper()  # the same instruction proposed twice: too similar, not a 2nd task

    def scripted(body: dict[str, Any]) -> str:
        text = user_text(body)
        if "Continue the list" in text:
            return f"9. {GOOD[0]}\n10. {GOOD[1]}\n11. {again}"
        instruction = next(g for g in GOOD if text.endswith(g))
        nonsense = "Example\nInput: The cat is a cat.\nOutput: Cat.\n"
        return (
            f"Example 1\nInput: \nOutput: {instruction}\n"  # repeats the instruction
            + nonsense * 3  # one nonsense instance, three times
            + f"Example 5\nInput: x\nOutput: An answer to {instruction[:20]}\n"
        )

    params = SelfInstructParams(
        num_instructions=3, per_call=3, batch=1, max_rounds=1, classify="keywords"
    )
    with StubServer(responder=scripted) as server:
        settings = ModelSettings(backend="openai", base_url=server.base_url, model="stub")
        summary = run_task(
            SelfInstructTask(params),
            settings,
            tmp_path / "run",
            show_progress=False,
            cache=tmp_path / "cache.sqlite",
        )
    c = summary.counters
    assert c["instructions_removed_too_similar"] == 1
    assert c["instances_removed_output_equals_instruction"] == 2  # one per task
    assert c["instances_removed_duplicate_instance"] == 4  # two copies per task
    assert c["instances_kept"] == 4
    out = tmp_path / "alpaca.jsonl"
    main(["export", str(tmp_path / "run"), "--format", "alpaca", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    triples = [(r["instruction"], r["input"], r["output"]) for r in rows]
    assert len(set(triples)) == len(triples)
    assert all(r["output"] != r["instruction"] for r in rows)


@pytest.mark.embedded
def test_embedded_run(example_run: ExampleRun) -> None:
    """recipes/self-instruct.yaml's run on the embedded model (num_instructions 4, per_call 4,
    batch 2, max_rounds 2, keyword classification), made once for the session."""
    out, result, _ = example_run("self-instruct")
    assert result.returncode == 0, result.stderr[-2000:]
    records, manifest = read_run(out / "tasks")
    assert manifest["identity"]["models"]["default"]["backend"] == "embedded"
    counters = manifest["summary"]["counters"]
    assert counters["rounds"] >= 1
    assert counters.get("instructions_generated", 0) >= 0
    assert len(records) + counters.get("shortfall", 0) == 4
    for r in records:
        assert r["task"] == "self-instruct"
        assert r["data"]["instruction"] and 1 <= len(r["data"]["instances"]) <= 5
        assert r["provenance"]["template"] == "self_instruct_generate"
        assert r["provenance"]["parents"]


def test_empty_seed_file_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["self-instruct", "--seeds", str(seeds), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "empty" in err
    assert not out.exists()


def test_seed_without_instruction_names_file_and_line(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    good = {"id": "a", "instruction": "Name three colours of the rainbow.", "instances": []}
    seeds.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "instances": []}) + "\n")
    with pytest.raises(UserError, match=rf"{seeds}:2: .*'instruction'"):
        SelfInstructTask(SelfInstructParams(seeds=seeds))
    bad = {"instruction": "Name a colour.", "instances": [{"input": "x"}]}
    seeds.write_text(json.dumps(bad) + "\n")
    with pytest.raises(UserError, match=rf"{seeds}:1: \"instances\""):
        SelfInstructTask(SelfInstructParams(seeds=seeds))


def test_shipped_seeds_are_valid() -> None:
    seeds = load_seed_tasks(DEFAULT_SEEDS)
    assert len(seeds) >= 20
    assert any(s.is_classification for s in seeds) and all(s.instances for s in seeds)
    assert len({s.id for s in seeds}) == len(seeds)
