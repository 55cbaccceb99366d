"""Distillation: a teacher answers prompts from a file, a student (on another backend)
answers them too; a failing student flags records instead of losing them; bad input is one
line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.runner import run_task
from synthloom.settings import ModelSettings
from synthloom.tasks.distill import DistillParams, DistillTask
from synthloom.testing.stub_server import Faults, StubServer

PROMPTS = [
    "What colour is the sky on a clear day? Answer in one short sentence.",
    "Name one fruit that is yellow. Answer in one short sentence.",
]


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def prompts_file(tmp_path: Path, prompts: list[str] = PROMPTS) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def student_text(body: dict[str, Any]) -> str:
    return f"STUDENT says: {body['messages'][-1]['content']}"


def stub_settings(server: StubServer, model: str, **extra: Any) -> ModelSettings:
    return ModelSettings(backend="openai", base_url=server.base_url, model=model, **extra)


@pytest.mark.embedded
def test_embedded_teacher_stub_student(tmp_path: Path) -> None:
    task = DistillTask(DistillParams(input=prompts_file(tmp_path), student=True))
    with StubServer(responder=student_text) as server:
        models = {
            "teacher": ModelSettings(backend="embedded", slots=2, seed=0, max_tokens=160),
            "student": stub_settings(server, "student"),
        }
        summary = run_task(
            task, models, tmp_path / "run", show_progress=False, cache=tmp_path / "c.sqlite"
        )
        assert server.stats.completed == len(PROMPTS)
    assert summary.units_ok == len(PROMPTS) and summary.units_failed == 0
    recs = records(tmp_path / "run")
    assert sorted(r["data"]["prompt"] for r in recs) == sorted(PROMPTS)
    for r in recs:
        d = r["data"]
        assert r["status"] == "ok" and r["task"] == "distill"
        assert d["response"] and not d["response"].startswith("STUDENT")
        assert d["student_response"] == "STUDENT says: " + d["prompt"]
        assert d["teacher_model"].endswith(".gguf") and d["student_model"] == "student"
        assert 0 <= d["gap"]["rouge_l_f1"] <= 1 and d["gap"]["length_ratio"] > 0
        assert r["provenance"]["backend"] == "embedded" and r["provenance"]["call_keys"]
        assert r["provenance"]["template"] == "distill"
        assert r["notes"]["student_provenance"]["backend"] == "openai"
        assert d["source"]["line"] in (1, 2)


def test_samples_and_system(tmp_path: Path) -> None:
    task = DistillTask(DistillParams(input=prompts_file(tmp_path), samples=3, system="Be brief."))
    with StubServer() as server:
        seen: list[dict[str, Any]] = []
        server.configure(responder=lambda body: seen.append(body))
        run_task(
            task,
            {"teacher": stub_settings(server, "teacher")},
            tmp_path / "run",
            show_progress=False,
            cache=tmp_path / "c.sqlite",
        )
    recs = records(tmp_path / "run")
    assert len(recs) == 6 and "student_response" not in recs[0]["data"]
    for prompt in PROMPTS:
        mine = [r for r in recs if r["data"]["prompt"] == prompt]
        assert sorted(r["data"]["sample"] for r in mine) == [0, 1, 2]
        assert len({r["data"]["response"] for r in mine}) == 3  # distinct seeds
    assert len({body["seed"] for body in seen}) == 3
    assert all(body["messages"][0] == {"role": "system", "content": "Be brief."} for body in seen)


@pytest.mark.parametrize("failure", ["faults", "responder_raises"])
def test_failing_student_flags_records(tmp_path: Path, failure: str) -> None:
    def boom(body: dict[str, Any]) -> str:
        raise RuntimeError("student crashed")

    faults = Faults(rate=1.0, kinds=("500",)) if failure == "faults" else None
    responder = boom if failure == "responder_raises" else None
    task = DistillTask(DistillParams(input=prompts_file(tmp_path), student=True))
    with StubServer() as teacher, StubServer(faults=faults, responder=responder) as student:
        summary = run_task(
            task,
            {
                "teacher": stub_settings(teacher, "teacher"),
                "student": stub_settings(student, "student", max_retries=0),
            },
            tmp_path / "run",
            show_progress=False,
            cache=tmp_path / "c.sqlite",
        )
    assert summary.units_ok == 2 and summary.counters["student_failed"] == 2
    recs = records(tmp_path / "run")
    assert len(recs) == 2
    for r in recs:
        assert r["status"] == "flagged"
        assert r["data"]["response"].startswith("Stub answer")  # the teacher's answer is kept
        assert r["data"]["student_response"] is None and r["data"]["gap"] is None
        assert "http_500" in r["notes"]["student_error"]


def test_student_key_revoked_mid_run(tmp_path: Path) -> None:
    """The student's first answer arrives, then its key stops working (401): the rest of
    the records are flagged, the run goes on, no teacher answer is lost."""
    prompts = ["one?", "two?", "three?"]
    task = DistillTask(DistillParams(input=prompts_file(tmp_path, prompts), student=True))
    with StubServer() as teacher, StubServer() as student:

        def answer_then_revoke(body: dict[str, Any]) -> str:
            student.configure(api_key="rotated")
            return "student answer"

        student.configure(responder=answer_then_revoke)
        summary = run_task(
            task,
            {
                "teacher": stub_settings(teacher, "teacher"),
                "student": stub_settings(student, "student", concurrency=1),
            },
            tmp_path / "run",
            show_progress=False,
            cache=tmp_path / "c.sqlite",
        )
    recs = records(tmp_path / "run")
    assert summary.units_ok == 3 and len(recs) == 3
    assert sorted(r["status"] for r in recs) == ["flagged", "flagged", "ok"]
    flagged = [r for r in recs if r["status"] == "flagged"]
    assert all("401" in r["notes"]["student_error"] for r in flagged)
    assert all(r["data"]["response"].startswith("Stub answer") for r in recs)


def test_rerun_after_student_failure_supersedes(tmp_path: Path) -> None:
    task = DistillTask(DistillParams(input=prompts_file(tmp_path), student=True))
    out = tmp_path / "run"
    with StubServer() as teacher, StubServer(faults=Faults(rate=1.0, kinds=("500",))) as st:
        models = {
            "teacher": stub_settings(teacher, "teacher"),
            "student": stub_settings(st, "student", max_retries=0),
        }
        run_task(task, models, out, show_progress=False, cache=tmp_path / "c.sqlite")
        st.configure(faults=None)
        run_task(task, models, out, show_progress=False, cache=tmp_path / "c.sqlite")
    recs = records(out)
    flagged = {r["id"] for r in recs if r["status"] == "flagged"}
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(flagged) == 2 and len(ok) == 2
    assert {r["notes"]["supersedes"] for r in ok} == flagged


def test_cli_two_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "prompts.csv"
    data.write_text("question\nWhat is 2+2?\n")
    with StubServer() as teacher, StubServer(responder=student_text) as student:
        main_args = [
            "distill", "--input", str(data), "--prompt-column", "question",
            "--backend", "openai", "--base-url", teacher.base_url, "--model", "big",
            "--student-base-url", student.base_url, "--student-model", "small",
            "--out", str(tmp_path / "run"),
        ]  # fmt: skip
        main(main_args)
        assert teacher.stats.completed == 1 and student.stats.completed == 1
    (rec,) = records(tmp_path / "run")
    assert rec["data"]["teacher_model"] == "big" and rec["data"]["student_model"] == "small"
    assert rec["data"]["student_response"] == "STUDENT says: What is 2+2?"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert set(manifest["identity"]["models"]) == {"teacher", "student"}


def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], out: Path) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(out)])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert not out.exists(), "output written despite the error"
    return lines[0]


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "ok"}\n{"question": "no prompt"}\n')
    line = one_line_error(capsys, ["distill", "--input", str(data)], out)
    assert "p.jsonl:2" in line and "'prompt'" in line

    data.write_text("\n")
    assert "empty" in one_line_error(capsys, ["distill", "--input", str(data)], out)

    data.write_bytes('{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    line = one_line_error(capsys, ["distill", "--input", str(data)], out)
    assert "p.jsonl:1" in line and "UTF-8" in line

    data.write_text('{"prompt": 3}\n')
    assert "not text" in one_line_error(capsys, ["distill", "--input", str(data)], out)
