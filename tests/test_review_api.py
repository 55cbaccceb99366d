"""The review app's API and store: tokens, CSRF, limits, claims, versions, drafts, export.

Each test runs the real app (uvicorn on 127.0.0.1, a free port) over a small run and talks
to it over HTTP, as the page does."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from synthloom.preference.rankings import agreement_report
from synthloom.preference.store import load_rankings
from synthloom.review.export import export_review
from synthloom.review.store import ReviewStore
from tests.conftest import synthloom
from tests.review_fixtures import (
    judge_rankings,
    records_run,
    responses_run,
    review_server,
    write_jsonl,
)


def client(server: Any, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


def save(c: httpx.Client, item: str, version: int, action: str, **body: Any) -> httpx.Response:
    return c.put(f"/api/decisions/{item}", json={"version": version, "action": action, **body})


# -- security ------------------------------------------------------------------------------


def test_every_page_and_api_call_needs_a_token(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run")
    with review_server(run) as (server, store):
        token = store.add_user("alice")
        for path in ("/", "/api/session", "/api/next", "/api/items", "/static/app.js", "/nope"):
            for c in (client(server, None), client(server, "wrong-token")):
                r = c.get(path)
                assert r.status_code == 401, path
                assert "script-src 'self'" in r.headers["content-security-policy"]
        assert client(server, None).put("/api/decisions/rec0000", json={}).status_code == 401
        ok = client(server, token)
        assert ok.get("/api/session").json()["user"] == "alice"
        js = ok.get("/static/app.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        page = ok.get("/")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text.replace('<script type="module"', "")  # no inline JS
    raw = Path(store.path).read_bytes() + b"".join(
        p.read_bytes() for p in Path(store.path).parent.glob("review.sqlite*")
    )
    assert token.encode() not in raw  # only the hash is stored
    assert store.user_for(token) == "alice"


def test_token_in_the_link_becomes_a_strict_cookie_and_writes_need_csrf(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run")
    with review_server(run) as (server, store):
        token = store.add_user("alice")
        c = httpx.Client(base_url=server.url, timeout=10)
        first = c.get(f"/?token={token}")
        assert first.status_code == 303 and first.headers["location"] == "/"  # token leaves the URL
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = c.get("/")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
        item = c.get("/api/next").json()["item"]["id"]
        body = {"version": 0, "action": "draft", "edits": {"summary": "short"}}
        # the cookie alone does not let another site's page change anything
        assert c.put(f"/api/decisions/{item}", json=body).status_code == 403
        evil = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
        assert c.put(f"/api/decisions/{item}", json=body, headers=evil).status_code == 403
        good = c.put(f"/api/decisions/{item}", json=body, headers={"X-CSRF-Token": csrf})
        assert good.status_code == 200 and good.json()["version"] == 1
        # a foreign Host (DNS rebinding) is refused
        assert c.get("/", headers={"Host": "attacker.example:80"}).status_code == 400


def test_bodies_are_limited_and_validated_and_bad_ids_are_404(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run")
    with review_server(run, max_body_kb=20) as (server, store):
        c = client(server, store.add_user("alice"))
        item = c.get("/api/next").json()["item"]["id"]
        big = {"version": 0, "action": "draft", "edits": {"summary": "x" * 30_000}}
        assert c.put(f"/api/decisions/{item}", json=big).status_code == 413
        chunked = c.put(
            f"/api/decisions/{item}", content=iter([b"{" + b" " * 25_000 + b"}"])
        )  # no Content-Length: counted as it arrives
        assert chunked.status_code == 413
        assert c.get("/api/items/no-such-id").status_code == 404
        assert c.get("/api/items/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert save(c, "no-such-id", 0, "approve").status_code == 404
        assert c.get("/static/../store.py").status_code == 404
        for bad in (
            {"version": 0, "action": "delete"},
            {"version": -1, "action": "draft"},
            {"version": 0, "action": "draft", "edits": {"nonexistent": "x"}},
            {"version": 0, "action": "reject"},  # a rejection needs a reason
            {"version": 0, "action": "rank", "ranks": {"A": 1}},  # not a prompt
            {"version": 0, "action": "draft", "surprise": 1},
        ):
            r = c.put(f"/api/decisions/{item}", json=bad)
            assert r.status_code == 422, bad
            assert r.json()["error"]
        r = c.put(f"/api/decisions/{item}", content=b"not json")
        assert r.status_code == 422


# -- claims, versions, drafts --------------------------------------------------------------


def test_claims_keep_two_annotators_apart_until_a_claim_expires(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "review.sqlite")
    from synthloom.review.items import load_items

    store.import_items(*load_items(records_run(tmp_path / "run", 3)), "run")
    store.set_meta(claim_seconds=60)
    a = store.next_item("alice", now=1000)
    b = store.next_item("bob", now=1000)
    c = store.next_item("carol", now=1000)
    assert len({a, b, c}) == 3
    assert store.next_item("dave", now=1000) is None  # all three are held
    assert store.next_item("alice", now=1010) == a  # a reload gives alice the same item
    assert store.next_item("dave", now=1061) in {a, b, c}  # claims lapsed after 60 s
    # overlap 2: an item goes to two people at once, never three
    store2 = ReviewStore(tmp_path / "two.sqlite")
    store2.import_items(*load_items(records_run(tmp_path / "run2", 1)), "run2")
    store2.set_meta(overlap=2)
    first = store2.next_item("alice")
    assert store2.next_item("bob") == first
    assert store2.next_item("carol") is None
    store2.save(first, "alice", base_version=0, action="approve", body={"edits": {}, "reason": ""})
    assert store2.next_item("alice") is None  # decided: not handed to alice again
    assert store2.next_item("carol") is None  # bob still holds the second place


def test_a_stale_write_is_refused_and_kept_never_silently_applied(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run")
    with review_server(run, claim_minutes=1) as (server, store):
        alice = client(server, store.add_user("alice"))
        item = alice.get("/api/next").json()["item"]
        assert item["version"] == 0
        # two tabs of alice opened at version 0; the first saves
        r1 = save(alice, item["id"], 0, "draft", edits={"summary": "first tab"})
        assert r1.status_code == 200 and r1.json()["version"] == 1
        r2 = save(alice, item["id"], 0, "draft", edits={"summary": "second tab"})
        assert r2.status_code == 409
        assert r2.json()["current"]["edits"]["summary"]["text"] == "first tab"
        assert "changed since you opened it" in r2.json()["error"]
        # a reload shows the saved draft, with its version, to build on
        again = alice.get(f"/api/items/{item['id']}").json()["item"]
        assert again["decision"]["edits"]["summary"]["text"] == "first tab"
        assert again["version"] == 1
        assert store.counts()["conflicts"] == 1  # the refused text is kept in the store
        with sqlite3.connect(store.path) as db:
            kept = json.loads(db.execute("SELECT body FROM conflicts").fetchone()[0])
        assert kept["edits"]["summary"] == "second tab"


def test_a_lapsed_claim_taken_over_refuses_the_first_annotator(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "review.sqlite")
    from synthloom.review.items import load_items
    from synthloom.review.store import Conflict

    store.import_items(*load_items(records_run(tmp_path / "run", 1)), "run")
    store.set_meta(claim_seconds=60)
    item = store.next_item("alice", now=1000)
    store.save(
        item, "alice", base_version=0, action="draft", body={"edits": {}, "reason": "x"}, now=1001
    )
    assert store.next_item("bob", now=1100) == item  # alice's hold lapsed at 1061
    with pytest.raises(Conflict, match="bob took it over"):
        store.save(
            item,
            "alice",
            base_version=1,
            action="approve",
            body={"edits": {}, "reason": ""},
            now=1101,
        )
    bob = store.save(
        item, "bob", base_version=0, action="approve", body={"edits": {}, "reason": ""}, now=1102
    )
    assert bob.state == "done"


def test_drafts_survive_a_server_restart(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run")
    with review_server(run) as (server, store):
        token = store.add_user("alice")
        c = client(server, token)
        item = c.get("/api/next").json()["item"]["id"]
        assert (
            save(c, item, 0, "draft", edits={"summary": "kept across restarts"}).status_code == 200
        )
    with review_server(run) as (server, _):  # a new process would open the same file
        c = client(server, token)
        again = c.get("/api/next").json()["item"]
        assert again["id"] == item  # still alice's
        assert again["decision"]["edits"]["summary"]["text"] == "kept across restarts"
        assert again["decision"]["state"] == "draft"


# -- export --------------------------------------------------------------------------------


def test_export_keeps_the_edited_text_beside_the_original(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run", 4, xss=False)
    with review_server(run) as (server, store):
        c = client(server, store.add_user("alice"))
        seen = []
        for action in ("approve-edit", "approve", "reject", "skip"):
            item = c.get("/api/next").json()["item"]
            seen.append(item["id"])
            if action == "approve-edit":
                save(c, item["id"], 0, "draft", edits={"summary": "Trams reach the airport."})
                r = save(c, item["id"], 1, "approve", edits={"summary": "Trams reach the airport."})
            elif action == "approve":
                r = save(c, item["id"], 0, "approve")
            elif action == "reject":
                r = save(c, item["id"], 0, "reject", reason="misses the vote")
            else:
                r = save(c, item["id"], 0, "skip")
            assert r.status_code == 200, r.text
        counts = export_review(store, tmp_path / "reviewed")
    out = [
        json.loads(x) for x in (tmp_path / "reviewed" / "records.jsonl").read_text().splitlines()
    ]
    assert [r["id"] for r in out] == seen[:2]
    edited, plain = out
    assert edited["data"]["summary"] == edited["data"]["response"] == "Trams reach the airport."
    review = edited["notes"]["review"]
    assert review["edits"]["summary"]["original"].startswith("Summary 0")
    assert review["edits"]["summary"]["edited_by"] == "alice"
    assert review["edits"]["summary"]["also"] == ["response"]
    assert review["decisions"][0]["annotator"] == "alice" and review["decisions"][0]["at"]
    assert "edits" not in plain["notes"]["review"] and plain["data"]["summary"].startswith(
        "Summary 1"
    )
    assert counts["edited"] == 1 and counts["approved"] == 1 and counts["rejected"] == 1
    assert counts["undecided"] == 1 and counts["records_out"] == 2
    # the export feeds the SFT export unchanged: the edited text is what is taught
    sft = tmp_path / "sft.jsonl"
    result = synthloom(
        "export", str(tmp_path / "reviewed"), "--format", "prompt-completion", "--out", str(sft)
    )
    if result.returncode != 0:  # older `export` spelling
        result = synthloom(
            "export",
            "--input",
            str(tmp_path / "reviewed"),
            "--format",
            "prompt-completion",
            "--path",
            str(sft),
        )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in sft.read_text().splitlines()]
    assert [r["completion"] for r in rows][0] == "Trams reach the airport."


def test_human_rankings_mix_with_a_judge_in_one_pairs_call(tmp_path: Path) -> None:
    run = responses_run(tmp_path / "responses", prompts=2)
    judge = judge_rankings(
        tmp_path / "judge" / "rankings.jsonl",
        {
            "p0": {"A": 4.5, "B": 3.0, "C": 1.0, "D": 4.0},
            "p1": {"A": 4.0, "B": 4.0, "C": 2.0, "D": 3.0},
        },
    )
    with review_server(run, judge=judge.parent, overlap=2) as (server, store):
        alice = client(server, store.add_user("alice"))
        bob = client(server, store.add_user("bob"))
        for who, orders in (
            (alice, ({"D": 1, "B": 2, "A": 3, "C": 3},) * 2),
            (bob, ({"A": 1, "D": 2, "B": 3, "C": 4},) * 2),
        ):
            for ranks in orders:
                item = who.get("/api/next").json()["item"]
                assert item["kind"] == "prompt" and len(item["responses"]) == 4
                r = save(who, item["id"], 0, "rank", ranks=ranks, comment="C is wrong")
                assert r.status_code == 200, r.text
        agreement = alice.get("/api/agreement").json()
        export_review(store, tmp_path / "reviewed")
    lines = [
        json.loads(x) for x in (tmp_path / "reviewed" / "rankings.jsonl").read_text().splitlines()
    ]
    assert len(lines) == 4 and {x["order"] for x in lines} == {"D > B > A = C", "A > D > B > C"}
    assert all(x["annotator_kind"] == "human" and sorted(x["shown"]) == list("ABCD") for x in lines)
    # agreement as `pairs` computes it
    humans = load_rankings([tmp_path / "reviewed" / "rankings.jsonl"])
    expected = agreement_report(humans)
    assert agreement["mean_kendall_tau"] == pytest.approx(expected["mean_kendall_tau"])
    assert agreement["krippendorff_alpha"] == pytest.approx(expected["krippendorff_alpha"])
    assert agreement["with_judge"] is not None
    out = tmp_path / "dpo.jsonl"
    result = synthloom(
        "pairs", "--responses", str(run), "--rankings", str(tmp_path / "reviewed" / "rankings.jsonl"),
        "--rankings", str(judge), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    ids = [json.loads(x) for x in Path(f"{out}.ids.jsonl").read_text().splitlines()]
    assert rows and len(rows) == len(ids) and all(r["chosen"] != r["rejected"] for r in rows)
    from synthloom.export.pairs import preference_data_from_files

    data = preference_data_from_files(run, [tmp_path / "reviewed" / "rankings.jsonl", judge])
    assert data.summary["annotators"] == 3  # alice, bob and the judge, aggregated per prompt
    assert data.summary["aggregated_prompts"] == 2 and len(data.rows) == len(rows)


# -- review where it pays ----------------------------------------------------------------------


def test_queue_orders_by_judge_score_uncertainty_and_disagreement(tmp_path: Path) -> None:
    run = responses_run(tmp_path / "responses", prompts=3)
    judge = judge_rankings(
        tmp_path / "judge.jsonl",
        {
            "p0": {"A": 5.0, "B": 4.0, "C": 3.0, "D": 2.0},  # sure, high
            "p1": {"A": 3.0, "B": 3.0, "C": 3.0, "D": 1.0},  # many ties: unsure
            "p2": {"A": 2.0, "B": 2.0, "C": 1.0, "D": 1.0},  # some ties, low
        },
    )
    with review_server(run, judge=judge, overlap=2) as (server, store):
        store.add_user("x")
        assert store.next_item("u1", order="judge-high") == "p0"
        assert store.next_item("u2", order="judge-low") == "p2"
        assert store.next_item("u3", order="uncertainty") == "p1"
        # u1 disagrees with the judge on p0 completely: p0 comes first for the second opinion
        store.save(
            "p0", "u1", base_version=0, action="rank", body={"order": "D > C > B > A", "ranks": {}}
        )
        store.save(
            "p2", "u2", base_version=0, action="rank", body={"order": "A = B > C = D", "ranks": {}}
        )
        assert store.next_item("u4", order="disagreement") == "p0"
    write_jsonl(tmp_path / "empty.jsonl", [])


def test_a_records_judge_matches_records_through_their_responses(tmp_path: Path) -> None:
    run = records_run(tmp_path / "run", 4, xss=False)  # groups art0 (A, B) and art1 (A, B)
    judge = judge_rankings(
        tmp_path / "judge.jsonl", {"art0": {"A": 2.0, "B": 4.0}, "art1": {"A": 3.0, "B": 3.0}}
    )
    with review_server(run, judge=judge) as (server, store):
        items = {i["id"]: i for i in store.items(payload=False)}
        assert items["rec0001"]["score"] == 4.0 and items["rec0000"]["score"] == 2.0
        assert items["rec0002"]["uncertainty"] == 1.0 and items["rec0000"]["uncertainty"] == 0.0
        assert store.next_item("a", order="judge-high") == "rec0001"
        assert store.next_item("b", order="uncertainty") in {"rec0002", "rec0003"}


def test_a_server_on_every_address_accepts_any_host_name_but_still_needs_a_token(
    tmp_path: Path,
) -> None:
    from starlette.testclient import TestClient

    from synthloom.review.app import create_app
    from synthloom.review.items import load_items

    store = ReviewStore(tmp_path / "review.sqlite")
    store.import_items(*load_items(records_run(tmp_path / "run", 1)), "run")
    token = store.add_user("alice")
    auth = {"Authorization": f"Bearer {token}"}
    local_only = TestClient(create_app(store, hosts=("127.0.0.1",)), base_url="http://review.lan")
    assert local_only.get("/api/session", headers=auth).status_code == 400
    everywhere = TestClient(create_app(store, hosts=("*",)), base_url="http://review.lan")
    assert everywhere.get("/api/session").status_code == 401
    assert everywhere.get("/api/session", headers=auth).json()["user"] == "alice"
