"""Exports a full CRM imports as they are: every file's header against the columns the
target documents, keys that make a second export update instead of duplicate, formula text
escaped, and the files read back by an independent reader (pandas' CSV parser)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from tests.conftest import (
    TODAY,
    append_rows,
    cell_of,
    edit_cells,
    typed_book,
    user_edit,
    workbook_ids,
)
from xlcrm.export import TARGETS, cell
from xlcrm.jobs import export_workbook, sync_workbook
from xlcrm.reader import read_workbook

# What each target documents (docs/export.md gives the sources), by file: the columns it
# requires, and every column it knows (its standard field names, its relationship forms, the
# key field the user creates once, our own xlcrm_* properties for HubSpot).
DOCUMENTED: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "hubspot": {
        "1_companies.csv": ({"Company name", "xlcrm_id"}, {
            "Company Domain Name", "Phone Number", "City", "Street Address", "Industry",
            "Company owner", "Lifecycle Stage", "Description", "xlcrm_tier", "xlcrm_tax_id",
            "xlcrm_tags"}),
        "2_contacts.csv": ({"xlcrm_id", "Last name"}, {
            "First name", "Email", "Phone Number", "Contact owner", "Company xlcrm_id"}),
        "3_deals.csv": ({"Deal name", "Pipeline", "Deal stage", "xlcrm_id"}, {
            "Amount", "Deal currency code", "Close date", "Create date", "Deal owner",
            "Company xlcrm_id", "Closed lost reason", "Next step", "Deal description"}),
        "4_notes.csv": ({"Activity date", "Note body"}, {
            "Company xlcrm_id", "Deal xlcrm_id", "Activity assigned to", "xlcrm_id"}),
    },
    "salesforce": {
        "1_Account.csv": ({"Name", "Xlcrm_Id__c"}, {
            "Phone", "Website", "BillingStreet", "BillingCity", "Industry", "Type",
            "Owner.Username", "Description"}),
        "2_Contact.csv": ({"LastName", "Xlcrm_Id__c"}, {
            "FirstName", "Email", "Phone", "Account.Xlcrm_Id__c", "Owner.Username"}),
        "3_Opportunity.csv": ({"Name", "StageName", "CloseDate", "Xlcrm_Id__c"}, {
            "Amount", "Probability", "Account.Xlcrm_Id__c", "Owner.Username", "LeadSource",
            "NextStep", "Description"}),
        "4_Task_Opportunity.csv": ({"Subject", "Xlcrm_Id__c"}, {
            "ActivityDate", "Status", "Description", "Owner.Username",
            "Opportunity:What.Xlcrm_Id__c"}),
        "5_Task_Account.csv": ({"Subject", "Xlcrm_Id__c"}, {
            "ActivityDate", "Status", "Description", "Owner.Username",
            "Account:What.Xlcrm_Id__c"}),
    },
    "zoho": {
        "1_Accounts.csv": ({"Account_Name", "Xlcrm_Id"}, {
            "Phone", "Website", "Billing_Street", "Billing_City", "Industry", "Account_Type",
            "Owner", "Description"}),
        "2_Contacts.csv": ({"Last_Name", "Xlcrm_Id"}, {
            "First_Name", "Email", "Phone", "Account_Name.Account_Name", "Owner"}),
        "3_Deals.csv": ({"Deal_Name", "Account_Name.Account_Name", "Closing_Date", "Stage",
                         "Xlcrm_Id"}, {
            "Amount", "Probability", "Owner", "Lead_Source", "Next_Step", "Description"}),
        "4_Notes.csv": ({"Note_Title", "Note_Content"}, {
            "Xlcrm_Id", "Parent_Module", "Parent_Xlcrm_Id"}),
    },
    "odoo": {
        "1_res.partner.csv": ({"id", "name"}, {
            "is_company", "email", "phone", "street", "city", "vat", "user_id", "category_id",
            "comment", "ref"}),
        "2_res.partner_contacts.csv": ({"id", "name", "parent_id/id"}, {
            "type", "email", "phone"}),
        "3_crm.lead.csv": ({"id", "name"}, {
            "type", "partner_id/id", "partner_name", "expected_revenue", "probability",
            "date_deadline", "user_id", "stage_id", "active", "description"}),
        "4_mail.message.csv": ({"id", "model", "res_external_id", "body"}, {
            "date", "message_type"}),
    },
}


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False, encoding="utf-8")


@pytest.mark.parametrize("target", TARGETS)
def test_every_file_has_the_documented_columns_and_the_records(tmp_path: Path,
                                                               target: str) -> None:
    book = typed_book(tmp_path)
    export, folder = export_workbook(book, target)
    assert [f.name for f in export.files] == list(DOCUMENTED[target])
    ids = workbook_ids(book)
    for f in export.files:
        frame = read(folder, f.name)
        required, known = DOCUMENTED[target][f.name]
        header = set(frame.columns)
        assert required <= header, f.name
        assert header <= required | known, (f.name, header - required - known)
        assert len(frame) == len(f.rows)
    companies = read(folder, export.files[0].name)
    key = {"hubspot": "xlcrm_id", "salesforce": "Xlcrm_Id__c", "zoho": "Xlcrm_Id",
           "odoo": "ref"}[target]
    assert set(ids["customers"]) <= set(companies[key])
    deals = read(folder, export.files[2].name)
    assert len(deals) == len(ids["opportunities"])
    text = (folder / "IMPORT.md").read_text(encoding="utf-8")
    assert all(f.name in text for f in export.files)


def test_hubspot_values_stages_and_owners(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    export, folder = export_workbook(book, "hubspot")
    deals = read(folder, "3_deals.csv").set_index("Deal name")
    assert deals.at["Annual license", "Deal stage"] == "presentationscheduled"
    assert deals.at["Spare parts", "Deal stage"] == "closedwon"
    assert deals.at["Annual license", "Amount"] == "12000"  # typed "¥12,000"
    assert deals.at["Annual license", "Close date"] == "2026-12-15"  # typed 2026年12月15日
    ids = workbook_ids(book)["customers"]
    assert deals.at["Pilot", "Company xlcrm_id"] == ids[2]
    assert deals.at["Prospect deal", "Company xlcrm_id"] == ""
    companies = read(folder, "1_companies.csv").set_index("xlcrm_id")
    assert companies.at[ids[2], "Company Domain Name"] == "globex.de"
    assert export.problems == []
    assert not (folder / "PROBLEMS.csv").exists()


def test_a_second_export_updates_the_same_keys(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    first, folder = export_workbook(book, "salesforce")
    before = read(folder, "1_Account.csv")
    ids = workbook_ids(book)
    edit_cells(book, [("customers", ids["customers"][0], "city", "Suzhou")])
    cust = read_workbook(book).sheets["customers"]
    user_edit(book, append_rows(cust.name, cust.table, cust.columns, [{"name": "Umbrella"}]))
    sync_workbook(book, today=TODAY)
    second, _ = export_workbook(book, "salesforce")
    after = read(folder, "1_Account.csv")
    assert list(after["Xlcrm_Id__c"][: len(before)]) == list(before["Xlcrm_Id__c"])
    assert len(after) == len(before) + 1  # the new customer only, no copy of the others
    assert after.set_index("Xlcrm_Id__c").at[ids["customers"][0], "BillingCity"] == "Suzhou"
    assert after["Xlcrm_Id__c"].is_unique


def test_hubspot_notes_are_exported_once(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    first, folder = export_workbook(book, "hubspot")
    assert len(first.files[3].rows) == len(workbook_ids(book)["interactions"]) > 0
    second, _ = export_workbook(book, "hubspot")
    assert second.files[3].rows == []
    every, _ = export_workbook(book, "hubspot", every_note=True)
    assert len(every.files[3].rows) == len(first.files[3].rows)


def test_text_a_spreadsheet_would_run_is_escaped_numbers_and_phones_are_not(
        tmp_path: Path) -> None:
    assert [cell(v) for v in ("=HYPERLINK(\"http://x\")", "@SUM(A1)", "+cmd|' /C calc'!A0",
                              "-2+3", "\tx", "+86 21 6234 5678", "-5000", -5000.0, 12000.0,
                              "(415) 555-0134")] == [
        "'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'+cmd|' /C calc'!A0", "'-2+3", "'\tx",
        "+86 21 6234 5678", "-5000", "-5000", "12000", "(415) 555-0134"]
    book = typed_book(tmp_path)
    cust = read_workbook(book).sheets["customers"]
    user_edit(book, append_rows(cust.name, cust.table, cust.columns, [
        {"name": "Formula Ltd", "notes": "@evil"}]))
    sync_workbook(book, today=TODAY)
    cid = workbook_ids(book)["customers"][-1]  # the new customer gets a name typed as
    name, where, _ = cell_of(book, "customers", cid, "name")  # text that starts with "="

    def as_text(wb: openpyxl.Workbook) -> None:
        wb[name][where].value = "=1+1"
        wb[name][where].data_type = "s"  # a text cell, as an import or a ' prefix makes it

    user_edit(book, as_text)
    _, folder = export_workbook(book, "zoho")
    with open(folder / "1_Accounts.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    evil = next(r for r in rows if r["Account_Name"].endswith("1+1"))
    assert evil["Account_Name"] == "'=1+1" and evil["Description"].startswith("'@evil")


def test_an_owner_without_an_e_mail_is_a_problem_not_a_blank(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    book = typed_book(tmp_path)
    data = read_workbook(book)
    opp = data.sheets["opportunities"]
    user_edit(book, append_rows(opp.name, opp.table, opp.columns, [
        {"title": "Side deal", "customer_id": workbook_ids(book)["customers"][1],
         "stage": "Lead", "owner": "Zhao Nobody"}]))
    sync_workbook(book, today=TODAY)
    result = cli("export", book, "--to", "hubspot")
    assert result.exit_code == 1 and "Zhao Nobody" in result.stdout
    folder = book.with_name(f"{book.stem}-hubspot")
    deals = read(folder, "3_deals.csv").set_index("Deal name")
    assert deals.at["Side deal", "Deal owner"] == "Zhao Nobody"  # never a silent blank
    problems = read(folder, "PROBLEMS.csv")
    assert list(problems["field"]) == ["owner"]


def test_odoo_archives_lost_deals_and_links_by_external_id(tmp_path: Path) -> None:
    book = typed_book(tmp_path)
    ids = workbook_ids(book)
    edit_cells(book, [("opportunities", ids["opportunities"][2], "stage", "Lost"),
                      ("opportunities", ids["opportunities"][2], "lost_reason", "Price")])
    sync_workbook(book, today=TODAY)
    _, folder = export_workbook(book, "odoo")
    leads = read(folder, "3_crm.lead.csv").set_index("name")
    assert leads.at["Pilot", "active"] == "FALSE" and leads.at["Pilot", "probability"] == "0"
    assert "Price" in leads.at["Pilot", "description"]
    assert leads.at["Pilot", "partner_id/id"] == f"xlcrm.customer_{ids['customers'][2]}"
    assert leads.at["Prospect deal", "partner_name"] == "Initech"
    partners = read(folder, "1_res.partner.csv")
    assert set(leads["partner_id/id"]) - {""} <= set(partners["id"])


def test_stages_follow_settings_export_stages(tmp_path: Path) -> None:
    book = typed_book(tmp_path)

    def remap(wb: openpyxl.Workbook) -> None:
        ws = wb["Settings"]
        table = ws.tables["ExportStages"]
        first = openpyxl.utils.range_boundaries(table.ref)
        for row in range(first[1] + 1, first[3] + 1):
            if ws.cell(row=row, column=first[0]).value == "Proposal":
                ws.cell(row=row, column=first[0] + 1).value = "proposal_sent_custom"

    user_edit(book, remap)
    _, folder = export_workbook(book, "hubspot")
    deals = read(folder, "3_deals.csv").set_index("Deal name")
    assert deals.at["Annual license", "Deal stage"] == "proposal_sent_custom"


def test_a_chinese_workbook_gets_chinese_steps_and_output(tmp_path: Path,
                                                         cli: Callable[..., Any]) -> None:
    book = typed_book(tmp_path, "zh")
    result = cli("export", book, "--to", "salesforce")
    assert result.exit_code == 1, result.stdout  # the prospect's deal has no close date
    assert "已写入" in result.stdout and "没有预计成交日期" in result.stdout
    folder = book.with_name(f"{book.stem}-salesforce")
    assert (folder / "IMPORT.md").read_text(encoding="utf-8").startswith("# 导入 Salesforce")
    accounts = read(folder, "1_Account.csv")
    assert "上海小鹏贸易有限公司" in set(accounts["Name"])
    deals = read(folder, "3_Opportunity.csv").set_index("Name")
    assert deals.at["Annual license", "StageName"] == "Value Proposition"
    assert deals.at["Pilot", "Probability"] == "50"
