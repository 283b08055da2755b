"""Who changed what: the snapshot diff by record ID, the engine's own changes, stage history
and the values a record had at a given time.

A `Tracker` is made once per run, right after IDs are filled:

1. It hashes every record (all its columns, in name order, so moving a column or sorting the
   sheet changes nothing) and compares the hashes with the last snapshot. Records whose hash
   differs are compared field by field against the stored values, so a change is reported
   only when a value really differs. These are the user's changes, attributed to the
   workbook's last author.
2. Each engine step (stage dates, promotion, restore) hands its cells and new rows to
   `Tracker.apply`, which updates the frames, so later steps see them, and logs them as the
   engine's changes (user ``xlcrm``).
3. After a successful write the job calls `Tracker.commit`; nothing is stored when the write
   was refused, so the next run sees the same changes again and nothing is lost.

The first run of a workbook records every record as added: that baseline is what `restore`
and the stage history start from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import uuid
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # what `dumps` writes a text as
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from defusedxml import ElementTree

from . import normalize as nz
from . import progress, schema
from .guard import owner_files, owner_name
from .history import (
    Change,
    History,
    Run,
    SnapshotUpdate,
    UndoRecord,
    dumps,
    now_utc,
    parse_stamp,
    stamp,
)
from .reader import ROW, WorkbookData

ENGINE_USER = "xlcrm"
_FNV_PRIME = np.uint64(1099511628211)
CONTACT_FIELDS = {"customers": ("contact_name", "email", "phone"),
                  "opportunities": ("contact_name", "contact_email", "contact_phone")}


# ---------------------------------------------------------------------------------------------
# Values

def cell_json(value: Any) -> Any:
    """A cell value as stored in the history: JSON-able, dates tagged, 3.0 stored as 3."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        if value != value:
            return None
        return int(value) if value.is_integer() else value
    if kind is int or kind is bool:
        return value
    if isinstance(value, dt.datetime):
        return {"$d": (value if value.tzinfo is None else value.replace(tzinfo=None)
                       ).isoformat()}
    if isinstance(value, dt.date):
        return {"$d": dt.datetime.combine(value, dt.time()).isoformat()}
    if isinstance(value, float | int):  # numpy scalars
        return cell_json(float(value))
    return {"$t": str(value)}


def cell_value(stored: Any) -> Any:
    """The cell value to write back for a stored value."""
    if isinstance(stored, dict):
        if "$d" in stored:
            return dt.datetime.fromisoformat(stored["$d"])
        return stored.get("$t")
    return stored


def show(stored: Any) -> str:
    """A stored value as a person reads it (dates without a midnight time)."""
    if stored is None:
        return ""
    if isinstance(stored, dict) and "$d" in stored:
        text = str(stored["$d"])
        return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")
    if isinstance(stored, dict) and "$t" in stored:
        return str(stored["$t"])
    if isinstance(stored, dict):  # a whole record
        return "; ".join(f"{k}: {show(v)}" for k, v in stored.items())
    if isinstance(stored, bool):
        return "TRUE" if stored else "FALSE"
    return str(stored)


def show_record(sheet_key: str, values: dict[str, Any], lang: schema.Lang) -> str:
    """A whole record as one line, fields in sheet order, headers in `lang`."""
    order = {f.key: i for i, f in enumerate(schema.SHEETS_BY_KEY[sheet_key].fields)}
    keys = sorted(values, key=lambda k: (order.get(k, len(order)), k))
    return "; ".join(f"{schema.field_label(sheet_key, k, lang)}: {show(values[k])}"
                     for k in keys)


def tracked_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(str(c) for c in frame.columns if c != ROW)


def record_values(row: Sequence[Any], columns: Sequence[str]) -> dict[str, Any]:
    out = {}
    for column, value in zip(columns, row, strict=True):
        if value is not None and value == value:
            out[column] = cell_json(value)
    return out


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit content hash per row (int64). Only a filter: equal hashes mean "unchanged", a
    hash that differs sends the record to a field-by-field comparison."""
    combined = np.zeros(len(frame), dtype=np.uint64)
    for column in columns:  # per column, so no copy of the frame is made
        hashed = pd.util.hash_array(frame[column].to_numpy(), categorize=True)
        combined = (combined ^ hashed) * _FNV_PRIME  # wraps modulo 2**64
    return combined.view(np.int64)


# ---------------------------------------------------------------------------------------------
# Who

def workbook_user(path: Path) -> str:
    """Who made the workbook as it is: `lastModifiedBy` in docProps/core.xml, else the user
    in an owner file, else the OS user."""
    try:
        with zipfile.ZipFile(path) as archive:
            root = ElementTree.fromstring(archive.read("docProps/core.xml"))
        for node in root.iter():
            if str(node.tag).endswith("}lastModifiedBy") and node.text and node.text.strip():
                return str(node.text).strip()
    except (KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError):
        pass
    for owner in owner_files(path):
        name = owner_name(owner)
        if name:
            return name
    return os_user()


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ---------------------------------------------------------------------------------------------
# The tracker

@dataclass
class Tracker:
    """The changes of one run, and the snapshot to store when it commits."""

    history: History
    data: WorkbookData
    run: Run
    baseline: bool
    user_changes: list[Change] = field(default_factory=list)
    engine_changes: list[Change] = field(default_factory=list)
    snapshot: SnapshotUpdate = field(default_factory=SnapshotUpdate)
    index: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    _rehashed: dict[str, dict[str, int]] = field(default_factory=dict)
    _staged: int | None = None  # the entries `stage` stored, waiting for `commit`

    @property
    def changes(self) -> list[Change]:
        return [*self.user_changes, *self.engine_changes]

    def apply(self, sheet_key: str, cells: Sequence[tuple[int, int, Any]] = (),
              rows: Sequence[Mapping[str, Any]] = (), job: str = "sync",
              user: str = ENGINE_USER, fields: Collection[str] | None = None,
              log_only: bool = False) -> None:
        """Apply an engine step's cells (Excel row, column, value) and new rows to the frames,
        and log what actually changed. `fields`: the only fields of the new rows to take (those
        the sheet has a column for, when the rows may name others). `log_only`: no later step
        reads the frames (an import's second process), so the new rows are only logged, each
        entry holding its values as the JSON it is stored as."""
        if not cells and not rows:
            return
        sheet = self.data.sheets[sheet_key]
        sdef = schema.SHEETS_BY_KEY[sheet_key]
        assert sdef.id_field
        frame = sheet.frame
        by_row = dict(zip(frame[ROW].tolist(), frame.index.tolist(), strict=True))
        by_column = {column: key for key, column in sheet.columns.items()}
        touched: dict[Any, None] = {}
        pending: list[tuple[Any, str, Any]] = []
        for row, column, value in cells:
            index, key = by_row.get(row), by_column.get(column)
            if index is not None and key is not None:
                pending.append((index, key, _as_read(value)))
                touched[index] = None
        columns = tracked_columns(frame)
        before = _records(frame, list(touched), columns)
        for index, key, value in pending:
            frame.at[index, key] = value
        new = None
        if rows:
            start = sheet.last_row + 1
            named = set().union(*rows)
            if fields is not None:
                named &= set(fields)
            read = {name: [v if v is None or type(v) is str else _as_read(v)
                           for v in [r.get(name) for r in rows]]
                    for name in columns if name in named}  # (columns are sorted)
            new = pd.DataFrame(read, columns=frame.columns, dtype=object)
            new[ROW] = range(start, start + len(new))
            first = int(frame.index.max()) + 1 if len(frame) else 0
            new.index = range(first, first + len(new))
            if not log_only:
                sheet.frame = pd.concat([frame, new])
        rehashed = self._rehashed.setdefault(sheet_key, {})
        indices = list(touched)  # the records whose cells changed
        hashes = row_hashes(frame.loc[indices], columns).tolist()
        afters = _records(frame, indices, columns)
        ids = frame.loc[indices, sdef.id_field].tolist() if indices else []
        for index, digest, rid_value in zip(indices, hashes, ids, strict=True):
            rid = nz.text(rid_value)
            if not rid:
                continue
            after = afters[index]
            for name in sorted(set(before[index]) | set(after)):
                if before[index].get(name) != after.get(name):
                    self.engine_changes.append(Change(
                        sheet_key, rid, "changed", name, before[index].get(name),
                        after.get(name), user=user, job=job))
            self.snapshot.upsert.append((sheet_key, rid, dumps(after)))
            rehashed[rid] = digest
        if new is None:
            return
        stored, as_json = _stored_columns(read, len(rows), not log_only)  # as stored
        for rid_value, digest, record, text in zip(
                new[sdef.id_field].tolist(), row_hashes(new, columns).tolist(), stored,
                as_json, strict=True):
            rid = nz.text(rid_value)
            if not rid:
                continue
            self.engine_changes.append(Change(sheet_key, rid, "added", new=record, user=user,
                                              job=job, new_json=text))
            self.snapshot.upsert.append((sheet_key, rid, text))
            rehashed[rid] = digest

    def follow_on(self, job: str, user: str | None = None) -> Tracker:
        """A tracker for a step that comes after this one's commit (an import after the
        user's pending edits were logged), without diffing the workbook again: it
        starts from this tracker's index and logs only what the step `apply`s. The step's
        values must be those the reader will see after the write (see `_as_read`)."""
        run = Run(run_id=uuid.uuid4().hex[:12], at=now_utc(), user=user or self.run.user,
                  source=self.run.source, job=job, workbook=self.run.workbook,
                  lang=self.run.lang, sha_before=self.run.sha_before)
        index = {key: self.snapshot.index.get(key, found) for key, found in self.index.items()}
        return Tracker(self.history, self.data, run, baseline=False, index=index)

    def stage(self) -> Tracker:
        """Store this run's entries and snapshot values now, in a transaction that `commit`
        ends (a second process stages an import's log while the first writes the workbook):
        through a connection of its own, never one a forked process inherited. No other run
        can commit in between."""
        self.history = History(self.history.workbook)
        self.history.db.execute("PRAGMA cache_size = -262144")  # 256 MB: nothing spills
        self._staged = self.history.stage(self.run, self.changes, self.snapshot)
        return self

    def commit(self, sha_after: str | None = None, undo: UndoRecord | None = None) -> int:
        """Store this run's entries and snapshot (or end what `stage` began), with what an
        import's undo needs. Returns the number of entries stored."""
        self.run.sha_after = sha_after
        for key, (ids, hashes) in self.index.items():
            updates = self._rehashed.get(key, {})
            if updates:
                position = {rid: i for i, rid in enumerate(ids)}
                hashes = hashes.copy()
                extra_ids, extra = [], []
                for rid, digest in updates.items():
                    if rid in position:
                        hashes[position[rid]] = digest
                    else:
                        extra_ids.append(rid)
                        extra.append(digest)
                ids = [*ids, *extra_ids]
                hashes = np.concatenate([hashes, np.array(extra, dtype=np.int64)])
            self.snapshot.index[key] = (ids, hashes)
        if self._staged is None:
            return self.history.commit(self.run, self.changes, self.snapshot, undo)
        self.history.finish(self.run, self._staged, self.snapshot, undo)
        self.history.close()
        return self._staged


def newest_entries(history: History, tracker: Tracker, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` change-log entries, newest first: this run's (not stored yet), then
    the stored ones."""
    run = tracker.run
    fresh = [{"at": stamp(run.at), "user": c.user or run.user, "source": run.source,
              "sheet": c.sheet, "record_id": c.record_id, "action": c.action, "field": c.field,
              "old": c.old, "new": c.new} for c in reversed(tracker.changes[-limit:])
             ] if limit else []
    stored = history.entries(limit=limit - len(fresh), newest_first=True) if (
        limit > len(fresh)) else []
    return [*fresh, *stored]


def _records(frame: pd.DataFrame, indices: list[Any], columns: list[str]
             ) -> dict[Any, dict[str, Any]]:
    """index -> the record's tracked values, read in one block (not row by row)."""
    if not indices:
        return {}
    rows = frame.loc[indices, columns].to_numpy(dtype=object).tolist()
    return {i: record_values(r, columns) for i, r in zip(indices, rows, strict=True)}


def start_tracking(history: History, data: WorkbookData, source: str, job: str,
                   user: str | None = None, at: dt.datetime | None = None) -> Tracker:
    """Diff the workbook as read (IDs filled) against the last snapshot."""
    progress.step("changes")
    run = Run(run_id=uuid.uuid4().hex[:12], at=at or now_utc(),
              user=user or workbook_user(data.path), source=source, job=job,
              workbook=data.path.name, lang=data.lang, sha_before=data.sha256)
    tracker = Tracker(history, data, run, baseline=not history.has_snapshot())
    last = history.last_run()
    if data.sha256 and last is not None and last[1] == data.sha256:
        # the very bytes the last run wrote and logged: nothing changed, no diff to make
        for sdef in schema.DATA_SHEETS:
            tracker.index[sdef.key] = history.snapshot_index(sdef.key)
        return tracker
    for sdef in schema.DATA_SHEETS:
        _diff_sheet(tracker, sdef.key)
    return tracker


def record_ids(column: pd.Series) -> pd.Series:
    """Record IDs as text (the common all-text column takes the fast path)."""
    if pd.api.types.infer_dtype(column, skipna=True) == "string":
        return column.fillna("")
    return column.map(nz.text)


def _diff_sheet(tracker: Tracker, key: str) -> None:
    sdef = schema.SHEETS_BY_KEY[key]
    assert sdef.id_field
    frame = tracker.data.sheets[key].frame
    columns = tracked_columns(frame)
    ids = record_ids(frame[sdef.id_field]).to_numpy(dtype=object)
    hashes = row_hashes(frame, columns)
    keep = (ids != "") & ~pd.Series(ids).duplicated().to_numpy()  # validation reports the rest
    positions = np.flatnonzero(keep)
    ids, hashes = ids[keep], hashes[keep]
    tracker.index[key] = (ids.tolist(), hashes)
    old_ids, old_hashes = tracker.history.snapshot_index(key)
    where = pd.Index(old_ids).get_indexer(ids) if old_ids else np.full(len(ids), -1)
    is_new = where < 0
    is_changed = np.zeros(len(ids), dtype=bool)
    seen = np.zeros(len(old_ids), dtype=bool)
    if len(old_hashes):
        is_changed = ~is_new & (old_hashes[np.where(is_new, 0, where)] != hashes)
        seen[where[~is_new]] = True
    gone = [old_ids[i] for i in np.flatnonzero(~seen).tolist()]
    snapshot, log = tracker.snapshot, tracker.user_changes
    added, changed = positions[is_new], positions[is_changed]
    if len(added) or len(changed):
        values = frame[columns]
        rows = {p: list(row) for p, row in zip(
            np.concatenate([added, changed]).tolist(),
            values.iloc[np.concatenate([added, changed])].itertuples(index=False, name=None),
            strict=True)}
    for position, rid in zip(added.tolist(), ids[is_new].tolist(), strict=True):
        vals = record_values(rows[position], columns)
        text = dumps(vals)
        log.append(Change(key, rid, "added", new=vals, new_json=text))
        snapshot.upsert.append((key, rid, text))
    changed_ids = ids[is_changed].tolist()
    stored = tracker.history.snapshot_values(key, changed_ids)
    for position, rid in zip(changed.tolist(), changed_ids, strict=True):
        vals = record_values(rows[position], columns)
        before = stored.get(rid, {})
        for name in sorted(set(before) | set(vals)):
            if before.get(name) != vals.get(name):
                log.append(Change(key, rid, "changed", name, before.get(name), vals.get(name)))
        snapshot.upsert.append((key, rid, dumps(vals)))
    for rid, vals in tracker.history.snapshot_values(key, gone).items():
        log.append(Change(key, rid, "deleted", old=vals))
        snapshot.delete.append((key, rid))


def _stored_columns(columns: Mapping[str, list[Any]], count: int, values: bool = True
                    ) -> tuple[list[dict[str, Any] | None], list[str]]:
    """New records given column by column (names in sorted order) as the history stores
    them: each one's values (`cell_json`, blanks left out; None without `values`) and their
    JSON text, exactly `dumps` of those values. Each distinct value is encoded once."""
    names: list[str] = []
    encoded: list[list[str | None]] = []
    plain: list[list[Any]] = []
    for name, column in columns.items():
        key = dumps(name) + ":"
        memo: dict[tuple[type, Any], tuple[Any, str]] = {}
        texts: list[str | None] = []
        stored: list[Any] = []
        for value in column:
            if type(value) is str:  # text is stored as itself
                stored.append(value)
                texts.append(key + encode_basestring(value))
                continue
            if value is None or value != value:
                texts.append(None)
                stored.append(None)
                continue
            try:
                found = memo.get((type(value), value))
            except TypeError:
                found = None
            if found is None:
                as_json = cell_json(value)
                found = (as_json, key + dumps(as_json))
                with contextlib.suppress(TypeError):
                    memo[(type(value), value)] = found
            stored.append(found[0])
            texts.append(found[1])
        names.append(name)
        encoded.append(texts)
        plain.append(stored)
    if not names:
        return [{} if values else None for _ in range(count)], ["{}"] * count
    values_out: list[dict[str, Any] | None] = [
        {n: v for n, v in zip(names, row, strict=True) if v is not None}
        for row in zip(*plain, strict=True)] if values else [None] * count
    text_out = ["{" + ",".join([t for t in row if t is not None]) + "}"
                for row in zip(*encoded, strict=True)]
    return values_out, text_out


def _as_read(value: Any) -> Any:
    """A value as the reader will see it after the write (dates as datetimes, numbers as
    floats), so the next run's hash matches."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------
# Stage history

def stage_cells(tracker: Tracker, today: dt.date) -> list[tuple[int, int, Any]]:
    """Cells that record a stage change: `stage_changed_at` (and `closed_at` for a won or lost
    stage) become today for every opportunity whose stage the user changed; a deal moved back
    to an open stage loses its close date; a close date the user typed in the same edit is
    kept. A new opportunity without a stage date gets its created date (or today)."""
    data = tracker.data
    sheet = data.sheets["opportunities"]
    frame, columns = sheet.frame, sheet.columns
    if "stage_changed_at" not in columns:
        return []
    moved = {c.record_id for c in tracker.user_changes
             if c.sheet == "opportunities" and c.action == "changed" and c.field == "stage"}
    dated = {c.record_id for c in tracker.user_changes  # the user typed the close date
             if c.sheet == "opportunities" and c.action == "changed" and c.field == "closed_at"}
    new = set() if tracker.baseline else {
        c.record_id for c in tracker.user_changes
        if c.sheet == "opportunities" and c.action == "added"}
    if not moved and not new:
        return []
    cells: list[tuple[int, int, Any]] = []
    closed_kinds = {"won", "lost"}
    today_dt = dt.datetime.combine(today, dt.time())
    ids = frame["opportunity_id"].map(nz.text)
    for index in frame.index[ids.isin(moved | new)]:
        rid, row = ids[index], int(frame.at[index, ROW])
        if rid in moved:
            cells.append((row, columns["stage_changed_at"], today_dt))
            stage = data.settings.stage(frame.at[index, "stage"])
            if stage is None or "closed_at" not in columns or rid in dated:
                continue
            if stage.kind in closed_kinds:  # closed today, even if it had closed before
                cells.append((row, columns["closed_at"], today_dt))  # (Lost, then reopened)
            elif not nz.is_blank(frame.at[index, "closed_at"]):
                cells.append((row, columns["closed_at"], None))  # reopened: not closed now
        elif nz.is_blank(frame.at[index, "stage_changed_at"]):
            created = (nz.date_parser(data.settings.day_first)(frame.at[index, "created_at"])
                       or today)
            cells.append((row, columns["stage_changed_at"], dt.datetime.combine(created,
                                                                                 dt.time())))
    return cells


def stage_history(history: History, today: dt.date | None = None,
                  pending: Tracker | None = None,
                  records: Iterable[str] | None = None) -> pd.DataFrame:
    """Every stay of every opportunity in a stage: opportunity_id, stage, entered, left (NaT
    while it is still there), days. Built from the log: the stage each opportunity had when
    first recorded (entered on its Stage Changed or Created date) and every stage change;
    `pending` adds a run's changes that are not stored yet; `records` keeps only those
    opportunities."""
    today = today or dt.date.today()
    rows: list[dict[str, Any]] = []
    current: dict[str, dict[str, Any]] = {}
    entries = history.stage_entries(records)
    if pending is not None:
        run_at = stamp(pending.run.at)
        entries += [{"record_id": c.record_id, "action": c.action, "at": run_at,
                     "field": c.field,
                     "new": c.new} for c in pending.changes if c.sheet == "opportunities"
                    and (c.action != "changed" or c.field == "stage")]
    days: dict[str, dt.date] = {}  # a run's entries share one time: parsed once
    for entry in entries:
        rid, action = entry["record_id"], entry["action"]
        when = days.get(entry["at"])
        if when is None:
            when = days[entry["at"]] = parse_stamp(entry["at"]).astimezone().date()
        if action == "added":
            vals = entry["new"] or {}
            stage = vals.get("stage")
            entered = (nz.parse_date(cell_value(vals.get("stage_changed_at")))
                       or nz.parse_date(cell_value(vals.get("created_at"))) or when)
            _close_stay(current, rows, rid, when)
            if stage is not None:
                current[rid] = {"opportunity_id": rid, "stage": show(stage), "entered": entered}
        elif action == "changed" and entry["field"] == "stage":
            _close_stay(current, rows, rid, when)
            if entry["new"] is not None:
                current[rid] = {"opportunity_id": rid, "stage": show(entry["new"]),
                                "entered": when}
        elif action == "deleted":
            _close_stay(current, rows, rid, when)
    for stay in current.values():
        rows.append({**stay, "left": None})
    frame = pd.DataFrame(rows, columns=["opportunity_id", "stage", "entered", "left"])
    frame["entered"] = pd.to_datetime(frame["entered"])
    frame["left"] = pd.to_datetime(frame["left"])
    end = frame["left"].fillna(pd.Timestamp(today))
    frame["days"] = (end - frame["entered"]).dt.days.clip(lower=0)
    return frame


def _close_stay(current: dict[str, dict[str, Any]], rows: list[dict[str, Any]], rid: str,
                when: dt.date) -> None:
    stay = current.pop(rid, None)
    if stay is not None:
        rows.append({**stay, "left": when})


# ---------------------------------------------------------------------------------------------
# Restore

def values_at(history: History, record_id: str,
              at: dt.datetime | None = None) -> tuple[str, dict[str, Any]] | None:
    """(sheet key, values) of a record at time `at`; without `at`, as it was just before it
    was last deleted. None when the record did not exist then (or was never deleted)."""
    entries = history.entries(record=record_id, until=at)
    if not entries:
        return None
    values: dict[str, Any] | None = None
    last_deleted: tuple[str, dict[str, Any]] | None = None
    sheet = entries[-1]["sheet"]
    for entry in entries:
        if entry["action"] == "added":
            values, sheet = dict(entry["new"] or {}), entry["sheet"]
        elif entry["action"] == "changed" and values is not None and entry["field"]:
            if entry["new"] is None:
                values.pop(entry["field"], None)
            else:
                values[entry["field"]] = entry["new"]
        elif entry["action"] == "deleted":
            last_deleted = (entry["sheet"], dict(entry["old"] or {}))
            values = None
    if at is None:
        return last_deleted
    return None if values is None else (sheet, values)
