"""The lead pool (公海) and edits to another owner's records, on a workbook typed as a team
would: an empty `xlcrm init`, rows typed below the header, the date moved across days, weeks
and limits. Notifications go to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.utils import get_column_letter, range_boundaries
from typer.testing import CliRunner

from tests.conftest import Inbox, append_rows, set_options, user_edit
from xlcrm.cli import app
from xlcrm.errors import SettingsInvalid, UnknownPerson
from xlcrm.issues import Code
from xlcrm.jobs import change_log, claim_workbook, init_workbook, sync_workbook
from xlcrm.reader import read_workbook

DAY0 = dt.date.today()  # the change log stamps real time: day 0 is today


def ago(days: int) -> dt.datetime:
    return dt.datetime.combine(DAY0 - dt.timedelta(days=days), dt.time())


# (id, name, owner, tier, created days ago, extra); the interactions and deals below
CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "C-1", "name": "Old Quiet Ltd", "owner": "Alice Chen", "created_at": ago(40)},
    {"customer_id": "C-2", "name": "Nearly Due Co", "owner": "Alice Chen", "created_at": ago(28)},
    {"customer_id": "C-3", "name": "Locked Cell Co", "owner": "Alice Chen",
     "created_at": ago(200), "locked": "yes"},
    {"customer_id": "C-4", "name": "Locked Tag Co", "owner": "Alice Chen",
     "created_at": ago(200), "tags": "VIP, 锁定"},
    {"customer_id": "C-5", "name": "Open Deal Co", "owner": "Bob Li", "created_at": ago(200)},
    {"customer_id": "C-6", "name": "Bought Before Co", "owner": "Bob Li",
     "created_at": ago(200)},
    {"customer_id": "C-7", "name": "Tier A Co", "owner": "Bob Li", "created_at": ago(40),
     "tier": "A", "tags": "tier-locked"},  # a tier set by hand
    {"customer_id": "C-8", "name": "Talks No Deal Co", "owner": "Bob Li",
     "created_at": ago(100)},
    {"customer_id": "C-9", "name": "Nobody's Prospect", "created_at": ago(3)},
    {"customer_id": "C-10", "name": "Another Prospect", "created_at": ago(3)},
    {"customer_id": "C-11", "name": "Locked Prospect", "created_at": ago(3), "locked": "是"},
]
OPPORTUNITIES = [
    {"opportunity_id": "O-1", "title": "Pumps", "customer_id": "C-5", "stage": "Proposal",
     "amount": 1000, "owner": "Bob Li", "created_at": ago(10)},
    {"opportunity_id": "O-2", "title": "Valves", "customer_id": "C-6", "stage": "Won",
     "amount": 5000, "owner": "Bob Li", "created_at": ago(190), "closed_at": ago(150)},
]
INTERACTIONS = [
    {"interaction_id": "I-1", "date": ago(5), "customer_id": "C-8", "kind": "Call",
     "summary": "Still thinking", "owner": "Bob Li"},
]


def settings_edit(book: openpyxl.Workbook) -> None:
    """The Pool table gets a row for tier A (60 days without follow-up, no win rule)."""
    ws = book["Settings"]
    for table in ws.tables.values():
        if table.name == "Pool":
            first, top, last, bottom = range_boundaries(table.ref)
            row = bottom + 1
            for offset, value in enumerate(["A", 60, None, 3]):
                ws.cell(row=row, column=first + offset).value = value
            table.ref = f"{get_column_letter(first)}{top}:{get_column_letter(last)}{row}"
            table.autoFilter.ref = table.ref


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = init_workbook(tmp_path / "team.xlsx", lang="en")
    data = read_workbook(path)
    for key, rows in (("customers", CUSTOMERS), ("opportunities", OPPORTUNITIES),
                      ("interactions", INTERACTIONS)):
        sheet = data.sheets[key]
        user_edit(path, append_rows(sheet.name, sheet.table, sheet.columns, rows))
    user_edit(path, settings_edit)
    set_options(path, pool_enabled="yes", pool_claims_per_day=1, pool_max_owned=5,
                pool_cooldown_days=30, pool_protect_days=7)
    return path


def owners(path: Path) -> dict[str, Any]:
    frame = read_workbook(path).sheets["customers"].frame
    def day(value: Any) -> Any:
        return value.date() if isinstance(value, dt.datetime) else value

    return {r["customer_id"]: (r["owner"], day(r["pooled_at"]), r["pool_reason"])
            for r in frame.to_dict("records")}


def test_sync_sends_quiet_customers_to_the_pool_and_spares_the_exempt(book: Path) -> None:
    result = sync_workbook(book, today=DAY0)
    after = owners(book)
    assert after["C-1"] == (None, DAY0, "No follow-up for 30 days")
    assert after["C-8"] == (None, DAY0, "No won deal for 90 days")  # calls, but no deal
    for kept in ("C-2", "C-3", "C-4", "C-5", "C-6", "C-7"):  # not due, locked, open deal,
        assert after[kept][0] is not None and after[kept][1] is None  # bought, tier A
    assert [d.customer_id for d in result.pool.warned] == ["C-2"]  # due in 2 days
    pooled = [e for e in change_log(book, record="C-1") if e["job"] == "pool"]
    assert [(e["field"], e["old"]) for e in pooled if e["field"] == "owner"] == [
        ("owner", "Alice Chen")]
    dash = openpyxl.load_workbook(book)["Dashboard"]
    texts = [c.value for row in dash.iter_rows() for c in row if isinstance(c.value, str)]
    assert any(t.startswith("Lead pool: 5 customers in the pool, 2 recycled") for t in texts)

    # idempotent: the same day again changes nothing
    before = book.read_bytes()
    again = sync_workbook(book, today=DAY0)
    assert book.read_bytes() == before and not again.changes


def test_the_tier_row_and_the_clock_move_with_the_days(book: Path) -> None:
    sync_workbook(book, today=DAY0)
    assert owners(book)["C-7"][0] == "Bob Li"  # tier A: 60 days, created 40 days ago
    sync_workbook(book, today=DAY0 + dt.timedelta(days=19))
    assert owners(book)["C-7"][0] == "Bob Li"
    sync_workbook(book, today=DAY0 + dt.timedelta(days=20))
    assert owners(book)["C-7"][:2] == (None, DAY0 + dt.timedelta(days=20))
    assert owners(book)["C-2"][2] == "No follow-up for 30 days"


def test_claims_are_refused_for_each_reason(book: Path) -> None:
    sync_workbook(book, today=DAY0)  # C-1 (Alice's) and C-8 (Bob's) go to the pool
    done = claim_workbook(book, ["C-8", "C-1", "C-999", "C-11", "C-2"], "bob@example.com",
                          today=DAY0)
    reasons = {c: r for c, r, _ in done.refused}
    assert done.claimed == ["C-1"]
    assert reasons == {"C-8": "cooldown", "C-999": "unknown", "C-11": "locked",
                       "C-2": "owned"}
    message = dict((c, m) for c, _, m in done.refused)["C-8"]
    until = (DAY0 + dt.timedelta(days=30)).isoformat()
    assert f"Bob Li released it on {DAY0.isoformat()}; may claim it again from {until}" in message
    assert owners(book)["C-1"] == ("Bob Li", None, None)
    claims = [e for e in change_log(book, record="C-1") if e["job"] == "claim"]
    assert claims[0]["user"] == "Bob Li" and claims[0]["new"] == "Bob Li"

    # a day's limit (1 here), then the next day; the cap on customers owned (5)
    first = claim_workbook(book, ["C-8"], "Alice Chen", today=DAY0)
    assert first.claimed == ["C-8"]
    daily = claim_workbook(book, ["C-9"], "Alice Chen", today=DAY0)
    assert [r for _, r, _ in daily.refused] == ["daily"]
    assert claim_workbook(book, ["C-9"], "Alice Chen",
                          today=DAY0 + dt.timedelta(days=1)).claimed == ["C-9"]
    cap = claim_workbook(book, ["C-10"], "Alice Chen", today=DAY0 + dt.timedelta(days=2))
    assert [r for _, r, _ in cap.refused] == ["cap"]  # C-2, C-3, C-4, C-8, C-9

    # a claimed customer is protected, then its clock starts at the claim
    sync_workbook(book, today=DAY0 + dt.timedelta(days=27))
    assert owners(book)["C-1"][0] == "Bob Li"
    sync_workbook(book, today=DAY0 + dt.timedelta(days=30))
    assert owners(book)["C-1"][0] is None

    with pytest.raises(UnknownPerson):
        claim_workbook(book, ["C-10"], "Zed Nobody", today=DAY0)


def test_claim_from_the_command_line_in_chinese(tmp_path: Path) -> None:
    path = init_workbook(tmp_path / "团队.xlsx", lang="zh")
    data = read_workbook(path)
    sheet = data.sheets["customers"]
    user_edit(path, append_rows(sheet.name, sheet.table, sheet.columns, [
        {"customer_id": "C-1", "name": "无人跟进公司", "created_at": ago(2)},
        {"customer_id": "C-2", "name": "已有负责人公司", "owner": "王芳", "created_at": ago(2)}]))
    run = CliRunner().invoke(app, ["claim", str(path), "C-1", "C-2", "--as", "张伟"])
    assert run.exit_code == 1, run.output  # one claimed, one refused
    assert "张伟 已领取 C-1。" in run.stdout
    assert "未领取：C-2：客户经理是王芳，不在公海" in run.stderr
    run = CliRunner().invoke(app, ["claim", str(path), "C-2", "--as", "张伟"])
    assert run.exit_code == 2


def test_owners_are_warned_ahead_by_email_once(book: Path, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    set_options(book, smtp_host="127.0.0.1", smtp_port=port)
    sync_workbook(book, today=DAY0)
    told = mail_to(handler, "alice@example.com")
    due = (DAY0 + dt.timedelta(days=2)).isoformat()
    assert f"Customer Nearly Due Co (C-2) goes back to the lead pool on {due}" in told
    assert "Customer Old Quiet Ltd (C-1) went back to the lead pool" in told
    managers = mail_to(handler, "david@example.com")
    assert "(C-8) went back to the lead pool (No won deal for 90 days), former owner Bob Li" \
        in managers
    count = len(handler.messages)
    user_edit(book, lambda b: None)  # saved again: the sync runs again, the same day
    sync_workbook(book, today=DAY0)
    assert len(handler.messages) == count  # told once


def mail_to(handler: Inbox, address: str) -> str:
    """Every message body sent to `address`, decoded."""
    return "\n".join(m.get_payload(decode=True).decode("utf-8") for m in handler.messages
                     if m["To"] == address)


def edit_as(path: Path, author: str, record: str, field: str, value: Any) -> None:
    def change(book: openpyxl.Workbook) -> None:
        data = read_workbook(path)
        sheet = data.sheets["customers"]
        frame = sheet.frame
        row = int(frame.loc[frame["customer_id"] == record, "_row"].iloc[0])
        book[sheet.name].cell(row=row, column=sheet.columns[field]).value = value
        book.properties.lastModifiedBy = author

    user_edit(path, change)


@pytest.mark.parametrize(("author", "warned"), [
    ("Bob Li", "Bob Li changed City of Customers record C-2; the owner is Alice Chen"),
    ("alice@example.com", None),  # the owner herself, by e-mail
    ("David Zhou", None),  # a manager
    ("Zed Temp", "Zed Temp (not in Settings → People) changed City of Customers record C-2"),
])
def test_an_edit_by_someone_else_than_the_owner_is_a_warning(
        book: Path, inbox: tuple[Inbox, int], author: str, warned: str | None) -> None:
    handler, port = inbox
    set_options(book, smtp_host="127.0.0.1", smtp_port=port, pool_enabled="no")
    sync_workbook(book, today=DAY0)
    edit_as(book, author, "C-2", "city", "Hangzhou")
    report = sync_workbook(book, today=DAY0).report
    found = [i for i in report.issues if i.code == Code.EDIT_BY_NON_OWNER]
    if warned is None:
        assert found == []
        return
    assert [(i.record_id, i.cell, i.severity) for i in found] == [("C-2", found[0].cell,
                                                                    "warning")]
    assert found[0].message.startswith(warned)
    assert warned in mail_to(handler, "alice@example.com")


def test_edit_policy_off_and_taking_over_a_customer(book: Path) -> None:
    set_options(book, pool_enabled="no")
    sync_workbook(book, today=DAY0)
    edit_as(book, "Bob Li", "C-2", "owner", "Bob Li")  # takes Alice's customer
    found = [i for i in sync_workbook(book, today=DAY0).report.issues
             if i.code == Code.EDIT_BY_NON_OWNER]
    assert [i.value for i in found] == ["Alice Chen"]
    set_options(book, edit_policy="off")
    edit_as(book, "Bob Li", "C-3", "city", "Xi'an")
    assert not [i for i in sync_workbook(book, today=DAY0).report.issues
                if i.code == Code.EDIT_BY_NON_OWNER]


def test_the_pool_needs_its_columns(book: Path) -> None:
    def drop(book_: openpyxl.Workbook) -> None:
        ws = book_["Customers"]
        for cell in ws[1]:
            if cell.value in ("In Pool Since", "Pool Reason"):
                cell.value = f"Old {cell.value}"
        table = ws.tables["tblCustomers"]
        for column in table.tableColumns:
            if column.name in ("In Pool Since", "Pool Reason"):
                column.name = f"Old {column.name}"

    user_edit(book, drop)
    with pytest.raises(SettingsInvalid, match="In Pool Since"):
        sync_workbook(book, today=DAY0)


def set_general_rule(path: Path, follow_up: int | None, win: int | None) -> None:
    """Type new days into the Pool table's row without a Tier."""

    def change(book: openpyxl.Workbook) -> None:
        ws = book["Settings"]
        table = next(t for t in ws.tables.values() if t.name == "Pool")
        first, top, _, bottom = range_boundaries(table.ref)
        for row in range(top + 1, bottom + 1):
            if ws.cell(row=row, column=first).value in (None, ""):
                ws.cell(row=row, column=first + 1).value = follow_up
                ws.cell(row=row, column=first + 2).value = win

    user_edit(path, change)


def test_a_claimed_customer_is_protected_for_the_protection_days(book: Path) -> None:
    set_general_rule(book, follow_up=2, win=None)
    sync_workbook(book, today=DAY0)
    assert claim_workbook(book, ["C-9"], "Bob Li", today=DAY0).claimed == ["C-9"]
    for day in (3, 6):  # two days without a follow-up, but inside the 7 protected days
        sync_workbook(book, today=DAY0 + dt.timedelta(days=day))
        assert owners(book)["C-9"][0] == "Bob Li"
    sync_workbook(book, today=DAY0 + dt.timedelta(days=7))
    assert owners(book)["C-9"] == (None, DAY0 + dt.timedelta(days=7),
                                   "No follow-up for 2 days")


def test_open_deals_go_with_the_customer_when_settings_say_release(book: Path) -> None:
    set_options(book, pool_exempt_open_deals="否", pool_open_deals="release")
    sync_workbook(book, today=DAY0)
    assert owners(book)["C-5"][:2] == (None, DAY0)  # its open deal no longer exempts it
    deals = read_workbook(book).sheets["opportunities"].frame
    owner_of = dict(zip(deals["opportunity_id"], deals["owner"], strict=True))
    assert owner_of == {"O-1": None, "O-2": "Bob Li"}  # the won deal keeps its owner
    released = [e for e in change_log(book, record="O-1") if e["job"] == "pool"]
    assert [(e["field"], e["old"], e["new"]) for e in released] == [("owner", "Bob Li", None)]


# ---------------------------------------------------------------------------------------------
# The rules as properties: any team's customers, any day

# days before the run, often at the limits' edges (30 and 90 days, tier A's 60, the warnings)
days_ago = st.one_of(st.integers(0, 200), st.sampled_from(
    [25, 26, 27, 28, 29, 30, 31, 54, 55, 56, 59, 60, 61, 85, 86, 87, 88, 89, 90, 91]))
customer_shapes = st.lists(st.fixed_dictionaries({
    "owner": st.sampled_from(["Alice Chen", "Bob Li", None]),
    "created": days_ago,
    "touched": st.one_of(st.none(), days_ago),  # the last interaction
    "tier": st.sampled_from(["A", "B", None]),
    "locked": st.sampled_from([None, "yes", "no", "锁定"]),
    "deal": st.sampled_from([None, "Proposal", "Won", "Lost"]),
}), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=customer_shapes, open_exempt=st.booleans(), won_exempt=st.booleans())
def test_recycling_follows_the_rules_for_any_customers(
        tmp_path: Path, shapes: list[dict[str, Any]], open_exempt: bool,
        won_exempt: bool) -> None:
    from xlcrm import pool
    from xlcrm.settings import PoolRule

    data = empty_book(tmp_path)
    data.settings = data.settings.model_copy(update={
        "pool_rules": [PoolRule(follow_up_days=30, win_days=90, warn_days=3),
                       PoolRule(tier="A", follow_up_days=60, warn_days=5)],
        "options": data.settings.options.model_copy(update={
            "pool_enabled": True, "pool_exempt_open_deals": open_exempt,
            "pool_exempt_won": won_exempt})})
    customers, opportunities, interactions = [], [], []
    for n, shape in enumerate(shapes):
        cid = f"C-{n}"
        customers.append({"customer_id": cid, "name": f"Company {n}", "owner": shape["owner"],
                          "tier": shape["tier"], "locked": shape["locked"],
                          "created_at": ago(shape["created"]), "_row": n + 2})
        if shape["touched"] is not None:
            interactions.append({"interaction_id": f"I-{n}", "customer_id": cid,
                                 "date": ago(shape["touched"]), "_row": len(interactions) + 2})
        if shape["deal"]:
            opportunities.append({"opportunity_id": f"O-{n}", "title": "Deal", "customer_id": cid,
                                  "stage": shape["deal"], "closed_at": ago(shape["created"]),
                                  "_row": len(opportunities) + 2})
    for key, rows in (("customers", customers), ("opportunities", opportunities),
                      ("interactions", interactions)):
        frame = data.sheets[key].frame
        data.sheets[key].frame = pd.DataFrame(rows, columns=frame.columns, dtype=object)

    done = pool.recycle(data, pool.Moves(), DAY0)
    recycled = {d.customer_id for d in done.recycled}
    warned = {d.customer_id for d in done.warned}
    for n, shape in enumerate(shapes):
        cid = f"C-{n}"
        locked = shape["locked"] in ("yes", "锁定")
        exempt = (shape["owner"] is None or locked
                  or (open_exempt and shape["deal"] == "Proposal")
                  or (won_exempt and shape["deal"] == "Won"))
        follow, warn = (60, 5) if shape["tier"] == "A" else (30, 3)
        last_touch = min(shape["created"], shape["touched"] if shape["touched"] is not None
                         else shape["created"])  # days ago of the latest activity
        due_in = [follow - last_touch]
        if shape["tier"] != "A":  # the A row has no win rule
            due_in.append(90 - shape["created"])  # a won deal closed the day it was created
        left = min(due_in)
        assert (cid in recycled) == (not exempt and left <= 0), (cid, shape)
        assert (cid in warned) == (not exempt and 0 < left <= warn), (cid, shape)

    # applied, the same run changes nothing more: every recycled customer has left its owner
    frame = data.sheets["customers"].frame
    columns = {v: k for k, v in data.sheets["customers"].columns.items()}
    for row, column, value in done.cells:
        frame.loc[frame["_row"] == row, columns[column]] = value
    again = pool.recycle(data, pool.Moves(), DAY0)
    assert again.recycled == [] and again.cells == []


_EMPTY: dict[str, Any] = {}


def empty_book(tmp_path: Path) -> Any:
    """The data of an empty `xlcrm init` workbook (read once; a fresh copy each time)."""
    import copy

    if "data" not in _EMPTY:
        _EMPTY["data"] = read_workbook(init_workbook(tmp_path / "empty.xlsx", lang="en"))
    return copy.deepcopy(_EMPTY["data"])


def test_sync_says_who_went_to_the_pool(book: Path, tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "copy" / book.name
    copy.parent.mkdir()
    shutil.copyfile(book, copy)
    run = CliRunner().invoke(app, ["sync", str(book)])
    assert ("Lead pool: 2 customer(s) went back to the pool (C-1, C-8); 1 more will go within "
            "their warning days") in " ".join(run.stdout.split()), run.output
    payload = json.loads(CliRunner().invoke(app, ["sync", str(copy), "--format", "json"]).stdout)
    assert payload["pool"] == {"recycled": ["C-1", "C-8"], "warned": ["C-2"]}
