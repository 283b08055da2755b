"""Which column of a source is which field: synonyms, fuzzy matching, saved mappings.

A source column maps to a **concept**: ``customers.<field>``, ``opportunities.<field>``,
``interactions.<field>``, or one of the shared concepts a mixed customer-and-deal sheet has
once per row (``owner``, ``created``, ``notes``, ``source``: they go to the deal when the row
has one, else to the customer), the halves of a person's name (``first_name``,
``last_name``: joined into the customer's Contact) and ``key`` (an ID column whose sheet
depends on what the file holds: our own export's ``xlcrm_id``). The synonyms cover the
workbook's own English and Chinese headers, common English and Chinese wording, and the
export columns of HubSpot, Salesforce, Zoho, Odoo and 简道云 (`SYNONYMS`; a user adds more with
``--map``). Headers are folded as the workbook's are (case, width, spaces); a header that is
no synonym is matched with rapidfuzz against all of them, and taken from a similarity of
`FUZZY_FROM` with that confidence. A column left over whose values are our own external IDs
(Odoo's ``xlcrm.customer_C-000123``) is mapped by them (`by_values`). Columns that map to
nothing are listed and left out.

The mapping used is saved in ``.xlcrm/<workbook>/import-mappings.json``, keyed by the
source's folded header row, and reused the next time the same header row comes in; ``--map
FILE`` (JSON: ``{"source header": "customers.city" or null}``) overrides it column by column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import schema
from .normalize import is_blank
from .writer import state_dir

FUZZY_FROM = 88  # rapidfuzz WRatio from which an unknown header is taken as a synonym
SHARED = ("owner", "created", "notes", "source")
NAME_PARTS = ("first_name", "last_name")

# concept -> the headers that mean it (besides the workbook's own labels)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "key": ("xlcrm_id", "Xlcrm_Id__c", "Xlcrm_Id", "xlcrm id", "ref"),
    "customers.customer_id": ("Customer ID", "客户ID", "客户 ID", "Company xlcrm_id",
                              "Account.Xlcrm_Id__c", "客户代码"),
    "customers.name": ("Company", "Company Name", "Account", "Account Name", "Account_Name",
                       "Account_Name.Account_Name", "Customer", "Customer Name",
                       "Organization", "Organisation", "Associated Company", "partner_name",
                       "partner_id", "客户", "公司", "公司名称", "企业名称", "单位名称",
                       "客户全称", "客户名", "意向公司", "企业"),
    "customers.kind": ("Customer Type", "Account Type", "Account_Type", "客户类别",
                       "客户性质"),
    "customers.industry": ("Industry", "Sector", "行业", "所属行业", "industry_id"),
    "customers.tier": ("Tier", "Rating", "Level", "Customer Level", "xlcrm_tier", "等级",
                       "客户级别", "客户分级"),
    "customers.lifecycle": ("Lifecycle Stage", "Lifecycle", "生命周期", "客户阶段"),
    "customers.contact_name": ("Contact", "Contact Name", "Contact Person", "contact_name",
                               "Primary Contact", "联系人", "联系人姓名", "对接人"),
    "customers.email": ("Email", "E-mail", "Email Address", "Contact Email", "email_from",
                        "Work Email", "邮箱", "电子邮箱", "邮件", "联系邮箱", "电子邮件"),
    "customers.phone": ("Phone", "Phone Number", "Telephone", "Tel", "Mobile",
                        "Mobile Phone", "Contact Phone", "Work Phone", "电话", "手机", "手机号",
                        "联系电话", "座机", "电话号码", "手机号码", "联系方式"),
    "customers.city": ("City", "Town", "Billing City", "BillingCity", "Billing_City",
                       "Mailing City", "城市", "所在城市", "所在地"),
    "customers.address": ("Address", "Street", "Street Address", "BillingStreet",
                          "Billing_Street", "Billing Street", "Mailing Street", "street",
                          "地址", "详细地址", "公司地址", "联系地址", "通讯地址"),
    "customers.tax_id": ("Tax ID", "VAT", "VAT Number", "Tax Number", "vat", "xlcrm_tax_id",
                         "统一社会信用代码", "社会信用代码", "信用代码", "税号", "纳税人识别号"),
    "customers.tags": ("Tags", "Labels", "category_id", "xlcrm_tags", "标签", "客户标签"),
    "opportunities.opportunity_id": ("Opportunity ID", "Deal ID", "商机ID", "商机 ID",
                                     "Deal xlcrm_id"),
    "opportunities.title": ("Opportunity", "Opportunity Name", "Deal", "Deal Name",
                            "Deal_Name", "Deal Title", "Project", "Project Name", "商机",
                            "商机名称", "商机标题", "项目", "项目名称", "机会名称", "订单名称",
                            "销售机会"),
    "opportunities.stage": ("Stage", "Deal Stage", "StageName", "Opportunity Stage",
                            "Pipeline Stage", "stage_id", "阶段", "商机阶段", "销售阶段",
                            "跟进阶段", "Deal Status"),
    "opportunities.amount": ("Amount", "Deal Amount", "Opportunity Amount", "Deal Value",
                             "Value", "Expected Revenue", "expected_revenue", "Revenue", "金额",
                             "预计金额", "商机金额", "合同金额", "预计成交金额", "销售金额",
                             "成交金额", "报价金额"),
    "opportunities.currency": ("Currency", "Deal currency code", "CurrencyIsoCode",
                               "Currency Code", "币种", "货币"),
    "opportunities.probability": ("Probability", "Probability (%)", "Win Probability",
                                  "Deal probability", "赢率", "成交概率", "可能性", "赢单率"),
    "opportunities.expected_close": ("Close Date", "CloseDate", "Closing_Date",
                                     "Closing Date", "Expected Close Date", "Expected Close",
                                     "date_deadline", "Expected Closing", "预计成交日期",
                                     "预计签单日期", "预计结单日期", "预计成交时间"),
    "opportunities.next_step": ("Next Step", "NextStep", "Next_Step", "下一步",
                                "下一步计划", "下一步行动"),
    "opportunities.next_follow_up": ("Next Follow-up", "Next Activity Date",
                                     "Next Follow Up", "下次跟进", "下次跟进日期",
                                     "下次联系时间", "下次跟进时间"),
    "opportunities.lost_reason": ("Lost Reason", "Closed Lost Reason", "Reason For Loss",
                                  "Loss Reason", "lost_reason_id", "输单原因", "丢单原因",
                                  "失败原因"),
    "interactions.date": ("Last Contact", "Last Contacted", "Last Activity Date",
                          "Activity Date", "ActivityDate", "Contact Date", "Visit Date",
                          "跟进日期", "最近跟进", "最后跟进时间", "最近跟进日期", "拜访日期",
                          "跟进时间", "联系日期"),
    "interactions.summary": ("Follow-up Notes", "Activity", "Last Activity", "Note body",
                             "Note_Content", "Call Notes", "跟进内容", "跟进记录", "沟通内容",
                             "拜访记录", "跟进情况"),
    "interactions.kind": ("Activity Type", "跟进方式", "跟进类型", "联系方式类型"),
    "interactions.outcome": ("Outcome", "Result", "跟进结果", "结果"),
    "owner": ("Owner", "Account Owner", "Deal Owner", "Company owner", "Contact owner",
              "Opportunity Owner", "Owner.Username", "Salesperson", "Sales Rep", "Sales Person",
              "Assigned To", "user_id", "Activity assigned to", "负责人", "客户经理", "销售",
              "业务员", "销售负责人", "跟进人", "归属人", "所属销售", "销售人员", "负责销售"),
    "created": ("Created", "Create Date", "Created Date", "CreatedDate", "Created Time",
                "Created At", "create_date", "创建日期", "创建时间", "录入日期", "录入时间",
                "添加时间"),
    "notes": ("Notes", "Note", "Description", "Comment", "comment", "Remarks", "Memo",
              "Deal description", "备注", "说明", "描述", "备注信息"),
    "source": ("Source", "Lead Source", "LeadSource", "Lead_Source", "Original Source",
               "来源", "客户来源", "线索来源", "商机来源"),
    "first_name": ("First Name", "FirstName", "First_Name", "Given Name", "名"),
    "last_name": ("Last Name", "LastName", "Last_Name", "Surname", "Family Name", "姓"),
}


# headers that look like a field but are none of ours: never fuzzy-matched to one
IGNORED = frozenset({"pipeline", "recordid", "hs_object_id", "id", "dealid", "companyid",
                     "accountid", "opportunityid18", "lastmodifieddate", "modifiedtime",
                     "lastmodifiedby", "createdby", "ownerid"})


def _own_labels() -> dict[str, str]:
    """The workbook's own headers (either language) as concepts."""
    out: dict[str, str] = {}
    for sdef in schema.DATA_SHEETS:
        for f in sdef.fields:
            if f.engine:
                continue
            concept = f"{sdef.key}.{f.key}"
            if f.key in ("owner", "created_at", "notes", "source"):
                concept = {"owner": "owner", "created_at": "created", "notes": "notes",
                           "source": "source"}[f.key]
            if sdef.key == "opportunities" and f.key == "customer_id":
                concept = "customers.customer_id"
            if sdef.key == "opportunities" and f.key == "company":
                concept = "customers.name"
            if sdef.key == "opportunities" and f.key.startswith("contact_"):
                concept = {"contact_name": "customers.contact_name",
                           "contact_email": "customers.email",
                           "contact_phone": "customers.phone"}[f.key]
            if sdef.key == "interactions" and f.key in ("customer_id", "opportunity_id"):
                concept = f"{'customers' if f.key == 'customer_id' else 'opportunities'}." \
                          f"{f.key}"
            if sdef.key == "interactions" and f.key == "follow_up":
                concept = "opportunities.next_follow_up"
            for text in (f.en, f.zh):
                out.setdefault(schema.normalize_header(text), concept)
    return out


def synonym_table() -> dict[str, str]:
    """Every known header, folded, to its concept (the workbook's own labels first)."""
    table = _own_labels()
    for concept, names in SYNONYMS.items():
        for name in names:
            table.setdefault(schema.normalize_header(name), concept)
    return table


_TABLE: dict[str, str] | None = None


def concept_of(header: str) -> tuple[str | None, float]:
    """The concept a header names and the confidence (1.0 for a synonym)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = synonym_table()
    folded = schema.normalize_header(header)
    if not folded or folded in IGNORED:
        return None, 0.0
    if folded in _TABLE:
        return _TABLE[folded], 1.0
    from rapidfuzz import fuzz, process

    found = process.extractOne(folded, list(_TABLE), scorer=fuzz.WRatio,
                               score_cutoff=FUZZY_FROM)
    if found is None:
        return None, 0.0
    return _TABLE[found[0]], round(found[1] / 100, 2)


def is_known(header: str) -> bool:
    return concept_of(header)[0] is not None


@dataclass
class Column:
    header: str
    concept: str | None
    confidence: float
    how: str  # "synonym", "fuzzy", "saved", "given", "values" (`by_values`), "none", "second"


BARE_NAMES = frozenset({"name", "名称", "名字"})  # a deal's name in a deals export


def map_headers(headers: list[str], given: dict[str, str | None] | None = None,
                saved: dict[str, str | None] | None = None) -> list[Column]:
    """The concept of each header: `given` (--map) first, then a saved mapping of this header
    row, then synonyms and fuzzy matching. A concept is taken once: a second column with the
    same meaning is left out (listed). In a file of deals (a stage or an amount) with no
    title column, a bare "name" is the deal's name (Odoo's crm.lead, Salesforce's
    Opportunity export), and the customer's name comes from the next column that says so."""
    wanted: list[tuple[str | None, float, str]] = []
    for header in headers:
        if given and header in given:
            wanted.append((given[header], 1.0, "given"))
        elif saved and header in saved:
            wanted.append((saved[header], 1.0, "saved"))
        else:
            concept, confidence = concept_of(header)
            wanted.append((concept, confidence, "none" if concept is None else
                           "synonym" if confidence == 1.0 else "fuzzy"))
    concepts = {w[0] for w in wanted}
    if "opportunities.title" not in concepts and concepts & {"opportunities.stage",
                                                             "opportunities.amount"}:
        for n, (header, (concept, confidence, how)) in enumerate(zip(headers, wanted,
                                                                     strict=True)):
            if concept == "customers.name" and how in ("synonym", "fuzzy") and \
                    schema.normalize_header(header) in BARE_NAMES:
                wanted[n] = ("opportunities.title", confidence, how)
                break
    out: list[Column] = []
    taken: set[str] = set()
    for header, (concept, confidence, how) in zip(headers, wanted, strict=True):
        if concept is not None and concept in taken:
            concept, how = None, "second"
        if concept is not None:
            _check_concept(concept)
            taken.add(concept)
        out.append(Column(header, concept, confidence if concept else 0.0, how))
    return out


PROSPECT_KEY = "prospect:"  # our exports' key of a prospect's company (an account for a deal)
EXTERNAL_ID = re.compile(r"xlcrm\.(customer|opportunity|interaction)_(.+)", re.S)
_OF_KIND = {"customer": "customers.customer_id", "opportunity": "opportunities.opportunity_id",
            "interaction": "interactions.interaction_id"}


def by_values(columns: list[Column], rows: list[list[Any]], sample: int = 200) -> list[Column]:
    """Columns no header decided whose values are xlcrm's own external IDs
    (``xlcrm.customer_C-000123``, as the Odoo export writes them, in ``id``,
    ``partner_id/id``, ``res_external_id``): a column named ``id`` is the record's own key,
    any other a reference to the record of that kind. Odoo's header ``id`` means nothing
    by itself (any system's row numbers), so its values decide."""
    taken = {c.concept for c in columns if c.concept}
    out = list(columns)
    for at, column in enumerate(columns):
        if column.concept is not None or column.how != "none":
            continue
        seen = [r[at] for r in rows[:sample] if at < len(r) and not is_blank(r[at])]
        kinds = {found[1] if (found := EXTERNAL_ID.fullmatch(str(v).strip())) else None
                 for v in seen}
        if not seen or len(kinds) != 1 or None in kinds:
            continue
        concept = ("key" if schema.normalize_header(column.header) == "id"
                   else _OF_KIND[kinds.pop() or ""])
        if concept not in taken:
            taken.add(concept)
            out[at] = Column(column.header, concept, 1.0, "values")
    return out


def _check_concept(concept: str) -> None:
    from .errors import InputError

    if concept in SHARED or concept in NAME_PARTS or concept == "key":
        return
    sheet, _, name = concept.partition(".")
    sdef = schema.SHEETS_BY_KEY.get(sheet)
    if sdef is None or sdef not in schema.DATA_SHEETS or name not in {f.key for f in
                                                                      sdef.fields}:
        raise InputError(f"--map: {concept!r} is no field (use sheet.field, e.g. "
                         "customers.city, or one of owner, created, notes, source)",
                         zh=f"--map：{concept!r} 不是字段（请用 工作表.字段，例如 "
                            "customers.city，或 owner、created、notes、source）")


def signature(headers: list[str]) -> str:
    return "|".join(schema.normalize_header(h) for h in headers)


def _store(workbook: Path) -> Path:
    return state_dir(workbook) / "import-mappings.json"


def saved_mapping(workbook: Path, headers: list[str]) -> dict[str, str | None] | None:
    try:
        stored: dict[str, Any] = json.loads(_store(workbook).read_text(encoding="utf-8"))
        found = stored.get(signature(headers))
        return dict(found) if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def save_mapping(workbook: Path, headers: list[str], columns: list[Column]) -> None:
    path = _store(workbook)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    stored[signature(headers)] = {c.header: c.concept for c in columns}
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(stored, ensure_ascii=False, indent=1), encoding="utf-8")
    temp.replace(path)


def load_map_file(path: Path) -> dict[str, str | None]:
    from .errors import InputError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"--map {path}: {error}", zh=f"--map {path}：无法读取（{error}）"
                         ) from None
    if not isinstance(data, dict):
        raise InputError(f"--map {path}: a JSON object of source header -> field",
                         zh=f"--map {path}：应为 JSON 对象（源列名 -> 字段）")
    return {str(k): (None if v in (None, "") else str(v)) for k, v in data.items()}
