"""The safe writer: busy files, lost updates, crashes, backups, and what a write keeps."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table

from tests.conftest import TODAY, cell_of, edit_cells, user_edit
from xlcrm import writer
from xlcrm.errors import WorkbookChanged, WorkbookOpen
from xlcrm.filewrite import MARK_FORMULA
from xlcrm.jobs import sync_workbook, validate_workbook
from xlcrm.notesxml import AUTHOR as MARK_AUTHOR
from xlcrm.reader import read_workbook
from xlcrm.session import FileSession
from xlcrm.validate import validate


def excel_owner_file(path: Path, user: str) -> Path:
    """A 165-byte Excel owner file, laid out as Excel writes it."""
    name = user[:52]
    data = bytearray(b" " * 165)
    data[0] = len(name)
    data[1:1 + len(name)] = name.encode("ascii", "replace")
    data[55:57] = len(name).to_bytes(2, "little")
    data[57:57 + 2 * len(name)] = name.encode("utf-16-le")
    owner = path.with_name(f"~${path.name}")
    owner.write_bytes(bytes(data))
    return owner


def marks(path: Path, sheet: str) -> tuple[set[str], dict[str, str]]:
    """(cells under xlcrm's conditional-format marks, xlcrm notes by cell) as openpyxl sees them."""
    ws = openpyxl.load_workbook(path)[sheet]
    cells: set[str] = set()
    for formatting in ws.conditional_formatting:
        if any(list(r.formula or []) == [MARK_FORMULA] for r in formatting.rules):
            cells |= {c for rng in formatting.sqref.ranges for c in _cells(rng.coord)}
    notes = {c.coordinate: c.comment.text for row in ws.iter_rows() for c in row
             if c.comment is not None and c.comment.author == MARK_AUTHOR}
    return cells, notes


def _cells(coord: str) -> list[str]:
    return [c.coordinate for row in openpyxl.Workbook().active[coord]
            for c in (row if isinstance(row, tuple) else (row,))] if ":" in coord else [coord]


def issues_rows(path: Path, sheet: str = "Issues") -> list[tuple[Any, ...]]:
    ws = openpyxl.load_workbook(path)[sheet]
    return [tuple(r) for r in ws.iter_rows(min_row=2, values_only=True) if any(r)]


# ---------------------------------------------------------------------------------------------

def test_write_marks_cells_fills_issues_and_clears_them_next_run(
        clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    [(sheet, cell, row)] = edit_cells(path, [("customers", "C-000002", "email", "bad@@x")])
    validate_workbook(path, write=True, today=TODAY)
    cells, notes = marks(path, sheet)
    assert cell in cells
    assert "invalid-email" in notes[cell]
    rows = issues_rows(path)
    assert ("Error", "invalid-email", sheet, cell, row) in [r[:5] for r in rows]
    link = openpyxl.load_workbook(path)["Issues"]["D2"].hyperlink
    assert link is not None and link.location == f"'{sheet}'!{cell}"

    edit_cells(path, [("customers", "C-000002", "email", "good@example.com")])
    validate_workbook(path, write=True, today=TODAY)
    cells, notes = marks(path, sheet)
    assert cell not in cells and cell not in notes
    assert all(r[0] != "Error" for r in issues_rows(path))


def test_round_trip_keeps_what_the_user_had(clean_book: Callable[..., Path]) -> None:
    path = clean_book()

    def personalise(book: openpyxl.Workbook) -> None:
        ws = book["Customers"]
        ws["B2"].font = openpyxl.styles.Font(bold=True, color="FF0000")
        ws["B2"].fill = openpyxl.styles.PatternFill("solid", fgColor="FFFF00")
        mine = book.create_sheet("My Notes")
        mine["A1"], mine["B1"] = "Customers", "=COUNTA(Customers!A:A)-1"
        mine["A3"], mine["B3"] = "Region", "Size"
        mine["A4"], mine["B4"] = "East", 3
        mine.add_table(Table(displayName="MyTable", ref="A3:B4"))
        dv = DataValidation(type="whole", operator="between", formula1="1", formula2="9")
        mine.add_data_validation(dv)
        dv.add("B4:B20")
        book.defined_names["my_region"] = DefinedName("my_region", attr_text="'My Notes'!$A$4")
        ws["Z1"] = "Region (mine)"
        ws["Z2"] = "North"

    user_edit(path, personalise)
    edit_cells(path, [("customers", "C-000003", "email", "broken@")])
    validate_workbook(path, write=True, today=TODAY)

    book = openpyxl.load_workbook(path)
    ws = book["Customers"]
    assert ws["B2"].font.bold and ws["B2"].font.color.rgb == "00FF0000"
    assert ws["B2"].fill.fgColor.rgb == "00FFFF00"
    assert (ws["Z1"].value, ws["Z2"].value) == ("Region (mine)", "North")
    mine = book["My Notes"]
    assert mine["B1"].value == "=COUNTA(Customers!A:A)-1"
    assert "MyTable" in mine.tables and mine.tables["MyTable"].ref == "A3:B4"
    assert [str(d.sqref) for d in mine.data_validations.dataValidation] == ["B4:B20"]
    assert book.defined_names["my_region"].attr_text == "'My Notes'!$A$4"
    assert "tblCustomers" in ws.tables
    assert book.defined_names["lst_stage"].attr_text == "Stages[Stage]"
    assert {str(d.sqref) for d in ws.data_validations.dataValidation} >= {"D2:D1048576"}


def test_user_note_on_a_bad_cell_is_kept(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    [(sheet, cell, _)] = edit_cells(path, [("customers", "C-000002", "phone", "123")])
    user_edit(path, lambda b: setattr(b[sheet][cell], "comment",
                                      openpyxl.comments.Comment("call before 5pm", "Li Na")))
    validate_workbook(path, write=True, today=TODAY)
    comment = openpyxl.load_workbook(path)[sheet][cell].comment
    assert (comment.text, comment.author) == ("call before 5pm", "Li Na")
    assert cell in marks(path, sheet)[0]


def test_text_starting_with_equals_stays_text(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    payload = "=HYPERLINK(\"http://evil\",\"x\")"
    edit_cells(path, [("customers", "C-000002", "email", payload),
                      ("customers", "C-000003", "notes", "=1+1")])
    sync_workbook(path, today=TODAY)
    book = openpyxl.load_workbook(path)
    issues = book["Issues"]
    values = [c for row in issues.iter_rows(min_row=2) for c in row if c.value == payload]
    assert values and all(c.data_type == "s" for c in values)
    _, cell, _ = cell_of(path, "customers", "C-000003", "notes")
    assert book["Customers"][cell].value == "=1+1"
    assert book["Customers"][cell].data_type == "s"


def test_owner_file_means_busy_and_file_untouched(clean_book: Callable[..., Path],
                                                  cli: Callable[..., Any]) -> None:
    path = clean_book()
    before = path.read_bytes()
    excel_owner_file(path, "Wang Fang")
    result = cli("validate", path, "--write")
    assert result.exit_code == 3
    assert "Wang Fang" in result.stderr
    assert "0 errors" in result.stdout  # the results are still shown
    assert path.read_bytes() == before
    result = cli("sync", path)
    assert result.exit_code == 3 and path.read_bytes() == before


def test_libreoffice_lock_file_means_busy(clean_book: Callable[..., Path],
                                          cli: Callable[..., Any]) -> None:
    path = clean_book()
    before = path.read_bytes()
    path.with_name(f".~lock.{path.name}#").write_text(
        "Li Na,lina,PC-7,25.11.2026 10:00,file:///share/crm.xlsx;", encoding="utf-8")
    result = cli("sync", path)
    assert result.exit_code == 3 and "Li Na" in result.stderr
    assert path.read_bytes() == before


def test_file_changed_between_read_and_write(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    session = FileSession(path)
    report = validate(session.read(), today=TODAY)
    edit_cells(path, [("customers", "C-000001", "city", "Xi'an")])  # someone else saves
    theirs = path.read_bytes()
    session.mark(report)
    session.set_cells("Customers", [(2, 2, "mine")])
    with pytest.raises(WorkbookChanged):
        session.save()
    session.close()
    assert path.read_bytes() == theirs


def test_crash_before_replace_leaves_original_and_no_temp(clean_book: Callable[..., Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_book()
    before = path.read_bytes()

    def power_cut(*args: Any) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(writer.os, "replace", power_cut)
    with pytest.raises(OSError):
        sync_workbook(path, today=TODAY)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(f"{writer.TEMP_PREFIX}*"))


def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / f"{writer.TEMP_PREFIX}dead-crm.xlsx"
    stale.write_bytes(b"half")
    assert writer.clean_stale_temps(tmp_path) == [stale]
    assert not stale.exists()


def test_backups_keep_the_previous_versions(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    first = path.read_bytes()
    result = sync_workbook(path, today=TODAY)
    assert result.backup is not None and result.backup.read_bytes() == first
    assert result.backup.parent == path.parent / ".xlcrm" / path.stem / "backups"
    unchanged = path.read_bytes()
    again = sync_workbook(path, today=TODAY)  # nothing to change: nothing written
    assert not again.written and again.backup is None and path.read_bytes() == unchanged
    for number in range(11):
        edit_cells(path, [("customers", "C-000001", "city", f"City {number}")])
        sync_workbook(path, today=TODAY)
    assert len(list(result.backup.parent.iterdir())) == writer.BACKUPS_KEPT


def test_parts_openpyxl_would_drop_are_kept(clean_book: Callable[..., Path],
                                            cli: Callable[..., Any]) -> None:
    """A part xlcrm knows nothing about survives a write byte for byte (it used to be refused,
    and with openpyxl it would have been dropped)."""
    path = clean_book()
    edit_cells(path, [("customers", "C-000002", "email", "bad@@x")])
    slicer = path.with_name("with_slicer.xlsx")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(slicer, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr("xl/slicers/slicer1.xml", "<slicers/>")
    result = cli("validate", slicer, "--write")
    assert result.exit_code == 1, result.stderr  # an error found, and the workbook written
    with zipfile.ZipFile(slicer) as archive:
        assert archive.read("xl/slicers/slicer1.xml") == b"<slicers/>"
    assert marks(slicer, "Customers")[0]


def test_check_not_open_names_the_user(tmp_path: Path) -> None:
    path = tmp_path / "crm.xlsx"
    path.write_bytes(b"")
    excel_owner_file(path, "Zhou Jie")
    with pytest.raises(WorkbookOpen, match="Zhou Jie"):
        writer.check_not_open(path)


def test_appended_rows_grow_the_table(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    rows = [{"customer_id": "C-000100", "name": "Grow Ltd", "created_at": TODAY},
            {"customer_id": "C-000101", "name": "=2+2"}]
    with FileSession(path) as session:
        sheet = session.read().sheets["customers"]
        session.append_rows("customers", rows)
        session.save()
    table = openpyxl.load_workbook(path)[sheet.name].tables[sheet.table]
    assert table.ref.endswith(str(sheet.last_row + 2))
    again = read_workbook(path).sheets["customers"].frame
    assert list(again["name"].iloc[-2:]) == ["Grow Ltd", "=2+2"]
    _, cell, _ = cell_of(path, "customers", "C-000100", "created_at")
    assert openpyxl.load_workbook(path)[sheet.name][cell].number_format == "yyyy-mm-dd"


def test_records_appended_to_an_empty_sheet_look_like_records_not_the_header(
        tmp_path: Path) -> None:
    """Day one: records appended to a fresh `xlcrm init` (whose Table holds one blank, styled
    row) take that row's formats, dates shown as dates, and none of the header's grey fill
    (the header of an engine-maintained column is shaded)."""
    from xlcrm.jobs import init_workbook

    path = tmp_path / "crm.xlsx"
    init_workbook(path, lang="en")
    rows = [{"customer_id": f"C-00000{n}", "name": name, "lifecycle": "Prospect",
             "first_purchase": TODAY} for n, name in enumerate(("Acme", "Globex", "Initech"),
                                                                 start=1)]
    with FileSession(path) as session:
        sheet = session.read().sheets["customers"]
        session.append_rows("customers", rows)
        session.save()
    ws = openpyxl.load_workbook(path)[sheet.name]
    header = ws.cell(row=sheet.header_row, column=sheet.columns["lifecycle"])
    assert header.fill.fgColor.rgb not in (None, "00000000")  # the shade the rows must not get
    for row in range(sheet.header_row + 1, sheet.header_row + 4):
        lifecycle = ws.cell(row=row, column=sheet.columns["lifecycle"])
        purchase = ws.cell(row=row, column=sheet.columns["first_purchase"])
        assert lifecycle.value == "Prospect"
        assert lifecycle.fill.fgColor.rgb != header.fill.fgColor.rgb
        assert purchase.is_date and purchase.number_format == "yyyy-mm-dd"
    assert list(read_workbook(path).sheets["customers"].frame["name"]) == [
        "Acme", "Globex", "Initech"]


def test_xlsm_macros_survive_a_write(clean_book: Callable[..., Path], tmp_path: Path) -> None:
    """A macro-enabled workbook keeps its VBA project byte for byte (xlwings ships one)."""
    import os

    import xlwings

    source = Path(os.path.dirname(xlwings.__file__)) / "quickstart.xlsm"
    with zipfile.ZipFile(source) as archive:
        vba = archive.read("xl/vbaProject.bin")
    book = openpyxl.load_workbook(clean_book())
    book.vba_archive = zipfile.ZipFile(source)
    path = tmp_path / "crm.xlsm"
    book.save(path)
    assert read_workbook(path).counts()["customers"] == 12
    sync_workbook(path, today=TODAY)
    with zipfile.ZipFile(path) as archive:
        assert archive.read("xl/vbaProject.bin") == vba
        assert b"macroEnabled" in archive.read("[Content_Types].xml")
    assert read_workbook(path).counts()["customers"] == 12
