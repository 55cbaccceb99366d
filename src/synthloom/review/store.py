"""The review store: one SQLite file beside the run (WAL mode, busy_timeout, synchronous=FULL).

Tables: `meta` (mode, source, overlap, claim time, the CSRF secret), `users` (name and the
SHA-256 of the token: tokens are never stored), `items`, `claims` (who holds which item until
when), `decisions` (one row per item and annotator: a draft, a skip or a final decision, with
a version), `history` (every accepted write, append-only) and `conflicts` (every refused
stale write, kept so nothing typed is lost).

Rules the app relies on:
- a write names the version of the annotator's decision it was based on; if that decision
  changed since (another tab, another device) the write is refused (`Conflict`), never merged;
- an item is handed to at most `overlap` annotators at once (decided or holding an unexpired
  claim); a write from someone whose claim lapsed and whose place was taken is refused too;
- writes run in `BEGIN IMMEDIATE` transactions, so concurrent servers, exports and recipe
  steps wait for each other (busy_timeout) instead of failing with "database is locked".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from synthloom.errors import UserError
from synthloom.preference.rankings import Ranking, agreement_report, kendall_tau
from synthloom.review.items import Item

SCHEMA_VERSION = "1"
ORDERS = ("file", "judge-high", "judge-low", "uncertainty", "disagreement")
Order = Literal["file", "judge-high", "judge-low", "uncertainty", "disagreement"]
FINAL_ACTIONS = ("approve", "reject", "rank")
ACTIONS = ("draft", "skip", *FINAL_ACTIONS)
STATUSES = (
    "pending", "in_progress", "skipped", "partial", "approved", "edited", "rejected", "ranked",
)  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL, task TEXT NOT NULL, label TEXT,
  payload TEXT NOT NULL, score REAL, uncertainty REAL, judge_order TEXT,
  extra TEXT NOT NULL DEFAULT '{}', done INTEGER NOT NULL DEFAULT 0, disagreement REAL,
  preview TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS items_seq ON items(seq);
CREATE TABLE IF NOT EXISTS claims (
  item_id TEXT NOT NULL, annotator TEXT NOT NULL, expires_at REAL NOT NULL,
  PRIMARY KEY (item_id, annotator));
CREATE TABLE IF NOT EXISTS decisions (
  item_id TEXT NOT NULL, annotator TEXT NOT NULL, state TEXT NOT NULL, action TEXT NOT NULL,
  body TEXT NOT NULL, version INTEGER NOT NULL, created_at REAL NOT NULL,
  updated_at REAL NOT NULL, PRIMARY KEY (item_id, annotator));
CREATE INDEX IF NOT EXISTS decisions_annotator ON decisions(annotator, state);
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, annotator TEXT NOT NULL,
  version INTEGER NOT NULL, action TEXT NOT NULL, body TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, annotator TEXT NOT NULL,
  base_version INTEGER NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL);
"""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Decision:
    item_id: str
    annotator: str
    state: Literal["draft", "skipped", "done"]
    action: str
    body: dict[str, Any]
    version: int
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {
            "annotator": self.annotator,
            "state": self.state,
            "action": self.action,
            "version": self.version,
            "updated_at": self.updated_at,
            **self.body,
        }


class Conflict(Exception):
    """A write that would overwrite a newer decision, or take a place someone else holds."""

    def __init__(self, message: str, current: Decision | None) -> None:
        super().__init__(message)
        self.current = current


class ReviewStore:
    """The store of one review. Thread-safe: each thread gets its own connection."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise UserError(
                f"{self.path}: no review store here; start one with `synthloom review serve`"
                " or `synthloom review add-user`"
            )
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.write() as db:
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('secret', ?),"
                    " ('overlap', '1'), ('claim_seconds', '1800'), ('created_at', ?)",
                    (SCHEMA_VERSION, secrets.token_hex(32), str(time.time())),
                )
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a review store ({exc})") from None

    # -- connections ------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=True
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # a saved decision survives a power cut
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: writers queue instead of failing). Writers
        of this process queue on a lock first: SQLite's busy handler waits in sleeps of up
        to 100 ms, which made the slowest of 20 concurrent annotators wait seconds; other
        processes (an export, a recipe step) still wait through busy_timeout."""
        db = self._db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for several queries."""
        db = self._db()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- meta -------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.read() as db:
            return {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        with self.write() as db:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, str(v)) for k, v in values.items() if v is not None],
            )

    @property
    def mode(self) -> str | None:
        return self.meta().get("mode")

    @property
    def overlap(self) -> int:
        return int(self.meta().get("overlap", "1"))

    @property
    def claim_seconds(self) -> float:
        return float(self.meta().get("claim_seconds", "1800"))

    def csrf_for(self, name: str) -> str:
        secret = self.meta()["secret"]
        return hmac.new(secret.encode(), name.encode(), hashlib.sha256).hexdigest()[:32]

    # -- users ------------------------------------------------------------------------------
    def add_user(self, name: str, *, replace: bool = False) -> str:
        """Create annotator `name` and return its token (only its hash is stored)."""
        token = secrets.token_urlsafe(24)
        with self.write() as db:
            exists = db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise UserError(
                    f"{self.path}: annotator {name!r} exists; add --new-token to replace"
                    " their token (the old one stops working)"
                )
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " token_hash = excluded.token_hash",
                (name, hash_token(token), time.time()),
            )
        return token

    def user_for(self, token: str) -> str | None:
        if not token or len(token) > 200:
            return None
        with self.read() as db:
            row = db.execute(
                "SELECT name FROM users WHERE token_hash = ?", (hash_token(token),)
            ).fetchone()
        return row["name"] if row else None

    def users(self) -> list[str]:
        with self.read() as db:
            return [r["name"] for r in db.execute("SELECT name FROM users ORDER BY name")]

    # -- items ------------------------------------------------------------------------------
    def import_items(self, mode: str, items: list[Item], source: str) -> int:
        """Add the items of `source` (new ones; known ones keep their decisions and get the
        latest judge signals). Returns how many were new."""
        known_mode = self.mode
        if known_mode and known_mode != mode:
            raise UserError(
                f"{self.path}: this store holds a {known_mode} review; it cannot review"
                f" {source} as {mode} (use --store for another store)"
            )
        with self.write() as db:
            before = db.execute("SELECT count(*) FROM items").fetchone()[0]
            db.executemany(
                "INSERT INTO items (id, seq, kind, task, label, payload, score, uncertainty,"
                " judge_order, extra, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, score = excluded.score,"
                " uncertainty = excluded.uncertainty, judge_order = excluded.judge_order,"
                " extra = excluded.extra",
                [
                    (
                        it.id,
                        i,
                        it.kind,
                        it.task,
                        it.label,
                        json.dumps(it.payload, ensure_ascii=False),
                        it.score,
                        it.uncertainty,
                        it.judge_order,
                        json.dumps(it.extra),
                        it.preview,
                    )
                    for i, it in enumerate(items)
                ],
            )
            after = db.execute("SELECT count(*) FROM items").fetchone()[0]
            db.execute(
                "INSERT INTO meta VALUES ('mode', ?), ('source', ?) ON CONFLICT(key)"
                " DO UPDATE SET value = excluded.value",
                (mode, source),
            )
        return int(after - before)

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self.read() as db:
            row = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item_row(row) if row else None

    def items(self, *, payload: bool = True) -> list[dict[str, Any]]:
        """Every item in file order (without `payload`: only what lists and the queue need)."""
        columns = "*" if payload else ", ".join(c for c in _COLUMNS if c != "payload")
        with self.read() as db:
            rows = db.execute(f"SELECT {columns} FROM items ORDER BY seq")  # noqa: S608
            return [_item_row(r) for r in rows]

    # -- claims and the queue ---------------------------------------------------------------
    def next_item(
        self,
        annotator: str,
        *,
        order: Order = "file",
        task: str | None = None,
        label: str | None = None,
        now: float | None = None,
    ) -> str | None:
        """Claim and return the next item for `annotator`: the one they already hold, else
        the first (in `order`) they have not decided or skipped and that fewer than `overlap`
        people have decided or hold; items they skipped come back last."""
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}")
        now = time.time() if now is None else now
        with self.write() as db:
            overlap, claim = _settings(db)
            held = db.execute(
                "SELECT c.item_id FROM claims c JOIN items i ON i.id = c.item_id"
                " LEFT JOIN decisions d ON d.item_id = c.item_id AND d.annotator = c.annotator"
                " WHERE c.annotator = ? AND c.expires_at > ?"
                " AND (d.state IS NULL OR d.state = 'draft')"
                + _filters(task, label)
                + " ORDER BY c.expires_at DESC LIMIT 1",
                (annotator, now, *_filter_args(task, label)),
            ).fetchone()
            if held:
                item_id = str(held[0])
            else:
                item_id = self._pick(db, annotator, order, task, label, now, overlap)
                if item_id is None:
                    return None
            db.execute(
                "INSERT INTO claims VALUES (?, ?, ?) ON CONFLICT(item_id, annotator)"
                " DO UPDATE SET expires_at = excluded.expires_at",
                (item_id, annotator, now + claim),
            )
            return item_id

    def _pick(
        self,
        db: sqlite3.Connection,
        annotator: str,
        order: str,
        task: str | None,
        label: str | None,
        now: float,
        overlap: int,
    ) -> str | None:
        base = (
            "SELECT i.id FROM items i LEFT JOIN decisions mine"
            " ON mine.item_id = i.id AND mine.annotator = :me"
            " WHERE i.done + (SELECT count(*) FROM claims c WHERE c.item_id = i.id"
            "   AND c.annotator != :me AND c.expires_at > :now"
            "   AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.item_id = c.item_id"
            "     AND d.annotator = c.annotator AND d.state = 'done')) < :overlap"
            " AND (mine.state IS NULL OR mine.state {skipped})" + _filters(task, label, named=True)
        )
        args = {"me": annotator, "now": now, "overlap": overlap, "task": task, "label": label}
        row = db.execute(
            base.format(skipped="= 'draft'") + " ORDER BY " + _order_sql(order) + " LIMIT 1", args
        ).fetchone()
        if row is None:  # only what this annotator skipped is left: offer it again, oldest first
            row = db.execute(
                base.format(skipped="= 'skipped'") + " ORDER BY mine.updated_at, i.seq LIMIT 1",
                args,
            ).fetchone()
        return str(row[0]) if row else None

    def claim(self, item_id: str, annotator: str, now: float | None = None) -> str | None:
        """Open a given item: claim it if there is room; returns who else holds it (if full)."""
        now = time.time() if now is None else now
        with self.write() as db:
            overlap, claim = _settings(db)
            mine = _decision(db, item_id, annotator)
            others = _holders(db, item_id, annotator, now)
            if (mine is not None and mine.state == "done") or len(others) < overlap:
                db.execute(
                    "INSERT INTO claims VALUES (?, ?, ?) ON CONFLICT(item_id, annotator)"
                    " DO UPDATE SET expires_at = excluded.expires_at",
                    (item_id, annotator, now + claim),
                )
                return None
            return ", ".join(sorted(others))

    # -- decisions ----------------------------------------------------------------------------
    def decision(self, item_id: str, annotator: str) -> Decision | None:
        with self.read() as db:
            return _decision(db, item_id, annotator)

    def decisions(self, item_id: str | None = None) -> list[Decision]:
        with self.read() as db:
            if item_id is None:
                rows = db.execute("SELECT * FROM decisions ORDER BY item_id, annotator")
            else:
                rows = db.execute(
                    "SELECT * FROM decisions WHERE item_id = ? ORDER BY annotator", (item_id,)
                )
            return [_decision_row(r) for r in rows]

    def save(
        self,
        item_id: str,
        annotator: str,
        *,
        base_version: int,
        action: str,
        body: dict[str, Any],
        now: float | None = None,
    ) -> Decision:
        """Save a draft, skip or decision; raises `Conflict` (the write is kept in `conflicts`)
        when it is based on an old version or the item is held by others."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        now = time.time() if now is None else now
        state = "done" if action in FINAL_ACTIONS else "skipped" if action == "skip" else "draft"
        with self.write() as db:
            overlap, claim = _settings(db)
            current = _decision(db, item_id, annotator)
            have = current.version if current else 0
            problem = None
            if have != base_version:
                who = "you" if current else "nobody"
                problem = (
                    f"this decision changed since you opened it (version {have}, yours was"
                    f" {base_version}): saved by {who} in another tab or window at"
                    f" {_clock(current.updated_at) if current else '?'}"
                )
            else:
                held = db.execute(
                    "SELECT 1 FROM claims WHERE item_id = ? AND annotator = ? AND expires_at > ?",
                    (item_id, annotator, now),
                ).fetchone()
                if not held and not (current and current.state == "done"):
                    others = _holders(db, item_id, annotator, now)
                    if len(others) >= overlap:
                        problem = (
                            f"your hold on this item expired and {', '.join(sorted(others))}"
                            " took it over"
                        )
            if problem is not None:  # kept, then refused (after the commit)
                db.execute(
                    "INSERT INTO conflicts (item_id, annotator, base_version, body, reason, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, annotator, base_version, json.dumps({"action": action, **body}),
                     problem, now),
                )  # fmt: skip
                refused = Conflict(problem, current)
            else:
                return self._apply(db, item_id, annotator, current, state, action, body, now, claim)
        raise refused

    def _apply(
        self,
        db: sqlite3.Connection,
        item_id: str,
        annotator: str,
        current: Decision | None,
        state: str,
        action: str,
        body: dict[str, Any],
        now: float,
        claim: float,
    ) -> Decision:
        have = current.version if current else 0
        body = self._with_edit_times(current, body, now)
        version = have + 1
        action_kept = action if state != "draft" else "draft"
        db.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(item_id, annotator) DO UPDATE SET state = excluded.state,"
            " action = excluded.action, body = excluded.body, version = excluded.version,"
            " updated_at = excluded.updated_at",
            (item_id, annotator, state, action_kept, json.dumps(body, ensure_ascii=False),
             version, now, now),
        )  # fmt: skip
        db.execute(
            "INSERT INTO history (item_id, annotator, version, action, body, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, annotator, version, action, json.dumps(body, ensure_ascii=False), now),
        )
        if state == "draft":
            db.execute(
                "INSERT INTO claims VALUES (?, ?, ?) ON CONFLICT(item_id, annotator)"
                " DO UPDATE SET expires_at = excluded.expires_at",
                (item_id, annotator, now + claim),
            )
        else:
            db.execute(
                "DELETE FROM claims WHERE item_id = ? AND annotator = ?", (item_id, annotator)
            )
        db.execute(
            "UPDATE items SET done = (SELECT count(*) FROM decisions WHERE item_id = ?"
            " AND state = 'done') WHERE id = ?",
            (item_id, item_id),
        )
        _update_disagreement(db, item_id)
        return Decision(item_id, annotator, state, action_kept, body, version, now, now)  # type: ignore[arg-type]

    @staticmethod
    def _with_edit_times(
        current: Decision | None, body: dict[str, Any], now: float
    ) -> dict[str, Any]:
        """Edits keep when each field's text last changed: {field: {"text", "at"}}."""
        edits = body.get("edits")
        if not isinstance(edits, dict):
            return body
        before = (current.body.get("edits") if current else None) or {}
        stamped = {}
        for name, text in edits.items():
            old = before.get(name)
            same = isinstance(old, dict) and old.get("text") == text
            stamped[name] = {"text": text, "at": old["at"] if same else now}
        return {**body, "edits": stamped}

    # -- progress, lists, agreement -----------------------------------------------------------
    def progress(self, annotator: str | None = None, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        with self.read() as db:
            overlap = _settings(db)[0]
            total = db.execute("SELECT count(*) FROM items").fetchone()[0]
            complete = db.execute(
                "SELECT count(*) FROM items WHERE done >= ?", (overlap,)
            ).fetchone()[0]
            decisions = db.execute(
                "SELECT count(*) FROM decisions WHERE state = 'done'"
            ).fetchone()[0]
            held = db.execute(
                "SELECT count(DISTINCT item_id) FROM claims WHERE expires_at > ?", (now,)
            ).fetchone()[0]
            mine = (
                db.execute(
                    "SELECT count(*) FROM decisions WHERE annotator = ? AND state = 'done'",
                    (annotator,),
                ).fetchone()[0]
                if annotator
                else None
            )
        return {
            "items": total,
            "complete": complete,
            "share": complete / total if total else 1.0,
            "decisions": decisions,
            "needed": total * overlap,
            "in_progress": held,
            "mine": mine,
            "overlap": overlap,
        }

    def statuses(self, now: float | None = None) -> dict[str, tuple[str, list[str]]]:
        """Each item's status and the annotators who touched it."""
        now = time.time() if now is None else now
        by_item: dict[str, list[Decision]] = {}
        with self.read() as db:
            overlap = _settings(db)[0]
            ids = [r[0] for r in db.execute("SELECT id FROM items ORDER BY seq")]
            for row in db.execute("SELECT * FROM decisions"):
                d = _decision_row(row)
                by_item.setdefault(d.item_id, []).append(d)
            held = {
                r[0] for r in db.execute("SELECT item_id FROM claims WHERE expires_at > ?", (now,))
            }
        out: dict[str, tuple[str, list[str]]] = {}
        for item_id in ids:
            ds = by_item.get(item_id, [])
            out[item_id] = (
                item_status(ds, overlap, item_id in held),
                sorted({d.annotator for d in ds}),
            )
        return out

    def rankings(self, *, item_ids: Iterable[str] | None = None) -> list[Ranking]:
        """The human rankings decided so far (one per prompt and annotator)."""
        wanted = set(item_ids) if item_ids is not None else None
        out = []
        for d in self.decisions():
            if d.state == "done" and d.action == "rank" and (wanted is None or d.item_id in wanted):
                out.append(
                    Ranking.from_string(d.body["order"], prompt_id=d.item_id, annotator=d.annotator)
                )
        return out

    def agreement(self) -> dict[str, Any]:
        """Agreement between annotators as `synthloom pairs` computes it (Kendall tau-b per
        prompt and its mean, ordinal Krippendorff alpha), humans only and with the judge."""
        humans = self.rankings()
        report = agreement_report(humans)
        judge: list[Ranking] = []
        for item in self.items(payload=False):
            if item["judge_order"] and any(r.prompt_id == item["id"] for r in humans):
                judge.append(
                    Ranking.from_string(
                        item["judge_order"], prompt_id=item["id"], annotator="judge",
                        annotator_kind="judge",
                    )
                )  # fmt: skip
        with_judge = agreement_report([*humans, *judge]) if judge else None
        return {
            "per_prompt": report["kendall_tau_per_prompt"],
            "mean_kendall_tau": report["mean_kendall_tau"],
            "krippendorff_alpha": report["krippendorff_alpha"],
            "prompts_with_several": report["n_prompts_multi_annotator"],
            "with_judge": None
            if with_judge is None
            else {
                "mean_kendall_tau": with_judge["mean_kendall_tau"],
                "krippendorff_alpha": with_judge["krippendorff_alpha"],
            },
        }

    def counts(self) -> dict[str, int]:
        """Rows per table (for tests and the load report)."""
        with self.read() as db:
            return {
                t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("items", "users", "claims", "decisions", "history", "conflicts")
            }


def item_status(decisions: list[Decision], overlap: int, held: bool) -> str:
    done = [d for d in decisions if d.state == "done"]
    if len(done) >= overlap:
        if all(d.action == "rank" for d in done):
            return "ranked"
        approve = sum(d.action == "approve" for d in done)
        if approve * 2 > len(done):
            edited = any(d.body.get("edits") for d in done if d.action == "approve")
            return "edited" if edited else "approved"
        return "rejected"
    if done:
        return "partial"
    if held or any(d.state == "draft" for d in decisions):
        return "in_progress"
    if decisions:
        return "skipped"
    return "pending"


def _settings(db: sqlite3.Connection) -> tuple[int, float]:
    meta = {
        r[0]: r[1]
        for r in db.execute("SELECT key, value FROM meta WHERE key IN ('overlap', 'claim_seconds')")
    }
    return int(meta.get("overlap", "1")), float(meta.get("claim_seconds", "1800"))


def _holders(db: sqlite3.Connection, item_id: str, annotator: str, now: float) -> set[str]:
    """Others who decided the item or hold an unexpired claim on it."""
    rows = db.execute(
        "SELECT annotator FROM decisions WHERE item_id = ? AND state = 'done' AND annotator != ?"
        " UNION SELECT annotator FROM claims WHERE item_id = ? AND annotator != ?"
        " AND expires_at > ?",
        (item_id, annotator, item_id, annotator, now),
    )
    return {r[0] for r in rows}


def _decision(db: sqlite3.Connection, item_id: str, annotator: str) -> Decision | None:
    row = db.execute(
        "SELECT * FROM decisions WHERE item_id = ? AND annotator = ?", (item_id, annotator)
    ).fetchone()
    return _decision_row(row) if row else None


def _decision_row(row: sqlite3.Row) -> Decision:
    return Decision(
        row["item_id"],
        row["annotator"],
        row["state"],
        row["action"],
        json.loads(row["body"]),
        row["version"],
        row["created_at"],
        row["updated_at"],
    )


_COLUMNS = (
    "id", "seq", "kind", "task", "label", "payload", "score", "uncertainty", "judge_order",
    "extra", "done", "disagreement", "preview",
)  # fmt: skip


def _item_row(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row
    for key in ("payload", "extra"):
        if key in out:
            out[key] = json.loads(out[key])
    return out


def _filters(task: str | None, label: str | None, *, named: bool = False) -> str:
    sql = ""
    if task is not None:
        sql += " AND i.task = :task" if named else " AND i.task = ?"
    if label is not None:
        sql += " AND i.label = :label" if named else " AND i.label = ?"
    return sql


def _filter_args(task: str | None, label: str | None) -> tuple[str, ...]:
    return tuple(x for x in (task, label) if x is not None)


def _order_sql(order: str) -> str:
    return {
        "file": "i.seq",
        "judge-high": "i.score IS NULL, i.score DESC, i.seq",
        "judge-low": "i.score IS NULL, i.score ASC, i.seq",
        "uncertainty": "i.uncertainty IS NULL, i.uncertainty DESC, i.seq",
        "disagreement": "i.disagreement IS NULL, i.disagreement DESC,"
        " i.uncertainty IS NULL, i.uncertainty DESC, i.seq",
    }[order]


def _update_disagreement(db: sqlite3.Connection, item_id: str) -> None:
    """How far the people who decided the item are from the judge (0 agree ... 1 opposite)."""
    row = db.execute(
        "SELECT kind, judge_order, extra FROM items WHERE id = ?", (item_id,)
    ).fetchone()
    if row is None or row["judge_order"] is None:
        return
    done = [
        _decision_row(r)
        for r in db.execute(
            "SELECT * FROM decisions WHERE item_id = ? AND state = 'done'", (item_id,)
        )
    ]
    value: float | None = None
    if row["kind"] == "prompt":
        judge = Ranking.from_string(row["judge_order"], prompt_id=item_id, annotator="judge")
        taus = []
        for d in done:
            if d.action == "rank":
                human = Ranking.from_string(d.body["order"], prompt_id=item_id, annotator="h")
                tau = kendall_tau(judge, human)
                if not math.isnan(tau):
                    taus.append(tau)
        if taus:
            value = (1 - sum(taus) / len(taus)) / 2
    else:
        goodness = json.loads(row["extra"]).get("judge_goodness")
        verdicts = [1.0 if d.action == "approve" else 0.0 for d in done if d.action != "rank"]
        if goodness is not None and verdicts:
            value = abs(goodness - sum(verdicts) / len(verdicts))
    db.execute("UPDATE items SET disagreement = ? WHERE id = ?", (value, item_id))


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))
