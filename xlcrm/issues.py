"""Problems found in a workbook, as data: `Issue`, `Report`, and the fixed list of codes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from .schema import Lang

Severity = Literal["error", "warning"]


class Code(StrEnum):
    """Issue codes: stable, documented in docs/issue-codes.md (more may be added)."""

    MISSING_REQUIRED = "missing-required"
    DUPLICATE_ID = "duplicate-id"
    UNKNOWN_CUSTOMER = "unknown-customer"
    UNKNOWN_OPPORTUNITY = "unknown-opportunity"
    CUSTOMER_MISMATCH = "customer-mismatch"
    INVALID_CHOICE = "invalid-choice"
    INVALID_EMAIL = "invalid-email"
    INVALID_PHONE = "invalid-phone"
    INVALID_DATE = "invalid-date"
    INVALID_NUMBER = "invalid-number"
    NEGATIVE_AMOUNT = "negative-amount"
    PROBABILITY_RANGE = "probability-range"
    LOST_WITHOUT_REASON = "lost-without-reason"
    UNKNOWN_OWNER = "unknown-owner"
    INVALID_TAX_ID = "invalid-tax-id"
    CLOSE_DATE_PAST = "close-date-past"
    STALLED = "stalled"
    NO_FOLLOW_UP = "no-follow-up"
    POSSIBLE_DUPLICATE = "possible-duplicate"
    AMBIGUOUS_CUSTOMER = "ambiguous-customer"
    EDIT_BY_NON_OWNER = "edit-by-non-owner"


WARNINGS = frozenset({Code.CLOSE_DATE_PAST, Code.STALLED, Code.NO_FOLLOW_UP,
                      Code.POSSIBLE_DUPLICATE, Code.AMBIGUOUS_CUSTOMER,
                      Code.EDIT_BY_NON_OWNER})

# Message templates, {field} is the column's label, other names come from Issue.params.
MESSAGES: dict[Code, tuple[str, str]] = {
    Code.MISSING_REQUIRED: ("{field} is required", "{field}不能为空"),
    Code.DUPLICATE_ID: ("ID {value} is used more than once (also row {other})",
                        "编号 {value} 重复（另见第 {other} 行）"),
    Code.UNKNOWN_CUSTOMER: ("No customer with ID {value} in the customer sheet",
                            "客户表中没有编号为 {value} 的客户"),
    Code.UNKNOWN_OPPORTUNITY: ("No opportunity with ID {value}", "没有编号为 {value} 的商机"),
    Code.CUSTOMER_MISMATCH: ("Opportunity {value} belongs to customer {other}, not this one",
                             "商机 {value} 属于客户 {other}，与本记录的客户不一致"),
    Code.INVALID_CHOICE: ("{value} is not an allowed {field} (allowed: {allowed})",
                          "{value} 不是允许的{field}（可选：{allowed}）"),
    Code.INVALID_EMAIL: ("{value} is not a valid e-mail address", "{value} 不是有效的邮箱地址"),
    Code.INVALID_PHONE: ("{value} is not a valid phone number", "{value} 不是有效的电话号码"),
    Code.INVALID_DATE: ("{value} is not a date (accepted: {forms})",
                        "{value} 不是有效日期（可用格式：{forms}）"),
    Code.INVALID_NUMBER: ("{value} is not a valid {field} (accepted: {forms})",
                          "{value} 不是有效的{field}（可用格式：{forms}）"),
    Code.NEGATIVE_AMOUNT: ("{field} must not be negative", "{field}不能为负数"),
    Code.PROBABILITY_RANGE: ("{field} must be between 0% and 100%",
                             "{field}必须在 0% 到 100% 之间"),
    Code.LOST_WITHOUT_REASON: ("A lost deal needs a {field}", "输单必须填写{field}"),
    Code.UNKNOWN_OWNER: ("{value} is not an active person under Settings → People",
                         "{value} 不是设置 → 人员中的在职人员"),
    Code.INVALID_TAX_ID: ("{value} is not a valid unified social credit code",
                          "{value} 不是有效的统一社会信用代码"),
    Code.CLOSE_DATE_PAST: ("Expected close {value} has passed but the deal is still open",
                           "预计成交日期 {value} 已过，但商机仍未关闭"),
    Code.STALLED: ("{days} days in stage {stage} (limit {limit})",
                   "在{stage}阶段已停留 {days} 天（上限 {limit} 天）"),
    Code.NO_FOLLOW_UP: ("Open deal with no next follow-up and no interaction in {days} days",
                        "商机未安排下次跟进，且 {days} 天内没有跟进记录"),
    Code.POSSIBLE_DUPLICATE: ("Possibly the same as {other} ({reasons})",
                              "可能与 {other} 重复（{reasons}）"),
    Code.AMBIGUOUS_CUSTOMER: ("Won deal not promoted: {value} matches several customers "
                              "({candidates}); set its CustomerID",
                              "赢单未转客户：{value} 匹配到多个客户（{candidates}），"
                              "请填写客户编号"),
    Code.EDIT_BY_NON_OWNER: ("{who} changed {what}; the owner is {value}",
                             "{who}修改了{what}；负责人是{value}"),
}


@dataclass(slots=True)
class Issue:
    """One problem at one cell. `row` is the row number Excel shows (header row included)."""

    code: Code
    sheet: str
    row: int | None
    cell: str | None
    field: str | None
    record_id: str | None
    value: Any
    message: str
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["code"] = str(self.code)
        data["value"] = json_value(self.value)
        order = ("code", "severity", "sheet", "row", "cell", "field", "record_id", "value",
                 "message")
        return {k: data[k] for k in order}


def make_message(code: Code, lang: Lang, **params: Any) -> str:
    template = MESSAGES[code][0 if lang == "en" else 1]
    return template.format_map(_Blank({k: display(v) for k, v in params.items()}))


class _Blank(dict[str, str]):
    """A missing parameter shows as nothing, never as a crash."""

    def __missing__(self, key: str) -> str:
        return ""


def display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return display(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class Report:
    """All issues of one run, plus what was checked."""

    workbook: str
    counts: dict[str, int]
    lang: Lang = "en"
    issues: list[Issue] = field(default_factory=list)
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now().astimezone())
    sheet_order: list[str] = field(default_factory=list)  # real sheet names, in report order

    def extend(self, issues: Iterable[Issue]) -> None:
        self.issues.extend(issues)

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity == "warning")

    def sorted_issues(self, sheet_order: list[str] | None = None) -> list[Issue]:
        order = {name: i for i, name in enumerate(sheet_order or self.sheet_order)}
        return sorted(self.issues, key=lambda i: (order.get(i.sheet, len(order)), i.sheet,
                                                  i.row or 0, i.cell or "", str(i.code)))

    def flatten(self, keys: list[str]) -> list[list[Any]]:
        """Issues as lists of the named attributes (handy in tests)."""
        return [[getattr(i, k) for k in keys] for i in self.issues]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "workbook": self.workbook,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "counts": self.counts,
            "summary": {"error": self.errors, "warning": self.warnings},
            "issues": [i.to_json() for i in self.sorted_issues()],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2)
