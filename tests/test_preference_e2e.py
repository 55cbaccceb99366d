"""The preference loop end to end: responses -> judge -> pairs -> a TRL file `datasets` loads."""

from __future__ import annotations

import json
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main

datasets = pytest.importorskip("datasets")
STRING = datasets.Value("string")
MESSAGES = [{"role": STRING, "content": STRING}]


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def load(path: Path, tmp_path: Path) -> Any:
    return datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )


def is_messages(feature: Any) -> bool:
    inner = feature if isinstance(feature, list) else [getattr(feature, "feature", None)]
    return inner == MESSAGES


def test_dpo_file_loads_with_datasets(tmp_path: Path) -> None:
    texts = {"A": "technical", "B": "beginner-friendly", "C": "inaccurate", "D": "clear"}
    rows = [
        {"prompt_id": "qc", "prompt": "Explain quantum computing", "response_id": k, "response": v}
        for k, v in texts.items()
    ]
    responses_path = write_jsonl(tmp_path / "responses.jsonl", rows)
    human = write_jsonl(
        tmp_path / "h.jsonl", [{"prompt_id": "qc", "annotator": "h", "order": "D > B > A > C"}]
    )
    for fmt in ("dpo", "dpo-conversational"):
        out = tmp_path / f"{fmt}.jsonl"
        main(
            ["pairs", "--responses", str(responses_path), "--rankings", str(human)]
            + ["--format", fmt, "--out", str(out)]
        )
        ds = load(out, tmp_path)
        assert ds.column_names == ["prompt", "chosen", "rejected"] and ds.num_rows == 6
        if fmt == "dpo":
            assert all(ds.features[c] == STRING for c in ds.column_names)
            assert (ds[0]["chosen"], ds[0]["rejected"]) == ("clear", "beginner-friendly")
        else:
            assert all(is_messages(ds.features[c]) for c in ds.column_names)
            assert ds[0]["prompt"] == [{"role": "user", "content": "Explain quantum computing"}]
            assert ds[0]["chosen"] == [{"role": "assistant", "content": "clear"}]


@pytest.mark.embedded
def test_embedded_responses_judge_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNTHLOOM_CACHE", str(tmp_path / "cache.sqlite"))
    started = time.monotonic()
    model = ["--slots", "4", "--threads", "2", "--max-tokens", "64"]
    resp, jdg, dpo = tmp_path / "responses", tmp_path / "judge", tmp_path / "dpo.jsonl"
    main(
        ["responses", "-k", "4", "--styles", "concise,simple,friendly,technical"]
        + ["--prompt", "Name one benefit of drinking water. Answer in one short sentence."]
        + [*model, "--out", str(resp)]
    )
    made = read(resp / "records.jsonl")
    lost = read(resp / "failures.jsonl") if (resp / "failures.jsonl").exists() else []
    assert len(made) + len(lost) == 4 and len(made) >= 3
    assert {r["data"]["response_id"] for r in made} <= set("ABCD")
    assert {r["provenance"]["backend"] for r in made} == {"embedded"}

    main(
        ["judge", "--input", str(resp), "--mode", "rate", "--aspects", "helpfulness"]
        + ["--rationale-chars", "60", *model, "--out", str(jdg)]
    )
    ratings = read(jdg / "records.jsonl")
    ranked = read(jdg / "rankings.jsonl")
    assert len(ranked) == 1 and {r["annotator_kind"] for r in ranked} == {"judge"}
    ids = {r["id"] for r in made}
    assert all(set(r["provenance"]["parents"]) <= ids for r in ratings)
    assert all(1 <= r["data"]["ratings"]["helpfulness"] <= 5 for r in ratings)

    expected = 0
    all_tie = 0
    for r in ranked:
        order = [tier.split(" = ") for tier in r["order"].split(" > ")]
        expected += sum(len(a) * len(b) for a, b in combinations(order, 2))
        all_tie += len(order) == 1
    capsys.readouterr()
    pairs = ["pairs", "--responses", str(resp), "--rankings", str(jdg / "rankings.jsonl")]
    if expected == 0:  # the 135M judge tied every response: no pair, and pairs says why
        with pytest.raises(SystemExit) as exit_:
            main([*pairs, "--out", str(dpo)])
        assert exit_.value.code == 2 and not dpo.exists()
        assert "a pair needs one ranked above another" in capsys.readouterr().err
        return
    main([*pairs, "--out", str(dpo)])
    printed = capsys.readouterr().out
    rows = read(dpo)
    assert len(rows) == expected
    assert "prompts in: 1" in printed and f"pairs out: {expected}" in printed
    assert f"all-tie prompts (no pair): {all_tie}" in printed
    sidecar = read(tmp_path / "dpo.jsonl.ids.jsonl")
    assert all(s["provenance"]["chosen_record"] in ids for s in sidecar)
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    elapsed = time.monotonic() - started
    print(f"embedded preference loop: {elapsed:.1f}s, {expected} pairs")
