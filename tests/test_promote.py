"""Won deals into Customers: links, new customers, roll-ups, lifecycle, service owner, tier."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import TODAY, append_rows
from xlcrm import normalize as nz
from xlcrm.jobs import init_workbook, promote_workbook, sync_workbook, validate_workbook
from xlcrm.reader import read_workbook

D = dt.date
CUSTOMERS = [
    {"customer_id": "C-000001", "name": "Acme Corporation", "email": "info@acme.com",
     "phone": "13912345678", "city": "Shanghai", "created_at": D(2026, 1, 5)},
    {"customer_id": "C-000002", "name": "上海华信科技有限公司", "city": "Shenzhen",
     "created_at": D(2026, 2, 1)},
    {"customer_id": "C-000003", "name": "Globex Ltd", "created_at": D(2024, 1, 1)},
    {"customer_id": "C-000004", "name": "Globex Limited", "created_at": D(2026, 6, 1)},
    {"customer_id": "C-000005", "name": "Gone Away Co", "lifecycle": "Churned",
     "created_at": D(2026, 5, 1)},
    {"customer_id": "C-000006", "name": "Locked Ltd", "tier": "A", "tags": "tier-locked",
     "created_at": D(2026, 5, 1)},
]
OPPORTUNITIES = [
    {"opportunity_id": "O-000001", "title": "ERP", "customer_id": "C-000001", "stage": "Won",
     "amount": 400_000, "currency": "CNY", "closed_at": D(2026, 10, 1), "owner": "Bob Li"},
    {"opportunity_id": "O-000002", "title": "Line upgrade", "company": "Brand New Ltd",
     "contact_name": "Ann Lee", "contact_email": "ann@brandnew.com",
     "contact_phone": "13800138000", "stage": "Won", "amount": 50_000, "owner": "Alice Chen",
     "source": "Website", "stage_changed_at": D(2026, 11, 1)},
    {"opportunity_id": "O-000003", "title": "Support", "company": "ACME Corp.", "stage": "Won",
     "amount": 150_000, "currency": "CNY", "closed_at": D(2026, 11, 10)},
    {"opportunity_id": "O-000004", "title": "MES", "company": "上海华信科技股份有限公司",
     "stage": "Won", "amount": 80_000, "closed_at": D(2026, 9, 1)},
    {"opportunity_id": "O-000005", "title": "Audit", "company": "Globex Inc", "stage": "Won",
     "amount": 10_000, "closed_at": D(2026, 11, 2)},
    {"opportunity_id": "O-000006", "title": "Open one", "customer_id": "C-000002",
     "stage": "Proposal", "amount": 99_000, "next_follow_up": D(2026, 12, 1),
     "expected_close": D(2027, 1, 1), "created_at": D(2026, 11, 1),
     "stage_changed_at": D(2026, 11, 20)},
    {"opportunity_id": "O-000007", "title": "Export", "customer_id": "C-000001", "stage": "Won",
     "amount": 20_000, "currency": "USD", "closed_at": D(2026, 3, 3)},
]
SERVICE_PEOPLE = [{"name": "Eve Xu", "email": "eve@example.com", "role": "service",
                   "active": "Yes"}]
RULES = [{"field": "city", "value": "Shenzhen", "owner": "Eve Xu"}]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = init_workbook(tmp_path / "crm.xlsx", "en")
    data = read_workbook(path)
    wb = openpyxl.load_workbook(path)
    for key, rows in (("customers", CUSTOMERS), ("opportunities", OPPORTUNITIES)):
        sheet = data.sheets[key]
        append_rows(sheet.name, sheet.table, sheet.columns, rows)(wb)
    append_rows("Settings", "People", {"name": 7, "email": 8, "role": 9, "active": 10},
                SERVICE_PEOPLE)(wb)
    append_rows("Settings", "ServiceRules", {"field": 30, "value": 31, "owner": 32}, RULES)(wb)
    wb.save(path)
    return path


def day(value: Any) -> dt.date | None:
    return nz.parse_date(value)


def customers_by_id(path: Path) -> dict[str, dict[str, Any]]:
    frame = read_workbook(path).sheets["customers"].frame
    return {r["customer_id"]: r for r in frame.to_dict("records")}


def test_links_creates_and_skips(book: Path) -> None:
    result = promote_workbook(book, today=TODAY)
    assert result.written and result.promotion is not None
    promoted = {p["opportunity_id"]: (p["customer_id"], p["created"], p["matched_by"])
                for p in result.promotion.promoted}
    assert promoted == {
        "O-000001": ("C-000001", False, "customer_id"),
        "O-000002": ("C-000007", True, None),
        "O-000003": ("C-000001", False, "name"),
        "O-000004": ("C-000002", False, "name"),
        "O-000007": ("C-000001", False, "customer_id"),
    }
    skipped = {(s["opportunity_id"], s["reason"], tuple(s["candidates"]))
               for s in result.promotion.skipped}
    assert ("O-000005", "ambiguous-customer", ("C-000003", "C-000004")) in skipped
    assert ("O-000007", "other-currency", ()) in skipped

    data = read_workbook(book)
    opps = data.sheets["opportunities"].frame.set_index("opportunity_id")
    assert opps.at["O-000002", "customer_id"] == "C-000007"
    assert day(opps.at["O-000002", "closed_at"]) == D(2026, 11, 1)
    assert opps.at["O-000003", "customer_id"] == "C-000001"
    assert opps.at["O-000005", "customer_id"] is None
    assert opps.at["O-000006", "closed_at"] is None  # the open deal is untouched
    deal_won = data.sheets["interactions"].frame
    assert sorted(deal_won["opportunity_id"]) == ["O-000001", "O-000002", "O-000003",
                                                  "O-000004", "O-000007"]
    assert set(deal_won["outcome"]) == {"Deal won"}
    assert list(deal_won["interaction_id"]) == [f"I-{i:06d}" for i in range(1, 6)]


def test_new_customer_is_filled_from_the_deal(book: Path) -> None:
    promote_workbook(book, today=TODAY)
    new = customers_by_id(book)["C-000007"]
    assert (new["name"], new["contact_name"], new["email"], new["phone"], new["owner"],
            new["source"]) == ("Brand New Ltd", "Ann Lee", "ann@brandnew.com", "13800138000",
                               "Alice Chen", "Website")
    assert (new["won_deals"], new["lifetime_value"], new["lifecycle"]) == (1, 50_000, "Active")
    assert day(new["first_purchase"]) == day(new["last_purchase"]) == D(2026, 11, 1)
    assert day(new["created_at"]) == TODAY
    table = openpyxl.load_workbook(book)["Customers"].tables["tblCustomers"]
    assert table.ref.endswith("8")  # header + 7 customers: the Table grew


def test_roll_ups_lifecycle_tier_and_service_owner(book: Path) -> None:
    promote_workbook(book, today=TODAY)
    c = customers_by_id(book)
    acme = c["C-000001"]
    assert acme["won_deals"] == 3  # O-1, O-3 and the USD deal O-7
    assert acme["lifetime_value"] == 550_000  # CNY only; the USD deal is flagged, not summed
    assert day(acme["first_purchase"]) == D(2026, 3, 3)
    assert day(acme["last_purchase"]) == D(2026, 11, 10)
    assert acme["lifecycle"] == "Repeat" and acme["tier"] == "A"
    assert c["C-000002"]["lifecycle"] == "Active" and c["C-000002"]["tier"] == "C"
    assert c["C-000003"]["lifecycle"] == "Dormant"  # created 2024, nothing since
    assert c["C-000004"]["lifecycle"] == "Prospect"
    assert c["C-000005"]["lifecycle"] == "Churned"  # set by hand, kept
    assert c["C-000006"]["tier"] == "A"  # locked by the tag although it has no deals
    assert c["C-000002"]["service_owner"] == "Eve Xu"  # the city rule
    # round-robin among active service people, balanced by load
    won = [c[i]["service_owner"] for i in ("C-000001", "C-000002", "C-000007")]
    assert sorted(won) == ["Carol Wang", "Carol Wang", "Eve Xu"]
    assert c["C-000004"]["service_owner"] is None  # no win, no service owner


def test_won_deal_without_customer_or_company_is_skipped(book: Path) -> None:
    wb = openpyxl.load_workbook(book)
    append_rows("Opportunities", "tblOpportunities", read_workbook(book).sheets[
        "opportunities"].columns, [{"opportunity_id": "O-000008", "title": "Who?",
                                    "stage": "Won", "amount": 1}])(wb)
    wb.save(book)
    result = promote_workbook(book, today=TODAY)
    assert result.promotion is not None
    assert {"opportunity_id": "O-000008", "reason": "no-company", "candidates": []} in (
        result.promotion.skipped)
    names = [c["name"] for c in customers_by_id(book).values()]
    assert None not in names and len(names) == 7
    assert customers_by_id(book)["C-000007"]["kind"] == "Company"


def test_a_person_set_service_owner_is_kept(book: Path) -> None:
    wb = openpyxl.load_workbook(book)
    wb["Customers"]["H2"] = "Li Na (manual)"  # C-000001's Service Owner
    wb.save(book)
    promote_workbook(book, today=TODAY)
    assert customers_by_id(book)["C-000001"]["service_owner"] == "Li Na (manual)"


def test_second_run_changes_nothing(book: Path, cli: Callable[..., Any]) -> None:
    promote_workbook(book, today=TODAY)
    after_first = book.read_bytes()
    frames = {k: s.frame for k, s in read_workbook(book).sheets.items()}
    again = promote_workbook(book, today=TODAY)
    assert again.promotion is not None and again.promotion.promoted == []
    assert not again.written and book.read_bytes() == after_first
    for key, frame in read_workbook(book).sheets.items():
        assert frame.frame.equals(frames[key])
    result = cli("promote", book, "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["promoted"] == []


def test_ambiguous_deal_is_a_warning_in_validate_and_sync(book: Path) -> None:
    result = sync_workbook(book, today=TODAY)
    found = [(i.code, i.record_id, i.cell) for i in result.report.issues
             if i.code == "ambiguous-customer"]
    assert found == [("ambiguous-customer", "O-000005", "C6")]
    assert "C-000003, C-000004" in next(i.message for i in result.report.issues
                                        if i.code == "ambiguous-customer")
    assert "C-000007" in customers_by_id(book)  # sync promoted too
    report = validate_workbook(book, today=TODAY).report
    assert report.errors == 0


def test_zh_workbook_uses_chinese_labels(tmp_path: Path) -> None:
    path = init_workbook(tmp_path / "zh.xlsx", "zh", sample=10, mistakes=False, today=TODAY)
    result = promote_workbook(path, today=TODAY)
    assert result.promotion is not None and result.promotion.promoted
    data = read_workbook(path)
    assert set(data.sheets["interactions"].frame["outcome"]) >= {"赢单"}
    assert set(data.sheets["customers"].frame["lifecycle"]) <= {"潜在", "活跃", "复购", "沉睡",
                                                                 "流失"}
