"""Export formats round trip: each format written as JSONL, Parquet and a `datasets`
directory, read back by the library trainers load it with (`datasets.load_dataset("json" /
"parquet")`, `load_from_disk`), and every row checked against the format's documented
columns; seeded splits that keep every original with its variants; side files named after
the whole file name; `mix` shares and warnings; the dataset card; --help and the README
naming the trainers of each format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from synthloom.cli import main
from synthloom.export.formats import ALL, PREFERENCE, SFT, Format, markdown_table
from synthloom.export.mix import PHASES, targets
from tests.conftest import synthloom

datasets = pytest.importorskip("datasets")
REPO = Path(__file__).resolve().parents[1]
ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {"system", "human", "gpt"}


def run(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prov(template: str, parents: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "backend": "openai",
        "model": "stub-model",
        "template": template,
        "template_hash": "0123456789ab",
        "params": {"temperature": 0.7},
        "seed": 0,
        "parents": list(parents),
        "created_at": 0.0,
        "call_keys": [],
    }


def record(rid: str, task: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = {"id": rid, "task": task, "origin": "synthetic", "status": "ok", "notes": {}}
    return {**base, "data": data, "provenance": prov(task), **extra}


def sft_run(path: Path) -> Path:
    """A run of several tasks: turns with and without a system prompt and an Alpaca input."""
    records = [
        record("q1", "qa", {"question": "Can I return shoes?", "answer": "Yes, within 30 days."}),
        record("q2", "qa", {"question": "Who pays postage?", "answer": "We do."}),
        record(
            "d1",
            "distill",
            {"prompt": "Define DPO.", "response": "A preference method.", "system": "Be brief."},
        ),
        record(
            "s1",
            "self-instruct",
            {
                "instruction": "Sort the numbers.",
                "instances": [
                    {"input": "3, 1, 2", "output": "1, 2, 3"},
                    {"input": "9, 7", "output": "7, 9"},
                ],
                "is_classification": False,
            },
        ),
        record("f1", "qa", {"question": "Flagged?", "answer": "Yes."}, status="flagged"),
    ]
    write_jsonl(path / "records.jsonl", records)
    (path / "manifest.json").write_text(
        json.dumps(
            {
                "command": "qa",
                "status": "complete",
                "identity": {"task": "qa"},
                "summary": {
                    "units_ok": 5,
                    "units_failed": 1,
                    "records_new": 5,
                    "failures": {"invalid_output": 1},
                    "counters": {"dropped_near_duplicate": 2, "records_ok": 4},
                    "backends": {"default": {"backend": "openai", "model": "stub-model"}},
                },
            }
        )
    )
    return path


def augment_run(path: Path, originals: int = 12, variants: int = 3) -> Path:
    """Originals (human) and their variations, each variation's parent its original."""
    records = []
    for i in range(originals):
        label = ("positive", "negative", "neutral")[i % 3]
        oid = f"orig{i}"
        records.append(
            {
                "id": oid,
                "task": "augment",
                "origin": "human",
                "status": "ok",
                "data": {"text": f"review number {i}", "label": label},
                "notes": {"source": "reviews.csv", "line": i + 2},
                "provenance": None,
            }
        )
        for k in range(variants):
            data = {"text": f"review {i}, rewritten {k}", "label": label}
            data |= {"original_text": f"review number {i}", "style": "casual"}
            rec = record(f"var{i}-{k}", "augment", data)
            rec["provenance"] = prov("augment_variation", (oid,))
            records.append(rec)
    write_jsonl(path / "records.jsonl", records)
    return path


# -- the documented schema of each format --------------------------------------------------


def check_messages(value: Any, roles: set[str], last: str = "assistant") -> None:
    assert isinstance(value, list) and value, value
    for m in value:
        assert set(m) == {"role", "content"} and m["role"] in roles, m
        assert isinstance(m["content"], str) and m["content"]
    if last:
        assert value[-1]["role"] == last


def check_row(fmt: Format, row: dict[str, Any]) -> None:
    """A row as the format's documentation says it is."""
    if fmt.name == "data":
        return
    assert set(fmt.columns) <= set(row) <= set(fmt.columns) | set(fmt.optional), (fmt.name, row)
    if fmt.name in ("messages", "openai"):
        check_messages(row["messages"], ROLES)
        assert [m["role"] for m in row["messages"]][-2:] == ["user", "assistant"]
    elif fmt.name == "prompt-completion-conversational":
        check_messages(row["prompt"], ROLES - {"assistant"}, last="user")
        check_messages(row["completion"], {"assistant"})
    elif fmt.name in ("prompt-completion",):
        assert isinstance(row["prompt"], str) and isinstance(row["completion"], str)
    elif fmt.name == "alpaca":
        assert all(isinstance(row[c], str) for c in row)
    elif fmt.name == "sharegpt":
        conv = row["conversations"]
        assert all(set(m) == {"from", "value"} and m["from"] in SHAREGPT_ROLES for m in conv)
        assert [m["from"] for m in conv][-2:] == ["human", "gpt"]
    elif fmt.name == "classification":
        assert isinstance(row["text"], str) and isinstance(row["label"], str)
    elif fmt.kind == "preference" and fmt.name != "openai-dpo":
        if fmt.conversational:
            check_messages(row["prompt"], ROLES - {"assistant"}, last="user")
            check_messages(row["chosen"], {"assistant"})
            check_messages(row["rejected"], {"assistant"})
        else:
            assert all(isinstance(row[c], str) for c in ("prompt", "chosen", "rejected"))
        assert row["chosen"] != row["rejected"]
        if "margin" in fmt.columns:
            assert isinstance(row["margin"], float) and row["margin"] > 0
    elif fmt.name == "openai-dpo":
        check_messages(row["input"]["messages"], ROLES - {"assistant"}, last="user")
        check_messages(row["preferred_output"], {"assistant"})
        check_messages(row["non_preferred_output"], {"assistant"})
    elif fmt.kind == "unpaired":
        if fmt.conversational:
            check_messages(row["prompt"], ROLES - {"assistant"}, last="user")
            check_messages(row["completion"], {"assistant"})
        else:
            assert isinstance(row["prompt"], str) and isinstance(row["completion"], str)
        assert isinstance(row["label"], bool)
    else:
        raise AssertionError(f"no schema check for {fmt.name}")


def load_back(out: Path, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of each split, as `datasets` reads the files back."""
    cache = str(tmp_path / "hf-cache")
    if out.suffix == "":
        loaded = datasets.load_from_disk(str(out))
        return {name: [dict(r) for r in split] for name, split in loaded.items()}
    kind = "parquet" if out.suffix == ".parquet" else "json"
    splits = {s: out.with_name(f"{out.stem}.{s}{out.suffix}") for s in SPLITS}
    files = {s: str(p) for s, p in splits.items() if p.exists()} or {"train": str(out)}
    loaded = datasets.load_dataset(kind, data_files=files, cache_dir=cache)
    return {name: [dict(r) for r in split] for name, split in loaded.items()}


SPLITS = ("train", "validation", "test")
OUTS = ("sft.jsonl", "sft.parquet", "sft")


@pytest.mark.parametrize("out_name", OUTS)
@pytest.mark.parametrize("fmt", [f for f in SFT if f != "classification"])
def test_sft_formats_round_trip(tmp_path: Path, fmt: str, out_name: str) -> None:
    if SFT[fmt].jsonl_only and out_name != "sft.jsonl":
        assert run("export", str(sft_run(tmp_path / "run")), "--format", fmt, "--out",
                   str(tmp_path / out_name)) == 2  # fmt: skip
        return
    out = tmp_path / out_name
    assert run("export", str(sft_run(tmp_path / "run")), "--format", fmt, "--out", str(out)) == 0
    (rows,) = load_back(out, tmp_path).values()
    # 2 qa + 1 distill + 2 self-instruct instances (`data`: one row per record); the flagged
    # record is left out
    assert len(rows) == (4 if fmt == "data" else 5)
    for row in rows:
        check_row(SFT[fmt], {k: v for k, v in row.items() if v is not None})
    if fmt == "messages":
        distilled = next(r for r in rows if r["messages"][-1]["content"] == "A preference method.")
        assert distilled["messages"][0] == {"role": "system", "content": "Be brief."}
        sorting = [r for r in rows if "Sort the numbers." in r["messages"][0]["content"]]
        assert sorting[0]["messages"][0]["content"] == "Sort the numbers.\n\n3, 1, 2"
    if fmt == "alpaca":
        assert {"instruction": "Sort the numbers.", "input": "9, 7", "output": "7, 9"} in [
            {k: r[k] for k in ("instruction", "input", "output")} for r in rows
        ]


@pytest.mark.parametrize("out_name", ("cls.jsonl", "cls.parquet", "cls"))
def test_classification_round_trip(tmp_path: Path, out_name: str) -> None:
    out = tmp_path / out_name
    assert run("export", str(augment_run(tmp_path / "run", 3, 2)), "--format", "classification",
               "--out", str(out)) == 0  # fmt: skip
    (rows,) = load_back(out, tmp_path).values()
    assert len(rows) == 9 and Counter(r["label"] for r in rows)["positive"] == 3
    for row in rows:
        check_row(SFT["classification"], row)


def test_system_prompt_fills_in_where_a_row_has_none(tmp_path: Path) -> None:
    run_dir, out = sft_run(tmp_path / "run"), tmp_path / "sft.jsonl"
    assert run("export", str(run_dir), "--system", "You help customers.", "--out", str(out)) == 0
    systems = [r["messages"][0] for r in read_jsonl(out)]
    assert all(m["role"] == "system" for m in systems)
    # the record's own system prompt is kept, the others get the one given
    assert Counter(m["content"] for m in systems) == {"You help customers.": 4, "Be brief.": 1}
    sharegpt = tmp_path / "sg.jsonl"
    assert run("export", str(run_dir), "--format", "sharegpt", "--system", "S.", "--out",
               str(sharegpt)) == 0  # fmt: skip
    assert all(r["conversations"][0]["from"] == "system" for r in read_jsonl(sharegpt))


def test_a_string_format_refuses_a_system_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pc.jsonl"
    args = ["--format", "prompt-completion", "--system", "S.", "--out", str(out)]
    assert run("export", str(sft_run(tmp_path / "run")), *args) == 2
    assert "use prompt-completion-conversational" in capsys.readouterr().err
    assert not out.exists()


# -- preference formats -----------------------------------------------------------------------


def preference_inputs(tmp_path: Path, prompts: int = 4) -> tuple[Path, Path]:
    responses, rankings = [], []
    for p in range(prompts):
        for rid in "ABC":
            text = f"answer {rid} to question {p}"
            responses.append(
                {
                    "prompt_id": f"p{p}",
                    "prompt": f"Question {p}?",
                    "response_id": rid,
                    "response": text,
                }  # fmt: skip
            )
        rankings.append({"prompt_id": f"p{p}", "annotator": "ann", "order": "A > B > C"})
    return (
        write_jsonl(tmp_path / "responses.jsonl", responses),
        write_jsonl(tmp_path / "rankings.jsonl", rankings),
    )


@pytest.mark.parametrize("out_name", ("dpo.jsonl", "dpo.parquet", "dpo"))
@pytest.mark.parametrize("fmt", list(PREFERENCE))
def test_preference_formats_round_trip(tmp_path: Path, fmt: str, out_name: str) -> None:
    responses, rankings = preference_inputs(tmp_path)
    out = tmp_path / out_name
    args = ["pairs", "--responses", str(responses), "--rankings", str(rankings)]
    code = run(*args, "--format", fmt, "--out", str(out))
    if PREFERENCE[fmt].jsonl_only and out_name != "dpo.jsonl":
        assert code == 2 and not out.exists()
        return
    assert code == 0
    (rows,) = load_back(out, tmp_path).values()
    assert len(rows) == (8 if PREFERENCE[fmt].kind == "unpaired" else 12)
    for row in rows:
        check_row(PREFERENCE[fmt], row)


@pytest.mark.parametrize("fmt", list(PREFERENCE))
def test_export_writes_preference_formats_as_pairs_does(tmp_path: Path, fmt: str) -> None:
    """`export RESPONSES --format dpo... --rankings R` is the pairs step by another door."""
    responses, rankings = preference_inputs(tmp_path)
    by_export, by_pairs = tmp_path / "e.jsonl", tmp_path / "p.jsonl"
    args = ["--format", fmt, "--split", "0.5,0.5"]
    assert run("export", str(responses), "--rankings", str(rankings), *args, "--out",
               str(by_export)) == 0  # fmt: skip
    assert run("pairs", "--responses", str(responses), "--rankings", str(rankings), *args,
               "--out", str(by_pairs)) == 0  # fmt: skip
    for split in ("train", "validation"):
        rows = read_jsonl(tmp_path / f"e.{split}.jsonl")
        assert rows == read_jsonl(tmp_path / f"p.{split}.jsonl")
        for row in rows:
            check_row(PREFERENCE[fmt], row)


def test_export_preference_needs_rankings_and_sft_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    responses, rankings = preference_inputs(tmp_path)
    assert run("export", str(responses), "--format", "dpo", "--out", str(tmp_path / "a.jsonl")) == 2
    assert "give --rankings FILE" in capsys.readouterr().err
    args = ["--rankings", str(rankings), "--out", str(tmp_path / "b.jsonl")]
    assert run("export", str(sft_run(tmp_path / "run")), *args) == 2
    assert "no preference format" in capsys.readouterr().err


def test_pairs_default_is_conversational_with_a_system_prompt(tmp_path: Path) -> None:
    responses, rankings = preference_inputs(tmp_path, prompts=1)
    out = tmp_path / "dpo.jsonl"
    args = ["pairs", "--responses", str(responses), "--rankings", str(rankings)]
    assert run(*args, "--system", "Answer briefly.", "--out", str(out)) == 0
    row = read_jsonl(out)[0]
    assert row["prompt"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Question 0?"},
    ]
    assert row["chosen"] == [{"role": "assistant", "content": "answer A to question 0"}]
    assert run(*args, "--format", "dpo", "--system", "S.", "--out", str(tmp_path / "s.jsonl")) == 2


def test_side_files_of_jsonl_and_parquet_side_by_side_never_collide(tmp_path: Path) -> None:
    responses, rankings = preference_inputs(tmp_path)
    args = ["pairs", "--responses", str(responses), "--rankings", str(rankings)]
    assert run(*args, "--out", str(tmp_path / "dpo.jsonl")) == 0
    jsonl_ids = (tmp_path / "dpo.jsonl.ids.jsonl").read_bytes()
    jsonl_card = (tmp_path / "dpo.jsonl.README.md").read_text()
    assert (
        run(*args, "--format", "reward-conversational", "--out", str(tmp_path / "dpo.parquet")) == 0
    )
    assert (tmp_path / "dpo.jsonl.ids.jsonl").read_bytes() == jsonl_ids  # untouched
    assert (tmp_path / "dpo.jsonl.README.md").read_text() == jsonl_card
    parquet_ids = read_jsonl(tmp_path / "dpo.parquet.ids.jsonl")
    assert len(parquet_ids) == 12 and parquet_ids[0]["margin"] == 1.0
    assert "`reward-conversational`" in (tmp_path / "dpo.parquet.README.md").read_text()
    assert not (tmp_path / "dpo.ids.jsonl").exists()


# -- splits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("out_name", ("aug.jsonl", "aug"))
def test_split_never_puts_variants_of_one_original_in_two_splits(
    tmp_path: Path, seed: int, out_name: str
) -> None:
    run_dir = augment_run(tmp_path / "run", originals=20, variants=3)
    out = tmp_path / out_name
    args = ["--format", "classification", "--split", "0.6,0.2,0.2", "--seed", str(seed)]
    assert run("export", str(run_dir), *args, "--out", str(out)) == 0
    splits = load_back(out, tmp_path)
    assert set(splits) == set(SPLITS)
    where: dict[str, set[str]] = {}
    for name, rows in splits.items():
        for row in rows:
            original = row["text"].split(",")[0].replace("review number", "review")
            where.setdefault(original, set()).add(name)
    assert len(where) == 20  # every original, each with its 3 variants, in exactly one split
    assert all(len(names) == 1 for names in where.values()), where
    sizes = {name: len(rows) for name, rows in splits.items()}
    assert sum(sizes.values()) == 80
    assert sizes == {"train": 48, "validation": 16, "test": 16}  # whole groups of 4 fit exactly
    # the ids side file says the same, row for row
    if out.suffix:
        for name in SPLITS:
            ids = read_jsonl(tmp_path / f"aug.{name}.jsonl.ids.jsonl")
            assert {i["split"] for i in ids} == {name} and len(ids) == sizes[name]


def test_split_is_stable_for_a_seed_and_changes_with_it(tmp_path: Path) -> None:
    run_dir = augment_run(tmp_path / "run", originals=20, variants=1)

    def test_rows(seed: int, name: str) -> list[str]:
        out = tmp_path / name
        args = ["--format", "classification", "--split", "0.8,0.2", "--seed", str(seed)]
        assert run("export", str(run_dir), *args, "--out", str(out)) == 0
        return sorted(r["text"] for r in read_jsonl(tmp_path / name.replace(".", ".validation.")))

    assert test_rows(3, "a.jsonl") == test_rows(3, "b.jsonl")
    assert test_rows(3, "a.jsonl") != test_rows(4, "c.jsonl")


def test_pairs_of_one_prompt_stay_in_one_split(tmp_path: Path) -> None:
    responses, rankings = preference_inputs(tmp_path, prompts=10)
    out = tmp_path / "dpo.jsonl"
    args = ["pairs", "--responses", str(responses), "--rankings", str(rankings)]
    assert run(*args, "--split", "0.8,0.2", "--out", str(out)) == 0
    prompts = {}
    for name in ("train", "validation"):
        for row in read_jsonl(tmp_path / f"dpo.{name}.jsonl"):
            prompts.setdefault(row["prompt"][0]["content"], set()).add(name)
    assert len(prompts) == 10 and all(len(v) == 1 for v in prompts.values())


def test_group_by_keeps_equal_field_values_together(tmp_path: Path) -> None:
    records = [
        record(
            f"r{i}",
            "responses",
            {"prompt_id": f"p{i // 3}", "prompt": f"Q{i // 3}", "response": f"answer {i}"},
        )  # fmt: skip
        for i in range(30)
    ]
    run_dir = tmp_path / "run"
    write_jsonl(run_dir / "records.jsonl", records)
    out = tmp_path / "sft.jsonl"
    args = ["--split", "0.5,0.5", "--group-by", "prompt_id", "--out", str(out)]
    assert run("export", str(run_dir), *args) == 0
    seen: dict[str, set[str]] = {}
    for name in ("train", "validation"):
        for row in read_jsonl(tmp_path / f"sft.{name}.jsonl"):
            seen.setdefault(row["messages"][0]["content"], set()).add(name)
    assert len(seen) == 10 and all(len(v) == 1 for v in seen.values())


@pytest.mark.parametrize(
    ("split", "message"),
    [("0.8,0.3", "add up to 1.1"), ("1", "give 2 or 3 shares"), ("0.5,-0.5,1", "between 0 and 1")],
)
def test_bad_split_is_one_line(
    tmp_path: Path, split: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    assert run("export", str(sft_run(tmp_path / "run")), "--split", split, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert "--split" in err and message in err and "\n" not in err


# -- datasets directories ---------------------------------------------------------------------


def test_a_datasets_directory_replaces_its_earlier_self_but_nothing_else(tmp_path: Path) -> None:
    run_dir, out = sft_run(tmp_path / "run"), tmp_path / "ds"
    assert run("export", str(run_dir), "--out", str(out)) == 0
    assert run("export", str(run_dir), "--split", "0.6,0.4", "--out", str(out)) == 0
    assert set(datasets.load_from_disk(str(out))) == {"train", "validation"}
    assert (out / "README.md").is_file() and (out / "train.ids.jsonl").is_file()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    result = synthloom("export", str(run_dir), "--out", str(other))
    assert result.returncode == 2 and "is not a `datasets` directory" in result.stderr
    assert (other / "mine.txt").read_text() == "keep me"


# -- mix --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "synthetic", "share"),
    [(100, 100, 0.2), (10, 3, 0.2), (7, 50, 0.5), (3, 200, 0.9), (40, 41, 0.333), (5, 5, 0.77)],
)
def test_targets_reach_the_share_within_one_row(real: int, synthetic: int, share: float) -> None:
    keep_real, keep_synthetic = targets(real, synthetic, share, None)
    assert keep_real <= real and keep_synthetic <= synthetic
    assert abs(keep_synthetic - share * (keep_real + keep_synthetic)) <= 1
    assert keep_real == real or keep_synthetic == synthetic  # as many rows as the share allows


def test_cap_only_lowers_the_share() -> None:
    assert targets(100, 20, None, 0.3) == (100, 20)  # 0.17 is under the cap: all kept
    keep_real, keep_synthetic = targets(100, 200, None, 0.3)
    assert keep_real == 100 and keep_synthetic / (keep_real + keep_synthetic) <= 0.3


def messages_rows(n: int, who: str) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"{who} q{i}"},
                {"role": "assistant", "content": f"{who} a{i}"},
            ]
        }  # fmt: skip
        for i in range(n)
    ]


def test_mix_reaches_the_share_and_tags_every_row(tmp_path: Path) -> None:
    real = write_jsonl(tmp_path / "real.jsonl", messages_rows(37, "real"))
    synthetic = write_jsonl(tmp_path / "syn.jsonl", messages_rows(90, "syn"))
    out = tmp_path / "mixed.jsonl"
    args = ["mix", "--real", str(real), "--synthetic", str(synthetic), "--phase", "sft"]
    result = synthloom(*args, "--share", "0.25", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(out)
    origins = Counter(r["origin"] for r in rows)
    assert origins["real"] == 37  # the synthetic side was in excess: all real rows kept
    assert abs(origins["synthetic"] - 0.25 * len(rows)) <= 1
    for row in rows:
        who = row["messages"][0]["content"].split()[0]
        assert row["origin"] == {"real": "real", "syn": "synthetic"}[who]
        assert row["provenance"]["file"] == str(real if who == "real" else synthetic)
        assert isinstance(row["provenance"]["row"], int)
    assert "warning" not in result.stderr  # 0.25 is within what sft tolerates
    card = (tmp_path / "mixed.jsonl.README.md").read_text()
    assert f"Synthetic share: {origins['synthetic'] / len(rows):.1%}" in card
    # the mix trains as it is: `datasets` reads the rows with their origin and provenance
    loaded = datasets.load_dataset("json", data_files=str(out), cache_dir=str(tmp_path / "c"))
    assert set(loaded["train"].column_names) == {"messages", "origin", "provenance"}


def test_a_pretrain_mix_over_the_threshold_warns(tmp_path: Path) -> None:
    real = write_jsonl(tmp_path / "real.jsonl", messages_rows(20, "real"))
    synthetic = write_jsonl(tmp_path / "syn.jsonl", messages_rows(20, "syn"))
    args = ["mix", "--real", str(real), "--synthetic", str(synthetic), "--phase", "pretrain"]
    over = synthloom(*args, "--share", "0.3", "--out", str(tmp_path / "a.jsonl"))
    assert over.returncode == 0, over.stderr
    warning = [line for line in over.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "above what pretrain tolerates (0.10" in warning[0]
    assert "## Warnings" in (tmp_path / "a.jsonl.README.md").read_text()
    under = synthloom(*args, "--share", "0.1", "--out", str(tmp_path / "b.jsonl"))
    assert under.returncode == 0 and "warning:" not in under.stderr
    allowed = synthloom(
        *args, "--share", "0.3", "--warn-above", "0.5", "--out", str(tmp_path / "c.jsonl")
    )
    assert allowed.returncode == 0 and "warning:" not in allowed.stderr
    assert PHASES["pretrain"].tolerated < PHASES["rlhf"].tolerated < PHASES["sft"].tolerated


def test_mix_takes_each_rows_origin_from_its_ids_file(tmp_path: Path) -> None:
    """An augment export holds the human originals too: they count as real, not synthetic."""
    exported = tmp_path / "aug.jsonl"
    run_dir = augment_run(tmp_path / "run", originals=4, variants=2)
    assert run("export", str(run_dir), "--format", "classification", "--out", str(exported)) == 0
    real = write_jsonl(
        tmp_path / "real.jsonl", [{"text": f"real {i}", "label": "x"} for i in range(4)]
    )
    out = tmp_path / "mixed.jsonl"
    args = ["mix", "--real", str(real), "--synthetic", str(exported), "--phase", "sft"]
    assert run(*args, "--out", str(out)) == 0
    rows = read_jsonl(out)
    assert Counter(r["origin"] for r in rows) == {"real": 8, "synthetic": 8}
    variant = next(r for r in rows if "rewritten" in r["text"])
    assert variant["provenance"]["model"] == "stub-model" and variant["provenance"]["record_id"]


def test_mix_refuses_rows_of_two_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = write_jsonl(tmp_path / "real.jsonl", [{"text": "t", "label": "x"}])
    synthetic = write_jsonl(tmp_path / "syn.jsonl", messages_rows(2, "syn"))
    args = ["mix", "--real", str(real), "--synthetic", str(synthetic), "--phase", "sft"]
    assert run(*args, "--out", str(tmp_path / "m.jsonl")) == 2
    assert "export both in one format" in capsys.readouterr().err


# -- the dataset card and the documentation ---------------------------------------------------


def test_card_says_counts_models_templates_removals_review_and_share(tmp_path: Path) -> None:
    run_dir = sft_run(tmp_path / "run")
    reviewed = read_jsonl(run_dir / "records.jsonl")
    reviewed[0]["notes"]["review"] = {
        "decision": "approved",
        "decisions": [{"annotator": "alice", "action": "approve", "at": "2026-01-01T00:00:00Z"}],
        "edits": {"answer": {"original": "Yes.", "edited_by": "alice"}},
    }
    write_jsonl(run_dir / "records.jsonl", reviewed)
    out = tmp_path / "sft.jsonl"
    assert run("export", str(run_dir), "--split", "0.6,0.4", "--out", str(out)) == 0
    card = (tmp_path / "sft.jsonl.README.md").read_text()
    assert card.startswith("---\nlicense: other  # TODO")
    assert "path: sft.train.jsonl" in card and "path: sft.validation.jsonl" in card
    for wanted in (
        "| train |",
        "stub-model (openai)",  # the model
        "qa (hash 0123456789ab)",  # a template
        "failed or removed, invalid_output: 1",  # the run's failures and filters
        "dropped near duplicate: 2",
        "this export, skipped flagged: 1",
        "1 of 4 exported records were approved by people",  # review
        "alice (1)",
        "Synthetic share: 100.0%",
        "SFTTrainer",  # who reads the format
        "**Licence**",
    ):
        assert wanted in card, wanted


def test_help_names_the_trainers_of_every_format() -> None:
    for command, formats in (("export", ALL), ("pairs", PREFERENCE)):
        result = synthloom(command, "--help")
        assert result.returncode == 0
        for name, fmt in formats.items():
            assert f"{name}: " in result.stdout, (command, name)
            for who, _ in fmt.trainers():
                assert f"  {who}: " in result.stdout, (command, name, who)
    assert "pretrain: 0.1" in synthloom("mix", "--help").stdout


def test_readme_has_the_format_table_with_trainers() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table(ALL) in readme, "README's format table differs from formats.py"
    for name in ALL:
        assert f"| `{name}` |" in readme


def test_card_follows_a_review_export_back_to_its_run(tmp_path: Path) -> None:
    """The reviewed set's lineage.json names the run it came from and what people rejected."""
    from synthloom.review.export import export_review
    from synthloom.review.server import ServeParams, open_review
    from tests.review_fixtures import records_run

    run_dir = records_run(tmp_path / "summaries", n=3, xss=False)
    (run_dir / "manifest.json").write_text(
        json.dumps(
            {
                "status": "complete",
                "identity": {"task": "summarize"},
                "summary": {"units_ok": 3, "records_new": 3},
            }
        )  # fmt: skip
    )
    store, _ = open_review(ServeParams(input=run_dir))
    for i, item in enumerate(store.items()):
        action, body = ("reject", {"reason": "wrong"}) if i == 2 else ("approve", {})
        if i == 0:
            body = {"edits": {"summary": "The tram reaches the airport."}}
        store.save(item["id"], "alice", base_version=0, action=action, body=body)
    export_review(store, tmp_path / "reviewed", inputs=[run_dir])
    out = tmp_path / "sft.jsonl"
    assert run("export", str(tmp_path / "reviewed"), "--out", str(out)) == 0
    card = (tmp_path / "sft.jsonl.README.md").read_text()
    assert "step `review-export`" in card and "rejected: 1" in card
    assert f"run `{run_dir}` (task `summarize`, complete)" in card
    assert "2 of 2 exported records were approved by people" in card and "1 of them edited" in card


def test_card_follows_dedup_back_to_the_generating_run(tmp_path: Path) -> None:
    """qa -> dedup -> export: the card shows what dedup dropped and the run behind it."""
    run_dir = sft_run(tmp_path / "run")
    rows = [r for r in read_jsonl(run_dir / "records.jsonl") if r["task"] == "qa"]
    write_jsonl(run_dir / "records.jsonl", [*rows, {**rows[0], "id": "q1-copy"}])
    assert run("dedup", str(run_dir), "--field", "question", "--out", str(tmp_path / "clean")) == 0
    assert run("export", str(tmp_path / "clean"), "--out", str(tmp_path / "sft.jsonl")) == 0
    card = (tmp_path / "sft.jsonl.README.md").read_text()
    assert "step `dedup`" in card and "dropped exact duplicate: 1" in card
    assert f"run `{run_dir}` (task `qa`, complete)" in card
