"""The ribbon's Python side, run against a small stand-in for the xlwings calls it makes
(tests/xlwings_standin.py), with real workbooks, real frames and the real library underneath.

Real Excel is NOT exercised here: nothing in this suite proves that Excel loads the add-in or
that RunPython reaches `dispatch`. What is proven is everything up to the xlwings boundary.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import TODAY, append_rows
from tests.xlwings_standin import Book
from xlcrm import schema
from xlcrm.excel import MARK_COLORS, XlBook, _rgb, read_live
from xlcrm.history import History
from xlcrm.jobs import init_workbook, validate_workbook
from xlcrm.reader import read_workbook
from xlcrm.ribbon import run


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return init_workbook(tmp_path / "crm.xlsx", "en", sample=15, mistakes=True, today=TODAY)


def rows_below_header(book: Book, sheet: str, width: int) -> list[list[object]]:
    ws = book.sheets[sheet]
    last = max((r for r, _ in ws.cells), default=1)
    return [ws.column_values(r, width) for r in range(2, last + 1)
            if any(v is not None for v in ws.column_values(r, width))]


def test_the_live_read_equals_the_file_read(path: Path) -> None:
    live = read_live(XlBook(Book(path)))
    from_file = read_workbook(path)
    for key in ("customers", "opportunities", "interactions"):
        a, b = live.sheets[key].frame, from_file.sheets[key].frame
        assert list(a["_row"]) == list(b["_row"])
        assert a[schema.SHEETS_BY_KEY[key].id_field].tolist() == b[
            schema.SHEETS_BY_KEY[key].id_field].tolist()
    assert live.settings == from_file.settings


def test_validate_fills_the_issues_sheet_and_marks_cells_like_the_cli(path: Path) -> None:
    book = Book(path)
    message = run("validate", XlBook(book))
    cli = validate_workbook(path).report
    assert message == f"{cli.errors} errors and {cli.warnings} warnings found."
    assert book.app.alerts == [message]
    width = len(schema.ENGINE_COLUMNS["issues"])
    shown = rows_below_header(book, "Issues", width)
    assert [(r[1], r[3]) for r in shown] == [(str(i.code), i.cell) for i in cli.sorted_issues()]
    first_error = next(i for i in cli.issues if i.severity == "error" and i.cell)
    sheet = book.sheets[first_error.sheet]
    cell = sheet.range(first_error.cell)
    assert sheet.marked()[(cell.r1, cell.c1)] == _rgb(MARK_COLORS["error"][0])
    assert cell.color is None  # a conditional format: the cell's own fill is not touched
    assert f"[{first_error.code}]" in cell.note.text
    links = book.sheets["Issues"].links
    assert links[(2, 4)] == f"#'{cli.sorted_issues()[0].sheet}'!{cli.sorted_issues()[0].cell}"
    # a second run clears the first run's marks before marking again (no stacked notes)
    run("validate", XlBook(book))
    assert sheet.range(first_error.cell).note.text.count(f"[{first_error.code}]") == 1
    assert len(sheet.conditions) == len({i.severity for i in cli.issues
                                         if i.sheet == sheet.name and i.cell})


def test_validate_never_touches_a_persons_note_or_fill(path: Path) -> None:
    """The old ribbon overwrote them, and deleted both once the cell was fixed."""
    book = Book(path)
    cli = validate_workbook(path).report
    bad = next(i for i in cli.issues if i.severity == "error" and i.cell)
    sheet = book.sheets[bad.sheet]
    cell = sheet.range(bad.cell)
    cell.add_note("call before 5pm — Li Na")
    cell.color = (0, 176, 80)
    run("validate", XlBook(book))
    assert sheet.range(bad.cell).note.text == "call before 5pm — Li Na"
    assert sheet.range(bad.cell).color == (0, 176, 80)
    assert (cell.r1, cell.c1) in sheet.marked()  # still marked, by the conditional format
    sheet.cells[(cell.r1, cell.c1)] = "Other"  # fixed (a valid choice or value) ...
    run("validate", XlBook(book))
    assert sheet.range(bad.cell).note.text == "call before 5pm — Li Na"
    assert sheet.range(bad.cell).color == (0, 176, 80)


def test_sync_writes_the_ids_it_fills_and_saves_before_logging(path: Path) -> None:
    """Sync fills blank IDs in the open workbook, writes the Duplicates sheet, saves the
    workbook, and only then commits the change log."""
    customers_data = read_workbook(path).sheets["customers"]
    wb = openpyxl.load_workbook(path)
    append_rows(customers_data.name, customers_data.table, customers_data.columns, [
        {"customer_id": "C-000901", "name": "Twin Robotics Ltd", "phone": "13912345678"},
        {"customer_id": "C-000902", "name": "Twin Robotics Limited", "phone": "13912345678"}
    ])(wb)
    wb.save(path)
    book = Book(path)
    customers = book.sheets["Customers"]
    blank = (3, 1)
    old_id = customers.cells.pop(blank)
    run("sync", XlBook(book))
    assert customers.cells[blank] not in (None, old_id)
    assert customers.cells[blank].startswith("C-")
    assert book.saves == 1
    duplicates = rows_below_header(book, "Duplicates", 6)
    warned = validate_workbook(path).report.issues  # the file as Excel would save it ...
    members = {(r[1], r[2]) for r in duplicates}
    assert duplicates and len(members) == len(duplicates)  # ... one row per member
    assert {"C-000901", "C-000902"} <= {i.record_id for i in warned
                                        if i.code == "possible-duplicate"} <= {
        rid for _, rid in members}
    with History(path) as history:
        assert {e["job"] for e in history.entries()} >= {"sync"}


def test_a_failed_save_logs_nothing(path: Path) -> None:
    book = Book(path)

    def refuse() -> None:
        raise OSError("Excel could not save (read-only)")

    book.save = refuse  # type: ignore[method-assign]
    message = run("sync", XlBook(book))
    assert message.startswith("xlcrm: unexpected error: OSError")
    with History(path) as history:
        assert history.entries() == []  # nothing logged that the file does not hold


def test_promote_appends_customers_and_grows_the_table(path: Path) -> None:
    data = read_workbook(path)
    opps = data.sheets["opportunities"]
    wb = openpyxl.load_workbook(path)
    append_rows(opps.name, opps.table, opps.columns, [
        {"opportunity_id": "O-000900", "title": "Brand new deal", "company": "Zeta Robotics Ltd",
         "stage": "Won", "amount": 120_000, "owner": "Alice Chen",
         "closed_at": dt.date(2026, 11, 20)}])(wb)
    wb.save(path)
    book = Book(path)
    before = book.sheets["Customers"].tables[0].range.r2
    message = run("promote", XlBook(book))
    assert "won deals promoted" in message
    customers = book.sheets["Customers"]
    table = customers.tables[0]
    assert table.range.r2 > before
    names = [customers.cells.get((r, 2)) for r in range(before + 1, table.range.r2 + 1)]
    assert "Zeta Robotics Ltd" in names
    with History(path) as history:  # the same history store as the CLI, beside the workbook
        sources = {e["source"] for e in history.entries(record="O-000900")}
    assert sources == {"ribbon"}


def test_sync_writes_changelog_and_dashboard_with_charts(path: Path) -> None:
    book = Book(path)
    message = run("sync", XlBook(book))
    assert "changes logged" in message
    dashboard = book.sheets["Dashboard"]
    assert dashboard.cells[(1, 1)] == "Sales dashboard"
    assert len(dashboard.charts_list) == 5
    assert {c.chart_type for c in dashboard.charts_list} == {"bar_clustered",
                                                             "column_clustered", "pie"}
    log_rows = rows_below_header(book, "ChangeLog", 9)
    assert log_rows and log_rows[0][2] == "Excel ribbon" and log_rows[0][5] in ("Added",
                                                                                 "Changed")
    run("dashboard", XlBook(book))  # rebuilt, not stacked
    assert len(dashboard.charts_list) == 5


def test_dedupe_lists_customers_sharing_a_name(path: Path) -> None:
    data = read_workbook(path)
    customers = data.sheets["customers"]
    wb = openpyxl.load_workbook(path)
    append_rows(customers.name, customers.table, customers.columns, [
        {"customer_id": "C-000901", "name": "Twin Robotics Ltd"},
        {"customer_id": "C-000902", "name": "Twin Robotics Limited"}])(wb)
    wb.save(path)
    book = Book(path)
    message = run("dedupe", XlBook(book))
    assert "groups of likely duplicate records" in message
    rows = rows_below_header(book, "Duplicates", 6)
    twins = [r for r in rows if r[2] in ("C-000901", "C-000902")]
    assert len(twins) == 2 and twins[0][0] == twins[1][0] and "name" in str(twins[0][5])


def test_errors_are_message_boxes_not_tracebacks(path: Path) -> None:
    book = Book(path)
    book.sheets.items = [s for s in book.sheets.items if s.name != "Customers"]
    assert run("validate", XlBook(book)).startswith("xlcrm: no sheet named Customers")
    assert run("no-such-button", XlBook(book)) == "xlcrm: unknown action 'no-such-button'"
    assert len(book.app.alerts) == 2


def test_help_speaks_the_workbooks_language(tmp_path: Path) -> None:
    zh = init_workbook(tmp_path / "zh.xlsx", "zh")
    assert "校验" in run("help", XlBook(Book(zh)))


def test_the_module_imports_without_xlwings_or_excel() -> None:
    code = "import sys, xlcrm.ribbon; assert 'xlwings' not in sys.modules, 'imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_missing_engine_sheet_is_added_like_the_file_path_does(path: Path) -> None:
    book = Book(path)
    book.sheets.items = [s for s in book.sheets.items if s.name != "Duplicates"]
    run("dedupe", XlBook(book))
    added = book.sheets["Duplicates"]
    assert added.cells[(1, 1)] == schema.ENGINE_COLUMNS["duplicates"][0][1]
    assert book.sheets.items[-1] is added


def test_claim_takes_the_selected_pool_customers_as_the_excel_user(path: Path) -> None:
    """Claim 领取: the selected rows of Customers, as Excel's user name; each refusal said."""
    customers_data = read_workbook(path).sheets["customers"]
    wb = openpyxl.load_workbook(path)
    append_rows(customers_data.name, customers_data.table, customers_data.columns, [
        {"customer_id": "C-000801", "name": "Pool Prospect Ltd"},
        {"customer_id": "C-000802", "name": "Owned Prospect Ltd", "owner": "Bob Li"},
    ])(wb)
    wb.save(path)
    rows = {r["customer_id"]: int(r["_row"])
            for r in read_workbook(path).sheets["customers"].frame.to_dict("records")}
    book = Book(path)
    book.app.api.UserName = "Alice Chen"
    book.select("Customers", rows["C-000801"], rows["C-000802"])
    message = run("claim", XlBook(book))
    assert message.splitlines() == [
        "Alice Chen claimed C-000801.",
        "not claimed: C-000802: owned by Bob Li, not in the pool"]
    owner = customers_data.columns["owner"]
    assert book.sheets["Customers"].cells[(rows["C-000801"], owner)] == "Alice Chen"
    assert book.saves == 1
    with History(path) as history:
        assert [(e["user"], e["new"]) for e in history.entries(record="C-000801")
                if e["job"] == "claim" and e["field"] == "owner"] == [("Alice Chen",
                                                                       "Alice Chen")]
    book.select("Issues", 2)
    assert run("claim", XlBook(book)).startswith("Select the rows")
    book.app.api.UserName = "Somebody Else"
    book.select("Customers", rows["C-000801"])
    assert "not an active person" in run("claim", XlBook(book))


def test_the_import_button_previews_then_imports_on_ok(path: Path, tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("Company,Phone,Deal Name,Stage,Amount\n"
                      "Vandelay Industries,+1 212 555 0199,Latex order,Lead,4000\n",
                      encoding="utf-8")
    book = Book(path)
    customers_before = len(rows_below_header(book, "Customers", 3))
    book.app.api.next_file = str(source)
    book.app.answers = ["cancel"]
    message = run("import", XlBook(book))
    assert "Vandelay Industries" in book.app.alerts[0] and message == "Nothing imported."
    assert len(rows_below_header(book, "Customers", 3)) == customers_before
    book.app.answers = ["ok"]
    message = run("import", XlBook(book))
    assert message.startswith("Imported as") and "1 customers" in message
    names = [r[1] for r in rows_below_header(book, "Customers", 3)]
    assert names[-1] == "Vandelay Industries"
    book.app.api.next_file = False  # the dialog cancelled
    assert run("import", XlBook(book)) == "Nothing imported."
