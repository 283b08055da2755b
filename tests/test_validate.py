"""Every issue code: planted in a real workbook, found at the right sheet, row and cell."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from tests.conftest import TODAY, cell_of, edit_cells, user_edit
from xlcrm.jobs import validate_workbook
from xlcrm.reader import read_workbook
from xlcrm.sample import PLANTED
from xlcrm.validate import validate


def errors_of(path: Path) -> set[tuple[str, str, str | None]]:
    report = validate_workbook(path, today=TODAY).report
    return {(str(i.code), i.sheet, i.cell) for i in report.issues if i.severity == "error"}


def warnings_of(path: Path) -> set[tuple[str, str, str | None]]:
    report = validate_workbook(path, today=TODAY).report
    return {(str(i.code), i.sheet, i.cell) for i in report.issues if i.severity == "warning"}


def find_id(path: Path, sheet_key: str, pick: Callable[[dict[str, Any]], bool]) -> str:
    data = read_workbook(path)
    frame = data.sheets[sheet_key].frame
    id_field = {"customers": "customer_id", "opportunities": "opportunity_id",
                "interactions": "interaction_id"}[sheet_key]
    for record in frame.to_dict("records"):
        if pick(record):
            return str(record[id_field])
    raise AssertionError("no record matches")


def open_stage(record: dict[str, Any]) -> bool:
    return record["stage"] in ("Lead", "Qualified", "Proposal", "Quote", "Negotiation")


def test_clean_sample_has_no_errors(clean_book: Callable[..., Path]) -> None:
    for lang in ("en", "zh"):
        path = clean_book(lang, sample=60)
        report = validate_workbook(path, today=TODAY).report
        assert report.errors == 0, report.flatten(["code", "cell", "message"])[:5]
        assert report.counts == {"customers": 60, "opportunities": 120, "interactions": 300}


def test_sample_mistakes_are_all_found(tmp_path: Path) -> None:
    from xlcrm.jobs import init_workbook

    path = init_workbook(tmp_path / "crm.xlsx", "zh", sample=30, today=TODAY)
    report = validate_workbook(path, today=TODAY).report
    found = {str(i.code) for i in report.issues}
    assert set(PLANTED) <= found


@pytest.mark.parametrize(
    ("code", "sheet_key", "pick", "field", "value"),
    [
        ("missing-required", "customers", None, "name", None),
        ("invalid-choice", "customers", None, "industry", "Aerospace"),
        ("invalid-email", "customers", None, "email", "sales@@acme.com"),
        ("invalid-email", "customers", None, "email", "no-at-sign.example.com"),
        ("invalid-phone", "customers", None, "phone", "12345"),
        ("invalid-tax-id", "customers", None, "tax_id", "91310000MA1FL0000X"),
        ("unknown-owner", "customers", None, "owner", "Nobody Here"),
        ("invalid-date", "customers", None, "created_at", "someday"),
        ("invalid-number", "opportunities", None, "amount", "lots"),
        ("negative-amount", "opportunities", None, "amount", -1),
        ("probability-range", "opportunities", None, "probability", 150),
        ("probability-range", "opportunities", None, "probability", -0.2),
        ("invalid-choice", "opportunities", None, "stage", "Maybe"),
        ("invalid-number", "interactions", None, "satisfaction", 7),
        ("unknown-opportunity", "interactions", None, "opportunity_id", "O-999999"),
        ("unknown-customer", "interactions", lambda r: r["opportunity_id"] is None,
         "customer_id", "C-999999"),
        ("invalid-choice", "interactions", None, "kind", "Fax"),
    ],
)
def test_planted_error_is_found_at_its_cell(clean_book: Callable[..., Path], code: str,
                                            sheet_key: str, pick: Any, field: str,
                                            value: Any) -> None:
    path = clean_book()
    record = find_id(path, sheet_key, pick or (lambda r: True))
    [(sheet, cell, _)] = edit_cells(path, [(sheet_key, record, field, value)])
    assert errors_of(path) == {(code, sheet, cell)}


def test_duplicate_ids_are_flagged_on_both_rows(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    first = cell_of(path, "interactions", "I-000002", "interaction_id")
    [(sheet, cell, _)] = edit_cells(path, [("interactions", "I-000003", "interaction_id",
                                            "I-000002")])
    assert errors_of(path) == {("duplicate-id", sheet, first[1]), ("duplicate-id", sheet, cell)}


def test_unknown_customer_on_an_opportunity(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    data = read_workbook(path)
    linked = set(data.sheets["interactions"].frame["opportunity_id"].dropna())
    record = find_id(path, "opportunities", lambda r: r["opportunity_id"] not in linked)
    [(sheet, cell, _)] = edit_cells(path, [("opportunities", record, "customer_id", "C-999999")])
    assert errors_of(path) == {("unknown-customer", sheet, cell)}


def test_opportunity_needs_a_customer_or_a_company(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    data = read_workbook(path)
    linked = set(data.sheets["interactions"].frame["opportunity_id"].dropna())
    record = find_id(path, "opportunities", lambda r: r["opportunity_id"] not in linked)
    [(sheet, cell, _), _] = edit_cells(path, [("opportunities", record, "customer_id", None),
                                             ("opportunities", record, "company", None)])
    assert errors_of(path) == {("missing-required", sheet, cell)}
    edit_cells(path, [("opportunities", record, "company", "Brand New Ltd")])
    assert errors_of(path) == set()


def test_interaction_opportunity_of_another_customer(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    record = find_id(path, "interactions", lambda r: r["opportunity_id"] is not None)
    data = read_workbook(path)
    frame = data.sheets["interactions"].frame
    mine = frame.loc[frame["interaction_id"] == record, "customer_id"].iloc[0]
    other = next(c for c in data.sheets["customers"].frame["customer_id"] if c != mine)
    edit_cells(path, [("interactions", record, "customer_id", other)])
    sheet, cell, _ = cell_of(path, "interactions", record, "opportunity_id")
    assert errors_of(path) == {("customer-mismatch", sheet, cell)}


def test_lost_deal_without_reason(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    record = find_id(path, "opportunities", open_stage)
    where = edit_cells(path, [("opportunities", record, "stage", "Lost"),
                              ("opportunities", record, "lost_reason", None)])
    sheet, cell, _ = where[1]
    assert errors_of(path) == {("lost-without-reason", sheet, cell)}


def test_zh_workbook_messages_and_codes(clean_book: Callable[..., Path]) -> None:
    path = clean_book("zh")
    [(sheet, cell, _)] = edit_cells(path, [("customers", "C-000001", "phone", "123")])
    report = validate_workbook(path, today=TODAY).report
    [issue] = [i for i in report.issues if i.severity == "error"]
    assert (str(issue.code), issue.sheet, issue.cell) == ("invalid-phone", "客户", cell)
    assert "电话" in issue.message


def test_warnings_close_date_stalled_and_follow_up(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    first = find_id(path, "opportunities", open_stage)
    second = find_id(path, "opportunities", lambda r: open_stage(r) and r["opportunity_id"]
                     != first)
    third = find_id(path, "opportunities", lambda r: open_stage(r) and r["opportunity_id"]
                    not in (first, second))
    long_ago = TODAY - dt.timedelta(days=100)
    where = edit_cells(path, [
        ("opportunities", first, "expected_close", TODAY - dt.timedelta(days=3)),
        ("opportunities", second, "stage", "Proposal"),
        ("opportunities", second, "stage_changed_at", TODAY - dt.timedelta(days=60)),
        ("opportunities", third, "customer_id", None),
        ("opportunities", third, "company", "Quiet Prospect Ltd"),
        ("opportunities", third, "next_follow_up", None),
        ("opportunities", third, "created_at", long_ago),
        ("opportunities", third, "stage_changed_at", TODAY),
    ])
    warnings = warnings_of(path)
    sheet = where[0][0]
    assert ("close-date-past", sheet, where[0][1]) in warnings
    assert ("stalled", sheet, cell_of(path, "opportunities", second, "stage")[1]) in warnings
    assert ("no-follow-up", sheet, where[5][1]) in warnings
    assert errors_of(path) == set()
    # a follow-up date clears the no-follow-up warning
    edit_cells(path, [("opportunities", third, "next_follow_up", TODAY)])
    assert ("no-follow-up", sheet, where[5][1]) not in warnings_of(path)


def test_possible_duplicate_customers(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    data = read_workbook(path)
    customers = data.sheets["customers"].frame.set_index("customer_id")
    phone, name = customers.at["C-000002", "phone"], customers.at["C-000002", "name"]
    # a shared phone alone is one switchboard, not one customer
    edit_cells(path, [("customers", "C-000003", "phone", phone)])
    report = validate_workbook(path, today=TODAY).report
    assert not [i for i in report.issues if i.code == "possible-duplicate"]
    # the same phone and the same name in another legal form (and no other tax ID or city)
    # is one customer
    edit_cells(path, [("customers", "C-000003", "name", f"{name} (Holding) Co., Ltd."),
                      ("customers", "C-000003", "tax_id", None),
                      ("customers", "C-000003", "city", customers.at["C-000002", "city"])])
    report = validate_workbook(path, today=TODAY).report
    dupes = {(i.record_id, i.cell) for i in report.issues if i.code == "possible-duplicate"}
    sheet, cell2, _ = cell_of(path, "customers", "C-000002", "name")
    _, cell3, _ = cell_of(path, "customers", "C-000003", "name")
    assert dupes == {("C-000002", cell2), ("C-000003", cell3)}


def test_values_typed_as_text_are_accepted(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    record = find_id(path, "opportunities", open_stage)
    edit_cells(path, [("opportunities", record, "amount", "¥1,200"),
                      ("opportunities", record, "probability", "35%"),
                      ("opportunities", record, "expected_close", "2027年1月5日"),
                      ("opportunities", record, "stage", " negotiation "),
                      ("customers", "C-000001", "phone", "+86 139 1000 2000")])
    assert errors_of(path) == set()


def test_custom_field_declared_in_settings_is_validated(clean_book: Callable[..., Path]) -> None:
    path = clean_book()

    def add_custom(book: openpyxl.Workbook) -> None:
        settings = book["Settings"]
        table = settings.tables["CustomFields"]
        first, last = table.ref.split(":")
        row = int("".join(ch for ch in first if ch.isdigit())) + 1
        col = openpyxl.utils.column_index_from_string("".join(ch for ch in first if ch.isalpha()))
        for offset, value in enumerate(["Customers", "Budget Code", "number", "yes", None]):
            settings.cell(row=row, column=col + offset, value=value)
        customers = book["Customers"]
        ctable = customers.tables["tblCustomers"]
        start, end = ctable.ref.split(":")
        end_col = openpyxl.utils.column_index_from_string("".join(c for c in end if c.isalpha()))
        end_row = int("".join(c for c in end if c.isdigit()))
        new_col = end_col + 1
        customers.cell(row=1, column=new_col, value="Budget Code")
        for r in range(2, end_row + 1):
            customers.cell(row=r, column=new_col, value=100 + r)
        customers.cell(row=3, column=new_col, value="n/a")
        customers.cell(row=4, column=new_col).value = None
        ctable.ref = f"{start}:{get_column_letter(new_col)}{end_row}"
        ctable.autoFilter.ref = ctable.ref
        ctable.tableColumns = []  # openpyxl renames them from the header cells on save

    user_edit(path, add_custom)
    report = validate_workbook(path, today=TODAY).report
    found = {(str(i.code), i.cell) for i in report.issues if i.severity == "error"}
    letter = get_column_letter(len(read_workbook(path).sheets["customers"].columns))
    assert found == {("invalid-number", f"{letter}3"), ("missing-required", f"{letter}4")}


def test_validation_is_pure_over_frames(clean_book: Callable[..., Path]) -> None:
    """The same data validates the same, whatever day-independent codes say."""
    path = clean_book()
    data = read_workbook(path)
    first = validate(data, today=TODAY)
    second = validate(data, today=TODAY)
    assert first.flatten(["code", "cell"]) == second.flatten(["code", "cell"])


def test_a_foreign_number_is_valid_in_the_country_its_e_mail_names(
        clean_book: Callable[..., Path]) -> None:
    from tests.test_day_one import typed

    path = clean_book(sample=0)
    typed(path, 0, [{"Name": "Northwind Traders", "Phone": "030 1234567",
                     "Email": "kontakt@northwind.de"},
                    {"Name": "Globex", "Phone": "030 1234567", "Email": "info@globex.com"}])
    report = validate(read_workbook(path))
    assert [i.row for i in report.issues if i.code == "invalid-phone"] == [3]
