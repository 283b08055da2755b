"""Analytics against figures computed by hand, and the Dashboard sheet as Excel shows it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import TODAY, append_rows
from xlcrm.analytics import Analytics, analyse
from xlcrm.jobs import init_workbook, report_workbook, sync_workbook
from xlcrm.reader import read_workbook
from xlcrm.validate import validate

D = dt.date
CUSTOMERS = [
    {"customer_id": "C-000001", "name": "Alpha Ltd", "owner": "Alice Chen", "tier": "A",
     "lifecycle": "Active", "lifetime_value": 600_000, "won_deals": 1},
    {"customer_id": "C-000002", "name": "Beta Ltd", "owner": "Bob Li", "tier": "B",
     "lifecycle": "Prospect", "lifetime_value": 0, "won_deals": 0},
    {"customer_id": "C-000003", "name": "Gamma Ltd", "owner": "Alice Chen", "tier": "C",
     "lifecycle": "Dormant", "lifetime_value": 150_000, "won_deals": 1},
]
OPPORTUNITIES = [
    {"opportunity_id": "O-000001", "title": "Lead deal", "customer_id": "C-000001",
     "stage": "Lead", "amount": 100_000, "expected_close": D(2026, 12, 10), "owner": "Alice Chen",
     "source": "Website", "created_at": D(2026, 11, 1), "stage_changed_at": D(2026, 11, 1)},
    {"opportunity_id": "O-000002", "title": "Quote deal", "customer_id": "C-000002",
     "stage": "Quote", "amount": 200_000, "probability": 0.5, "expected_close": D(2027, 1, 15),
     "owner": "Bob Li", "source": "Referral", "created_at": D(2026, 9, 1),
     "stage_changed_at": D(2026, 10, 26)},
    {"opportunity_id": "O-000003", "title": "Late deal", "customer_id": "C-000002",
     "stage": "Proposal", "amount": 50_000, "expected_close": D(2026, 11, 10), "owner": "Bob Li",
     "source": "Website", "created_at": D(2026, 11, 20), "stage_changed_at": D(2026, 11, 20)},
    {"opportunity_id": "O-000004", "title": "Won big", "customer_id": "C-000001", "stage": "Won",
     "amount": 600_000, "owner": "Alice Chen", "source": "Website",
     "created_at": D(2026, 1, 1), "closed_at": D(2026, 3, 1)},
    {"opportunity_id": "O-000005", "title": "Won old", "customer_id": "C-000003", "stage": "Won",
     "amount": 150_000, "owner": "Alice Chen", "source": "Referral",
     "created_at": D(2025, 10, 1), "closed_at": D(2025, 11, 30)},
    {"opportunity_id": "O-000006", "title": "Lost one", "customer_id": "C-000002",
     "stage": "Lost", "amount": 80_000, "lost_reason": "Price", "owner": "Bob Li",
     "source": "Website", "created_at": D(2026, 5, 1), "closed_at": D(2026, 6, 1)},
]
INTERACTIONS = [
    {"interaction_id": "I-000001", "date": D(2026, 11, 20), "customer_id": "C-000001",
     "owner": "Alice Chen", "kind": "Call"},
    {"interaction_id": "I-000002", "date": D(2026, 10, 1), "customer_id": "C-000001",
     "owner": "Alice Chen", "kind": "Visit"},
    {"interaction_id": "I-000003", "date": D(2026, 11, 24), "customer_id": "C-000002",
     "owner": "Bob Li", "kind": "Email"},
    {"interaction_id": "I-000004", "date": D(2025, 12, 1), "customer_id": "C-000003",
     "owner": "Alice Chen", "kind": "Call"},
]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = init_workbook(tmp_path / "crm.xlsx", "en")
    data = read_workbook(path)
    wb = openpyxl.load_workbook(path)
    for key, rows in (("customers", CUSTOMERS), ("opportunities", OPPORTUNITIES),
                      ("interactions", INTERACTIONS)):
        sheet = data.sheets[key]
        append_rows(sheet.name, sheet.table, sheet.columns, rows)(wb)
    wb.save(path)
    return path


@pytest.fixture
def figures(book: Path) -> Analytics:
    data = read_workbook(book)
    return analyse(data, today=TODAY, report=validate(data, today=TODAY))


def rows(table: Any, *columns: str) -> list[list[Any]]:
    return [[r[c] for c in columns] for r in table.to_dict("records")]


def test_weighted_pipeline_uses_the_probability_or_the_stage_default(
        figures: Analytics) -> None:
    assert rows(figures.pipeline, "stage", "deals", "amount", "weighted") == [
        ["Lead", 1, 100_000, 10_000], ["Qualified", 0, 0, 0], ["Proposal", 1, 50_000, 20_000],
        ["Quote", 1, 200_000, 100_000], ["Negotiation", 0, 0, 0]]
    assert figures.kpis["pipeline"] == 350_000
    assert figures.kpis["weighted_pipeline"] == 130_000


def test_forecast_buckets_by_month_with_overdue_apart(figures: Analytics) -> None:
    assert rows(figures.forecast, "month", "deals", "weighted", "best_case") == [
        ["overdue", 1, 20_000, 50_000], ["2026-11", 0, 0, 0], ["2026-12", 1, 10_000, 100_000],
        ["2027-01", 1, 100_000, 200_000], ["2027-02", 0, 0, 0], ["2027-03", 0, 0, 0],
        ["2027-04", 0, 0, 0]]
    assert figures.kpis["forecast_6m_weighted"] == 110_000
    assert figures.kpis["overdue_deals"] == 1


def test_win_rate_cycle_and_funnel(figures: Analytics) -> None:
    assert figures.kpis["win_rate"] == pytest.approx(2 / 3)
    assert rows(figures.win_by_owner, "owner", "won", "lost", "win_rate") == [
        ["Alice Chen", 2, 0, 1.0], ["Bob Li", 0, 1, 0.0]]
    assert rows(figures.win_by_source, "source", "won", "lost", "win_rate") == [
        ["Referral", 1, 0, 1.0], ["Website", 1, 1, 0.5]]
    assert figures.kpis["avg_sales_cycle_days"] == pytest.approx(59.5)  # 59 and 60 days
    assert rows(figures.funnel, "stage", "reached") == [
        ["Lead", 6], ["Qualified", 4], ["Proposal", 4], ["Quote", 3], ["Negotiation", 2],
        ["Won", 2]]
    assert list(figures.funnel["conversion"])[:5] == pytest.approx([4 / 6, 1, 0.75, 2 / 3, 1])


def test_time_in_stage_and_where_deals_stall(figures: Analytics) -> None:
    table = figures.time_in_stage.set_index("stage")
    assert table.loc["Lead", "median_days"] == 24
    assert table.loc["Quote", "median_days"] == 30
    assert table.loc["Proposal", "median_days"] == 5
    assert table.loc["Quote", "stalled"] == 1  # 30 days in Quote, 21 allowed
    assert figures.kpis["stall_stage"] == "Quote"
    assert rows(figures.attention, "reason", "opportunity_id") == [
        ["stalled", "O-000002"], ["close-date-past", "O-000003"]]


def test_time_in_stage_percentiles_from_the_stage_history(figures: Analytics,
                                                         book: Path) -> None:
    import pandas as pd

    stays = pd.DataFrame({
        "opportunity_id": ["A", "B", "C", "D", "E"],
        "stage": ["Lead", "Lead", "Lead", "Lead", "Quote"],
        "entered": pd.to_datetime(["2026-01-01"] * 5),
        "left": pd.to_datetime(["2026-01-05", "2026-01-11", "2026-01-21", None, None]),
        "days": [4, 10, 20, 40, 7],
    })
    data = read_workbook(book)
    table = analyse(data, today=TODAY, stays=stays).time_in_stage.set_index("stage")
    assert table.loc["Lead", "stays"] == 4
    assert table.loc["Lead", "median_days"] == 15  # (10 + 20) / 2
    assert table.loc["Lead", "p90_days"] == pytest.approx(34)  # 20 + 0.7 * (40 - 20)
    assert table.loc["Lead", "current"] == 1


def test_rfm_segments_tiers_and_dormant(figures: Analytics) -> None:
    assert rows(figures.rfm, "customer_id", "recency_days", "frequency", "r", "f", "m",
                "segment") == [
        ["C-000001", 5, 3, 5, 2, 5, "Promising"],
        ["C-000002", 1, 1, 5, 1, 1, "Promising"],
        ["C-000003", 359, 2, 2, 2, 4, "Hibernating"]]
    assert rows(figures.tiers, "tier", "customers", "lifetime_value") == [
        ["A", 1, 600_000], ["B", 1, 0], ["C", 1, 150_000]]
    assert rows(figures.dormant, "customer_id") == [["C-000003"]]
    assert rows(figures.team, "owner", "open_deals", "pipeline", "weighted", "won_deals",
                "won_amount", "interactions_30d") == [
        ["Bob Li", 2, 250_000, 120_000, 0, 0, 1], ["Alice Chen", 1, 100_000, 10_000, 2,
                                                  750_000, 1]]
    assert rows(figures.activity_by_owner, "owner", "interactions_30d", "interactions_90d") == [
        ["Alice Chen", 1, 2], ["Bob Li", 1, 1]]


def test_dashboard_sheet_tables_and_charts(book: Path) -> None:
    sync_workbook(book, today=TODAY)
    report_workbook(book, today=TODAY)  # rebuilt in place, not added twice
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames.count("Dashboard") == 1
    assert wb.sheetnames.index("Dashboard") == 3  # where the template put it
    ws = wb["Dashboard"]
    assert ws.protection.sheet
    tables = ws.tables
    assert {"dash_pipeline", "dash_forecast", "dash_funnel", "dash_tiers", "dash_lifecycle",
            "dash_time_in_stage", "dash_team", "dash_segments"} <= set(tables)
    ref = tables["dash_pipeline"].ref  # A{header}:D{last}
    header = int(ref.split(":")[0][1:])
    values = [[ws.cell(row=r, column=c).value for c in range(1, 5)]
              for r in range(header, header + 3)]
    assert values == [["Stage", "Deals", "Amount", "Weighted"], ["Lead", 1, 100_000, 10_000],
                      ["Qualified", 0, 0, 0]]
    assert len(ws._charts) == 5
    pipeline_chart = ws._charts[0]
    formulas = [s.val.numRef.f for s in pipeline_chart.series]
    assert formulas == [f"'Dashboard'!$C${header + 1}:$C${header + 5}",
                        f"'Dashboard'!$D${header + 1}:$D${header + 5}"]
    categories = pipeline_chart.series[0].cat.numRef or pipeline_chart.series[0].cat.strRef
    assert categories.f == f"'Dashboard'!$A${header + 1}:$A${header + 5}"


def test_dashboard_in_chinese(tmp_path: Path) -> None:
    path = init_workbook(tmp_path / "crm.xlsx", "zh", sample=15, mistakes=False, today=TODAY)
    sync_workbook(path, today=TODAY)
    ws = openpyxl.load_workbook(path)["看板"]
    assert ws["A1"].value == "销售看板"
    texts = {str(c.value) for row in ws.iter_rows() for c in row if c.value is not None}
    assert {"各阶段商机（进行中）", "按预计成交月份的预测", "加权金额", "赢单率"} <= texts


def test_report_command_outputs(book: Path, cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("report", book, "--format", "json", "--no-write")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["kpis"]["weighted_pipeline"] == 130_000
    assert openpyxl.load_workbook(book)["Dashboard"].max_row < 5  # --no-write wrote nothing
    assert payload["forecast"][0] == {"month": "overdue", "deals": 1, "weighted": 20_000.0,
                                      "best_case": 50_000.0}
    page = tmp_path / "report.html"
    assert cli("report", book, "--format", "html", "--out", page).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html
    assert "Pipeline by stage (open deals)" in html and "130,000" in html
    assert openpyxl.load_workbook(book)["Dashboard"].max_row > 20  # the default writes it
    text = cli("report", book, "--no-write")
    assert "Weighted pipeline" in text.output and "130,000" in text.output


def test_interactions_of_unknown_customers_do_not_break_the_figures(book: Path) -> None:
    data = read_workbook(book)
    frame = data.sheets["interactions"].frame
    frame.loc[len(frame)] = {**{c: None for c in frame.columns}, "interaction_id": "I-000099",
                             "date": dt.datetime(2026, 11, 24), "customer_id": "C-999999",
                             "owner": "Nobody", "_row": 99}
    figures = analyse(data, today=TODAY)
    rows_by_id = {r["customer_id"]: r for r in figures.activity_by_customer.to_dict("records")}
    assert rows_by_id["C-999999"]["name"] == "" and rows_by_id["C-999999"]["interactions_30d"] == 1
    assert "Nobody" in set(figures.activity_by_owner["owner"])
