"""The review in a recipe: recipes/summaries-reviewed.yaml pauses at its `review` step while
a person (here: this test, through the API) approves, edits and rejects summaries, then goes
on to export the reviewed set; a complete store goes straight through; `timeout` stops the
wait with an error. recipes/preference-reviewed.yaml mixes people's rankings (`review-export`)
with a judge's in one pairs call. The model is the stub server; every wait is bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from synthloom.review.store import ReviewStore
from synthloom.testing.stub_server import StubServer
from tests.conftest import synthloom
from tests.review_fixtures import records_run, review_server

REPO = Path(__file__).resolve().parents[1]


def stub_recipe(name: str, tmp_path: Path, stub: StubServer, **review: Any) -> Path:
    """The shipped recipe with the stub model, `out` under tmp_path and review overrides."""
    recipe = yaml.safe_load((REPO / "recipes" / name).read_text())
    recipe["out"] = str(tmp_path / "out")
    recipe["model"] = {"backend": "openai", "base_url": stub.base_url, "model": "stub", "seed": 0}
    for step in recipe["steps"]:
        if step["task"] == "review":
            step["params"].update(review)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_the_recipe_waits_for_the_review_then_exports_what_people_kept(
    tmp_path: Path, stub: StubServer
) -> None:
    recipe = stub_recipe("summaries-reviewed.yaml", tmp_path, stub, port=0, poll=0.2, timeout=120)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthloom", "run", str(recipe)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 90
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("review: open http://"):
            url = line.split()[2].split("?")[0]
    assert url, "".join(lines)
    drained: list[str] = []
    threading.Thread(target=lambda: drained.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        add = synthloom("review", "add-user", str(out / "summaries"), "--name", "alice")
        assert add.returncode == 0, add.stderr
        token = add.stdout.strip()
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for people
        assert not (out / "sft.jsonl").exists()
        c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        decided = []
        while (item := c.get("/api/next").json()["item"]) is not None:
            iid, n = item["id"], len(decided)
            if n == 0:
                edit = {"summary": "A reviewed summary, edited by a person."}
                assert (
                    c.put(
                        f"/api/decisions/{iid}",
                        json={"version": 0, "action": "draft", "edits": edit},
                    ).status_code
                    == 200
                )
                body = {"version": 1, "action": "approve", "edits": edit}
            elif n == 1:
                body = {"version": 0, "action": "reject", "reason": "repeats the title"}
            else:
                body = {"version": 0, "action": "approve"}
            assert c.put(f"/api/decisions/{iid}", json=body).status_code == 200
            decided.append((iid, body["action"]))
        assert proc.wait(timeout=60) == 0, "".join(lines + drained)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = [json.loads(x) for x in (out / "sft.jsonl").read_text().splitlines()]
    approved = sum(action == "approve" for _, action in decided)
    assert len(decided) >= 2 and len(rows) == approved
    edited = "A reviewed summary, edited by a person."
    assert rows[0]["completion"] == [{"role": "assistant", "content": edited}]
    reviewed = [json.loads(x) for x in (out / "review" / "records.jsonl").read_text().splitlines()]
    assert decided[1][0] not in {r["id"] for r in reviewed}  # the rejected one is left out
    assert reviewed[0]["notes"]["review"]["edits"]["summary"]["edited_by"] == "alice"

    # run again: the review is complete, so the recipe goes straight through (no server)
    again = synthloom("run", str(recipe), cwd=REPO, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "review: open" not in again.stderr
    assert [json.loads(x) for x in (out / "sft.jsonl").read_text().splitlines()] == rows


def test_share_zero_goes_on_at_once_and_a_timeout_stops_with_an_error(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run", 3, xss=False)
    store = ReviewStore(tmp_path / "run" / "review.sqlite")
    from synthloom.review.items import load_items

    store.import_items(*load_items(run), str(run))
    store.save(
        "rec0000", "alice", base_version=0, action="approve", body={"edits": {}, "reason": ""}
    )
    started = time.monotonic()
    now = synthloom(
        "review", "wait", str(run), "--out", str(tmp_path / "now"), "--share", "0", "--no-serve"
    )
    assert now.returncode == 0, now.stderr
    assert len((tmp_path / "now" / "records.jsonl").read_text().splitlines()) == 1
    late = synthloom(
        "review", "wait", str(run), "--out", str(tmp_path / "late"), "--timeout", "1", "--poll", "0.2",
        "--no-serve",
    )  # fmt: skip
    assert late.returncode == 1
    assert "1 of 3 items reviewed after 1 s, 100% needed" in late.stderr
    assert "run again to wait again" in late.stderr
    assert not (tmp_path / "late" / "records.jsonl").exists()
    assert time.monotonic() - started < 60


def test_people_and_a_judge_rank_and_one_pairs_call_mixes_them(
    tmp_path: Path, stub: StubServer
) -> None:
    recipe = stub_recipe("preference-reviewed.yaml", tmp_path, stub)
    out = tmp_path / "out"
    first = synthloom("run", str(recipe), "--step", "responses", "--step", "judge", cwd=REPO)
    assert first.returncode == 0, first.stderr
    with review_server(out / "responses", judge=out / "judge", order="uncertainty", overlap=2) as (
        server,
        store,
    ):
        for name in ("alice", "bob"):
            token = store.add_user(name)
            c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
            while (item := c.get("/api/next").json()["item"]) is not None:
                ids = [r["id"] for r in item["responses"]]
                ranks = {rid: min(i + 1, 3) for i, rid in enumerate(sorted(ids))}  # C = D tie
                r = c.put(
                    f"/api/decisions/{item['id']}",
                    json={"version": 0, "action": "rank", "ranks": ranks},
                )
                assert r.status_code == 200, r.text
    done = synthloom("run", str(recipe), cwd=REPO)
    assert done.returncode == 0, done.stderr
    humans = [json.loads(x) for x in (out / "humans" / "rankings.jsonl").read_text().splitlines()]
    assert len(humans) == 4 and {h["order"] for h in humans} == {"A > B > C = D"}
    rows = [json.loads(x) for x in (out / "dpo.jsonl").read_text().splitlines()]
    assert rows and all(r["chosen"] != r["rejected"] for r in rows)


def test_review_commands_take_every_param_of_their_steps() -> None:
    """`review export` and `review wait` are the review-export and review steps' commands:
    every param a recipe can set is an option (or the argument) with the recipe's default."""
    import click

    from synthloom.cli import cli
    from synthloom.review.server import ServeParams
    from synthloom.steps.registry import step_class

    ctx = click.Context(cli)
    group = cli.get_command(ctx, "review")
    assert isinstance(group, click.Group)
    for sub, params in (
        ("export", step_class("review-export").Params),
        ("wait", step_class("review").Params),
        ("serve", ServeParams),
    ):
        command = group.get_command(ctx, sub)
        assert command is not None
        by_name = {p.name: p for p in command.params}
        for field in params.model_fields:
            assert field in by_name, f"review {sub}: no option for {field}"
        assert isinstance(by_name["input"], click.Argument)
