"""The mirror: a day-one workbook typed by a person, synced, mirrored into SQLite and into a
real PostgreSQL server, then edited (a changed cell, a deleted record, a new one) and mirrored
again: the database holds what the workbook holds, keys and all."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import (
    TODAY,
    append_rows,
    edit_cells,
    set_options,
    typed_book,
    user_edit,
    workbook_ids,
)
from xlcrm.jobs import mirror_workbook, sync_workbook
from xlcrm.reader import read_workbook


class Db:
    """The same questions asked of SQLite and PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.url.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(self.url) as connection:
                return [tuple(r) for r in connection.execute(sql).fetchall()]
        with sqlite3.connect(self.url) as connection:
            return connection.execute(sql).fetchall()

    def live(self, table: str, key: str) -> list[str]:
        return sorted(r[0] for r in self.rows(f"SELECT {key} FROM {table} WHERE deleted_at "
                                              "IS NULL"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Path], str | None]:
    """For each backend, the address to give `mirror` (None: the default SQLite file) and
    where to look afterwards."""
    if request.param == "sqlite":
        return lambda book: None
    url = request.getfixturevalue("postgres_url")
    return lambda book: url


def _url_of(book: Path, given: str | None) -> str:
    return given or str(book.with_name(f"{book.stem}.mirror.sqlite"))


def test_the_mirror_holds_the_workbook_after_inserts_edits_and_deletions(
        tmp_path: Path, database: Callable[[Path], str | None]) -> None:
    book = typed_book(tmp_path)
    given = database(book)
    first = mirror_workbook(book, given)
    db = Db(_url_of(book, given))
    ids = workbook_ids(book)
    assert db.live("customers", "customer_id") == sorted(ids["customers"])
    assert db.live("opportunities", "opportunity_id") == sorted(ids["opportunities"])
    assert db.live("interactions", "interaction_id") == sorted(ids["interactions"])
    assert sum(first.added.values()) == sum(len(v) for v in ids.values())
    # typed values: the amounts a person typed as text, the Chinese date, the probability
    amounts = dict(db.rows("SELECT title, amount FROM opportunities"))
    assert float(amounts["Annual license"]) == 12000 and float(amounts["Spare parts"]) == 12000
    closes = dict(db.rows("SELECT title, expected_close FROM opportunities"))
    assert str(closes["Annual license"]) == "2026-12-15"
    assert float(dict(db.rows("SELECT title, probability FROM opportunities"))["Pilot"]) == 0.5
    # the prospect's deal has no customer: the key is NULL, nothing breaks
    assert dict(db.rows("SELECT title, customer_id FROM opportunities"))["Prospect deal"] is None
    # every foreign key points at a customer or deal that is there
    assert db.rows("SELECT COUNT(*) FROM opportunities o LEFT JOIN customers c ON "
                   "c.customer_id = o.customer_id WHERE o.customer_id IS NOT NULL AND "
                   "c.customer_id IS NULL") == [(0,)]
    if db.url.startswith("postgresql://"):  # the keys are real constraints there too
        names = {r[0] for r in db.rows("SELECT conname FROM pg_constraint WHERE contype = 'f'")}
        assert names == {"fk_opportunities_customer_id", "fk_interactions_customer_id",
                         "fk_interactions_opportunity_id"}
        keys = {r[0] for r in db.rows("SELECT conrelid::regclass::text FROM pg_constraint "
                                      "WHERE contype = 'p'")}
        assert {"customers", "opportunities", "interactions", "change_log"} <= keys
    else:
        assert db.rows("PRAGMA foreign_key_check") == []
    # the change log and the stage history came along
    assert db.rows("SELECT COUNT(*) FROM change_log")[0][0] > 0
    assert db.rows("SELECT COUNT(*) FROM stage_history")[0][0] == len(ids["opportunities"])

    again = mirror_workbook(book, given)
    assert sum(again.added.values()) + sum(again.updated.values()) == 0
    assert sum(again.unchanged.values()) == sum(len(v) for v in ids.values())

    # a day's edits: a changed cell, a deal deleted (its row cleared), a new customer
    victim = ids["opportunities"][2]
    edit_cells(book, [("customers", ids["customers"][0], "city", "Suzhou")])
    data = read_workbook(book)
    opp = data.sheets["opportunities"]
    row = int(opp.frame.loc[opp.frame["opportunity_id"] == victim, "_row"].iloc[0])

    def delete(wb: openpyxl.Workbook) -> None:
        for column in opp.columns.values():
            wb[opp.name].cell(row=row, column=column).value = None

    user_edit(book, delete)
    cust = data.sheets["customers"]
    user_edit(book, append_rows(cust.name, cust.table, cust.columns, [{"name": "Umbrella"}]))
    sync_workbook(book, today=TODAY)
    edited = mirror_workbook(book, given)
    assert edited.updated["customers"] == 1 and edited.added["customers"] == 1
    assert edited.deleted["opportunities"] == 1
    now = workbook_ids(book)
    assert db.live("customers", "customer_id") == sorted(now["customers"])
    assert db.live("opportunities", "opportunity_id") == sorted(now["opportunities"])
    assert victim not in db.live("opportunities", "opportunity_id")
    assert db.rows(f"SELECT COUNT(*) FROM opportunities WHERE opportunity_id = '{victim}' "
                   "AND deleted_at IS NOT NULL") == [(1,)]  # kept, marked
    assert dict(db.rows("SELECT customer_id, city FROM customers"))[
        ids["customers"][0]] == "Suzhou"
    assert edited.change_log > 0


def test_a_deleted_customer_still_referenced_keeps_its_keys(
        tmp_path: Path, database: Callable[[Path], str | None]) -> None:
    """Deleting a customer whose deals stay is an unknown-customer error in the workbook; the
    mirror keeps the customer (marked deleted) so the deals' keys still point somewhere."""
    book = typed_book(tmp_path)
    given = database(book)
    mirror_workbook(book, given)
    data = read_workbook(book)
    cust = data.sheets["customers"]
    first = cust.frame.iloc[0]

    def delete(wb: openpyxl.Workbook) -> None:
        for column in cust.columns.values():
            wb[cust.name].cell(row=int(first["_row"]), column=column).value = None

    user_edit(book, delete)
    result = mirror_workbook(book, given)
    db = Db(_url_of(book, given))
    assert result.deleted["customers"] == 1
    assert db.rows(f"SELECT COUNT(*) FROM opportunities WHERE customer_id = "
                   f"'{first['customer_id']}'")[0][0] >= 1


def test_views_give_the_pipeline_and_the_weighted_forecast(
        tmp_path: Path, database: Callable[[Path], str | None]) -> None:
    book = typed_book(tmp_path)
    given = database(book)
    mirror_workbook(book, given)
    db = Db(_url_of(book, given))
    by_stage = {r[0]: (r[2], float(r[3])) for r in db.rows("SELECT * FROM v_pipeline_by_stage")}
    assert by_stage["Proposal"] == (1, 12000.0) and by_stage["Quote"] == (1, 5000.0)
    months = {r[0]: float(r[3]) for r in db.rows("SELECT * FROM v_forecast_by_month")}
    # Proposal is 40 % by its stage; Pilot's own probability, 50 %, wins over Quote's 60 %
    assert months == {"2026-12": pytest.approx(4800.0), "2027-01": pytest.approx(2500.0)}


def test_unknown_references_and_extra_columns_are_kept_not_lost(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    opp = read_workbook(book).sheets["opportunities"]
    user_edit(book, append_rows(opp.name, opp.table, opp.columns, [
        {"title": "Ghost deal", "customer_id": "C-999999", "stage": "Lead"}]))
    assert mirror_workbook(book).skipped["opportunities"] == 1  # no ID until a sync
    sync_workbook(book, today=TODAY)  # an unknown-customer error; IDs filled all the same
    mirror_workbook(book)
    db = Db(str(book.with_name(f"{book.stem}.mirror.sqlite")))
    customer, extra = db.rows("SELECT customer_id, extra FROM opportunities WHERE title = "
                              "'Ghost deal'")[0]
    assert customer is None and json.loads(extra) == {"customer_id (not found)": "C-999999"}
    assert db.rows("PRAGMA foreign_key_check") == []


def test_a_declared_custom_field_gets_a_typed_column(tmp_path: Path) -> None:
    book = typed_book(tmp_path)

    def add(wb: openpyxl.Workbook) -> None:
        ws = wb["Customers"]
        table = ws.tables["tblCustomers"]
        first, last = table.ref.split(":")
        column = openpyxl.utils.column_index_from_string(
            "".join(ch for ch in last if ch.isalpha())) + 1
        ws.cell(row=1, column=column).value = "Credit Limit"
        ws.cell(row=2, column=column).value = "50,000"
        letter = openpyxl.utils.get_column_letter(column)
        table.ref = f"{first}:{letter}{''.join(ch for ch in last if ch.isdigit())}"
        table.autoFilter.ref = table.ref
        from openpyxl.worksheet.table import TableColumn

        table.tableColumns.append(TableColumn(id=len(table.tableColumns) + 1,
                                              name="Credit Limit"))
        settings = wb["Settings"]
        for row in settings.iter_rows():
            for cell in row:
                beside = settings.cell(row=cell.row, column=cell.column + 1).value
                if cell.value == "Sheet" and beside == "Column":
                    target = cell.row + 1
                    while settings.cell(row=target, column=cell.column).value:
                        target += 1
                    settings.cell(row=target, column=cell.column).value = "Customers"
                    settings.cell(row=target, column=cell.column + 1).value = "Credit Limit"
                    settings.cell(row=target, column=cell.column + 2).value = "number"
                    return
        raise AssertionError("no Custom Fields table in Settings")

    user_edit(book, add)
    mirror_workbook(book)
    db = Db(str(book.with_name(f"{book.stem}.mirror.sqlite")))
    values = [r[0] for r in db.rows("SELECT cf_credit_limit FROM customers") if r[0] is not None]
    assert values == [50000.0]


def test_sync_mirrors_when_settings_ask_and_a_failing_mirror_never_fails_it(
        tmp_path: Path, postgres_url: str, cli: Callable[..., Any]) -> None:
    book = typed_book(tmp_path)
    set_options(book, mirror_url="postgresql://nobody@/none?host=/nonexistent")
    result = cli("sync", book, "--format", "json")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert "error" in payload["mirror"]
    # the next sync, the same day and nothing changed, still tries again (no memo)
    set_options(book, mirror_url=postgres_url)
    result = cli("sync", book, "--format", "json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["mirror"]["added"]["customers"] == 3
    assert Db(postgres_url).live("customers", "customer_id") == sorted(
        workbook_ids(book)["customers"])
    again = json.loads(cli("sync", book, "--format", "json").stdout)
    assert again["mirror"] is None or sum(again["mirror"]["added"].values()) == 0


def test_the_mirror_command_in_a_chinese_workbook(tmp_path: Path,
                                                 cli: Callable[..., Any]) -> None:
    book = typed_book(tmp_path, "zh")
    result = cli("mirror", book)
    assert result.exit_code == 0 and "已镜像到" in result.stdout
    bad = cli("mirror", book, "mysql://somewhere")
    assert bad.exit_code == 2 and "不是可用的数据库地址" in bad.stderr
    down = cli("mirror", book, "postgresql://nobody@/none?host=/nonexistent")
    assert down.exit_code == 69


def test_a_failed_load_changes_nothing_in_the_database(tmp_path: Path, postgres_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from xlcrm import mirror as mirror_module
    from xlcrm.errors import MirrorUnavailable

    book = typed_book(tmp_path)
    mirror_workbook(book, postgres_url)
    edit_cells(book, [("customers", workbook_ids(book)["customers"][0], "city", "Suzhou")])

    def broken(*args: Any, **kw: Any) -> int:
        import psycopg

        raise psycopg.OperationalError("server closed the connection")

    monkeypatch.setattr(mirror_module, "_history_tables", broken)
    with pytest.raises(MirrorUnavailable):
        mirror_workbook(book, postgres_url)
    cities = [r[0] for r in Db(postgres_url).rows("SELECT city FROM customers")]
    assert "Suzhou" not in cities  # the customers' upsert was rolled back with the rest


def test_a_load_failing_in_the_loading_thread_changes_nothing(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's loads run in a thread while the next table's rows are made: an error
    there must still fail the mirror and roll everything back, the tables before it too."""
    from xlcrm import mirror as mirror_module
    from xlcrm.errors import MirrorUnavailable

    book = typed_book(tmp_path)
    mirror_workbook(book, postgres_url)
    edit_cells(book, [("customers", workbook_ids(book)["customers"][0], "city", "Suzhou"),
                      ("opportunities", workbook_ids(book)["opportunities"][0], "amount", 7)])
    load = mirror_module._Postgres.load

    def failing(self: Any, table: str, *args: Any, **kw: Any) -> None:
        if table == "opportunities":
            import psycopg

            raise psycopg.OperationalError("server closed the connection")
        load(self, table, *args, **kw)

    monkeypatch.setattr(mirror_module._Postgres, "load", failing)
    with pytest.raises(MirrorUnavailable):
        mirror_workbook(book, postgres_url)
    cities = [r[0] for r in Db(postgres_url).rows("SELECT city FROM customers")]
    assert "Suzhou" not in cities  # loaded before the failure, rolled back with it
    monkeypatch.setattr(mirror_module._Postgres, "load", load)
    assert mirror_workbook(book, postgres_url).updated == {
        "customers": 1, "opportunities": 1, "interactions": 0}


@pytest.mark.parametrize("first", [True, False])
def test_a_row_breaking_a_foreign_key_fails_the_whole_load(
        tmp_path: Path, first: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite checks a first load's foreign keys once at the end, a later load's row by row:
    either way a deal pointing at a customer the mirror lacks fails the mirror and nothing
    of that load stays (a fault of the mirror's own: unknown references are written NULL)."""
    from xlcrm import mirror as mirror_module
    from xlcrm.errors import MirrorUnavailable

    book = typed_book(tmp_path)
    url = _url_of(book, None)
    if not first:
        mirror_workbook(book)
        edit_cells(book, [("opportunities", workbook_ids(book)["opportunities"][0], "title",
                           "Renamed")])
    columns_at = mirror_module.Records.columns_at

    def dangling(self: Any, *args: Any, **kw: Any) -> list[list[Any]]:
        columns = columns_at(self, *args, **kw)
        if self.sheet == "opportunities":
            at = [c.name for c in self.columns].index("customer_id")
            columns[at] = ["C-NOWHERE" for _ in columns[at]]
        return columns

    monkeypatch.setattr(mirror_module.Records, "columns_at", dangling)
    with pytest.raises(MirrorUnavailable):
        mirror_workbook(book)
    with sqlite3.connect(url) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = "
                                           "'table'")}
        if first:
            assert "customers" not in tables  # the first load rolled back whole
        else:
            assert db.execute("SELECT count(*) FROM opportunities WHERE title = 'Renamed'"
                              ).fetchone() == (0,)
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    monkeypatch.setattr(mirror_module.Records, "columns_at", columns_at)
    mirror_workbook(book)
    assert Db(url).rows("PRAGMA foreign_key_check") == []


def test_the_stage_history_built_in_a_second_process_is_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From `PARALLEL_MIRROR` records the stays are built in a forked child while the records
    load: the tables must hold what a mirror built in one process holds, the first time and
    after a deal moved stage."""
    from xlcrm import mirror

    book = typed_book(tmp_path)
    here, forked = tmp_path / "here.sqlite", tmp_path / "forked.sqlite"

    def both() -> None:
        mirror_workbook(book, str(here))
        monkeypatch.setattr(mirror, "PARALLEL_MIRROR", 1)
        mirror_workbook(book, str(forked))
        monkeypatch.setattr(mirror, "PARALLEL_MIRROR", 50_000)

    def tables(path: Path) -> tuple[list[Any], list[Any]]:
        db = Db(str(path))
        return (db.rows("SELECT opportunity_id, stage, entered, left_at, days FROM "
                        "stage_history ORDER BY opportunity_id, entered, stage"),
                db.rows("SELECT seq, record_id, action, field FROM change_log ORDER BY seq"))

    both()
    assert tables(here) == tables(forked) and tables(here)[0]
    deal = workbook_ids(book)["opportunities"][0]
    edit_cells(book, [("opportunities", deal, "stage", "Negotiation")])
    sync_workbook(book, today=TODAY)
    both()
    stays, log = tables(forked)
    assert (stays, log) == tables(here)
    assert [s[1] for s in stays if s[0] == deal and s[3] is None] == ["Negotiation"]


def test_the_change_log_arrives_exactly_as_logged(
        tmp_path: Path, database: Callable[[Path], str | None]) -> None:
    """Values with a tab, a newline, a backslash, quotes and Chinese reach the mirror's
    change log as the change log holds them (PostgreSQL's copy is made as text by SQLite)."""
    from xlcrm.history import history_path

    book = typed_book(tmp_path)
    ids = workbook_ids(book)
    nasty = 'C:\\共享\\客户\t"VIP"\nline two\r\\N'
    edit_cells(book, [("customers", ids["customers"][0], "notes", nasty),
                      ("customers", ids["customers"][1], "city", "\\")])
    sync_workbook(book, today=TODAY)
    given = database(book)
    mirror_workbook(book, given)
    with sqlite3.connect(history_path(book)) as history:
        logged = history.execute("SELECT seq, user, record_id, action, field, old, new FROM "
                                 "entries ORDER BY seq").fetchall()
    got = Db(_url_of(book, given)).rows("SELECT seq, author, record_id, action, field, "
                                        "old_value, new_value FROM change_log ORDER BY seq")
    assert got == logged
    assert json.loads(next(r[6] for r in got if r[4] == "notes")) == nasty


def test_record_values_arrive_exactly_with_quotes_commas_and_newlines(
        tmp_path: Path, database: Callable[[Path], str | None]) -> None:
    """What a person types in a cell — a comma, a quote, a line break, a backslash, a
    leading = — reaches the mirror's columns and its extra JSON as the workbook holds it
    (PostgreSQL's rows go in as CSV text built a column at a time)."""
    book = typed_book(tmp_path)
    ids = workbook_ids(book)
    typed = {"name": 'Acme, "Ltd"', "notes": 'line one\nline two\r\n\\N, "end"',
             "city": "=SUM(A1)", "industry": "\\"}
    edit_cells(book, [("customers", ids["customers"][0], field, value)
                      for field, value in typed.items()])
    sync_workbook(book, today=TODAY)
    given = database(book)
    mirror_workbook(book, given)
    got = Db(_url_of(book, given)).rows(
        f"SELECT name, notes, city, industry FROM customers WHERE customer_id = "
        f"'{ids['customers'][0]}'")
    assert got == [tuple(read_workbook(book).sheets["customers"].frame.set_index(
        "customer_id").loc[ids["customers"][0], list(typed)].tolist())]
    assert got[0][0] == 'Acme, "Ltd"' and got[0][2] == "=SUM(A1)" and got[0][3] == "\\"
    assert "line two" in got[0][1] and got[0][1].endswith('\\N, "end"')
