"""The change log: diff by record ID across real saves, the SQLite store, restore, stages."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import python_calamine

from tests.conftest import TODAY, cell_of, edit_cells, user_edit
from xlcrm import normalize as nz
from xlcrm.analytics import stage_durations
from xlcrm.changes import stage_history
from xlcrm.errors import WorkbookOpen
from xlcrm.history import History, history_path
from xlcrm.jobs import SyncResult, sync_workbook
from xlcrm.reader import read_workbook


def log_json(cli: Callable[..., Any], path: Path, *args: str) -> list[dict[str, Any]]:
    result = cli("log", path, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["version"] == 1
    return list(payload["changes"])


def sheet_rows(path: Path, name: str) -> list[list[Any]]:
    """A sheet's rows as an independent reader (python-calamine) sees them."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    return list(book.get_sheet_by_name(name).to_python())


def as_lastmodified(who: str) -> Callable[[openpyxl.Workbook], None]:
    def change(book: openpyxl.Workbook) -> None:
        book.properties.lastModifiedBy = who

    return change


def test_user_edit_between_syncs_is_logged_with_old_and_new(
        clean_book: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = clean_book()
    sync_workbook(path, today=TODAY)
    _, cell, _ = cell_of(path, "customers", "C-000003", "phone")
    old_phone = openpyxl.load_workbook(path)["Customers"][cell].value
    edit_cells(path, [("customers", "C-000003", "phone", "+86 139 0000 1111")])
    user_edit(path, as_lastmodified("Li Lei"))

    result = sync_workbook(path, today=TODAY)
    assert [(c.record_id, c.action, c.field) for c in result.changes] == [
        ("C-000003", "changed", "phone")]

    changes = log_json(cli, path, "--record", "C-000003", "--field", "电话")
    assert len(changes) == 1
    entry = changes[0]
    assert (entry["user"], entry["source"], entry["sheet"], entry["action"], entry["field"],
            entry["old"], entry["new"]) == ("Li Lei", "cli", "Customers", "changed", "phone",
                                            old_phone, "+86 139 0000 1111")
    assert entry["run_id"]
    assert dt.datetime.fromisoformat(entry["at"]).date() == dt.date.today()
    # the user filter finds it too, and another user's filter does not
    assert len(log_json(cli, path, "--user", "li lei")) == 1
    assert log_json(cli, path, "--user", "Someone Else") == []


def test_sorting_moving_and_a_new_column_log_nothing(clean_book: Callable[..., Path]) -> None:
    path = clean_book(sample=15)
    sync_workbook(path, today=TODAY)

    def sort_and_move(book: openpyxl.Workbook) -> None:
        ws = book["Customers"]
        last = ws.tables["tblCustomers"].ref.split(":")[1]
        rows = [[c.value for c in row] for row in ws[f"A2:{last}"]]
        rows.sort(key=lambda r: str(r[1]), reverse=True)  # sort by name, Z to A
        for r, values in enumerate(rows, start=2):
            for c, value in enumerate(values, start=1):
                ws.cell(row=r, column=c).value = value  # (value=None would not clear it)
        ws.cell(row=1, column=30, value="Region")  # an empty column of the user's own

    user_edit(path, sort_and_move)
    result = sync_workbook(path, today=TODAY)
    assert result.written
    assert result.changes == []


def test_inserted_row_is_added_and_deleted_row_comes_back(
        clean_book: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = clean_book()
    sync_workbook(path, today=TODAY)
    name, _, row = cell_of(path, "customers", "C-000005", "name")
    before = next(r for r in sheet_rows(path, name) if r[0] == "C-000005")

    def delete_and_insert(book: openpyxl.Workbook) -> None:
        ws = book[name]
        ws.delete_rows(row)
        ws.insert_rows(3)
        ws["A3"], ws["B3"] = "C-000900", "Inserted Row Ltd"

    user_edit(path, delete_and_insert)
    result = sync_workbook(path, today=TODAY)
    by_user = [c for c in result.changes if c.user is None]  # the engine's carry its name
    assert sorted((c.record_id, c.action) for c in by_user
                  if c.sheet == "customers") == [("C-000005", "deleted"), ("C-000900", "added")]
    assert not any(r[0] == "C-000005" for r in sheet_rows(path, name))

    restored = cli("restore", path, "C-000005")
    assert restored.exit_code == 0, restored.output
    rows = [r for r in sheet_rows(path, name) if r[0] == "C-000005"]
    assert len(rows) == 1
    assert rows[0][:len(before)] == before  # every value as it was, dates as dates
    table_ref = openpyxl.load_workbook(path)[name].tables["tblCustomers"].ref
    last_row = int("".join(ch for ch in table_ref.split(":")[1] if ch.isdigit()))
    assert last_row >= len(sheet_rows(path, name))  # the Table grew to hold it

    changes = log_json(cli, path, "--record", "C-000005")
    assert [c["action"] for c in changes if c["user"] != "xlcrm"] == ["added", "deleted",
                                                                      "added"]
    assert changes[-1]["job"] == "restore"
    # restoring again is refused: the record is there
    again = cli("restore", path, "C-000005")
    assert again.exit_code == 2
    assert "--at" in again.output
    # and the next sync sees no change: the restore was logged already
    assert sync_workbook(path, today=TODAY).changes == []


def test_restore_at_a_time_sets_values_back(clean_book: Callable[..., Path],
                                            cli: Callable[..., Any]) -> None:
    path = clean_book()
    sync_workbook(path, today=TODAY)
    edit_cells(path, [("customers", "C-000002", "email", "first@change.com")])
    sync_workbook(path, today=TODAY)
    time.sleep(0.05)
    between = dt.datetime.now()
    time.sleep(0.05)
    edit_cells(path, [("customers", "C-000002", "email", "second@change.com"),
                      ("customers", "C-000002", "city", "Xi'an")])
    sync_workbook(path, today=TODAY)

    result = cli("restore", path, "C-000002", "--at", between.isoformat())
    assert result.exit_code == 0, result.output
    _, email_cell, _ = cell_of(path, "customers", "C-000002", "email")
    _, city_cell, _ = cell_of(path, "customers", "C-000002", "city")
    ws = openpyxl.load_workbook(path)["Customers"]
    assert ws[email_cell].value == "first@change.com"
    assert ws[city_cell].value != "Xi'an"
    restore_entries = [c for c in log_json(cli, path, "--record", "C-000002")
                       if c["job"] == "restore"]
    assert sorted(c["field"] for c in restore_entries) == ["city", "email"]

    unknown = cli("restore", path, "C-999999")
    assert unknown.exit_code == 2
    assert "C-999999" in unknown.output


def test_tampering_is_detected(clean_book: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = clean_book()
    sync_workbook(path, today=TODAY)
    edit_cells(path, [("customers", "C-000001", "city", "Hangzhou")])
    sync_workbook(path, today=TODAY)
    assert cli("log", path, "--verify").exit_code == 0

    db = sqlite3.connect(history_path(path))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE entries SET new = '\"Beijing\"' WHERE field = 'city'")
    # someone who drops the guard and rewrites history is still caught
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET new = '\"Beijing\"' WHERE field = 'city'")
    db.commit()
    db.close()
    result = cli("log", path, "--verify", "--format", "json")
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["intact"] is False
    assert any("altered" in p for p in payload["problems"])


def test_cutting_off_the_newest_entries_is_detected(clean_book: Callable[..., Path],
                                                   cli: Callable[..., Any]) -> None:
    path = clean_book()
    sync_workbook(path, today=TODAY)
    edit_cells(path, [("customers", "C-000001", "city", "Hangzhou")])
    sync_workbook(path, today=TODAY)
    db = sqlite3.connect(history_path(path))
    db.execute("DROP TRIGGER entries_no_delete")
    db.execute("DELETE FROM entries WHERE seq = (SELECT MAX(seq) FROM entries)")
    db.execute("DELETE FROM runs WHERE entries = 1")
    db.commit()
    db.close()
    result = cli("log", path, "--verify")
    assert result.exit_code == 1
    assert "history.head" in result.output


def test_refused_write_logs_nothing_and_the_next_run_catches_up(
        clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    sync_workbook(path, today=TODAY)
    edit_cells(path, [("customers", "C-000004", "contact_name", "王小明")])
    owner = path.with_name(f"~${path.name}")
    owner.write_bytes(b"\x05Alice" + b" " * 160)
    with pytest.raises(WorkbookOpen) as refused:  # the one channel of a refused write
        sync_workbook(path, today=TODAY)
    busy = refused.value.result
    assert isinstance(busy, SyncResult) and not busy.written and busy.report.counts
    assert busy.changes == []
    with History(path) as history:
        assert history.entries(record="C-000004", field="contact_name") == []
    owner.unlink()
    later = sync_workbook(path, today=TODAY)
    assert [(c.record_id, c.field, c.new) for c in later.changes] == [
        ("C-000004", "contact_name", "王小明")]


def test_stage_change_dates_the_stage_and_feeds_stage_history(
        clean_book: Callable[..., Path]) -> None:
    path = clean_book(sample=20)
    first = sync_workbook(path, today=TODAY)
    assert first.changes  # the baseline
    frame = read_workbook(path).sheets["opportunities"].frame
    open_deals = frame[frame["stage"].isin(["Lead", "Qualified", "Proposal"])]
    oid = str(open_deals["opportunity_id"].iloc[0])
    lost = str(open_deals["opportunity_id"].iloc[1])
    edit_cells(path, [("opportunities", oid, "stage", "Negotiation"),
                      ("opportunities", lost, "stage", "Lost"),
                      ("opportunities", lost, "lost_reason", "Price")])
    run_day = dt.date.today()
    sync_workbook(path, today=run_day)

    ws = openpyxl.load_workbook(path)["Opportunities"]
    _, changed_cell, _ = cell_of(path, "opportunities", oid, "stage_changed_at")
    _, closed_cell, _ = cell_of(path, "opportunities", lost, "closed_at")
    assert nz.parse_date(ws[changed_cell].value) == run_day
    assert nz.parse_date(ws[closed_cell].value) == run_day

    with History(path) as history:
        stays = stage_history(history, today=run_day)
        engine = history.entries(record=oid, field="stage_changed_at")
    assert engine and engine[-1]["user"] == "xlcrm" and engine[-1]["job"] == "stage"
    mine = stays[stays["opportunity_id"] == oid].sort_values("entered")
    assert list(mine["stage"]) == [str(open_deals["stage"].iloc[0]), "Negotiation"]
    assert mine["left"].iloc[0].date() == run_day and pd_isna(mine["left"].iloc[1])
    table = stage_durations(stays, ["Lead", "Qualified", "Proposal", "Quote", "Negotiation",
                                    "Won", "Lost"])
    negotiation = table[table["stage"] == "Negotiation"].iloc[0]
    assert negotiation["current"] >= 1
    assert list(table.columns) == ["stage", "stays", "median_days", "p90_days", "current"]


def pd_isna(value: Any) -> bool:
    return value is None or value != value or str(value) == "NaT"


def test_changelog_sheet_shows_newest_first_in_the_workbook_language(
        clean_book: Callable[..., Path]) -> None:
    path = clean_book(lang="zh")
    sync_workbook(path, today=TODAY)
    edit_cells(path, [("customers", "C-000001", "city", "苏州")])
    user_edit(path, as_lastmodified("张伟"))
    sync_workbook(path, today=TODAY)
    rows = sheet_rows(path, "变更日志")
    assert rows[0][:6] == ["时间", "用户", "来源", "工作表", "记录编号", "操作"]
    newest = rows[1]
    assert newest[1:9] == ["张伟", "命令行", "客户", "C-000001", "修改", "城市", newest[7], "苏州"]
    assert newest[7] and newest[7] != "苏州"
    assert rows[2][5] == "新增"  # then the baseline
    # rows are newest first
    times = [r[0] for r in rows[1:]]
    assert times == sorted(times, reverse=True)



def test_entries_are_chained_as_verify_recomputes_them() -> None:
    """`chain_entries` writes the hashed text out for speed; `verify` recomputes it the plain
    way: both must agree for every kind of entry (added, changed to and from blank, another
    user's, deleted, JSON given), or every run would read as tampered with."""
    from xlcrm.history import Change, Run, _entry_digest, chain_entries

    run = Run("r1", dt.datetime(2026, 12, 7, tzinfo=dt.UTC), "ann", "cli", "import",
              "crm.xlsx", "en", "")
    changes = [Change("customers", "C-1", "added", new={"name": "张伟", "n": 3}),
               Change("customers", "C-1", "changed", "city", "Lyon", None, user="bob",
                      job="sync"),
               Change("opportunities", "O-1", "deleted", old={"x": 1.5}),
               Change("customers", "C-2", "changed", "name", "", "a\x1fb"),
               Change("customers", "C-3", "added", new_json='{"a":1}')]
    prev = "f" * 64
    rows = chain_entries(run, changes, (7, prev))
    assert [r[0] for r in rows] == [8, 9, 10, 11, 12]
    for row in rows:
        assert row[12] == prev and row[13] == _entry_digest(prev, row[:12])
        prev = row[13]


def test_a_run_stored_already_is_not_stored_twice(tmp_path: Path) -> None:
    """A second process that committed an import's log and died before it could say so
    leaves this process to do it again: the run is found by its ID and stored once, the
    chain still verifies, and the count stored is what the caller is told."""
    from xlcrm.history import Change, Run, SnapshotUpdate, now_utc

    run = Run(run_id="imp1", at=now_utc(), user="ann", source="cli", job="import",
              workbook="crm.xlsx", lang="en", sha_before="")
    changes = [Change("customers", "C-1", "added", new={"name": "A"}),
               Change("customers", "C-2", "added", new={"name": "B"})]
    with History(tmp_path / "crm.xlsx") as history:
        assert history.commit(run, changes, SnapshotUpdate(upsert=[
            ("customers", "C-1", '{"name":"A"}'), ("customers", "C-2", '{"name":"B"}')])) == 2
        assert history.commit(run, changes, SnapshotUpdate()) == 2
        assert [e["record_id"] for e in history.entries()] == ["C-1", "C-2"]
        assert history.verify() == []
        assert history.snapshot_values("customers", ["C-1", "C-2"]) == {
            "C-1": {"name": "A"}, "C-2": {"name": "B"}}
