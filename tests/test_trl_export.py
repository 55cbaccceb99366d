"""Tests for TRL exporters: columns and feature types as loaded by `datasets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.export.trl import (
    export_kto,
    export_preference,
    sidecar_path,
    to_trl_kto,
    to_trl_preference,
    to_trl_reward,
    write_parquet_atomic,
)
from synthloom.outputs import write_jsonl_atomic
from synthloom.preference.rankings import Ranking, pairs
from synthloom.preference.types import PreferenceItem, RankedPrompt, kto_items, preference_items

datasets = pytest.importorskip("datasets")
STRING = datasets.Value("string")
MESSAGE = {"role": STRING, "content": STRING}

RESPONSES = {
    "A": "Quantum computers use qubits.",
    "B": "Qubits can be in superposition; gates exploit interference.",
    "C": "It is a fast computer.",
    "D": "Qubits, superposition, entanglement and interference, with an example.",
}


def quantum(system: str | None = None, text: str = "D > B > A > C") -> RankedPrompt:
    ranking = Ranking.from_string(text, prompt_id="qc", annotator="h1", response_ids=RESPONSES)
    return RankedPrompt("qc", "Explain quantum computing", RESPONSES, ranking, system)


def load(path: Path, tmp_path: Path) -> Any:
    kind = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(
        kind, data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache")
    )


def is_messages(feature: Any) -> bool:
    inner = feature[0] if isinstance(feature, list) else getattr(feature, "feature", None)
    return isinstance(inner, dict) and inner == MESSAGE


def test_preference_rows_string_and_conversational() -> None:
    items = preference_items(quantum(), pairs(quantum().ranking))
    assert len(items) == 6
    assert to_trl_preference(items) == to_trl_preference(items, conversational=True)  # default
    row = to_trl_preference(items, conversational=False)[0]
    assert row == {
        "prompt": "Explain quantum computing",
        "chosen": RESPONSES["D"],
        "rejected": RESPONSES["B"],
    }
    sys_items = preference_items(quantum("Be concise."), pairs(quantum().ranking))
    conv = to_trl_preference(sys_items, conversational=True)[0]
    assert conv == {
        "prompt": [
            {"role": "system", "content": "Be concise."},
            {"role": "user", "content": "Explain quantum computing"},
        ],
        "chosen": [{"role": "assistant", "content": RESPONSES["D"]}],
        "rejected": [{"role": "assistant", "content": RESPONSES["B"]}],
    }


def test_system_prompt_needs_conversational() -> None:
    items = preference_items(quantum("Be concise."), pairs(quantum().ranking))
    with pytest.raises(ValueError, match="conversational=True"):
        to_trl_preference(items, conversational=False)


def test_reward_rows_need_margin() -> None:
    rows = to_trl_reward(preference_items(quantum(), pairs(quantum().ranking)))
    assert [r["margin"] for r in rows] == [1.0, 2.0, 3.0, 1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="no margin"):
        to_trl_reward([PreferenceItem("p", "a", "b")])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("conversational", [False, True])
def test_preference_loads_with_trl_columns(
    tmp_path: Path, suffix: str, conversational: bool
) -> None:
    rp = quantum("Be concise." if conversational else None)
    path = tmp_path / f"dpo{suffix}"
    written = export_preference(
        preference_items(rp, pairs(rp.ranking)), path, conversational=conversational
    )
    assert written == [path] and not sidecar_path(path).exists()
    ds = load(path, tmp_path)
    assert set(ds.column_names) == {"prompt", "chosen", "rejected"}
    assert ds.num_rows == 6
    for col in ("prompt", "chosen", "rejected"):
        feature = ds.features[col]
        assert is_messages(feature) if conversational else feature == STRING
    if conversational:
        assert ds[0]["prompt"][0] == {"role": "system", "content": "Be concise."}


def test_reward_export_with_ids_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "rm.jsonl"
    items = preference_items(quantum(), pairs(quantum().ranking))
    written = export_preference(items, path, with_margin=True, include_ids=True)
    # the side file is named after the whole file name: rm.parquet's would be rm.parquet.ids.jsonl
    assert written == [path, tmp_path / "rm.jsonl.ids.jsonl"]
    ds = load(path, tmp_path)
    assert set(ds.column_names) == {"prompt", "chosen", "rejected", "margin"}
    assert ds.features["margin"] == datasets.Value("float64")
    ids = [json.loads(line) for line in written[1].read_text().splitlines()]
    assert ids[0] == {
        "row": 0,
        "prompt_id": "qc",
        "chosen_id": "D",
        "rejected_id": "B",
        "margin": 1.0,
        "provenance": {"annotator": "h1"},
    }


def test_kto_items_from_rankings() -> None:
    all_tie = Ranking.from_string("A = B = C = D", prompt_id="tie", annotator="h1")
    prompts = [quantum(), RankedPrompt("tie", "Say hi", RESPONSES, all_tie)]
    items, stats = kto_items(prompts)
    assert [(i.response_id, i.label) for i in items] == [("D", True), ("C", False)]
    assert stats.as_dict() == {
        "prompts_in": 2,
        "rows_out": 2,
        "desirable": 1,
        "undesirable": 1,
        "all_tie_prompts": 1,
        "too_few_responses": 0,
        "middle_excluded": 2,
    }
    with_middle, stats = kto_items([quantum(text="D > B = A > C")], threshold=0.5)
    assert [(i.response_id, i.label) for i in with_middle] == [
        ("D", True),
        ("B", False),
        ("A", False),
        ("C", False),
    ]
    assert stats.middle_excluded == 0
    with pytest.raises(ValueError, match="threshold"):
        kto_items([quantum()], threshold=0)


@pytest.mark.parametrize("conversational", [False, True])
def test_kto_loads_with_trl_columns(tmp_path: Path, conversational: bool) -> None:
    items, _ = kto_items([quantum()])
    path = tmp_path / "kto.jsonl"
    export_kto(items, path, conversational=conversational, include_ids=True)
    ds = load(path, tmp_path)
    assert set(ds.column_names) == {"prompt", "completion", "label"}
    assert ds.features["label"] == datasets.Value("bool")
    for col in ("prompt", "completion"):
        feature = ds.features[col]
        assert is_messages(feature) if conversational else feature == STRING
    assert ds["label"] == [True, False]
    assert to_trl_kto(items, conversational=True)[0]["completion"] == [
        {"role": "assistant", "content": RESPONSES["D"]}
    ]
    sidecar = [json.loads(x) for x in sidecar_path(path).read_text().splitlines()]
    assert sidecar == [
        {"row": 0, "prompt_id": "qc", "response_id": "D"},
        {"row": 1, "prompt_id": "qc", "response_id": "C"},
    ]


def test_atomic_writes_replace_and_clean_up(tmp_path: Path) -> None:
    path = tmp_path / "out" / "data.jsonl"
    write_jsonl_atomic([{"x": "é"}], path)
    write_jsonl_atomic([{"x": "new"}], path)
    assert path.read_text(encoding="utf-8") == '{"x": "new"}\n'

    def boom() -> Any:
        yield {"x": "partial"}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(boom(), path)
    assert path.read_text(encoding="utf-8") == '{"x": "new"}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.jsonl"]
    pq_path = write_parquet_atomic([{"x": "a"}], tmp_path / "d.parquet")
    assert load(pq_path, tmp_path)["x"] == ["a"]
