"""`responses`: K diverse responses per prompt, duplicates regenerated in sample order."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.llm.engine import call_seed
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.responses import STYLES, ResponsesParams, ResponsesTask
from synthloom.testing.stub_server import StubServer


def sample_of(body: dict[str, Any]) -> int:
    """The engine's sample index behind a request (seed 0, first parse attempt)."""
    return next(s for s in range(64) if call_seed(0, s, 0) == body["seed"])


class Recorder:
    """A responder that records requests; `text(body)` decides the answer."""

    def __init__(self, text: Any = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.text = text or (lambda b: f"answer {sample_of(b)} to {b['messages'][-1]['content']}")
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.bodies.append(body)
        return self.text(body)


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as srv:
        yield srv


def settings(server: StubServer, model: str = "stub") -> ModelSettings:
    return ModelSettings(backend="openai", base_url=server.base_url, model=model)


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def failures(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]


def run(server: StubServer, tmp_path: Path, out: str = "run", **params: Any) -> Any:
    task = ResponsesTask(ResponsesParams(**params))
    return run_task(
        task, settings(server), tmp_path / out, show_progress=False, cache=tmp_path / "c.sqlite"
    )


def test_styles_temperatures_and_samples_cycle(server: StubServer, tmp_path: Path) -> None:
    rec = Recorder()
    server.configure(responder=rec)
    summary = run(
        server,
        tmp_path,
        prompts=["Explain quantum computing", "What is DNS?"],
        k=4,
        styles=["technical", "simple", "concise"],
        temperatures=[0.7, 1.0],
    )
    assert summary.status == "complete" and summary.records_new == 8
    rows = records(tmp_path / "run")
    first = [r["data"] for r in rows if r["data"]["prompt"] == "Explain quantum computing"]
    first.sort(key=lambda d: d["response_id"])
    assert [d["response_id"] for d in first] == ["A", "B", "C", "D"]
    assert [d["style"] for d in first] == ["technical", "simple", "concise", "technical"]
    assert [d["temperature"] for d in first] == [0.7, 1.0, 0.7, 1.0]
    assert [d["system"] for d in first] == [STYLES[d["style"]] for d in first]
    assert {d["model"] for d in first} == {"stub"}
    assert len({d["prompt_id"] for d in first}) == 1
    # distinct sample indices (hence seeds), and the style reaches the model as a system prompt
    samples = sorted(sample_of(b) for b in rec.bodies if "quantum" in b["messages"][-1]["content"])
    assert samples == [0, 1, 2, 3]
    sent = next(b for b in rec.bodies if "quantum" in b["messages"][-1]["content"])
    assert sent["messages"][0]["role"] == "system"
    for r in rows:
        assert r["provenance"]["template"] == "responses" and r["provenance"]["call_keys"]
        assert set(r["data"]) == {
            "prompt_id",
            "prompt",
            "system",
            "response_id",
            "response",
            "style",
            "temperature",
            "model",
        }


def test_duplicates_regenerated_in_sample_order(server: StubServer, tmp_path: Path) -> None:
    def text(body: dict[str, Any]) -> str:
        s = sample_of(body)
        if "always" in body["messages"][-1]["content"]:
            return "The same answer."
        return "  the SAME answer " if s in (0, 2) else f"answer {s}"  # C duplicates A

    server.configure(responder=Recorder(text))
    summary = run(server, tmp_path, prompts=["sometimes", "always"], k=4, max_regenerations=2)
    rows = [r for r in records(tmp_path / "run")]
    some = {r["data"]["response_id"]: r for r in rows if r["data"]["prompt"] == "sometimes"}
    assert some["A"]["data"]["response"] == "the SAME answer"  # the first in sample order is kept
    assert some["C"]["data"]["response"] == "answer 4"  # regenerated with the next sample index
    assert some["C"]["notes"] == {"sample": 4, "role": "default", "regenerated": 1}
    always = [r["data"]["response_id"] for r in rows if r["data"]["prompt"] == "always"]
    assert always == ["A"]
    fails = failures(tmp_path / "run")
    assert sorted(f["unit"].rsplit("#")[1] for f in fails) == ["B", "C", "D"]
    assert {f["cause"] for f in fails} == {"duplicate_response"}
    assert summary.counters["duplicate_responses"] == 3
    assert summary.counters["duplicates_regenerated"] == 1 + 3 * 2
    assert summary.counters["prompts_with_fewer_than_2_responses"] == 1

    # a rerun replays from the cache and makes the same decisions
    again = run(server, tmp_path, prompts=["sometimes", "always"], k=4, max_regenerations=2)
    assert again.records_new == 0 and again.records_present == 5
    assert again.cache_hits == again.calls


def test_input_run_dir_parents_and_prompt_column(server: StubServer, tmp_path: Path) -> None:
    server.configure(responder=Recorder())
    src = tmp_path / "src"
    src.mkdir()
    rows = [
        {"id": "r1", "task": "qa", "data": {"question": "Why is the sky blue?"}},
        {"id": "r2", "task": "qa", "data": {"question": "Why is the sky blue?"}},
        {"id": "r3", "task": "qa", "data": {"question": "What is rain?"}},
    ]
    (src / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run(server, tmp_path, input=src, prompt_column="question", k=2)
    assert summary.counters["duplicate_prompts_skipped"] == 1
    out = records(tmp_path / "run")
    assert len(out) == 4
    parents = {r["data"]["prompt"]: r["provenance"]["parents"] for r in out}
    assert parents == {"Why is the sky blue?": ["r1"], "What is rain?": ["r3"]}


def cli_run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_extra_models_and_custom_style(
    server: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "c.sqlite"))
    rec = Recorder(lambda b: f"{b['model']} says {sample_of(b)}")
    server.configure(responder=rec)
    out = tmp_path / "run"
    code = cli_run(
        ["responses", "--prompt", "Explain DNS", "-k", "4", "--temperatures", "0.2"]
        + ["--styles", "simple", "--custom-style", "pirate=Talk like a pirate."]
        + ["--backend", "openai", "--base-url", server.base_url, "--model", "small"]
        + ["--extra-model", f"big={server.base_url}|large", "--out", str(out)]
    )
    assert code == 0
    data = sorted((r["data"] for r in records(out)), key=lambda d: d["response_id"])
    assert [d["model"] for d in data] == ["small", "large", "small", "large"]
    assert [d["style"] for d in data] == ["simple", "pirate", "simple", "pirate"]
    assert data[1]["system"] == "Talk like a pirate."
    assert {d["temperature"] for d in data} == {0.2}
    assert {b["model"] for b in rec.bodies} == {"small", "large"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["identity"]["models"]) == {"default", "big"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "x", "--styles", "posh"], "unknown style"),
        (["--prompt", "x", "--temperatures", "0.7,hot"], "--temperatures"),
        (["--prompt", "x", "--extra-model", "nope"], "--extra-model"),
        (["--input", "missing.jsonl"], "missing.jsonl: file not found"),
        ([], "give --input PATH or at least one --prompt"),
    ],
)
def test_cli_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert cli_run(["responses", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_csv_input_keeps_file_and_line(server: StubServer, tmp_path: Path) -> None:
    server.configure(responder=Recorder())
    (tmp_path / "p.csv").write_text("id,text\n1,Why is the sea salty?\n2,What is a qubit?\n")
    summary = run(server, tmp_path, input=tmp_path / "p.csv", prompt_column="text", k=2)
    assert summary.records_new == 4
    notes = {r["data"]["prompt"]: r["notes"]["source"] for r in records(tmp_path / "run")}
    assert notes["What is a qubit?"] == {"file": str(tmp_path / "p.csv"), "line": 3}
    assert all(r["provenance"]["parents"] == [] for r in records(tmp_path / "run"))
