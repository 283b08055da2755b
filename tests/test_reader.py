"""Reading: headers by name in either language, row numbers, unknown columns, Settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import TODAY, user_edit
from xlcrm.errors import SettingsInvalid, SheetMissing
from xlcrm.jobs import validate_workbook
from xlcrm.reader import read_workbook
from xlcrm.schema import normalize_header


def hand_made(path: Path) -> Path:
    """A workbook a user built by hand: no Tables, a title row, odd headers, extra columns."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = " customers "
    ws["A1"] = "Our customers"
    ws.append([])
    ws.append(["ＣｕｓｔｏｍｅｒＩＤ", "NAME", "Region", "邮箱", " Phone "])
    ws.append(["C-1", "Acme Ltd", "East", "info@acme.com", "13912345678"])
    ws.append(["C-2", None, "West", "bad@", "021-62345678"])
    ws.append([None, None, None, None, None])
    ws.append(["C-3", "上海华信科技有限公司", "East", None, None])
    opps = book.create_sheet("商机")
    opps.append(["商机编号", "商机名称", "客户编号", "阶段", "预计金额"])
    opps.append(["O-1", "ERP", "C-9", "Lead", 1000])
    inter = book.create_sheet("Interactions")
    inter.append(["InteractionID", "Date", "CustomerID"])
    inter.append(["I-1", dt.date(2026, 11, 1), "C-1"])
    book.save(path)
    return path


def test_headers_found_by_name_without_tables(tmp_path: Path) -> None:
    data = read_workbook(hand_made(tmp_path / "mine.xlsx"))
    customers = data.sheets["customers"]
    assert customers.name == " customers " and customers.table is None
    assert customers.header_row == 3
    assert list(customers.frame["customer_id"]) == ["C-1", "C-2", "C-3"]
    assert list(customers.frame["_row"]) == [4, 5, 7]  # the blank row 6 is skipped
    assert customers.columns["email"] == 4 and customers.columns["Region"] == 3
    assert list(customers.frame["Region"]) == ["East", "West", "East"]
    assert data.sheets["opportunities"].name == "商机"


def test_hand_made_workbook_validates_at_the_right_cells(tmp_path: Path) -> None:
    path = hand_made(tmp_path / "mine.xlsx")
    report = validate_workbook(path, today=TODAY).report
    errors = {(str(i.code), i.sheet, i.cell) for i in report.issues if i.severity == "error"}
    assert errors == {("missing-required", " customers ", "B5"),
                      ("invalid-email", " customers ", "D5"),
                      ("unknown-customer", "商机", "C2")}


def test_header_folding() -> None:
    assert normalize_header("ＣｕｓｔｏｍｅｒＩＤ") == normalize_header(" customer id ")
    assert normalize_header("Lost  Reason") == "lostreason"
    assert normalize_header("客户 编号") == "客户编号"


def test_missing_key_column_is_an_input_error(tmp_path: Path) -> None:
    path = hand_made(tmp_path / "mine.xlsx")
    user_edit(path, lambda b: b["商机"].delete_cols(2))  # removes 商机名称, a required column
    with pytest.raises(SheetMissing, match="商机名称"):
        read_workbook(path)


def test_settings_edits_change_the_rules(clean_book: Callable[..., Path]) -> None:
    path = clean_book()

    def customise(book: openpyxl.Workbook) -> None:
        ws = book["Settings"]
        options = ws.tables["Options"]
        start = options.ref.split(":")[0]
        col = openpyxl.utils.column_index_from_string(start.rstrip("0123456789"))
        for row in range(4, 4 + 9):
            if ws.cell(row=row, column=col).value == "customer_id_prefix":
                ws.cell(row=row, column=col + 1).value = "K"
        for row in range(4, 8):  # People table starts at G3: make Bob inactive
            if ws.cell(row=row, column=7).value == "Bob Li":
                ws.cell(row=row, column=10).value = "No"

    user_edit(path, customise)
    data = read_workbook(path)
    assert data.settings.options.customer_id_prefix == "K"
    assert "bob li" not in data.settings.active_people()
    report = validate_workbook(path, today=TODAY).report
    owners = {i.value for i in report.issues if i.code == "unknown-owner"}
    assert owners == {"Bob Li"}


def test_bad_settings_value_is_one_clear_error(clean_book: Callable[..., Path],
                                               cli: Callable[..., object]) -> None:
    path = clean_book()
    user_edit(path, lambda b: setattr(b["Settings"]["B4"], "value", "often"))  # a probability
    with pytest.raises(SettingsInvalid, match="probability"):
        read_workbook(path)
    result = cli("validate", path)
    assert result.exit_code == 2  # type: ignore[attr-defined]
