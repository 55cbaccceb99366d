"""`pairs`: rankings (people's and/or a judge's) -> chosen/rejected pairs, no model calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main

PROMPT = "Explain quantum computing"
RESPONSES = {  # technical, beginner-friendly, inaccurate, clear
    "A": "Quantum computers use qubits and unitary gates; Shor's algorithm factors integers.",
    "B": "Think of a coin spinning in the air: a qubit is heads and tails at once until you look.",
    "C": "Quantum computers are normal computers that are very fast because they are cold.",
    "D": "Qubits hold superpositions; entanglement and interference let some problems run faster.",
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def responses_file(tmp_path: Path, extra: list[dict[str, Any]] | None = None) -> Path:
    rows = [
        {"prompt_id": "qc", "prompt": PROMPT, "response_id": rid, "response": text}
        for rid, text in RESPONSES.items()
    ]
    return write_jsonl(tmp_path / "responses.jsonl", rows + (extra or []))


def ranking(annotator: str, order: Any, prompt_id: str = "qc", **extra: Any) -> dict[str, Any]:
    return {"prompt_id": prompt_id, "annotator": annotator, "order": order, **extra}


def run(args: list[str]) -> int:
    try:
        main(["pairs", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def text(value: Any) -> str:
    """A row's answer: a string (standard formats) or one assistant message (conversational)."""
    if isinstance(value, str):
        return value
    (message,) = value
    assert message["role"] == "assistant"
    return str(message["content"])


def test_four_responses_human_ranking_gives_six_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    human = write_jsonl(tmp_path / "human.jsonl", [ranking("alice", "D > B > A > C")])
    out = tmp_path / "dpo.jsonl"
    assert (
        run(
            ["--responses", str(responses_file(tmp_path)), "--rankings", str(human)]
            + ["--out", str(out)]
        )
        == 0
    )
    text_id = {t: rid for rid, t in RESPONSES.items()}
    rows = read(out)
    got = [(text_id[text(r["chosen"])], text_id[text(r["rejected"])]) for r in rows]
    assert got == [("D", "B"), ("D", "A"), ("D", "C"), ("B", "A"), ("B", "C"), ("A", "C")]
    # conversational by default: the prompt is a user message (the model's chat template applies)
    user = [{"role": "user", "content": PROMPT}]
    assert all(set(r) == {"prompt", "chosen", "rejected"} and r["prompt"] == user for r in rows)
    ids = read(tmp_path / "dpo.jsonl.ids.jsonl")  # named after the whole file name
    assert [(i["chosen_id"], i["rejected_id"]) for i in ids] == got
    assert ids[0]["provenance"] == {"annotator": "alice"}
    printed = capsys.readouterr().out
    assert "prompts in: 1" in printed and "pairs out: 6" in printed
    assert "all-tie prompts (no pair): 0" in printed


def test_two_annotators_aggregated_with_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = write_jsonl(tmp_path / "alice.jsonl", [ranking("alice", "D > B > A > C")])
    bob = write_jsonl(  # list-of-tiers form, kind given
        tmp_path / "bob.jsonl",
        [ranking("bob", [["D"], ["A"], ["B"], ["C"]], annotator_kind="human")],
    )
    out = tmp_path / "reward.jsonl"
    args = ["--responses", str(responses_file(tmp_path)), "--rankings", str(alice)]
    assert run([*args, "--rankings", str(bob), "--format", "reward", "--out", str(out)]) == 0
    text_id = {t: rid for rid, t in RESPONSES.items()}
    rows = read(out)
    # Borda: D 6, A 3, B 3, C 0 -> D > A = B > C; the tie gives no pair
    got = {(text_id[r["chosen"]], text_id[r["rejected"]]): r["margin"] for r in rows}
    assert got == {
        ("D", "A"): 3.0,
        ("D", "B"): 3.0,
        ("D", "C"): 6.0,
        ("A", "C"): 3.0,
        ("B", "C"): 3.0,
    }
    printed = capsys.readouterr().out
    assert "2 annotator(s); 1 prompt(s) aggregated (borda)" in printed
    assert "mean Kendall tau 0.667" in printed and "Krippendorff alpha 0." in printed


def test_modes_ties_and_small_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = [
        {"prompt_id": "tie", "prompt": "Say hi", "response_id": "A", "response": "hi"},
        {"prompt_id": "tie", "prompt": "Say hi", "response_id": "B", "response": "hello"},
        {"prompt_id": "one", "prompt": "Say yes", "response_id": "A", "response": "yes"},
        {"prompt_id": "none", "prompt": "Unranked", "response_id": "A", "response": "x"},
    ]
    rankings = write_jsonl(
        tmp_path / "r.jsonl",
        [ranking("h", "D > B = A > C"), ranking("h", "A = B", "tie"), ranking("h", "A", "one")],
    )
    base = ["--responses", str(responses_file(tmp_path, extra)), "--rankings", str(rankings)]
    assert run([*base, "--mode", "best_worst", "--out", str(tmp_path / "bw.jsonl")]) == 0
    text_id = {t: rid for rid, t in RESPONSES.items()}
    (row,) = read(tmp_path / "bw.jsonl")
    assert (text_id[text(row["chosen"])], text_id[text(row["rejected"])]) == ("D", "C")
    printed = capsys.readouterr().out
    assert "all-tie prompts (no pair): 1" in printed
    assert "prompts ranking <2 responses (no pair): 1" in printed
    assert "prompts in: 3 (1 more without a ranking)" in printed
    assert run([*base, "--out", str(tmp_path / "all.jsonl")]) == 0
    assert len(read(tmp_path / "all.jsonl")) == 5  # D>B, D>A, D>C, B>C, A>C
    assert run([*base, "--format", "kto", "--out", str(tmp_path / "kto.jsonl")]) == 0
    kto = read(tmp_path / "kto.jsonl")
    assert [(text_id[r["completion"]], r["label"]) for r in kto] == [("D", True), ("C", False)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([ranking("h", "D > B > A > C"), ranking("h", "D > E", "qc")], "r.jsonl:2: "),
        ([ranking("h", "D > E")], "r.jsonl:1: unknown response id(s) E for prompt 'qc'"),
        ([ranking("h", "D > A", "nope")], "r.jsonl:1: unknown prompt_id 'nope'"),
        ([ranking("h", "D >> A")], "r.jsonl:1: empty tier at position 1"),
        ([ranking("h", "D < A")], "r.jsonl:1: use '>' with the best response first"),
        ([ranking("h", "D > A > D")], "r.jsonl:1: "),
        ([ranking("h", [["D"], 3])], "r.jsonl:1: each tier in 'order'"),
        ([{"prompt_id": "qc"}], "r.jsonl:1: missing 'order'"),
        ([ranking("h", "D > A", annotator_kind="robot")], "r.jsonl:1: 'annotator_kind'"),
        ([ranking("h", "D > A"), ranking("h", "A > D")], "r.jsonl:2: annotator 'h' already"),
    ],
)
def test_validation_errors_write_nothing(
    rows: list[dict[str, Any]],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rankings = write_jsonl(tmp_path / "r.jsonl", rows)
    out = tmp_path / "out" / "dpo.jsonl"
    args = ["--responses", str(responses_file(tmp_path)), "--rankings", str(rankings)]
    assert run([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.parent.exists()


def test_malformed_json_and_bad_out_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "r.jsonl"
    bad.write_text(json.dumps(ranking("h", "D > A")) + "\n{oops\n")
    args = ["--responses", str(responses_file(tmp_path)), "--rankings", str(bad)]
    assert run([*args, "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "r.jsonl:2: invalid JSON" in capsys.readouterr().err
    assert run([*args, "--out", str(tmp_path / "x.csv")]) == 2
    assert "use a .jsonl or .parquet" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
