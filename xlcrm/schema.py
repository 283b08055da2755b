"""The workbook contract: sheets, fields, their English and Chinese labels, and types.

This is the one place that knows what a header is called. Everything else refers to fields
by key (``customer_id``) and sheets by key (``customers``); `header_key` turns a header a user
typed (any case, full-width or half-width, extra spaces) back into a key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")

FieldType = Literal[
    "id", "text", "choice", "person", "email", "phone", "date", "money", "percent",
    "number", "rating", "tax_id", "customer_ref", "opportunity_ref", "tags",
]


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a data sheet."""

    key: str
    en: str
    zh: str
    type: FieldType = "text"
    required: bool = False
    choices: str | None = None  # key of a list in Settings (or "stage")
    engine: bool = False  # maintained by the engine; users read it
    width: float = 14

    def label(self, lang: Lang) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True, slots=True)
class SheetDef:
    """A sheet of the workbook: its key, labels, Excel Table name and fields."""

    key: str
    en: str
    zh: str
    table: str | None = None
    fields: tuple[Field, ...] = ()
    engine_owned: bool = False
    id_field: str | None = None
    id_option: str | None = None  # the Options key holding this sheet's ID prefix

    def label(self, lang: Lang) -> str:
        return self.en if lang == "en" else self.zh

    def field(self, key: str) -> Field:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)


CUSTOMERS = SheetDef(
    "customers", "Customers", "客户", table="tblCustomers",
    id_field="customer_id", id_option="customer_id_prefix",
    fields=(
        Field("customer_id", "CustomerID", "客户编号", "id", width=12),
        Field("name", "Name", "客户名称", "text", required=True, width=30),
        Field("kind", "Type", "客户类型", "choice", choices="customer_type", width=11),
        Field("industry", "Industry", "行业", "choice", choices="industry", width=14),
        Field("tier", "Tier", "客户等级", "choice", choices="tier", width=9),
        Field("lifecycle", "Lifecycle", "生命周期", "choice", choices="lifecycle", engine=True,
              width=11),
        Field("owner", "Owner", "客户经理", "person", width=11),
        Field("service_owner", "Service Owner", "客服负责人", "person", engine=True, width=12),
        Field("contact_name", "Contact", "联系人", "text", width=11),
        Field("email", "Email", "邮箱", "email", width=26),
        Field("phone", "Phone", "电话", "phone", width=18),
        Field("city", "City", "城市", "text", width=10),
        Field("address", "Address", "地址", "text", width=30),
        Field("tax_id", "Tax ID", "统一社会信用代码", "tax_id", width=22),
        Field("tags", "Tags", "标签", "tags", width=16),
        Field("source", "Source", "来源", "choice", choices="source", width=12),
        Field("first_purchase", "First Purchase", "首次成交", "date", engine=True, width=12),
        Field("last_purchase", "Last Purchase", "最近成交", "date", engine=True, width=12),
        Field("won_deals", "Won Deals", "成交次数", "number", engine=True, width=10),
        Field("lifetime_value", "Lifetime Value", "累计成交金额", "money", engine=True,
              width=14),
        Field("created_at", "Created", "创建日期", "date", width=12),
        Field("notes", "Notes", "备注", "text", width=30),
        Field("locked", "Locked", "锁定", "text", width=8),
        Field("pooled_at", "In Pool Since", "进入公海日期", "date", engine=True, width=13),
        Field("pool_reason", "Pool Reason", "公海原因", "text", engine=True, width=22),
    ),
)

OPPORTUNITIES = SheetDef(
    "opportunities", "Opportunities", "商机", table="tblOpportunities",
    id_field="opportunity_id", id_option="opportunity_id_prefix",
    fields=(
        Field("opportunity_id", "OpportunityID", "商机编号", "id", width=12),
        Field("title", "Opportunity", "商机名称", "text", required=True, width=30),
        Field("customer_id", "CustomerID", "客户编号", "customer_ref", width=12),
        Field("company", "Company", "意向公司", "text", width=26),
        Field("contact_name", "Contact", "联系人", "text", width=11),
        Field("contact_email", "Contact Email", "联系人邮箱", "email", width=24),
        Field("contact_phone", "Contact Phone", "联系人电话", "phone", width=18),
        Field("stage", "Stage", "阶段", "choice", required=True, choices="stage", width=12),
        Field("amount", "Amount", "预计金额", "money", width=14),
        Field("currency", "Currency", "币种", "choice", choices="currency", width=8),
        Field("probability", "Probability", "赢率", "percent", width=10),
        Field("expected_close", "Expected Close", "预计成交日期", "date", width=13),
        Field("owner", "Owner", "负责人", "person", width=11),
        Field("source", "Source", "来源", "choice", choices="source", width=12),
        Field("next_step", "Next Step", "下一步", "text", width=24),
        Field("next_follow_up", "Next Follow-up", "下次跟进", "date", width=12),
        Field("created_at", "Created", "创建日期", "date", width=12),
        Field("stage_changed_at", "Stage Changed", "阶段变更日期", "date", engine=True,
              width=13),
        Field("closed_at", "Closed", "关闭日期", "date", engine=True, width=12),
        Field("lost_reason", "Lost Reason", "输单原因", "text", width=20),
        Field("notes", "Notes", "备注", "text", width=30),
    ),
)

INTERACTIONS = SheetDef(
    "interactions", "Interactions", "跟进记录", table="tblInteractions",
    id_field="interaction_id", id_option="interaction_id_prefix",
    fields=(
        Field("interaction_id", "InteractionID", "记录编号", "id", width=12),
        Field("date", "Date", "日期", "date", required=True, width=12),
        Field("customer_id", "CustomerID", "客户编号", "customer_ref", required=True, width=12),
        Field("opportunity_id", "OpportunityID", "商机编号", "opportunity_ref", width=13),
        Field("kind", "Type", "类型", "choice", choices="interaction_type", width=10),
        Field("summary", "Summary", "内容摘要", "text", width=40),
        Field("owner", "Owner", "负责人", "person", width=11),
        Field("follow_up", "Follow-up", "下次跟进", "date", width=12),
        Field("outcome", "Outcome", "结果", "text", width=20),
        Field("satisfaction", "Satisfaction", "满意度", "rating", width=10),
    ),
)

SETTINGS = SheetDef("settings", "Settings", "设置")
ISSUES = SheetDef("issues", "Issues", "校验问题", engine_owned=True)
DUPLICATES = SheetDef("duplicates", "Duplicates", "疑似重复", engine_owned=True)
CHANGELOG = SheetDef("changelog", "ChangeLog", "变更日志", engine_owned=True)
DASHBOARD = SheetDef("dashboard", "Dashboard", "看板", engine_owned=True)

DATA_SHEETS: tuple[SheetDef, ...] = (CUSTOMERS, OPPORTUNITIES, INTERACTIONS)
ENGINE_SHEETS: tuple[SheetDef, ...] = (DASHBOARD, ISSUES, DUPLICATES, CHANGELOG)
ALL_SHEETS: tuple[SheetDef, ...] = (*DATA_SHEETS, *ENGINE_SHEETS, SETTINGS)
SHEETS_BY_KEY = {s.key: s for s in ALL_SHEETS}

# The lists users can edit under Settings → Lists, with the values each template starts with.
# "stage" is not here: stages live in their own table.
LISTS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    # key: (en header, zh header, en defaults, zh defaults)
    "customer_type": ("Customer Type", "客户类型", ("Company", "Individual"), ("企业", "个人")),
    "industry": ("Industry", "行业",
                 ("Manufacturing", "Software", "Retail", "Healthcare", "Education", "Finance",
                  "Logistics", "Energy", "Construction", "Other"),
                 ("制造业", "软件", "零售", "医疗", "教育", "金融", "物流", "能源", "建筑",
                  "其他")),
    "tier": ("Tier", "客户等级", ("A", "B", "C"), ("A", "B", "C")),
    "lifecycle": ("Lifecycle", "生命周期",
                  ("Prospect", "Active", "Repeat", "Dormant", "Churned"),
                  ("潜在", "活跃", "复购", "沉睡", "流失")),
    "source": ("Source", "来源",
               ("Referral", "Website", "Trade Show", "Cold Call", "Partner", "Advertising"),
               ("转介绍", "官网", "展会", "电话开发", "合作伙伴", "广告")),
    "currency": ("Currency", "币种", ("CNY", "USD", "EUR", "HKD"), ("CNY", "USD", "EUR", "HKD")),
    "interaction_type": ("Interaction Type", "跟进类型",
                         ("Call", "Email", "Meeting", "Visit", "Quote", "Service", "Complaint",
                          "Other"),
                         ("电话", "邮件", "会议", "拜访", "报价", "服务", "投诉", "其他")),
}

# Default stages: (en, zh, probability, kind, max days in stage)
DEFAULT_STAGES: tuple[tuple[str, str, float, str, int | None], ...] = (
    ("Lead", "线索", 0.10, "open", 30),
    ("Qualified", "需求确认", 0.20, "open", 30),
    ("Proposal", "方案", 0.40, "open", 21),
    ("Quote", "报价", 0.60, "open", 21),
    ("Negotiation", "谈判", 0.80, "open", 30),
    ("Won", "赢单", 1.00, "won", None),
    ("Lost", "输单", 0.00, "lost", None),
)

# Settings tables: table name -> ((key, en header, zh header), ...)
SETTINGS_TABLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Stages": (("name", "Stage", "阶段"), ("probability", "Probability", "赢率"),
               ("order", "Order", "顺序"), ("kind", "Kind", "类别"),
               ("max_days", "Max Days", "最长停留天数")),
    "People": (("name", "Name", "姓名"), ("email", "Email", "邮箱"), ("role", "Role", "角色"),
               ("active", "Active", "在职")),
    "Lists": tuple((k, v[0], v[1]) for k, v in LISTS.items()),
    "Options": (("key", "Option", "选项"), ("value", "Value", "值"),
                ("description", "Description", "说明")),
    "CustomFields": (("sheet", "Sheet", "工作表"), ("column", "Column", "列名"),
                     ("type", "Type", "类型"), ("required", "Required", "必填"),
                     ("choices", "Choices", "可选值")),
    "ServiceRules": (("field", "Field", "字段"), ("value", "Value", "值"),
                     ("owner", "Service Owner", "客服负责人")),
    "Notifications": (("event", "Event", "事件"), ("recipients", "Recipients", "通知对象"),
                      ("channels", "Channel", "渠道"), ("threshold", "Threshold", "阈值")),
    "Pool": (("tier", "Tier", "客户等级"),
             ("follow_up_days", "Days Without Follow-up", "未跟进天数"),
             ("win_days", "Days Without a Win", "未成交天数"),
             ("warn_days", "Warn Days Ahead", "提前提醒天数")),
    "ExportStages": (("stage", "Stage", "阶段"), ("hubspot", "HubSpot", "HubSpot"),
                     ("salesforce", "Salesforce", "Salesforce"), ("zoho", "Zoho", "Zoho"),
                     ("odoo", "Odoo", "Odoo")),
}

# Each default stage in each CRM's default pipeline (`xlcrm export`): HubSpot's internal
# stage IDs (they stay when a portal renames the labels), Salesforce's and Zoho's default
# StageName / Stage values, Odoo's default stages (Lost is no stage there: lost deals are
# archived with probability 0, and keep the stage named here).
DEFAULT_EXPORT_STAGES: dict[str, tuple[str, str, str, str]] = {
    "Lead": ("appointmentscheduled", "Prospecting", "Qualification", "New"),
    "Qualified": ("qualifiedtobuy", "Qualification", "Needs Analysis", "Qualified"),
    "Proposal": ("presentationscheduled", "Value Proposition", "Value Proposition",
                 "Proposition"),
    "Quote": ("decisionmakerboughtin", "Proposal/Price Quote", "Proposal/Price Quote",
              "Proposition"),
    "Negotiation": ("contractsent", "Negotiation/Review", "Negotiation/Review", "Proposition"),
    "Won": ("closedwon", "Closed Won", "Closed Won", "Won"),
    "Lost": ("closedlost", "Closed Lost", "Closed Lost", "New"),
}

# Notification events, channels and recipient words (Settings → Notifications), either language.
NOTIFY_EVENTS: dict[str, tuple[str, str]] = {
    "contact-changed": ("contact-changed", "客户联系方式变更"),
    "deal-won": ("deal-won", "赢单"),
    "deal-lost": ("deal-lost", "输单"),
    "big-deal": ("big-deal", "大额商机"),
    "deal-stalled": ("deal-stalled", "商机停滞"),
    "pool-warning": ("pool-warning", "即将进入公海"),
    "pool-recycled": ("pool-recycled", "进入公海"),
    "edit-by-non-owner": ("edit-by-non-owner", "非负责人修改"),
}
NOTIFY_CHANNELS = {"email": "email", "e-mail": "email", "mail": "email", "邮件": "email",
                   "邮箱": "email", "webhook": "webhook", "群机器人": "webhook",
                   "机器人": "webhook"}
NOTIFY_RECIPIENTS = {"owner": "owner", "负责人": "owner", "客户经理": "owner",
                     "service_owner": "service_owner", "service owner": "service_owner",
                     "客服负责人": "service_owner", "客服": "service_owner",
                     "managers": "managers", "manager": "managers", "经理": "managers"}
# The rules a new workbook starts with: (event, recipients en/zh, channels en/zh, threshold)
DEFAULT_NOTIFY_RULES: tuple[tuple[str, tuple[str, str], tuple[str, str], float | None], ...] = (
    ("contact-changed", ("owner, service_owner", "客户经理, 客服负责人"), ("email", "邮件"),
     None),
    ("deal-won", ("owner, managers", "负责人, 经理"), ("email, webhook", "邮件, 群机器人"), None),
    ("deal-lost", ("owner, managers", "负责人, 经理"), ("email", "邮件"), None),
    ("big-deal", ("managers", "经理"), ("email, webhook", "邮件, 群机器人"), 1_000_000),
    ("deal-stalled", ("owner", "负责人"), ("email", "邮件"), None),
    ("pool-warning", ("owner", "客户经理"), ("email", "邮件"), None),
    ("pool-recycled", ("owner, managers", "客户经理, 经理"), ("email", "邮件"), None),
    ("edit-by-non-owner", ("owner", "负责人"), ("email", "邮件"), None),
)

# Words accepted for enumerations in Settings, in either language.
STAGE_KINDS = {"open": "open", "won": "won", "lost": "lost",
               "进行中": "open", "赢单": "won", "成交": "won", "输单": "lost"}
ROLES = {"sales": "sales", "service": "service", "manager": "manager",
         "销售": "sales", "客服": "service", "经理": "manager"}
TRUE_WORDS = {"yes", "y", "true", "1", "是", "在职", "x", "✓"}
FALSE_WORDS = {"no", "n", "false", "0", "否", "离职", ""}

_SPACES = re.compile(r"\s+")


def normalize_header(text: object) -> str:
    """Fold a header for matching: full-width to half-width, case, and all white space."""
    folded = unicodedata.normalize("NFKC", str(text if text is not None else ""))
    return _SPACES.sub("", folded).casefold()


def normalize_value(text: object) -> str:
    """Fold a choice value for matching: like headers, but inner spaces are kept (single)."""
    folded = unicodedata.normalize("NFKC", str(text if text is not None else ""))
    return _SPACES.sub(" ", folded).strip().casefold()


def header_aliases(sheet: SheetDef) -> dict[str, str]:
    """Map each accepted (normalized) header of a data sheet to its field key."""
    aliases: dict[str, str] = {}
    for f in sheet.fields:
        for text in (f.en, f.zh, f.key):
            aliases.setdefault(normalize_header(text), f.key)
    return aliases


def sheet_aliases() -> dict[str, str]:
    """Map each accepted (normalized) sheet name to its sheet key."""
    return {normalize_header(t): s.key for s in ALL_SHEETS for t in (s.en, s.zh, s.key)}


def settings_aliases(table: str) -> dict[str, str]:
    """Map accepted (normalized) headers of a Settings table to column keys."""
    return {normalize_header(t): key
            for key, en, zh in SETTINGS_TABLES[table] for t in (key, en, zh)}


def list_aliases() -> dict[str, str]:
    """Map accepted (normalized) list names (Settings → Lists headers) to list keys."""
    return {normalize_header(t): key for key, (en, zh, _, _) in LISTS.items()
            for t in (key, en, zh)}


# Columns of the engine-owned sheets: key -> ((column key, en, zh), ...)
ENGINE_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "issues": (("severity", "Severity", "级别"), ("code", "Code", "代码"),
               ("sheet", "Sheet", "工作表"), ("cell", "Cell", "单元格"), ("row", "Row", "行号"),
               ("field", "Field", "字段"), ("record_id", "Record", "记录编号"),
               ("value", "Value", "值"), ("message", "Message", "说明")),
    "duplicates": (("cluster", "Cluster", "组"), ("sheet", "Sheet", "工作表"),
                   ("record_id", "Record", "记录编号"), ("row", "Row", "行号"),
                   ("score", "Score", "相似度"), ("reasons", "Reasons", "原因")),
    "changelog": (("at", "Time", "时间"), ("user", "User", "用户"), ("source", "Source", "来源"),
                  ("sheet", "Sheet", "工作表"), ("record_id", "Record", "记录编号"),
                  ("action", "Action", "操作"), ("field", "Field", "字段"),
                  ("old", "Old", "旧值"), ("new", "New", "新值")),
}

SEVERITY_LABELS = {"error": ("Error", "错误"), "warning": ("Warning", "警告")}
ACTION_LABELS = {"added": ("Added", "新增"), "changed": ("Changed", "修改"),
                 "deleted": ("Deleted", "删除")}
SOURCE_LABELS = {"cli": ("Command line", "命令行"), "watcher": ("Folder watcher", "文件夹监控"),
                 "ribbon": ("Excel ribbon", "Excel 功能区")}


def field_key(text: str) -> str:
    """The field key for a key or a header in either language (any sheet); else `text`."""
    wanted = normalize_header(text)
    for sheet in DATA_SHEETS:
        for f in sheet.fields:
            if wanted in (normalize_header(f.key), normalize_header(f.en), normalize_header(f.zh)):
                return f.key
    return text


def field_label(sheet_key: str, key: str | None, lang: Lang) -> str:
    """The header of a field in `lang`; a user's own column keeps its header."""
    if not key:
        return ""
    sdef = SHEETS_BY_KEY.get(sheet_key)
    if sdef is not None:
        for f in sdef.fields:
            if f.key == key:
                return f.label(lang)
    return key


def label(pair: tuple[str, str], lang: Lang) -> str:
    """Pick the English or Chinese half of an (en, zh) pair."""
    return pair[0] if lang == "en" else pair[1]
