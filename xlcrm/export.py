"""The way out: files HubSpot, Salesforce, Zoho and Odoo import as they are.

`export_data` turns a workbook as read into one CSV per object, in the order to import them,
plus an ``IMPORT.md`` with the steps in that CRM (in the workbook's language); `write_export`
writes them. The choices, per target (docs/export.md has the column tables):

- **Keys.** Our IDs become the target's upsert key, so a second export after more work
  updates records instead of duplicating them: HubSpot a unique-value property ``xlcrm_id``
  (companies, contacts, deals); Salesforce an External ID field ``Xlcrm_Id__c`` on Account,
  Contact, Opportunity and Task, children linked through ``Account.Xlcrm_Id__c``; Zoho a
  unique field ``Xlcrm_Id``; Odoo external IDs (``xlcrm.customer_C-000123``) in the ``id``
  column, children linked through ``partner_id/id``. A customer's contact gets the customer's
  ID with ``/contact``.
- **Stages** through Settings → ExportStages (a default workbook maps its stages onto each
  CRM's default pipeline); a stage missing there takes the default pipeline's stage of the
  same kind (won, lost) or, for an open stage, the one nearest in probability.
- **Owners** by e-mail from Settings → People. A person without an e-mail (or not in People)
  is listed as a problem and exported by name (HubSpot and Odoo take names; Salesforce and
  Zoho will reject those rows and say so in their error files): never a silent blank.
- **Values.** Dates as ``YYYY-MM-DD`` (each guide says which date format to pick); numbers
  plain with a point; a probability as a percentage 0–100; Odoo's lost deals archived
  (``active`` False, probability 0).
- **Interactions** as HubSpot notes, Salesforce tasks (completed), Zoho notes and Odoo
  messages. HubSpot cannot update notes by import, so its notes file holds only the
  interactions not exported before (`--all` for every one).
- **CSV.** UTF-8, a header row, RFC 4180 quoting. Text that a spreadsheet would run as a
  formula (starting with ``=``, ``@``, a tab or CR, or ``+``/``-`` followed by anything but a
  number or a phone number) is escaped with a leading ``'`` (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import normalize as nz
from . import progress, schema
from .dedupe import FREE_MAIL, PERSON_WORDS
from .importmap import PROSPECT_KEY
from .reader import WorkbookData
from .settings import Person, Settings, Stage
from .writer import state_dir

TARGETS = ("hubspot", "salesforce", "zoho", "odoo")
TARGET_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce", "zoho": "Zoho CRM",
                "odoo": "Odoo"}
CONTACT_SUFFIX = "/contact"


@dataclass
class Problem:
    """Something the export could not say the way the target wants it."""

    sheet: str
    record_id: str
    field: str
    en: str
    zh: str

    def text(self, lang: str) -> str:
        return f"{self.record_id} {self.field}: {self.zh if lang == 'zh' else self.en}"

    def to_json(self) -> dict[str, str]:
        return {"sheet": self.sheet, "record_id": self.record_id, "field": self.field,
                "message": self.en}


@dataclass
class ExportFile:
    name: str
    header: list[str]
    rows: list[list[Any]]
    keys: list[str] = field(default_factory=list)  # the records' xlcrm IDs, in row order


@dataclass
class Export:
    target: str
    lang: str
    files: list[ExportFile]
    problems: list[Problem]
    guide: str
    noted: list[str] = field(default_factory=list)  # interactions exported as notes

    def to_json(self, folder: Path | None = None) -> dict[str, Any]:
        return {"target": self.target, "folder": str(folder) if folder else None,
                "files": {f.name: len(f.rows) for f in self.files},
                "problems": [p.to_json() for p in self.problems]}


# ---------------------------------------------------------------------------------------------
# Values


_SAFE_SIGNED = re.compile(r"^[+-][\d\s().\-/]*$")  # a signed number or a phone number


_RISKY = frozenset("=@\t\r+-")


def cell(value: Any) -> str:
    """A value as CSV text, escaped where a spreadsheet would run it as a formula."""
    if type(value) is str and (not value or value[0] not in _RISKY):
        return value  # the common case, first
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-")
                                               and not _SAFE_SIGNED.match(text)):
        return "'" + text
    return text


def _dates(series: pd.Series, day_first: bool) -> list[str | None]:
    shown = nz.date_column(series, day_first).dt.strftime("%Y-%m-%d")
    return list(shown.astype(object).where(shown.notna(), None))


def _numbers(series: pd.Series, fraction: bool = False) -> list[float | None]:
    values = (nz.fraction_column(series) if fraction else nz.number_column(series)).to_numpy()
    return [None if np.isnan(v) else float(v) for v in values.tolist()]


def _texts(series: pd.Series) -> list[str | None]:
    return list(nz.map_unique(series, lambda v: None if nz.is_blank(v) else
                              nz.text(v).strip()))


def split_name(name: str | None) -> tuple[str, str]:
    """(first, last) of a person's name: "John Smith" → John / Smith; a Chinese name by its
    surname: 张伟 → 伟 / 张, 欧阳修 → 修 / 欧阳; one word is a last name (Salesforce needs one)."""
    text = (name or "").strip()
    if not text:
        return "", ""
    if " " not in text and re.fullmatch(r"[\u3400-\u9fff·]{2,}", text):
        surname = text[:2] if text[:2] in _COMPOUND_SURNAMES else text[:1]
        return text[len(surname):], surname
    parts = text.split()
    return (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", parts[0])


_COMPOUND_SURNAMES = frozenset({"欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙",
                                "慕容", "令狐", "长孙", "宇文", "司徒", "夏侯", "端木", "澹台"})


# ---------------------------------------------------------------------------------------------
# The workbook as plain records


@dataclass
class Book:
    """The workbook's records as lists of typed values, each column converted once."""

    customers: list[dict[str, Any]]
    opportunities: list[dict[str, Any]]
    interactions: list[dict[str, Any]]
    settings: Settings
    lang: str
    custom: dict[str, list[str]]  # sheet key -> declared Custom Field columns (frame names)
    skipped: dict[str, int]  # records without an ID


def book_of(data: WorkbookData) -> Book:
    day_first = nz.dayfirst(data.settings.options.date_order, data.lang)
    out: dict[str, list[dict[str, Any]]] = {}
    custom: dict[str, list[str]] = {}
    skipped: dict[str, int] = {}
    for key in ("customers", "opportunities", "interactions"):
        sheet = data.sheets[key]
        frame = sheet.frame
        sdef = schema.SHEETS_BY_KEY[key]
        columns: dict[str, list[Any]] = {}
        for f in sdef.fields:
            series = frame[f.key] if f.key in frame.columns else pd.Series(
                [None] * len(frame), dtype=object)
            columns[f.key] = (_dates(series, day_first) if f.type == "date" else
                              _numbers(series, f.type == "percent")
                              if f.type in ("money", "number", "percent", "rating")
                              else _texts(series))
        names = []
        for found, cf in data.custom_columns(key):
            if found not in columns:
                columns[found] = (_dates(frame[found], day_first) if cf.type == "date"
                                  else _numbers(frame[found]) if cf.type == "number"
                                  else _texts(frame[found]))
                names.append(found)
        custom[key] = names
        records = [dict(zip(columns, values, strict=True))
                   for values in zip(*columns.values(), strict=True)]
        id_field = sdef.id_field or ""
        out[key] = [r for r in records if r[id_field]]
        skipped[key] = len(records) - len(out[key])
    return Book(out["customers"], out["opportunities"], out["interactions"], data.settings,
                data.lang, custom, skipped)


# ---------------------------------------------------------------------------------------------
# What every target needs: owners, stages, domains


class Context:
    def __init__(self, book: Book, target: str) -> None:
        self.book, self.target = book, target
        self.problems: list[Problem] = []
        self._stage_names = self._stages()
        self.customers = {nz.record_id(c["customer_id"]): c for c in book.customers}
        self._people: dict[str, Person | None] = {}

    def owner(self, sheet: str, record_id: str, name: str | None) -> str | None:
        """The owner's e-mail; else the name as typed, with a problem listed."""
        if not name:
            return None
        if name not in self._people:  # each distinct owner looked up once
            self._people[name] = self.book.settings.person(name)
        person = self._people[name]
        if person is not None and person.email:
            return person.email
        why = (("has no e-mail in Settings → People", "在设置 → 人员中没有邮箱") if person
               else ("is not in Settings → People", "不在设置 → 人员中"))
        self.problems.append(Problem(sheet, record_id, "owner", f"{name} {why[0]}: exported "
                                     "by name, which the target may reject",
                                     f"{name}{why[1]}：按姓名导出，目标系统可能拒绝"))
        return name

    def _stages(self) -> dict[str, str]:
        settings = self.book.settings
        mapped = {schema.normalize_value(e.stage): getattr(e, self.target)
                  for e in settings.export_stages if getattr(e, self.target)}
        defaults = list(schema.DEFAULT_EXPORT_STAGES.items())
        index = TARGETS.index(self.target)
        default_probability = {en: p for en, _, p, _, _ in schema.DEFAULT_STAGES}
        default_kind = {en: kind for en, _, _, kind, _ in schema.DEFAULT_STAGES}
        out = {}
        for stage in settings.stages:
            key = schema.normalize_value(stage.name)
            if key in mapped:
                out[key] = mapped[key]
                continue
            same = [(abs(default_probability[en] - stage.probability), names[index])
                    for en, names in defaults if default_kind[en] == stage.kind]
            out[key] = min(same)[1] if same else defaults[0][1][index]
        return out

    def stage(self, record_id: str, value: str | None) -> tuple[str | None, Stage | None]:
        """The target's stage for a deal's stage, and our Stage."""
        stage = self.book.settings.stage(value)
        if stage is None:
            if value:
                self.problems.append(Problem("opportunities", record_id, "stage",
                                             f"stage {value} is not in Settings → Stages",
                                             f"阶段 {value} 不在设置 → 阶段中"))
            return None, None
        return self._stage_names[schema.normalize_value(stage.name)], stage

    def probability(self, deal: dict[str, Any], stage: Stage | None) -> float | None:
        """A percentage 0–100: the deal's own, else its stage's."""
        value = deal.get("probability")
        if value is None and stage is not None:
            value = stage.probability
        return None if value is None else round(value * 100, 2)

    def customer_of(self, deal: dict[str, Any]) -> str | None:
        """The deal's customer ID as the customer writes it, if the customer exists."""
        found = self.customers.get(nz.record_id(deal.get("customer_id")))
        return found["customer_id"] if found else None


def domain_of(email: str | None) -> str | None:
    """A company's web domain from its e-mail, unless free mail."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower()
    return None if domain in FREE_MAIL or "." not in domain else domain


def _contact(customer: dict[str, Any]) -> tuple[str, str, str | None, str | None] | None:
    """A customer's contact person (first, last, e-mail, phone), if it has one: the Contact
    column, or the customer itself when it is an Individual."""
    person = nz.record_id(customer.get("kind")) in PERSON_WORDS
    name = customer.get("contact_name") or (customer.get("name") if person else None)
    if not name and not (person and customer.get("email")):
        return None
    first, last = split_name(name)
    return first, last or (customer.get("email") or ""), customer.get("email"), \
        customer.get("phone")


def _note_body(interaction: dict[str, Any]) -> str:
    parts = [interaction.get("kind"), interaction.get("summary")]
    text = " — ".join(p for p in parts if p)
    if interaction.get("outcome"):
        text += f" ({interaction['outcome']})"
    return text or "-"


def _description(*parts: tuple[str, Any]) -> str | None:
    lines = [f"{label}: {value}" if label else str(value) for label, value in parts if value]
    return "\n".join(lines) or None


# ---------------------------------------------------------------------------------------------
# The targets


Builder = Callable[[Context, Iterable[str]], list[ExportFile]]


def _hubspot(ctx: Context, noted: Iterable[str]) -> list[ExportFile]:
    book = ctx.book
    lifecycle = {"prospect": "lead", "潜在": "lead", "active": "customer", "活跃": "customer",
                 "repeat": "customer", "复购": "customer", "dormant": "customer",
                 "沉睡": "customer", "churned": "other", "流失": "other"}
    companies = ExportFile("1_companies.csv", [
        "xlcrm_id", "Company name", "Company Domain Name", "Phone Number", "City",
        "Street Address", "Industry", "Company owner", "Lifecycle Stage", "Description",
        "xlcrm_tier", "xlcrm_tax_id", "xlcrm_tags", *book.custom["customers"]], [])
    contacts = ExportFile("2_contacts.csv", [
        "xlcrm_id", "First name", "Last name", "Email", "Phone Number", "Contact owner",
        "Company xlcrm_id"], [])
    for c in book.customers:
        cid = c["customer_id"]
        companies.rows.append([
            cid, c["name"], domain_of(c["email"]), c["phone"], c["city"], c["address"],
            c["industry"], ctx.owner("customers", cid, c["owner"]),
            lifecycle.get(schema.normalize_value(c["lifecycle"] or "")), c["notes"], c["tier"],
            c["tax_id"], c["tags"], *(c[k] for k in book.custom["customers"])])
        companies.keys.append(cid)
        person = _contact(c)
        if person:
            contacts.rows.append([cid + CONTACT_SUFFIX, person[0], person[1], person[2],
                                  person[3], ctx.owner("customers", cid, c["owner"]), cid])
            contacts.keys.append(cid + CONTACT_SUFFIX)
    deals = ExportFile("3_deals.csv", [
        "xlcrm_id", "Deal name", "Pipeline", "Deal stage", "Amount", "Deal currency code",
        "Close date", "Create date", "Deal owner", "Company xlcrm_id", "Closed lost reason",
        "Next step", "Deal description", *book.custom["opportunities"]], [])
    for o in book.opportunities:
        oid = o["opportunity_id"]
        stage, _ = ctx.stage(oid, o["stage"])
        deals.rows.append([
            oid, o["title"], "default", stage, o["amount"], o["currency"],
            o["closed_at"] or o["expected_close"], o["created_at"],
            ctx.owner("opportunities", oid, o["owner"]), ctx.customer_of(o), o["lost_reason"],
            o["next_step"], _description(("", o["notes"]), ("Company", None if
                                                            ctx.customer_of(o) else o["company"])),
            *(o[k] for k in book.custom["opportunities"])])
        deals.keys.append(oid)
    done = set(noted)
    notes = ExportFile("4_notes.csv", ["Activity date", "Note body", "Company xlcrm_id",
                                       "Deal xlcrm_id", "Activity assigned to", "xlcrm_id"], [])
    for i in book.interactions:
        iid = i["interaction_id"]
        if iid in done:
            continue
        customer = ctx.customers.get(nz.record_id(i["customer_id"]))
        notes.rows.append([i["date"], _note_body(i), customer["customer_id"] if customer
                           else None, i["opportunity_id"],
                           ctx.owner("interactions", iid, i["owner"]), iid])
        notes.keys.append(iid)
    return [companies, contacts, deals, notes]


def _salesforce(ctx: Context, noted: Iterable[str]) -> list[ExportFile]:
    book = ctx.book
    accounts, contacts = _accounts(ctx, ExportFile("1_Account.csv", [
        "Xlcrm_Id__c", "Name", "Phone", "Website", "BillingStreet", "BillingCity", "Industry",
        "Type", "Owner.Username", "Description", *book.custom["customers"]], []),
        ExportFile("2_Contact.csv", [
            "Xlcrm_Id__c", "FirstName", "LastName", "Email", "Phone", "Account.Xlcrm_Id__c",
            "Owner.Username"], []), parent_by_id=True)
    deals = ExportFile("3_Opportunity.csv", [
        "Xlcrm_Id__c", "Name", "StageName", "CloseDate", "Amount", "Probability",
        "Account.Xlcrm_Id__c", "Owner.Username", "LeadSource", "NextStep", "Description",
        *book.custom["opportunities"]], [])
    for o in book.opportunities:
        oid = o["opportunity_id"]
        stage, ours = ctx.stage(oid, o["stage"])
        close = o["closed_at"] or o["expected_close"]
        if not close:  # Salesforce requires one
            close = o["created_at"] or dt.date.today().isoformat()
            ctx.problems.append(Problem("opportunities", oid, "expected_close",
                                        f"no close date: exported as {close}",
                                        f"没有预计成交日期：按 {close} 导出"))
        deals.rows.append([
            oid, o["title"], stage, close, o["amount"], ctx.probability(o, ours),
            ctx.customer_of(o), ctx.owner("opportunities", oid, o["owner"]), o["source"],
            o["next_step"], _description(("", o["notes"]), ("Lost reason", o["lost_reason"]),
                                         ("Company", None if ctx.customer_of(o)
                                          else o["company"])),
            *(o[k] for k in book.custom["opportunities"])])
        deals.keys.append(oid)
    on_deals = ExportFile("4_Task_Opportunity.csv", [
        "Xlcrm_Id__c", "Subject", "ActivityDate", "Status", "Description", "Owner.Username",
        "Opportunity:What.Xlcrm_Id__c"], [])
    on_accounts = ExportFile("5_Task_Account.csv", [
        "Xlcrm_Id__c", "Subject", "ActivityDate", "Status", "Description", "Owner.Username",
        "Account:What.Xlcrm_Id__c"], [])
    for i in book.interactions:
        iid = i["interaction_id"]
        customer = ctx.customers.get(nz.record_id(i["customer_id"]))
        target = on_deals if i["opportunity_id"] else on_accounts
        parent = i["opportunity_id"] or (customer["customer_id"] if customer else None)
        subject = (i["summary"] or i["kind"] or "-")[:255]
        target.rows.append([iid, subject, i["date"], "Completed", _note_body(i),
                            ctx.owner("interactions", iid, i["owner"]), parent])
        target.keys.append(iid)
    return [accounts, contacts, deals, on_deals, on_accounts]


def _accounts(ctx: Context, accounts: ExportFile, contacts: ExportFile, parent_by_id: bool
              ) -> tuple[ExportFile, ExportFile]:
    """Salesforce's and Zoho's accounts and contacts, which take the same values under their
    own headers: a contact names its account by our ID (Salesforce's External ID) or by the
    account's name (Zoho's lookup)."""
    book = ctx.book
    for c in book.customers:
        cid = c["customer_id"]
        owner = ctx.owner("customers", cid, c["owner"])
        accounts.rows.append([
            cid, c["name"], c["phone"], domain_of(c["email"]), c["address"], c["city"],
            c["industry"], "Customer" if (c["won_deals"] or 0) > 0 else "Prospect", owner,
            _description(("", c["notes"]), ("Tier", c["tier"]), ("Tax ID", c["tax_id"]),
                         ("Tags", c["tags"])), *(c[k] for k in book.custom["customers"])])
        accounts.keys.append(cid)
        person = _contact(c)
        if person:
            contacts.rows.append([cid + CONTACT_SUFFIX, person[0], person[1] or c["name"],
                                  person[2], person[3], cid if parent_by_id else c["name"],
                                  owner])
            contacts.keys.append(cid + CONTACT_SUFFIX)
    return accounts, contacts


def _zoho(ctx: Context, noted: Iterable[str]) -> list[ExportFile]:
    book = ctx.book
    accounts, contacts = _accounts(ctx, ExportFile("1_Accounts.csv", [
        "Xlcrm_Id", "Account_Name", "Phone", "Website", "Billing_Street", "Billing_City",
        "Industry", "Account_Type", "Owner", "Description", *book.custom["customers"]], []),
        ExportFile("2_Contacts.csv", [
            "Xlcrm_Id", "First_Name", "Last_Name", "Email", "Phone",
            "Account_Name.Account_Name", "Owner"], []), parent_by_id=False)
    prospects: dict[str, str] = {}  # a deal's Account Name is mandatory in Zoho
    deals = ExportFile("3_Deals.csv", [
        "Xlcrm_Id", "Deal_Name", "Account_Name.Account_Name", "Stage", "Closing_Date",
        "Amount", "Probability", "Owner", "Lead_Source", "Next_Step", "Description",
        *book.custom["opportunities"]], [])
    for o in book.opportunities:
        oid = o["opportunity_id"]
        stage, ours = ctx.stage(oid, o["stage"])
        customer = ctx.customers.get(nz.record_id(o["customer_id"]))
        account = customer["name"] if customer else o["company"]
        if customer is None and o["company"]:
            prospects.setdefault(nz.company_key(o["company"]), o["company"])
        elif customer is None:
            ctx.problems.append(Problem("opportunities", oid, "customer_id",
                                        "no customer and no company: Zoho needs an Account Name",
                                        "既无客户也无意向公司：Zoho 需要客户名称"))
        close = o["closed_at"] or o["expected_close"]
        deals.rows.append([
            oid, o["title"], account, stage, close, o["amount"], ctx.probability(o, ours),
            ctx.owner("opportunities", oid, o["owner"]), o["source"], o["next_step"],
            _description(("", o["notes"]), ("Lost reason", o["lost_reason"])),
            *(o[k] for k in book.custom["opportunities"])])
        deals.keys.append(oid)
    for key, name in sorted(prospects.items()):
        accounts.rows.append([f"{PROSPECT_KEY}{key}", name, None, None, None, None, None,
                              "Prospect", None, None, *([None] * len(book.custom["customers"]))])
        accounts.keys.append(f"{PROSPECT_KEY}{key}")
    notes = ExportFile("4_Notes.csv", ["Xlcrm_Id", "Note_Title", "Note_Content",
                                       "Parent_Module", "Parent_Xlcrm_Id"], [])
    for i in book.interactions:
        iid = i["interaction_id"]
        customer = ctx.customers.get(nz.record_id(i["customer_id"]))
        module, parent = (("Deals", i["opportunity_id"]) if i["opportunity_id"] else
                          ("Accounts", customer["customer_id"] if customer else None))
        notes.rows.append([iid, f"{i['date'] or ''} {i['kind'] or ''}".strip() or "-",
                           _note_body(i), module, parent])
        notes.keys.append(iid)
    return [accounts, contacts, deals, notes]


def _odoo(ctx: Context, noted: Iterable[str]) -> list[ExportFile]:
    book = ctx.book

    def xid(kind: str, value: str) -> str:
        return f"xlcrm.{kind}_{re.sub(r'[^0-9A-Za-z_-]', '_', value)}"

    partners = ExportFile("1_res.partner.csv", [
        "id", "name", "is_company", "email", "phone", "street", "city", "vat", "user_id",
        "category_id", "comment", "ref", *book.custom["customers"]], [])
    people = ExportFile("2_res.partner_contacts.csv", [
        "id", "name", "parent_id/id", "type", "email", "phone"], [])
    for c in book.customers:
        cid = c["customer_id"]
        person = nz.record_id(c["kind"]) in PERSON_WORDS
        tags = ",".join(t.strip() for t in re.split(r"[,，;；、]", c["tags"] or "") if t.strip())
        partners.rows.append([
            xid("customer", cid), c["name"], not person, c["email"], c["phone"], c["address"],
            c["city"], c["tax_id"], ctx.owner("customers", cid, c["owner"]), tags or None,
            c["notes"], cid, *(c[k] for k in book.custom["customers"])])
        partners.keys.append(cid)
        contact = _contact(c) if not person else None
        if contact and c["contact_name"]:
            people.rows.append([xid("contact", cid), c["contact_name"], xid("customer", cid),
                                "contact", contact[2], contact[3]])
            people.keys.append(cid + CONTACT_SUFFIX)
    leads = ExportFile("3_crm.lead.csv", [
        "id", "name", "type", "partner_id/id", "partner_name", "expected_revenue", "probability",
        "date_deadline", "user_id", "stage_id", "active", "description",
        *book.custom["opportunities"]], [])
    for o in book.opportunities:
        oid = o["opportunity_id"]
        stage, ours = ctx.stage(oid, o["stage"])
        lost = ours is not None and ours.kind == "lost"
        customer = ctx.customer_of(o)
        leads.rows.append([
            xid("opportunity", oid), o["title"], "opportunity",
            xid("customer", customer) if customer else None, None if customer else o["company"],
            o["amount"], 0 if lost else ctx.probability(o, ours), o["expected_close"],
            ctx.owner("opportunities", oid, o["owner"]), stage, not lost,
            _description(("", o["notes"]), ("Next step", o["next_step"]),
                         ("Lost reason", o["lost_reason"])),
            *(o[k] for k in book.custom["opportunities"])])
        leads.keys.append(oid)
    messages = ExportFile("4_mail.message.csv", [
        "id", "model", "res_external_id", "date", "message_type", "body"], [])
    for i in book.interactions:
        iid = i["interaction_id"]
        owner = ctx.customers.get(nz.record_id(i["customer_id"]))
        model, parent = (("crm.lead", xid("opportunity", i["opportunity_id"]))
                         if i["opportunity_id"] else
                         ("res.partner", xid("customer", owner["customer_id"]))
                         if owner else ("res.partner", None))
        messages.rows.append([xid("interaction", iid), model, parent,
                              f"{i['date']} 00:00:00" if i["date"] else None, "comment",
                              _note_body(i)])
        messages.keys.append(iid)
    return [partners, people, leads, messages]


BUILDERS: dict[str, Builder] = {"hubspot": _hubspot, "salesforce": _salesforce, "zoho": _zoho,
                                "odoo": _odoo}


def export_data(data: WorkbookData, target: str, noted: Iterable[str] = ()) -> Export:
    """The files `target` imports, from a workbook as read (see the module docstring);
    `noted`: interactions exported as HubSpot notes before (left out of the notes file)."""
    progress.step("export")
    if target not in BUILDERS:
        raise ValueError(target)
    book = book_of(data)
    ctx = Context(book, target)
    files = BUILDERS[target](ctx, noted)
    for key, count in book.skipped.items():
        if count:
            ctx.problems.append(Problem(key, "-", "id", f"{count} records without an ID were "
                                        "not exported: run xlcrm sync first",
                                        f"{count} 条记录没有编号，未导出：请先运行 xlcrm sync"))
    noted_now = files[-1].keys if target == "hubspot" else []
    return Export(target, data.lang, files, ctx.problems,
                  guide(target, data.lang, files), list(noted_now))


def default_folder(workbook: Path, target: str) -> Path:
    return workbook.with_name(f"{workbook.stem}-{target}")


def write_export(export: Export, folder: Path) -> None:
    """Write the files, ``IMPORT.md`` and (when there are any) ``PROBLEMS.csv`` into
    `folder`, each through a temporary file replaced at the end (a file is whole or as it
    was)."""
    folder.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    for f in export.files:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(f.header)
        writer.writerows([cell(v) for v in row] for row in f.rows)
        texts[f.name] = buffer.getvalue()
    texts["IMPORT.md"] = export.guide
    problems = folder / "PROBLEMS.csv"
    if export.problems:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["sheet", "record_id", "field", "problem"])
        writer.writerows([p.sheet, p.record_id, p.field, cell(p.zh if export.lang == "zh"
                                                              else p.en)]
                         for p in export.problems)
        texts["PROBLEMS.csv"] = buffer.getvalue()
    for name, text in texts.items():
        temp = folder / f".{name}.tmp"
        temp.write_text(text, encoding="utf-8", newline="")
        temp.replace(folder / name)
    if not export.problems:
        problems.unlink(missing_ok=True)


def noted_before(workbook: Path) -> set[str]:
    """Interactions exported as HubSpot notes before (HubSpot cannot update notes)."""
    try:
        return set(json.loads((state_dir(workbook) / "export-hubspot.json").read_text(
            encoding="utf-8"))["notes"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def remember_noted(workbook: Path, ids: Iterable[str]) -> None:
    target = state_dir(workbook) / "export-hubspot.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"notes": sorted(set(ids))}), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# IMPORT.md


def guide(target: str, lang: str, files: list[ExportFile]) -> str:
    """The steps in the target CRM, in the workbook's language."""
    listing = "\n".join(f"{n}. `{f.name}` ({len(f.rows)})" for n, f in enumerate(files, 1))
    steps = _GUIDES[target][1 if lang == "zh" else 0]
    title = (f"# 导入 {TARGET_NAMES[target]}" if lang == "zh"
             else f"# Importing into {TARGET_NAMES[target]}")
    order = "按此顺序导入以下文件：" if lang == "zh" else "Import these files in this order:"
    return f"{title}\n\n{order}\n\n{listing}\n\n{steps.strip()}\n"


_GUIDES: dict[str, tuple[str, str]] = {
    "hubspot": ("""
Once, before the first import: in Settings → Properties create a single-line text property
`xlcrm_id` with "Require unique values" on, for Companies, Contacts and Deals. (The `xlcrm_*`
columns tier, tax ID and tags can be created as properties too, or skipped while mapping.)

For each file: Contacts/Companies/Deals → Import → File from computer → One file → One
object, the object of the file. Map `xlcrm_id` to the property above; map "Company xlcrm_id"
(and "Deal xlcrm_id") as an association to the company (deal) by its `xlcrm_id`. Choose the
date format **Year-Month-Day**. Owners are matched by e-mail.

Importing again later updates the records with the same `xlcrm_id` instead of adding new
ones. HubSpot cannot update notes by import, so `4_notes.csv` holds only the interactions not
exported before (`xlcrm export --all` writes every one). Limits: files up to 512 MB and
1,048,576 rows on paid plans (20 MB on the free tools); HubSpot checks the first 1000 rows
while you map and gives an error file afterwards.
""", """
首次导入前：在 设置 → 属性 中为公司、联系人和交易各创建一个单行文本属性 `xlcrm_id`，并勾选
"要求唯一值"。（`xlcrm_*` 开头的等级、税号、标签列也可以创建为属性，或在映射时跳过。）

每个文件：联系人/公司/交易 → 导入 → 从计算机导入文件 → 一个文件 → 一个对象，选该文件的对象。
把 `xlcrm_id` 映射到上述属性；把 "Company xlcrm_id"（及 "Deal xlcrm_id"）映射为按 `xlcrm_id`
关联公司（交易）。日期格式选 **年-月-日**。负责人按邮箱匹配。

以后再次导入时，`xlcrm_id` 相同的记录会被更新，而不是重复新建。HubSpot 不能通过导入更新备注，
所以 `4_notes.csv` 只包含此前未导出过的跟进记录（`xlcrm export --all` 导出全部）。限制：付费版
单个文件最大 512 MB、1,048,576 行（免费版 20 MB）；映射时 HubSpot 检查前 1000 行，导入后提供
错误文件。
"""),
    "salesforce": ("""
Once, before the first import: create a custom text field `Xlcrm_Id__c` marked **External
ID** and **Unique** on Account, Contact, Opportunity and Task (Activity).

Use Data Loader (the Data Import Wizard cannot import Opportunities): for each file choose
**Upsert**, the object, and `Xlcrm_Id__c` as the matching field; Data Loader maps the headers
as they are. `Account.Xlcrm_Id__c` links a contact or deal to its account, and the task
files' `Opportunity:What.Xlcrm_Id__c` / `Account:What.Xlcrm_Id__c` link each task to its deal
or account (the polymorphic-field form of the Bulk API). Owners are matched through
`Owner.Username`, which assumes your users' usernames are their e-mail addresses: change the
column or the users otherwise. Dates are `yyyy-MM-dd`.

Importing again later updates the records with the same `Xlcrm_Id__c`. Data Loader writes a
success and an error file for each run; keep them. Limits: 5 million records per run (150
million with Bulk API 2.0), 32,000 characters a field.
""", """
首次导入前：在 客户（Account）、联系人（Contact）、业务机会（Opportunity）和任务（Task）上
各创建一个自定义文本字段 `Xlcrm_Id__c`，勾选 **外部 ID** 和 **唯一**。

使用 Data Loader（数据导入向导不能导入业务机会）：每个文件选择 **Upsert**、对应对象，并以
`Xlcrm_Id__c` 作为匹配字段；表头可直接映射。`Account.Xlcrm_Id__c` 把联系人或业务机会关联到
客户，任务文件中的 `Opportunity:What.Xlcrm_Id__c` / `Account:What.Xlcrm_Id__c` 把任务关联到
业务机会或客户（Bulk API 的多态字段写法）。负责人通过 `Owner.Username` 匹配，这要求用户名
就是邮箱；否则请修改该列或用户。日期格式为 `yyyy-MM-dd`。

以后再次导入时，`Xlcrm_Id__c` 相同的记录会被更新。Data Loader 每次运行都会生成成功和错误
文件，请保留。限制：每次最多 500 万条（Bulk API 2.0 为 1.5 亿条），每个字段最多 32,000 字符。
"""),
    "zoho": ("""
Once, before the first import: add a single-line field `Xlcrm_Id` with **Do not allow
duplicate values** to Accounts, Contacts and Deals.

For each file: the module → Import → From file; pick the file, map the headers (they are
Zoho's API names), and under "duplicates" choose **update** matched by `Xlcrm_Id`. Choose the
date format **yyyy-MM-dd**. Owners are matched by their exact e-mail address. A deal's account
is found by its name (`Account_Name.Account_Name`); prospects' companies are in the accounts
file with an `Xlcrm_Id` starting `prospect:`.

Notes need the Zoho record ID of their parent: after the other imports, export Accounts and
Deals with their Record Id and `Xlcrm_Id`, then import `4_Notes.csv` through "Migrate data
from other CRM" with `Parent_Xlcrm_Id` looked up to that Record Id. Limits per batch: 5,000
rows for .xlsx files; CSV 1,000 (Free) to 30,000 (Enterprise).
""", """
首次导入前：在 客户（Accounts）、联系人（Contacts）和 商机（Deals）模块各添加一个单行字段
`Xlcrm_Id`，并勾选 **不允许重复值**。

每个文件：对应模块 → 导入 → 从文件导入；选择文件，映射表头（即 Zoho 的 API 名称），在"重复
记录"处选择按 `Xlcrm_Id` **更新**。日期格式选 **yyyy-MM-dd**。负责人按准确的邮箱地址匹配。
商机的客户按名称匹配（`Account_Name.Account_Name`）；意向公司作为客户写在客户文件中，其
`Xlcrm_Id` 以 `prospect:` 开头。

备注需要其所属记录在 Zoho 中的记录 ID：其余文件导入后，导出客户和商机的 Record Id 与
`Xlcrm_Id`，再通过"从其他 CRM 迁移数据"导入 `4_Notes.csv`，把 `Parent_Xlcrm_Id` 对应到该
Record Id。每批限制：.xlsx 文件 5,000 行；CSV 为 1,000（免费版）到 30,000（企业版）。
"""),
    "odoo": ("""
For each file: open the model's list view (Contacts for `res.partner`, CRM → Pipeline for
`crm.lead`), Favorites → Import records → Upload File, then **Import**. The `id` column is the
External ID (`xlcrm.customer_C-000123`): importing again later updates those records instead
of adding new ones. `partner_id/id` and `parent_id/id` link deals and contacts to their
customer by that External ID. Salespeople (`user_id`) and stages (`stage_id`) are matched by
name; tags (`category_id`) by name, comma-separated.

Lost deals are archived (`active` false, probability 0): Odoo has no Lost stage; filter on
Archived to see them. An empty cell empties the field in Odoo, so re-import only files made by
`xlcrm export`. `4_mail.message.csv` ties each interaction to its record by External ID
(`res_external_id`), which needs the community module `import_res_id`
(odoo-addon-import-res-id); without it, skip that file. Very large files time out: split
them.
""", """
每个文件：打开对应模型的列表视图（`res.partner` 在 联系人，`crm.lead` 在 CRM → 管道），
收藏夹 → 导入记录 → 上传文件，然后点 **导入**。`id` 列是外部 ID（`xlcrm.customer_C-000123`）：
以后再次导入会更新这些记录而不是新建。`partner_id/id` 和 `parent_id/id` 通过外部 ID 把商机和
联系人关联到客户。销售员（`user_id`）和阶段（`stage_id`）按名称匹配；标签（`category_id`）
按名称、以逗号分隔。

输单的商机会被归档（`active` 为 false，赢率 0）：Odoo 没有"输单"阶段，筛选"已归档"即可看到。
Odoo 中空单元格会清空字段，所以请只重新导入 `xlcrm export` 生成的文件。
`4_mail.message.csv` 通过外部 ID（`res_external_id`）把跟进记录关联到对应记录，需要社区模块
`import_res_id`（odoo-addon-import-res-id）；没有它就跳过该文件。过大的文件会超时：请拆分。
"""),
}
