"""`xlcrm import` on files other programs write: a GBK CSV of a mixed customer-and-deal sheet
with a title row, CSVs with each CRM's export columns, a colleague's workbook with
overlapping customers, an .xls saved by LibreOffice, and our own export coming back. Checked
through an independent reader (calamine on the written file)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import python_calamine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import edit_cells, soffice, typed_book, user_edit, workbook_ids
from xlcrm.jobs import export_workbook, import_workbook, init_workbook, undo_import
from xlcrm.normalize import parse_number
from xlcrm.sources import read_source

MIXED_GBK = "\n".join([
    "客户跟进总表（2026年）",
    "客户名称,联系人,手机,城市,商机,阶段,金额,预计成交日期,负责人,跟进日期,跟进内容",
    "上海华信科技有限公司,李雷,13912345678,上海,ERP 升级,方案,1.2万,2026年12月15日,张伟,"
    "2026/11/3,电话沟通需求",
    '华信科技（上海）有限公司,李雷,139 1234 5678,上海,年度维保,报价,"￥8,000",2027-01-10,'
    "王芳,2026.11.20,发报价单",
    "深圳小鹏贸易,韩梅梅,13800000000,深圳,试点项目,谈判,50000,2026-12-31,赵六,,",
    "合计,,,,,,,,,,",
    ",,,,,,,,,,", ""])


def sheets(path: Path) -> dict[str, list[list[Any]]]:
    """Every cell of every sheet, read by calamine."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    return {n: book.get_sheet_by_name(n).to_python() for n in book.sheet_names}


def records(path: Path, sheet: str) -> list[dict[str, Any]]:
    rows = sheets(path)[sheet]
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:] if any(v != "" for v in r)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_csv(path: Path, rows: list[list[Any]], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture
def zh_book(tmp_path: Path) -> Path:
    path = tmp_path / "crm.xlsx"
    init_workbook(path, lang="zh")
    return path


@pytest.mark.parametrize("forked", [False, True])
def test_a_gbk_mixed_sheet_with_a_title_row_splits_into_linked_records(
        tmp_path: Path, zh_book: Path, cli: Callable[..., Any], forked: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from xlcrm import importer, jobs

    if forked:  # the deal titles folded and the import logged by second processes
        monkeypatch.setattr(importer, "PARALLEL_TITLES", 1)
        monkeypatch.setattr(jobs, "PARALLEL_SYNC", 1)
    source = tmp_path / "跟进表.csv"
    source.write_bytes(MIXED_GBK.encode("gbk"))
    table = read_source(source)
    assert table.encoding == "gb18030" and table.skipped == {"title": 1, "blank": 1,
                                                             "totals": 1}
    before = digest(zh_book)
    dry = cli("import", source, "--into", zh_book)
    assert dry.exit_code == 0 and "预览：未写入任何内容" in dry.stdout
    assert digest(zh_book) == before  # the dry run changes no byte
    applied = cli("import", source, "--into", zh_book, "--apply", "--format", "json")
    assert applied.exit_code == 0
    payload = json.loads(applied.stdout[: applied.stdout.rindex("}") + 1])
    assert payload["counts"]["new"] == {"customers": 2, "opportunities": 3, "interactions": 2}
    customers = records(zh_book, "客户")
    assert [c["客户名称"] for c in customers] == ["上海华信科技有限公司", "深圳小鹏贸易"]
    deals = {d["商机名称"]: d for d in records(zh_book, "商机")}
    huaxin = customers[0]["客户编号"]
    assert deals["ERP 升级"]["客户编号"] == deals["年度维保"]["客户编号"] == huaxin
    assert deals["ERP 升级"]["预计金额"] == 12000 and deals["年度维保"]["预计金额"] == 8000
    assert deals["ERP 升级"]["预计成交日期"] == dt.date(2026, 12, 15)
    assert deals["ERP 升级"]["阶段"] == "方案"
    touches = records(zh_book, "跟进记录")
    assert {(t["客户编号"], t["日期"]) for t in touches} == {
        (huaxin, dt.date(2026, 11, 3)), (huaxin, dt.date(2026, 11, 20))}
    # importing the same file again finds everything there and adds nothing
    again = import_workbook(zh_book, source, apply=True)
    assert again.plan.new == [] and again.plan.changes == [] and not again.applied


def test_an_undo_restores_the_workbook_cell_for_cell(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    before = sheets(book)
    source = write_csv(tmp_path / "more.csv", [
        ["Company", "Phone", "City", "Deal Name", "Deal Stage", "Amount", "Email"],
        ["Acme Ltd", "021-62345678", "", "Support renewal", "Qualified", "3,000",
         "buyer@acme.com"],
        ["Initrode AG", "+49 89 1234567", "Munich", "Sensors", "Lead", "900", ""]])
    done = import_workbook(book, source, apply=True)
    assert done.applied and done.import_id
    assert sheets(book) != before
    cells, added = undo_import(book, done.import_id)
    assert added == len(done.plan.new) and cells == len(done.plan.changes)
    after = sheets(book)
    for name in ("Customers", "Opportunities", "Interactions"):
        assert after[name] == before[name], name


def test_a_colleagues_workbook_fills_blanks_and_lists_conflicts(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    ids = workbook_ids(book)["customers"]
    colleague = tmp_path / "colleague.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "My customers"
    ws.append(["Customer list kept by Bob"])  # a title row, merged across the columns
    ws.merge_cells("A1:E1")
    ws.append(["Customer Name", "Phone", "E-mail", "City", "Industry"])
    ws.append(["ACME LTD.", "+86 21 6234 5678", "", "", "Manufacturing"])  # = Acme Ltd
    ws.append(["Globex GmbH", "", "", "Hamburg", ""])  # workbook says Berlin
    ws.append(["Hooli Inc", "415-555-0100", "hi@hooli.com", "Palo Alto", "Software"])
    ws.append(["", "", "", "", ""])
    wb.save(colleague)
    dry = import_workbook(book, colleague)
    counts = dry.plan.counts()
    assert counts["new"]["customers"] == 1  # Hooli only: no duplicate of Acme or Globex
    changes = {(c.record_id, c.field): c.new for c in dry.plan.changes}
    assert changes == {(ids[0], "industry"): "Manufacturing"}  # a blank filled
    assert [(c.record_id, c.field, c.workbook, c.source) for c in dry.plan.conflicts] == [
        (ids[2], "city", "Berlin", "Hamburg")]
    # the blank e-mail and phone in the source overwrote nothing
    assert not any(c.field in ("email", "phone") for c in dry.plan.changes)
    preferred = import_workbook(book, colleague, prefer="source", apply=True)
    assert preferred.applied
    globex = next(c for c in records(book, "Customers") if c["CustomerID"] == ids[2])
    assert globex["City"] == "Hamburg" and globex["Phone"] == "030 1234567"


@pytest.mark.parametrize(("name", "header", "row"), [
    ("hubspot-deals.csv",
     ["Record ID", "Deal Name", "Deal Stage", "Amount", "Close Date", "Deal owner",
      "Associated Company", "Pipeline"],
     ["9001", "Cloud plan", "presentationscheduled", "4200", "2027-02-01",
      "alice@example.com", "Umbrella Corp", "Sales Pipeline"]),
    ("salesforce-opportunities.csv",
     ["Opportunity Name", "Account Name", "Stage", "Amount", "Close Date",
      "Opportunity Owner", "Lead Source"],
     ["Cloud plan", "Umbrella Corp", "Value Proposition", "4200", "2/1/2027",
      "Alice Chen", "Web"]),
    ("zoho-deals.csv",
     ["Deal Name", "Account Name", "Stage", "Amount", "Closing Date", "Deal Owner"],
     ["Cloud plan", "Umbrella Corp", "Value Proposition", "4,200.00", "02/01/2027",
      "alice@example.com"]),
    ("odoo-crm.lead.csv",
     ["name", "partner_id", "stage_id", "expected_revenue", "date_deadline", "user_id",
      "email_from"],
     ["Cloud plan", "Umbrella Corp", "Proposition", "4200", "2027-02-01", "Alice Chen",
      "ops@umbrella.example"]),
    ("jiandaoyun.csv",
     ["客户名称", "商机名称", "销售阶段", "预计成交金额", "预计签单日期", "负责人", "联系电话"],
     ["Umbrella Corp", "Cloud plan", "方案", "4200", "2027-02-01", "Alice Chen",
      "021-55556666"]),
])
def test_each_crms_export_columns_map_and_link(tmp_path: Path, name: str, header: list[str],
                                              row: list[str]) -> None:
    book = typed_book(tmp_path)
    source = write_csv(tmp_path / name, [header, row], encoding="utf-8-sig")
    plan = import_workbook(book, source).plan
    assert plan.rejected == [] and plan.unknown_stages == {}, plan.to_json()
    [customer] = [r for r in plan.new if r.sheet == "customers"]
    [deal] = [r for r in plan.new if r.sheet == "opportunities"]
    assert customer.values["name"] == "Umbrella Corp"
    assert deal.values["customer_id"] == customer.record_id
    assert deal.values["title"] == "Cloud plan" and deal.values["amount"] == 4200
    assert deal.values["stage"] == "Proposal"  # each CRM's name for it, mapped back
    assert deal.values["expected_close"] == dt.date(2027, 2, 1)
    assert deal.values["owner"] == "Alice Chen"  # by name or by e-mail
    assert plan.new_people == {}


def test_our_own_export_comes_back_as_the_same_records(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    _, folder = export_workbook(book, "hubspot")
    fresh = tmp_path / "fresh" / "crm.xlsx"
    fresh.parent.mkdir()
    init_workbook(fresh, lang="en")
    companies = import_workbook(fresh, folder / "1_companies.csv", apply=True).plan
    assert companies.rejected == [] and companies.conflicts == []
    deals = import_workbook(fresh, folder / "3_deals.csv", apply=True).plan
    assert deals.conflicts == []
    # HubSpot has no place for a prospect's company on a deal (it travels in the deal's
    # description): that one deal cannot come back linked, and says so
    prospect = [d for d in records(book, "Opportunities") if not d["CustomerID"]]
    assert [r.reason for r in deals.rejected] == ["no_customer"] * len(prospect) == [
        "no_customer"]

    def key(rows: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
        """The records as the engine reads them (an amount typed "¥12,000" is 12000)."""
        return sorted(tuple(parse_number(r[f]) if f == "Amount" else r[f] for f in fields)
                      for r in rows if r.get("CustomerID"))

    assert key(records(fresh, "Customers"), "CustomerID", "Name", "City", "Phone") == key(
        records(book, "Customers"), "CustomerID", "Name", "City", "Phone")
    assert key(records(fresh, "Opportunities"), "OpportunityID", "Opportunity", "CustomerID",
               "Stage", "Amount") == key(records(book, "Opportunities"), "OpportunityID",
                                         "Opportunity", "CustomerID", "Stage", "Amount")


@pytest.mark.parametrize("target", ["hubspot", "salesforce", "zoho", "odoo"])
def test_every_crms_export_comes_back_as_the_same_customers_and_deals(
        tmp_path: Path, target: str) -> None:
    """Each target's files, imported in their order into a new workbook, give back every
    customer and every deal with its ID, name, customer and amount: Salesforce by its
    External ID columns, Zoho by Xlcrm_Id and account names, Odoo by its external IDs
    (``xlcrm.customer_C-000001`` in ``id`` and ``partner_id/id``, found by their values).
    A prospect's company that the CRM needs as an account (Zoho, Odoo) comes back as a
    customer of its own with a new ID, never one already taken; notes and tasks whose parent
    is not a customer are rejected, never made into nameless customers."""
    book = typed_book(tmp_path)
    _, folder = export_workbook(book, target)
    fresh = tmp_path / "fresh" / "crm.xlsx"
    fresh.parent.mkdir()
    init_workbook(fresh, lang="en")
    for file in sorted(folder.glob("*.csv")):
        if file.name != "PROBLEMS.csv":
            plan = import_workbook(fresh, file, apply=True).plan
            assert plan.conflicts == [], (file.name, plan.to_json())
    before, after = records(book, "Customers"), records(fresh, "Customers")
    ids = [c["CustomerID"] for c in after]
    assert len(ids) == len(set(ids)) and all(c["Name"] for c in after)

    def rows(records: list[dict[str, Any]], *fields: str) -> set[tuple[Any, ...]]:
        return {tuple(parse_number(r[f]) if f == "Amount" else r[f] for f in fields)
                for r in records}

    fields = ("CustomerID", "Name", "City", "Phone", "Type")  # another CRM's account Type
    assert rows(before, *fields) <= rows(after, *fields)    # (Prospect) is not ours
    prospects = {d["Company"] for d in records(book, "Opportunities") if not d["CustomerID"]}
    extra = {c["Name"] for c in after} - {c["Name"] for c in before}
    assert extra == (prospects if target in ("zoho", "odoo") else set())
    deals = [d for d in records(book, "Opportunities") if d["CustomerID"]]
    assert rows(deals, "OpportunityID", "Opportunity", "CustomerID", "Amount") <= rows(
        records(fresh, "Opportunities"), "OpportunityID", "Opportunity", "CustomerID",
        "Amount")


def test_a_mapping_given_by_hand_is_saved_and_reused(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    source = write_csv(tmp_path / "odd.csv", [["Firma", "Ort", "Umsatz"],
                                              ["Initech GmbH", "Köln", "77"]])
    plan = import_workbook(book, source).plan
    assert plan.new == [] and len(plan.rejected) == 1  # nothing known: nothing imported
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"Firma": "customers.name", "Ort": "customers.city",
                                   "Umsatz": None}), encoding="utf-8")
    done = import_workbook(book, source, map_file=mapping, apply=True)
    assert [r.values for r in done.plan.new] == [
        {"name": "Initech GmbH", "city": "Köln", "customer_id": "C-000004"}]
    again = import_workbook(book, write_csv(tmp_path / "odd2.csv", [
        ["Firma", "Ort", "Umsatz"], ["Vandelay AG", "Bonn", "1"]]))  # no --map: saved
    assert [r.values["name"] for r in again.plan.new] == ["Vandelay AG"]


def test_a_bad_map_or_missing_file_is_a_clean_error(tmp_path: Path,
                                                    cli: Callable[..., Any]) -> None:
    book = typed_book(tmp_path)
    missing = cli("import", tmp_path / "nope.csv", "--into", book)
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    mapping = tmp_path / "map.json"
    mapping.write_text('{"Company": "customers.nonsense"}', encoding="utf-8")
    source = write_csv(tmp_path / "s.csv", [["Company"], ["X"]])
    bad = cli("import", source, "--into", book, "--map", mapping)
    assert bad.exit_code == 2 and "customers.nonsense" in bad.stderr


def test_an_html_preview_marks_new_rows_and_changed_cells(tmp_path: Path,
                                                         cli: Callable[..., Any]) -> None:
    book = typed_book(tmp_path)
    source = write_csv(tmp_path / "s.csv", [["Company", "Industry", "City"],
                                            ["Acme Ltd", "Retail", "Shanghai"],
                                            ["Hooli", "", "Palo Alto"]])
    page = tmp_path / "preview.html"
    result = cli("import", source, "--into", book, "--format", "html", "--out", page)
    assert result.exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert "<tr class='new'>" in html and "Hooli" in html
    assert "<span class='old'></span> → <b>Retail</b>" in html


@pytest.mark.libreoffice
def test_an_xls_saved_by_libreoffice_imports(tmp_path: Path) -> None:
    office = soffice()
    if office is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    book = typed_book(tmp_path)
    xlsx = tmp_path / "legacy.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["客户名称", "电话", "城市"])
    wb.active.append(["成都天府软件有限公司", "028-87654321", "成都"])
    wb.save(xlsx)
    out = tmp_path / "xls"
    subprocess.run([office, "--headless", "--convert-to", "xls", "--outdir", str(out),
                    str(xlsx)], check=True, capture_output=True, timeout=180,
                   env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    plan = import_workbook(book, out / "legacy.xls").plan
    assert [r.values["name"] for r in plan.new] == ["成都天府软件有限公司"]


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["Acme Ltd", "Globex GmbH", "上海小鹏贸易有限公司",
                                           "Hooli", ""]),
                          st.sampled_from(["", "Suzhou", "Berlin"]),
                          st.sampled_from(["", "Retail", "Software"]),
                          st.sampled_from(["", "021-62345678", "n/a"])),
                min_size=1, max_size=6))
def test_no_import_ever_blanks_a_value_or_writes_on_a_dry_run(
        tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str, str]]) -> None:
    folder = tmp_path_factory.mktemp("prop")
    template = folder / "template"
    book = typed_book(template)
    source = write_csv(folder / "s.csv", [["Company", "City", "Industry", "Phone"], *rows])
    before = digest(book)
    kept = {(r["CustomerID"], k): v for r in records(book, "Customers")
            for k, v in r.items() if v != ""}
    import_workbook(book, source)
    assert digest(book) == before
    import_workbook(book, source, prefer="source", apply=True)
    after = {(r["CustomerID"], k): v for r in records(book, "Customers")
             for k, v in r.items() if v != ""}
    assert set(kept) <= set(after)  # no filled cell became blank
    shutil.rmtree(folder, ignore_errors=True)


def test_key_matches_customers_by_one_field_alone(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    ids = workbook_ids(book)["customers"]
    source = write_csv(tmp_path / "by-mail.csv", [
        ["Company", "Email", "City"],
        ["Totally Other Ltd", "A@GLOBEX.DE", "Hamburg"],  # the same mailbox, folded
        ["Someone New", "x@new.example", "Rome"],
        ["Someone New again", "x@new.example", ""]])  # one new customer, by the key
    # the matcher alone calls a shared mailbox under another name two customers
    assert "Totally Other Ltd" in [r.values["name"] for r in import_workbook(book,
                                                                            source).plan.new]
    plan = import_workbook(book, source, key="email").plan
    assert [r.values["name"] for r in plan.new] == ["Someone New"]
    assert [(c.record_id, c.field) for c in plan.conflicts] == [
        (ids[2], "name"), (ids[2], "city")]


def test_the_log_made_by_a_second_process_is_the_log_made_in_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same import into two copies of one workbook, logged in this process and by a
    second one (whose changes come back as plain tuples): the change logs hold the same
    entries, value for value, and the snapshots the next sync compares with are the same."""
    import sqlite3

    from xlcrm import jobs
    from xlcrm.history import history_path

    (tmp_path / "here").mkdir()
    book = typed_book(tmp_path / "here")
    twin = tmp_path / "there" / book.name
    twin.parent.mkdir()
    shutil.copyfile(book, twin)
    shutil.copytree(book.parent / ".xlcrm", twin.parent / ".xlcrm")
    source = write_csv(tmp_path / "mixed.csv", [
        ["Company", "Phone", "Deal Name", "Stage", "Amount", "Close Date", "Notes"],
        ["ACME LTD.", "010-5555-0100", "Support renewal", "Qualified", "3,000", "2027年1月5日",
         "renewal, \"gold\"\nline two"],
        ["Hooli Inc", "415-555-0100", "Pilot seats", "Lead", "1.2万", "2027-02-01", ""]])
    logs = []
    for path, start in ((book, 10**9), (twin, 1)):
        monkeypatch.setattr(jobs, "PARALLEL_SYNC", start)
        done = import_workbook(path, source, apply=True)
        assert done.applied
        with sqlite3.connect(history_path(path)) as db:
            logs.append((db.execute("SELECT sheet, record_id, action, field, old, new, user, "
                                    "job FROM entries WHERE run_id = ? ORDER BY seq",
                                    (done.import_id,)).fetchall(),
                         db.execute("SELECT sheet, record_id, vals FROM snapshot ORDER BY "
                                    "sheet, record_id").fetchall()))
    here, there = logs
    assert here == there
    added = [json.loads(new) for _, _, action, _, _, new, _, _ in here[0] if action == "added"]
    assert {"ACME LTD.", "Hooli Inc"} & {a.get("name") for a in added}
    assert all(job == "import" for *_, job in here[0])


@pytest.mark.parametrize("forked", [False, True])
def test_the_import_logs_exactly_what_it_wrote(tmp_path: Path, forked: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The import logs its changes from the plan, not from a second read (in a second process
    from `PARALLEL_SYNC` records): what it logs must be what the file holds, or the next sync
    would blame the user for the import's cells. So the workbook is opened and saved by
    another program (new bytes, same values) and synced: no record may show a change."""
    import sqlite3

    from xlcrm import importer, jobs
    from xlcrm.guard import file_sha256
    from xlcrm.history import History, history_path
    from xlcrm.jobs import sync_workbook

    if forked:
        monkeypatch.setattr(jobs, "PARALLEL_SYNC", 1)
        monkeypatch.setattr(importer, "PARALLEL_TITLES", 1)
    book = typed_book(tmp_path)
    source = write_csv(tmp_path / "mixed.csv", [
        ["Company", "Phone", "Industry", "Deal Name", "Stage", "Amount", "Probability",
         "Close Date", "Owner", "Contact date", "Summary"],
        ["ACME LTD.", "", "Manufacturing", "Support renewal", "Qualified", "3,000", "40%",
         "2027年1月5日", "Alice Chen", "2026/11/3", "Called about renewal"],
        ["Hooli Inc", "415-555-0100", "Software", "Pilot seats", "Lead", "1.2万", "",
         "2027-02-01", "Nobody Known", "2026-11-20", "Intro call"],
        ["Hooli Inc", "415-555-0100", "", "Support", "Quote", "900.50", "", "", "", "", ""]])
    done = import_workbook(book, source, apply=True)
    assert done.applied and done.plan.changes and len(done.plan.new) == 6
    with sqlite3.connect(history_path(book)) as db:
        logged = db.execute("SELECT action, count(*) FROM entries WHERE run_id = ? GROUP BY "
                            "action", (done.import_id,)).fetchall()
    assert dict(logged) == {"added": 6, "changed": len(done.plan.changes)}
    with History(book) as history:  # the chain the second process extended is whole
        assert history.verify() == []
        assert history.load_merge(done.import_id)["sha_after"] == file_sha256(book)
        added = {(e["sheet"], e["record_id"]): e["new"] for e in history.entries()
                 if e["run_id"] == done.import_id and e["action"] == "added"}
        for (sheet, rid), values in added.items():  # what restore and the next diff read
            assert history.snapshot_values(sheet, [rid]) == {rid: values}
    user_edit(book, lambda wb: None)  # opened and saved elsewhere: new bytes, same values
    sync_workbook(book, today=dt.date(2026, 12, 1))
    with sqlite3.connect(history_path(book)) as db:
        (run,) = db.execute("SELECT run_id FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
        after = db.execute("SELECT sheet, record_id, field, old, new FROM entries WHERE "
                           "run_id = ? AND user != 'xlcrm'", (run,)).fetchall()
    assert after == []


def test_an_empty_preview_says_why_nothing_would_be_written(
        tmp_path: Path, zh_book: Path, cli: Callable[..., Any]) -> None:
    """A sheet Excel saved whose headers name no field (Region, Item, Volume, Month), a file
    with a header and no rows, and a source that only conflicts with the workbook: each
    preview says its own reason, in the workbook's language, never that the workbook holds
    it all already."""
    from tests.excel_parts import EXCEL_MADE

    book = typed_book(tmp_path)
    before = book.read_bytes()
    unmapped = cli("import", EXCEL_MADE / "autofilter01.xlsx", "--into", book)
    assert "no column of the source names a field" in unmapped.output
    assert "Region, Item, Volume, Month" in unmapped.output and "--map" in unmapped.output
    assert "holds all of it" not in unmapped.output
    chinese = cli("import", EXCEL_MADE / "autofilter01.xlsx", "--into", zh_book)
    assert "没有一列对应 xlcrm 的字段" in chinese.output
    empty = cli("import", write_csv(tmp_path / "empty.csv", [["Company", "Phone"]]),
                "--into", book)
    assert "no rows under its header" in empty.output
    orphans = cli("import", write_csv(tmp_path / "orphans.csv", [
        ["Deal Name", "Amount"], ["Lone deal", "100"]]), "--into", book)
    assert "every row was rejected" in orphans.output
    name = read_workbook_names(book)[0]
    conflict = cli("import", write_csv(tmp_path / "conflict.csv", [
        ["Customer ID", "Company", "City"], [name[0], name[1], "Somewhere Else"]]),
        "--into", book)
    assert "conflict with the workbook's (1)" in conflict.output
    assert "--prefer" in conflict.output
    same = cli("import", write_csv(tmp_path / "same.csv", [
        ["Customer ID", "Company"], [name[0], name[1]]]), "--into", book)
    assert "holds all of it already" in same.output
    assert book.read_bytes() == before  # dry runs, all of them


def read_workbook_names(book: Path) -> list[tuple[str, str]]:
    """(CustomerID, Name) of each customer that has a city, as the workbook holds them."""
    from xlcrm.reader import read_workbook

    frame = read_workbook(book).sheets["customers"].frame
    return [(r.customer_id, r.name) for r in frame.itertuples() if r.city]


def test_a_customer_type_is_one_of_the_workbooks_or_listed_not_written(tmp_path: Path) -> None:
    """Customer Type takes the workbook's choices and the words for a company or a person in
    either language; another system's type (an account's Prospect, Odoo's opportunity) is
    listed among the values not understood and leaves the cell as it was."""
    book = typed_book(tmp_path)
    source = write_csv(tmp_path / "types.csv", [
        ["Company", "Phone", "Type"], ["Person One", "13900000001", "个人"],
        ["Firm Two", "13900000002", "Organisation"], ["Firm Three", "13900000003", "Prospect"]])
    plan = import_workbook(book, source).plan
    kinds = {r.values["name"]: r.values.get("kind") for r in plan.new if r.sheet == "customers"}
    assert kinds == {"Person One": "Individual", "Firm Two": "Company", "Firm Three": None}
    assert [(row, value) for row, field, value in plan.unparsed
            if field == "customers.kind"] == [(4, "Prospect")]


def test_a_refused_write_stores_none_of_the_log_the_second_process_staged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second process stages the import's log in the history while this one writes;
    when the write is refused (the workbook was opened in Excel meanwhile), none of it is
    stored, the history stays whole and usable, and the same import goes through later."""
    import sqlite3

    from xlcrm import jobs
    from xlcrm.errors import WorkbookOpen
    from xlcrm.history import History, history_path
    from xlcrm.session import FileSession

    monkeypatch.setattr(jobs, "PARALLEL_SYNC", 1)
    book = typed_book(tmp_path)
    source = write_csv(tmp_path / "mixed.csv", [
        ["Company", "Phone", "Deal Name", "Stage", "Amount"],
        ["Hooli Inc", "415-555-0100", "Pilot seats", "Lead", "1.2万"],
        ["Initech", "", "Printers", "Quote", "900"]])
    with sqlite3.connect(history_path(book)) as db:
        before = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    owner = book.with_name("~$" + book.name)
    opened = FileSession.save

    def open_in_excel_meanwhile(self: FileSession) -> Path | None:
        owner.write_bytes(b"\x03Ann" + b" " * 51)
        return opened(self)

    monkeypatch.setattr(FileSession, "save", open_in_excel_meanwhile)
    with pytest.raises(WorkbookOpen):
        import_workbook(book, source, apply=True)
    with History(book) as history:
        assert history.verify() == []
        assert len(history.entries()) == before
    monkeypatch.setattr(FileSession, "save", opened)
    owner.unlink()
    done = import_workbook(book, source, apply=True)
    assert done.applied and len(done.plan.new) == 4  # two customers, two deals
    with History(book) as history:
        assert history.verify() == []
        assert {e["record_id"] for e in history.entries() if e["run_id"] == done.import_id
                } == {r.record_id for r in done.plan.new}


def test_edits_typed_before_an_import_are_logged_first_as_the_users_own(
        tmp_path: Path) -> None:
    """A rep changes a customer's city, then imports a sheet before any sync: the city change
    is logged as the rep's edit (job ``edits``, found while the source was read), before the
    import's run, and the import's run holds only what the import did."""
    from xlcrm.history import History
    from xlcrm.reader import read_workbook

    book = typed_book(tmp_path)
    ids = read_workbook(book).sheets["customers"].frame["customer_id"].tolist()

    def as_rep(wb: Any) -> None:
        wb.properties.lastModifiedBy = "Rep Wang"

    edit_cells(book, [("customers", ids[0], "city", "Chengdu")])
    user_edit(book, as_rep)
    source = write_csv(tmp_path / "deals.csv", [
        ["Company", "Phone", "Deal Name", "Stage", "Amount"],
        ["Hooli Inc", "415-555-0100", "Pilot seats", "Lead", "1.2万"]])
    done = import_workbook(book, source, apply=True)
    with History(book) as history:
        entries = history.entries()
    city = [e for e in entries if e["field"] == "city" and e["record_id"] == ids[0]]
    assert [(e["job"], e["user"], e["new"]) for e in city] == [("edits", "Rep Wang", "Chengdu")]
    first_import = min(e["seq"] for e in entries if e["run_id"] == done.import_id)
    assert city[0]["seq"] < first_import
    assert {e["record_id"] for e in entries if e["run_id"] == done.import_id} == {
        r.record_id for r in done.plan.new}


def test_a_cell_that_cannot_be_a_key_is_parsed_alone(tmp_path: Path) -> None:
    """A source reader may hand over a value no dictionary can hold (a list from a rich
    cell): it is read as its text (it used to crash the plan), listed as not understood and
    kept as typed, and the rest of its row and column is imported."""
    from xlcrm.importer import plan_import
    from xlcrm.importmap import map_headers
    from xlcrm.reader import read_workbook
    from xlcrm.sources import SourceTable

    book = typed_book(tmp_path)
    table = SourceTable("rich.xlsx", ["Company", "Deal Name", "Amount"],
                        [["Hooli Inc", "Pilot seats", ["1", "200"]],
                         ["Hooli Inc", "Support", "900"]], [2, 3])
    plan = plan_import(read_workbook(book), table, map_headers(table.headers, None, None))
    deals = {r.values["title"]: r.values for r in plan.new if r.sheet == "opportunities"}
    assert set(deals) == {"Pilot seats", "Support"} and deals["Support"]["amount"] == 900
    assert deals["Pilot seats"]["amount"] == "['1', '200']"
    assert [(row, field) for row, field, _ in plan.unparsed] == [(2, "opportunities.amount")]
