"""Day one: an empty `xlcrm init`, rows typed as a person types them (below the Table, text
where people type text, Chinese dates and amounts), then every command. Read back with
openpyxl, an independent reader."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from xlcrm import jobs, schema
from xlcrm.analytics import analyse
from xlcrm.reader import read_workbook
from xlcrm.validate import validate

TODAY = dt.date(2026, 11, 25)


def typed(path: Path, sheet: int, rows: list[dict[str, Any]], gap: int = 0) -> None:
    """Type `rows` (header text -> value) under the last filled row of a sheet, as a person
    does in Excel with AutoExpand off, LibreOffice or WPS: the Table is not extended."""
    book = openpyxl.load_workbook(path)
    ws = book.worksheets[sheet]
    headers = {str(c.value): c.column for c in ws[1] if c.value}
    last = max((r for r in range(1, ws.max_row + 1)
                if any(ws.cell(row=r, column=c).value not in (None, "")
                       for c in headers.values())), default=1)
    for offset, row in enumerate(rows, start=last + 1 + gap):
        for header, value in row.items():
            ws.cell(row=offset, column=headers[header], value=value)
    book.save(path)


def table_ref(path: Path, sheet: int) -> str:
    ws = openpyxl.load_workbook(path).worksheets[sheet]
    [table] = ws.tables.values()
    return str(table.ref)


@pytest.fixture
def fresh(tmp_path: Path) -> Callable[..., Path]:
    def make(lang: str = "en", name: str = "crm.xlsx") -> Path:
        return jobs.init_workbook(tmp_path / name, lang=lang)  # type: ignore[arg-type]

    return make


NAMES = {"en": ("Name", "Acme Ltd", "Globex GmbH", "上海小鹏贸易有限公司"),
         "zh": ("客户名称", "上海小鹏贸易有限公司", "北京华讯科技有限公司", "Acme Ltd")}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_three_typed_customers_then_every_command(fresh: Callable[..., Path],
                                                  cli: Callable[..., Any], lang: str) -> None:
    path = fresh(lang)
    header, *names = NAMES[lang]
    typed(path, 0, [{header: n} for n in names])
    for command in ("sync", "report", "validate", "promote", "dedupe"):
        result = cli(command, path)
        assert result.exit_code in (0, 1), (command, result.output)
    data = read_workbook(path)
    assert data.counts() == {"customers": 3, "opportunities": 0, "interactions": 0}
    assert table_ref(path, 0).endswith("4")  # the Table grew over the typed rows
    ids = [c.value for c in openpyxl.load_workbook(path).worksheets[0]["A"][1:4]]
    assert ids == ["C-000001", "C-000002", "C-000003"]


def test_rows_after_a_gap_are_read_validated_and_counted(fresh: Callable[..., Path],
                                                         cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd"}])
    typed(path, 0, [{"Name": "Globex GmbH", "Email": "not-an-email"}], gap=3)
    result = cli("validate", path, "--format", "json")
    report = json.loads(result.stdout)
    assert report["counts"]["customers"] == 2
    [issue] = [i for i in report["issues"] if i["code"] == "invalid-email"]
    assert issue["row"] == 6 and issue["cell"] == "J6"
    assert cli("sync", path).exit_code == 1
    last = get_column_letter(len(schema.CUSTOMERS.fields))  # every column of the template
    assert table_ref(path, 0) == f"A1:{last}6"
    assert read_workbook(path).counts()["customers"] == 2


def test_day_one_deals_in_chinese_forms(fresh: Callable[..., Path]) -> None:
    """A Chinese team types amounts and dates the way they write them."""
    path = fresh("zh")
    typed(path, 0, [{"客户名称": "上海小鹏贸易有限公司", "客户编号": "C-1"}])
    typed(path, 1, [
        {"商机名称": "年度采购", "客户编号": "C-1", "阶段": "方案", "预计金额": "1.2万",
         "赢率": "60%", "预计成交日期": "2026年12月3日", "负责人": "张伟"},
        {"商机名称": "扩容", "客户编号": "C-1", "阶段": "谈判", "预计金额": "¥30,000",
         "预计成交日期": "2026.12.20", "负责人": "张伟"},
        {"商机名称": "维保", "客户编号": "C-1", "阶段": "赢单", "预计金额": "（5,000）",
         "预计成交日期": "20261101", "负责人": "张伟"},
    ])
    data = read_workbook(path)
    report = validate(data, today=TODAY)
    codes = {(i.code, i.row) for i in report.issues if i.severity == "error"}
    assert ("negative-amount", 4) in codes  # (5,000) is read as -5000, and refused
    assert not [c for c in codes if c[0] in ("invalid-number", "invalid-date")]
    figures = analyse(data, today=TODAY, report=report)
    assert figures.kpis["pipeline"] == 42_000
    assert figures.kpis["weighted_pipeline"] == pytest.approx(12_000 * 0.6 + 30_000 * 0.8)
    december = figures.forecast[figures.forecast["month"] == "2026-12"].iloc[0]
    assert december["deals"] == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("12,000.50", 12000.5), ("¥12,000", 12000.0), ("1.2万", 12000.0), ("3.5亿", 3.5e8),
    ("１２３", 123.0), ("(1,200)", -1200.0), ("12 000", 12000.0), ("1200元", 1200.0),
    ("USD 1,000", 1000.0), ("12 000,50", None), ("1.200,50", None), ("1,5", None),
    ("1,2345", None), ("abc", None),
])
def test_amounts_as_typed(fresh: Callable[..., Path], text: str, expected: float | None) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1"}])
    typed(path, 1, [{"Opportunity": "Deal", "CustomerID": "C-1", "Stage": "Proposal",
                     "Amount": text}])
    data = read_workbook(path)
    report = validate(data, today=TODAY)
    bad = [i for i in report.issues if i.code == "invalid-number"]
    figures = analyse(data, today=TODAY, report=report)
    if expected is None:
        assert len(bad) == 1 and "1.2万" in bad[0].message  # the message lists the forms
        assert figures.kpis["pipeline"] == 0
    else:
        assert not bad
        assert figures.kpis["pipeline"] == expected


@pytest.mark.parametrize(("text", "order", "expected"), [
    ("2026-11-03", "auto", dt.date(2026, 11, 3)), ("2026/11/03", "auto", dt.date(2026, 11, 3)),
    ("2026.11.3", "auto", dt.date(2026, 11, 3)), ("2026年11月3日", "auto", dt.date(2026, 11, 3)),
    ("20261103", "auto", dt.date(2026, 11, 3)), (46329, "auto", dt.date(2026, 11, 3)),
    ("03/11/2026", "auto", dt.date(2026, 3, 11)), ("03/11/2026", "DMY", dt.date(2026, 11, 3)),
    ("26/11/2026", "MDY", dt.date(2026, 11, 26)), ("2026-02-30", "auto", None),
    ("next week", "auto", None),
])
def test_dates_as_typed(fresh: Callable[..., Path], text: Any, order: str,
                        expected: dt.date | None) -> None:
    path = fresh()
    book = openpyxl.load_workbook(path)
    options = book["Settings"].tables["Options"]
    ws = book["Settings"]
    first, low, _, high = openpyxl.utils.range_boundaries(options.ref)
    [row] = [r for r in range(low + 1, high + 1)
             if ws.cell(row=r, column=first).value == "date_order"]
    ws.cell(row=row, column=first + 1, value=order)
    book.save(path)
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1"}])
    typed(path, 2, [{"Date": text, "CustomerID": "C-1", "Summary": "call"}])
    data = read_workbook(path)
    report = validate(data, today=TODAY)
    bad = [i for i in report.issues if i.code == "invalid-date"]
    if expected is None:
        assert len(bad) == 1 and "2026年11月3日" in bad[0].message
    else:
        assert not bad
        figures = analyse(data, today=TODAY, report=report)
        assert figures.rfm["recency_days"].iloc[0] == (TODAY - expected).days


def test_money_in_several_currencies_is_never_added_as_one(fresh: Callable[..., Path]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1"}])
    typed(path, 1, [{"Opportunity": f"D{i}", "CustomerID": "C-1", "Stage": "Proposal",
                     "Amount": amount, "Currency": currency}
                    for i, (amount, currency) in enumerate([(1000, "CNY"), (100, "USD"),
                                                            (10, "EUR"), (5, None)])])
    data = read_workbook(path)
    figures = analyse(data, today=TODAY)
    assert figures.kpis["pipeline"] == 1005  # USD and EUR have no rate: left out, and said
    assert any("USD" in n and "EUR" in n for n in figures.note_lines("en"))
    data.settings.options.exchange_rates = "USD:7.1; EUR：7.7"
    figures = analyse(data, today=TODAY)
    assert figures.kpis["pipeline"] == pytest.approx(1005 + 710 + 77)
    assert "USD 按 7.1" in "；".join(figures.note_lines("zh"))


def test_a_deal_reopened_from_lost_is_dated_when_won(fresh: Callable[..., Path]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1"}])
    typed(path, 1, [{"Opportunity": "Deal", "CustomerID": "C-1", "Stage": "Proposal",
                     "Lost Reason": "price", "Amount": 100}])
    jobs.sync_workbook(path, today=dt.date(2026, 1, 10))
    ws = openpyxl.load_workbook(path)["Opportunities"]
    closed = next(c for c in ws[1] if c.value == "Closed").column
    for stage, day in (("Lost", dt.date(2026, 2, 1)), ("Negotiation", dt.date(2026, 3, 1)),
                       ("Won", dt.date(2026, 4, 1))):
        book = openpyxl.load_workbook(path)
        stage_col = next(c for c in book["Opportunities"][1] if c.value == "Stage").column
        book["Opportunities"].cell(row=2, column=stage_col, value=stage)
        book.save(path)
        jobs.sync_workbook(path, today=day)
        value = openpyxl.load_workbook(path)["Opportunities"].cell(row=2, column=closed).value
        if stage == "Negotiation":
            assert value is None  # reopened: not closed any more
        else:
            assert value.date() == day
    customers = read_workbook(path).sheets["customers"].frame
    assert customers.loc[0, "first_purchase"] == dt.date(2026, 4, 1)


def test_promote_links_a_won_deal_to_a_customer_without_an_id(
        fresh: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "Email": "buyer@acme.example"}])
    typed(path, 1, [{"Opportunity": "Deal", "Company": "ACME Ltd.", "Stage": "Won",
                     "Amount": 500}])
    assert cli("promote", path).exit_code == 0
    customers = read_workbook(path).sheets["customers"].frame
    assert len(customers) == 1
    assert customers.loc[0, "customer_id"] == "C-000001"
    assert customers.loc[0, "lifetime_value"] == 500
    opps = read_workbook(path).sheets["opportunities"].frame
    assert opps.loc[0, "customer_id"] == "C-000001"


def test_ambiguous_won_deal_is_reported_by_validate_and_kept_by_validate_write(
        fresh: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1", "City": "Berlin"},
                    {"Name": "Acme Ltd", "CustomerID": "C-2", "City": "Paris"}])
    typed(path, 1, [{"Opportunity": "Deal", "Company": "Acme Ltd", "Stage": "Won"}])
    report = json.loads(cli("validate", path, "--format", "json").stdout)
    assert [i["cell"] for i in report["issues"] if i["code"] == "ambiguous-customer"] == ["C2"]
    cli("sync", path)
    cli("validate", path, "--write")  # rewrites the Issues sheet: the warning stays on it
    ws = openpyxl.load_workbook(path)["Issues"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    header = next(i for i, r in enumerate(rows) if "Code" in r)
    code = rows[header].index("Code")
    assert [r[code] for r in rows[header + 1:]].count("ambiguous-customer") == 1


def test_customers_who_never_bought_are_never_loyal(fresh: Callable[..., Path]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1"}])
    typed(path, 2, [{"Date": TODAY - dt.timedelta(days=i), "CustomerID": "C-1",
                     "Summary": "call"} for i in range(25)])
    figures = analyse(read_workbook(path), today=TODAY)
    assert figures.rfm.loc[0, "segment"] == "Promising"
    assert figures.kpis["stall_stage"] is None  # nothing stalls: nothing named


def test_dormant_count_equals_the_dormant_list(fresh: Callable[..., Path]) -> None:
    path = fresh()
    old = TODAY - dt.timedelta(days=400)
    typed(path, 0, [{"Name": f"Firm {i}", "CustomerID": f"C-{i}", "Created": old}
                    for i in range(30)] + [{"Name": "New", "CustomerID": "C-new",
                                            "Created": TODAY}])
    jobs.sync_workbook(path, today=TODAY)
    data = read_workbook(path)
    figures = analyse(data, today=TODAY)
    lifecycle = data.sheets["customers"].frame["lifecycle"]
    assert figures.kpis["dormant_customers"] == int((lifecycle == "Dormant").sum()) == 30
    assert len(figures.dormant) == 20  # the 20 most valuable are listed, the title says 30
    ws = openpyxl.load_workbook(path)["Dashboard"]
    assert any("30" in str(c.value) and "Dormant" in str(c.value) for c in ws["A"])


def test_merge_and_undo_keep_formula_text_as_text(fresh: Callable[..., Path],
                                                  cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "CustomerID": "C-1", "Phone": "13800138000"},
                    {"Name": "Acme Ltd", "CustomerID": "C-2", "Phone": "13800138000"}])
    book = openpyxl.load_workbook(path)
    notes = next(c for c in book["Customers"][1] if c.value == "Notes").column
    cell = book["Customers"].cell(row=3, column=notes, value="=1+1")
    cell.data_type = "s"
    book.save(path)
    result = cli("dedupe", path, "--merge", "--all")
    assert result.exit_code == 0, result.output
    merge_id = result.output.split("--undo ")[1].split()[0]
    for step in ("merged", "undone"):
        book = openpyxl.load_workbook(path)
        values = [c.value for c in book["Customers"][chr(64 + notes)][1:]]
        assert "=1+1" in values, step
        cells = [c for c in book["Customers"][chr(64 + notes)][1:] if c.value == "=1+1"]
        assert all(c.data_type == "s" for c in cells), step
        if step == "merged":
            assert cli("dedupe", path, "--undo", merge_id).exit_code == 0
