"""Output safety: an output never replaces an input of its command or step, nor a run
directory's own files; recipe outputs stay under the recipe's `out` unless it says
`allow_paths_outside: true`. Every refusal is one line, exit 2, with the inputs untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.outputs import write_atomic
from tests.conftest import synthloom

QA = [
    {"question": "How do I return a phone?", "answer": "Bring it back within 30 days."},
    {"question": "Can I get a refund?", "answer": "Yes, to the original card."},
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run_dir(path: Path) -> Path:
    """A finished qa run directory, written by hand: records, failures, manifest."""
    records = [{"id": f"qa-{i}", "task": "qa", "status": "ok", "data": d} for i, d in enumerate(QA)]
    _jsonl(path / "records.jsonl", records)
    (path / "failures.jsonl").write_text("")
    (path / "manifest.json").write_text(json.dumps({"command": "qa", "status": "complete"}))
    return path


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _refused(result: Any, *wanted: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for w in wanted:
        assert w in lines[0], lines[0]
    return str(lines[0])


# --- export, dedup, pairs -------------------------------------------------------------------


def test_export_onto_its_run_records_is_refused_and_the_run_is_intact(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    before = _snapshot(run)
    for source in (run, run / "records.jsonl"):
        result = synthloom(
            "export", str(source), "--format", "messages", "--out", str(run / "records.jsonl")
        )
        _refused(result, "records.jsonl", "choose another output path")
        assert _snapshot(run) == before  # byte for byte, and no file added
    # the same file by another spelling (`..` and a symbolic link) is the same file
    (tmp_path / "link").symlink_to(run)
    for spelt in (run / ".." / "run" / "records.jsonl", tmp_path / "link" / "records.jsonl"):
        result = synthloom("export", str(run), "--format", "messages", "--out", str(spelt))
        _refused(result, "would replace")
    assert _snapshot(run) == before
    # exporting beside it works
    ok = synthloom("export", str(run), "--format", "messages", "--out", str(tmp_path / "sft.jsonl"))
    assert ok.returncode == 0, ok.stderr
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 2


def test_export_onto_another_runs_own_files_is_refused(tmp_path: Path) -> None:
    source, other = _run_dir(tmp_path / "a"), _run_dir(tmp_path / "b")
    before = _snapshot(other)
    for name in ("records.jsonl", "failures.jsonl"):
        result = synthloom(
            "export", str(source), "--format", "messages", "--out", str(other / name)
        )
        _refused(result, f"{name} of the synthloom run directory {other}")
    assert _snapshot(other) == before


def test_dedup_out_is_never_its_source(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    before = _snapshot(run)
    for source, out in (
        (run, run),  # a directory: would write run/records.jsonl
        (run, run / "records.jsonl"),
        (run / "records.jsonl", run / "records.jsonl"),
    ):
        result = synthloom("dedup", str(source), "--field", "question", "--out", str(out))
        _refused(result, "would replace")
        assert _snapshot(run) == before
    # a dedup output (no manifest) used as a source is protected the same way
    clean = tmp_path / "clean"
    assert synthloom("dedup", str(run), "--field", "question", "--out", str(clean)).returncode == 0
    kept = (clean / "records.jsonl").read_bytes()
    result = synthloom("dedup", str(clean), "--field", "answer", "--out", str(clean))
    _refused(result, "input directory")
    assert (clean / "records.jsonl").read_bytes() == kept


def _pairs_inputs(tmp_path: Path) -> tuple[Path, Path]:
    responses = _jsonl(
        tmp_path / "responses.jsonl",
        [
            {"prompt_id": "p", "prompt": "Say hi", "response_id": rid, "response": text}
            for rid, text in (("A", "Hello!"), ("B", "go away"))
        ],
    )
    rankings = _jsonl(tmp_path / "rankings.jsonl", [{"prompt_id": "p", "order": "A > B"}])
    return responses, rankings


def test_pairs_out_onto_its_responses_or_rankings_is_refused(tmp_path: Path) -> None:
    responses, rankings = _pairs_inputs(tmp_path)
    before = {p: p.read_bytes() for p in (responses, rankings)}
    args = ["pairs", "--responses", str(responses), "--rankings", str(rankings)]
    _refused(synthloom(*args, "--out", str(responses)), f"the input {responses}")
    _refused(synthloom(*args, "--out", str(rankings)), f"the input {rankings}")
    # the ids side file `<file name>.ids.jsonl` is checked too: here it would be the rankings file
    ids_named = _jsonl(tmp_path / "dpo.jsonl.ids.jsonl", [{"prompt_id": "p", "order": "A > B"}])
    before[ids_named] = ids_named.read_bytes()
    args_ids = ["pairs", "--responses", str(responses), "--rankings", str(ids_named)]
    _refused(synthloom(*args_ids, "--out", str(tmp_path / "dpo.jsonl")), "its ids file")
    assert not (tmp_path / "dpo.jsonl").exists()
    assert {p: p.read_bytes() for p in before} == before
    ok = synthloom(*args, "--out", str(tmp_path / "out" / "dpo.jsonl"))
    assert ok.returncode == 0, ok.stderr
    assert len((tmp_path / "out" / "dpo.jsonl").read_text().splitlines()) == 1


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_atomic(target, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "new \ud800 half")  # cannot be encoded: fails mid-write
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and oct(target.stat().st_mode)[-3:] == "644"


# --- recipes ---------------------------------------------------------------------------------


def _recipe(tmp_path: Path, body: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def _export_recipe(tmp_path: Path, export_path: str, extra: str = "") -> Path:
    source = _run_dir(tmp_path / "source")
    return _recipe(
        tmp_path,
        f"out: {tmp_path / 'out'}\n"
        f"{extra}"
        "steps:\n"
        "  - name: sft\n"
        "    task: export\n"
        "    params:\n"
        f"      input: {source}\n"
        "      format: messages\n"
        f'      path: "{export_path}"\n',
    )


@pytest.mark.parametrize(
    "export_path",
    ["/etc/synthloom-test.jsonl", "${out}/../../../x.jsonl", "${out}/../sft.jsonl", "sft.jsonl"],
)
def test_recipe_output_outside_out_is_refused_by_check(tmp_path: Path, export_path: str) -> None:
    recipe = _export_recipe(tmp_path, export_path)
    for extra in ([], ["--check"]):
        result = synthloom("run", str(recipe), *extra, cwd=tmp_path)
        _refused(result, f"{recipe}:8", "outside the recipe's output directory", "allow_paths")
    assert not (tmp_path / "out").exists() and not (tmp_path / "sft.jsonl").exists()


def test_recipe_output_through_a_link_out_of_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    recipe = _export_recipe(tmp_path, "${out}/link/sft.jsonl")
    _refused(synthloom("run", str(recipe), "--check"), f"{recipe}:8", "outside")


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b"])
def test_recipe_step_name_must_be_a_plain_directory_name(tmp_path: Path, name: str) -> None:
    source = _run_dir(tmp_path / "source")
    recipe = _recipe(
        tmp_path,
        f"out: {tmp_path / 'out'}\n"
        "steps:\n"
        f'  - name: "{name}"\n'
        "    task: dedup\n"
        f"    params: {{input: {source}, field: question}}\n",
    )
    result = synthloom("run", str(recipe), "--check")
    _refused(result, f"{recipe}:3", "plain directory name")
    assert "Value error" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_allow_paths_outside_permits_an_outside_path(tmp_path: Path) -> None:
    recipe = _export_recipe(
        tmp_path, f"{tmp_path / 'shared' / 'sft.jsonl'}", "allow_paths_outside: true\n"
    )
    check = synthloom("run", str(recipe), "--check")
    assert check.returncode == 0 and "ok (1 steps" in check.stdout, check.stderr
    result = synthloom("run", str(recipe))
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "shared" / "sft.jsonl").read_text().splitlines()) == 2


def test_recipe_export_onto_its_input_is_refused_at_check_time(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "out" / "gen")
    before = _snapshot(run)
    recipe = _recipe(
        tmp_path,
        f"out: {tmp_path / 'out'}\n"
        "steps:\n"
        "  - name: sft\n"
        "    task: export\n"
        "    params:\n"
        '      input: "${out}/gen"\n'
        "      format: messages\n"
        '      path: "${out}/gen/records.jsonl"\n',
    )
    _refused(synthloom("run", str(recipe), "--check"), f"{recipe}:6", "step 'sft'", "would replace")
    _refused(synthloom("run", str(recipe)), "would replace")
    assert _snapshot(run) == before


def test_recipe_output_onto_a_later_steps_files_is_refused_up_front(tmp_path: Path) -> None:
    """The step that owns the directory has not run yet, so only the recipe can tell."""
    source = _run_dir(tmp_path / "source")
    recipe = _recipe(
        tmp_path,
        f"out: {tmp_path / 'out'}\n"
        "steps:\n"
        "  - name: sft\n"
        "    task: export\n"
        f'    params: {{input: {source}, format: messages, path: "${{out}}/clean/records.jsonl"}}\n'
        "  - name: clean\n"
        "    task: dedup\n"
        f"    params: {{input: {source}, field: question}}\n",
    )
    _refused(synthloom("run", str(recipe), "--check"), f"{recipe}:5", "of step 'clean'")
    assert not (tmp_path / "out").exists()


def test_recipe_pairs_out_onto_its_rankings_is_refused(tmp_path: Path) -> None:
    responses, rankings = _pairs_inputs(tmp_path / "out")
    before = rankings.read_bytes()
    recipe = _recipe(
        tmp_path,
        f"out: {tmp_path / 'out'}\n"
        "steps:\n"
        "  - name: dpo\n"
        "    task: pairs\n"
        f'    params: {{responses: {responses}, rankings: ["{rankings}"], out: "{rankings}"}}\n',
    )
    _refused(synthloom("run", str(recipe), "--check"), f"{recipe}:", "the input")
    assert rankings.read_bytes() == before


def test_recipe_dedup_writes_its_step_directory_unless_given_out_under_out(tmp_path: Path) -> None:
    source = _run_dir(tmp_path / "source")

    def dedup_recipe(out_param: str) -> Path:
        return _recipe(
            tmp_path,
            f"out: {tmp_path / 'out'}\n"
            "steps:\n"
            "  - name: clean\n"
            "    task: dedup\n"
            f"    params: {{input: {source}, field: question{out_param}}}\n"
            "  - name: gen\n"
            "    task: dedup\n"
            f"    params: {{input: {source}, field: answer}}\n",
        )

    # `out` outside the recipe's output directory, or onto another step's records: refused
    recipe = dedup_recipe(', out: "${out}/../elsewhere"')
    _refused(synthloom("run", str(recipe), "--check"), f"{recipe}:5", "outside")
    recipe = dedup_recipe(', out: "${out}/gen"')
    _refused(synthloom("run", str(recipe), "--check"), f"{recipe}:5", "of step 'gen'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()
    # no `out`: the step's directory
    result = synthloom("run", str(dedup_recipe("")))
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "out" / "clean" / "records.jsonl").read_text().splitlines()) == 2
    # a file under `out`
    result = synthloom("run", str(dedup_recipe(', out: "${out}/clean.jsonl"')))
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "out" / "clean.jsonl").read_text().splitlines()) == 2
