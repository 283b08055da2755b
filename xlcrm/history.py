"""The change-log store: an append-only, hash-chained SQLite file beside the workbook.

``.xlcrm/<stem>/history.sqlite`` holds

- ``entries``: one row per change (added / changed / deleted record, or one changed field),
  each hash-chained to the one before (``hash = sha256(prev_hash + entry)``). Triggers refuse
  UPDATE and DELETE; `verify` recomputes the chain, so an edit made with any SQLite tool is
  found. ``history.head`` (a small JSON file beside it) keeps the count and head hash of the
  last commit, so cutting entries off the end is found too.
- ``runs``: one row per run that committed (who, when, source, job, workbook hashes).
- ``snapshot``: per record its values as of the last run, and ``snapshot_index`` per sheet
  every record ID with a 64-bit content hash, stored as one blob so the next run's diff
  loads it in milliseconds (see `xlcrm.changes`).
- ``outbox``: notifications waiting to be delivered (see `xlcrm.notify`); not chained.

Values are stored as JSON: text, numbers and booleans as themselves, dates and times as
``{"$d": "2026-11-25T00:00:00"}`` so that `restore` writes real dates back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HistoryUnreadable, InputError
from .writer import state_dir

GENESIS = "0" * 64
_CHUNK = 500
_SEP = "\x1f"  # between record IDs in snapshot_index (cells cannot hold it)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, at TEXT NOT NULL, user TEXT, source TEXT, job TEXT,
    workbook TEXT, lang TEXT, sha_before TEXT, sha_after TEXT, entries INTEGER, head TEXT);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, at TEXT NOT NULL, user TEXT,
    source TEXT, job TEXT, sheet TEXT NOT NULL, record_id TEXT NOT NULL,
    action TEXT NOT NULL, field TEXT, old TEXT, new TEXT, prev TEXT NOT NULL,
    hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_record ON entries(record_id);
CREATE INDEX IF NOT EXISTS entries_at ON entries(at);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the change log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the change log is append-only'); END;
CREATE TABLE IF NOT EXISTS snapshot (
    sheet TEXT NOT NULL, record_id TEXT NOT NULL, vals TEXT NOT NULL,
    PRIMARY KEY (sheet, record_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshot_index (
    sheet TEXT PRIMARY KEY, ids TEXT NOT NULL, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, channel TEXT NOT NULL,
    target TEXT NOT NULL, subject TEXT, body TEXT NOT NULL, attempts INTEGER DEFAULT 0,
    last_error TEXT, sent_at TEXT);
CREATE TABLE IF NOT EXISTS notified (key TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS merges (
    merge_id TEXT PRIMARY KEY, at TEXT NOT NULL, user TEXT, survivor TEXT, merged TEXT,
    record TEXT NOT NULL, sha_after TEXT, undone_at TEXT);
"""



@dataclass
class Change:
    """One change-log entry before it is stored. `old`/`new` are JSON-able values; for
    added and deleted records they are the record's whole values (a dict)."""

    sheet: str  # the sheet's key: customers, opportunities, interactions
    record_id: str
    action: str
    field: str | None = None
    old: Any = None
    new: Any = None
    user: str | None = None  # None: the run's user
    job: str | None = None  # None: the run's job
    old_json: str | None = dc_field(default=None, repr=False, compare=False)  # when known
    new_json: str | None = dc_field(default=None, repr=False, compare=False)


@dataclass
class Run:
    """Who ran what, when; shared by every entry of the run unless an entry says otherwise."""

    run_id: str
    at: dt.datetime  # aware, UTC
    user: str
    source: str
    job: str
    workbook: str
    lang: str
    sha_before: str
    sha_after: str | None = None


@dataclass
class SnapshotUpdate:
    """Values to upsert (sheet, record_id, values JSON) and delete (sheet, record_id), and the
    new hash index of each sheet (record IDs, int64 hashes)."""

    upsert: list[tuple[str, str, str]] = dc_field(default_factory=list)
    delete: list[tuple[str, str]] = dc_field(default_factory=list)
    index: dict[str, tuple[list[str], np.ndarray]] = dc_field(default_factory=dict)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    """The stored form of a time: UTC, fixed width, so text order is time order."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def parse_user_time(text: str, end_of_day: bool = False) -> dt.datetime:
    """A time a user typed (`2026-11-25`, `2026-11-25 14:30`, ISO with offset); naive times
    are local. A bare date means its start, or its end with `end_of_day`.

    Raises:
        InputError: the text is not a date or time.
    """
    raw = text.strip().replace("/", "-")
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"not a date or time: {text!r} (e.g. 2026-11-25 or "
                         "2026-11-25T14:30)") from None
    if end_of_day and len(raw) <= 10:
        moment = moment + dt.timedelta(days=1, microseconds=-1)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.astimezone(dt.UTC)


def history_path(workbook: Path) -> Path:
    return state_dir(workbook) / "history.sqlite"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _entry_digest(prev: str, row: Sequence[Any]) -> str:
    text = "\x1f".join(["" if v is None else str(v) for v in row])
    return hashlib.sha256((prev + "\x1e" + text).encode("utf-8")).hexdigest()


UndoRecord = tuple[dt.datetime, str, list[str], list[str], dict[str, Any], str]  # save_merge


def chain_entries(run: Run, changes: Sequence[Change], head: tuple[int, str]
                  ) -> list[tuple[Any, ...]]:
    """The rows `History.stage` stores for a run's changes, chained from `head` (the last
    entry's seq and hash)."""
    at = stamp(run.at)
    seq, prev = head
    rows = []
    sha256 = hashlib.sha256
    for change in changes:
        seq += 1
        user, job = change.user or run.user, change.job or run.job
        old = change.old_json or _json_or_none(change.old)
        new = change.new_json or _json_or_none(change.new)
        # the text `_entry_digest` hashes, written out: this runs for every entry of a run
        text = (f"{prev}\x1e{seq}\x1f{run.run_id}\x1f{at}\x1f{user or ''}\x1f"
                f"{run.source or ''}\x1f{job or ''}\x1f{change.sheet}\x1f{change.record_id}"
                f"\x1f{change.action}\x1f{change.field or ''}\x1f{old or ''}\x1f{new or ''}")
        digest = sha256(text.encode("utf-8")).hexdigest()
        rows.append((seq, run.run_id, at, user, run.source, job, change.sheet,
                     change.record_id, change.action, change.field, old, new, prev, digest))
        prev = digest
    return rows


class History:
    """The change-log database of one workbook. Use as a context manager."""

    def __init__(self, workbook: Path, create: bool = True) -> None:
        self.workbook = workbook
        self.path = history_path(workbook)
        self.head_path = self.path.with_name("history.head")
        self._staged: tuple[int, str] | None = None  # (seq, hash) of a staged run's last entry
        if not create and not self.path.exists():
            raise HistoryUnreadable(f"{workbook.name}: no change history yet (run xlcrm sync "
                                    "first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise HistoryUnreadable(f"{self.path}: {error}") from None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # -- snapshot -----------------------------------------------------------------------------

    def has_snapshot(self) -> bool:
        return self.db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None

    def snapshot_index(self, sheet: str) -> tuple[list[str], np.ndarray]:
        """Record IDs and their hashes as of the last run."""
        row = self.db.execute("SELECT ids, hashes FROM snapshot_index WHERE sheet = ?",
                              (sheet,)).fetchone()
        if row is None or not row[0]:
            return [], np.zeros(0, dtype=np.int64)
        return str(row[0]).split(_SEP), np.frombuffer(row[1], dtype=np.int64)

    def snapshot_values(self, sheet: str, record_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ids = list(record_ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for rid, vals in self.db.execute(
                    f"SELECT record_id, vals FROM snapshot WHERE sheet = ? AND record_id IN "
                    f"({marks})", (sheet, *chunk)):
                out[rid] = json.loads(vals)
        return out

    # -- commit -------------------------------------------------------------------------------

    def last_run(self) -> tuple[str, str | None] | None:
        """(run id, the workbook's hash after it) of the newest run, if any."""
        row = self.db.execute("SELECT run_id, sha_after FROM runs ORDER BY rowid DESC LIMIT 1"
                              ).fetchone()
        return (str(row[0]), row[1]) if row else None

    def head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def commit(self, run: Run, changes: Sequence[Change], snapshot: SnapshotUpdate,
               undo: UndoRecord | None = None) -> int:
        """Append the run's entries (chained) and update the snapshot, in one transaction
        (`stage`, then `finish`). Returns the number of entries stored."""
        try:
            count = self.stage(run, changes, snapshot)
            self.finish(run, count, snapshot, undo)
        except BaseException:
            self.db.rollback()
            raise
        return count

    def stage(self, run: Run, changes: Sequence[Change], snapshot: SnapshotUpdate) -> int:
        """Begin the run's transaction (no other run commits until it ends) and store its
        entries, chained from the last one, and its snapshot values; `finish` commits. A run
        stored already (by a second process that died before it could say so) is not stored
        again. Returns the number of entries."""
        self.db.execute("BEGIN IMMEDIATE")
        stored = self.db.execute("SELECT entries FROM runs WHERE run_id = ?",
                                 (run.run_id,)).fetchone()
        if stored is not None:
            self._staged = None
            return int(stored[0] or 0)
        head = self.head()
        rows = chain_entries(run, changes, head)
        self._staged = (rows[-1][0], rows[-1][-1]) if rows else head
        self.db.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        self.db.executemany("INSERT OR REPLACE INTO snapshot VALUES (?,?,?)",
                            self._copy_added(rows, snapshot.upsert, head[0]))
        self.db.executemany("DELETE FROM snapshot WHERE sheet = ? AND record_id = ?",
                            snapshot.delete)
        return len(rows)

    def _copy_added(self, rows: Sequence[tuple[Any, ...]],
                    upsert: list[tuple[str, str, str]], after: int) -> list[tuple[str, str, str]]:
        """When every record this run adds has one snapshot value, its entry's, SQLite copies
        them from the entries (an import's 100k records are not bound a second time); returns
        the snapshot values left to store."""
        added = {(r[6], r[7]): r[11] for r in rows if r[8] == "added"}
        if not added or len(added) != sum(1 for r in rows if r[8] == "added"):
            return upsert
        times = Counter((sheet, rid) for sheet, rid, _ in upsert)
        if any(times.get(key) != 1 for key in added) or any(
                added[(sheet, rid)] != text for sheet, rid, text in upsert
                if (sheet, rid) in added):
            return upsert
        self.db.execute("INSERT OR REPLACE INTO snapshot SELECT sheet, record_id, new FROM "
                        "entries WHERE seq > ? AND action = 'added'", (after,))
        return [u for u in upsert if (u[0], u[1]) not in added]

    def finish(self, run: Run, count: int, snapshot: SnapshotUpdate,
               undo: UndoRecord | None = None) -> None:
        """End `stage`'s transaction: store the run (with `run.sha_after`, the workbook's hash
        after the write), the snapshot's index and, for an import or a merge, what its undo
        needs (`save_merge`'s arguments after the ID, which is the run's); then commit."""
        if self._staged is None:  # stored already
            self.db.rollback()
            return
        seq, prev = self._staged
        self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (run.run_id, stamp(run.at), run.user, run.source, run.job,
                         run.workbook, run.lang, run.sha_before, run.sha_after, count, prev))
        self.db.executemany("INSERT OR REPLACE INTO snapshot_index VALUES (?,?,?)",
                            [(sheet, _SEP.join(ids), hashes.astype(np.int64).tobytes())
                             for sheet, (ids, hashes) in snapshot.index.items()])
        if undo is not None:
            self._insert_merge(run.run_id, *undo)
        self.db.commit()
        self._write_head(seq, prev)

    def _write_head(self, count: int, digest: str) -> None:
        temp = self.head_path.with_name(".history.head.tmp")
        temp.write_text(json.dumps({"entries": count, "head": digest}), encoding="utf-8")
        os.replace(temp, self.head_path)

    # -- reading ------------------------------------------------------------------------------

    def entries(self, record: str | None = None, field: str | None = None,
                user: str | None = None, since: dt.datetime | None = None,
                until: dt.datetime | None = None, sheet: str | None = None,
                limit: int | None = None, newest_first: bool = False) -> list[dict[str, Any]]:
        """Stored entries, filtered; `old`/`new` decoded."""
        conditions = (("record_id = ? COLLATE NOCASE", record), ("field = ? COLLATE NOCASE", field),
                      ("user = ? COLLATE NOCASE", user), ("sheet = ?", sheet),
                      ("at >= ?", stamp(since) if since else None),
                      ("at <= ?", stamp(until) if until else None))
        where = [sql for sql, value in conditions if value]
        params = [value for _, value in conditions if value]
        sql = ("SELECT seq, run_id, at, user, source, job, sheet, record_id, action, field, old, "
               "new FROM entries")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        keys = ("seq", "run_id", "at", "user", "source", "job", "sheet", "record_id", "action",
                "field", "old", "new")
        out = []
        for row in self.db.execute(sql, params):
            item = dict(zip(keys, row, strict=True))
            item["old"] = None if item["old"] is None else json.loads(item["old"])
            item["new"] = None if item["new"] is None else json.loads(item["new"])
            out.append(item)
        return out

    def owner_moves(self) -> list[tuple[str, str, str, Any, Any]]:
        """Every stored change of a customer's owner, oldest first: (record_id, at, job, old,
        new), values decoded. The lead pool reads who released or claimed a customer when."""
        sql = ("SELECT record_id, at, job, old, new FROM entries WHERE sheet = 'customers' "
               "AND action = 'changed' AND field = 'owner' ORDER BY seq")
        return [(rid, at, job, None if old is None else json.loads(old),
                 None if new is None else json.loads(new))
                for rid, at, job, old, new in self.db.execute(sql)]

    def first_seen(self, sheet: str) -> dict[str, str]:
        """When each record of a sheet was first logged (its 'added' entry), by record ID."""
        sql = ("SELECT record_id, min(at) FROM entries WHERE sheet = ? AND action = 'added' "
               "GROUP BY record_id")
        return dict(self.db.execute(sql, (sheet,)).fetchall())

    def stage_entries(self, records: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The entries the stage history needs (opportunities added, deleted, stage changed),
        with `new` cut down to stage, stage_changed_at and created_at; only those of
        `records` when given."""
        sql = """SELECT record_id, action, at, field,
                        CASE WHEN action = 'added' THEN json_object(
                            'stage', json_extract(new, '$.stage'),
                            'stage_changed_at', json_extract(new, '$.stage_changed_at'),
                            'created_at', json_extract(new, '$.created_at'))
                        ELSE new END
                 FROM entries WHERE sheet = 'opportunities'
                   AND (action != 'changed' OR field = 'stage') {only} ORDER BY seq"""
        only = ""
        if records is not None:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (record_id TEXT PRIMARY "
                            "KEY)")
            self.db.execute("DELETE FROM wanted")
            self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)",
                                [(r,) for r in records])
            only = "AND record_id IN (SELECT record_id FROM wanted)"
        keys = ("record_id", "action", "at", "field", "new")
        out = []
        for row in self.db.execute(sql.format(only=only)):
            item = dict(zip(keys, row, strict=True))
            item["new"] = None if item["new"] is None else json.loads(item["new"])
            out.append(item)
        return out

    def verify(self) -> list[str]:
        """Problems found in the chain (empty when intact)."""
        problems: list[str] = []
        prev, expected_seq = GENESIS, 1
        counts: dict[str, int] = {}
        heads: dict[str, str] = {}
        for row in self.db.execute("SELECT * FROM entries ORDER BY seq"):
            body, stored_prev, digest = row[:12], row[12], row[13]
            seq = int(row[0])
            if seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing")
            if stored_prev != prev:
                problems.append(f"entry {seq} does not follow entry {seq - 1}")
            if _entry_digest(stored_prev, body) != digest:
                problems.append(f"entry {seq} was altered")
            counts[row[1]] = counts.get(row[1], 0) + 1
            heads[row[1]] = digest
            prev, expected_seq = digest, seq + 1
            if len(problems) >= 20:
                return problems
        for run_id, entries, head in self.db.execute("SELECT run_id, entries, head FROM runs"):
            if entries and (counts.get(run_id, 0) != entries or heads.get(run_id) != head):
                problems.append(f"run {run_id} does not match its entries")
        if self.head_path.exists():
            try:
                anchor = json.loads(self.head_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                anchor = {}
            if anchor.get("entries") != expected_seq - 1 or anchor.get("head") != prev:
                problems.append(f"the log ends at entry {expected_seq - 1} but "
                                f"history.head records {anchor.get('entries')}")
        return problems

    def lang(self) -> str:
        """The workbook language of the last run ("en" when there is none)."""
        row = self.db.execute("SELECT lang FROM runs ORDER BY at DESC LIMIT 1").fetchone()
        return str(row[0]) if row and row[0] else "en"

    # -- merges ---------------------------------------------------------------------------------

    def save_merge(self, merge_id: str, at: dt.datetime, user: str, survivors: list[str],
                   merged: list[str], record: dict[str, Any], sha_after: str) -> None:
        with self.db:
            self._insert_merge(merge_id, at, user, survivors, merged, record, sha_after)

    def _insert_merge(self, merge_id: str, at: dt.datetime, user: str, survivors: list[str],
                      merged: list[str], record: dict[str, Any], sha_after: str) -> None:
        self.db.execute("INSERT INTO merges VALUES (?,?,?,?,?,?,?,NULL)",
                        (merge_id, stamp(at), user, dumps(survivors), dumps(merged),
                         dumps(record), sha_after))

    def load_merge(self, merge_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT record, sha_after, undone_at, merged FROM merges WHERE "
                              "merge_id = ?", (merge_id,)).fetchone()
        if row is None:
            return None
        return {"record": json.loads(row[0]), "sha_after": row[1], "undone_at": row[2],
                "merged": json.loads(row[3])}

    def mark_undone(self, merge_id: str, at: dt.datetime) -> None:
        with self.db:
            self.db.execute("UPDATE merges SET undone_at = ? WHERE merge_id = ?",
                            (stamp(at), merge_id))

    # -- notifications bookkeeping ------------------------------------------------------------

    def already_notified(self, keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        items = list(keys)
        for start in range(0, len(items), _CHUNK):
            chunk = items[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(k for (k,) in self.db.execute(
                f"SELECT key FROM notified WHERE key IN ({marks})", chunk))
        return found

    def mark_notified(self, keys: Iterable[str], at: dt.datetime) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO notified VALUES (?, ?)",
                                [(k, stamp(at)) for k in keys])

    def enqueue(self, messages: Iterable[tuple[str, str, str | None, str]],
                at: dt.datetime) -> None:
        """Queue (channel, target, subject, body) messages."""
        with self.db:
            self.db.executemany(
                "INSERT INTO outbox (created_at, channel, target, subject, body) "
                "VALUES (?,?,?,?,?)", [(stamp(at), *m) for m in messages])

    def pending(self, max_attempts: int) -> list[tuple[int, str, str, str | None, str]]:
        return list(self.db.execute(
            "SELECT id, channel, target, subject, body FROM outbox WHERE sent_at IS NULL AND "
            "attempts < ? ORDER BY id", (max_attempts,)))

    def delivered(self, message_id: int, at: dt.datetime) -> None:
        with self.db:
            self.db.execute("UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                            (stamp(at), message_id))

    def failed(self, message_id: int, error: str) -> None:
        with self.db:
            self.db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? "
                            "WHERE id = ?", (error[:500], message_id))

    def outbox(self) -> list[dict[str, Any]]:
        keys = ("id", "created_at", "channel", "target", "subject", "body", "attempts",
                "last_error", "sent_at")
        return [dict(zip(keys, row, strict=True))
                for row in self.db.execute(f"SELECT {', '.join(keys)} FROM outbox ORDER BY id")]


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)
