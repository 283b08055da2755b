"""The Excel ribbon's entry points. Every button of the "CRM 客户管理" tab calls the VBA
callback ``RibbonMyAddin.OnAction``, which runs ``xlcrm.ribbon.dispatch('<tag>')`` through
xlwings' RunPython.

Each button runs the same job as the command line (`xlcrm.jobs`) on an `ExcelSession`: the
open workbook is read from its Tables and written through xlwings, then saved (see the
decisions in `xlcrm.session`). This module only picks the job and words its result; it ends
with a short message box, and an error is a message box too, never a traceback.

xlwings is imported only inside `dispatch`: this module imports on Linux without Excel. The
tests run the buttons against a small stand-in for the xlwings calls `XlBook` makes; real
Excel is not exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import schema
from .errors import XlcrmError
from .excel import ExcelSession, XlBook
from .issues import Report
from .jobs import (
    changelog_job,
    claim_job,
    dedupe_job,
    import_job,
    promote_job,
    report_job,
    sync_job,
    validate_job,
)
from .messages import t

HELP = {
    "en": ("xlcrm — the CRM tab\n\nValidate: check every sheet and mark bad cells.\n"
           "Find Duplicates: list likely duplicate records.\nPromote Won Deals: move won "
           "deals into Customers.\nSync: IDs, change log, promotion, validation, dashboard, "
           "duplicates, notifications.\nDashboard: rebuild the Dashboard sheet.\nChange Log: "
           "record and show what changed.\nClaim: take the selected customers from the lead "
           "pool, as your Excel user name.\nImport: bring in a sheet or CSV you already have "
           "(a preview first, then OK to import).\n\nEach button saves the workbook when it "
           "changed it.\nDocs: README.md and docs/ of the xlcrm project."),
    "zh": ("xlcrm — CRM 客户管理\n\n校验：检查所有工作表并标记问题单元格。\n"
           "查重：列出疑似重复的记录。\n成交转客户：将赢单商机转入客户表。\n"
           "同步：编号、变更日志、转客户、校验、看板、查重、通知。\n看板：重建看板。\n"
           "变更日志：记录并显示变更。\n领取：以 Excel 用户名从公海领取选中的客户。\n"
           "导入：导入已有的表格或 CSV（先预览，确认后导入）。\n\n"
           "按钮改动工作簿后会保存工作簿。\n"
           "文档：xlcrm 项目的 README.md 与 docs/。"),
}


def dispatch(action: str) -> None:
    """The one entry point the VBA callback calls with the button's tag."""
    import xlwings as xw

    run(action, XlBook(xw.Book.caller()))


def run(action: str, xl: XlBook) -> str:
    """Run one button's action and show its summary (or error) in a message box."""
    lang = "zh" if schema.CUSTOMERS.zh in xl.sheet_names() else "en"
    try:
        function = ACTIONS[action]
    except KeyError:
        message = f"xlcrm: unknown action {action!r}"
    else:
        try:
            message = function(xl)
        except XlcrmError as error:
            message = f"xlcrm: {error.text(lang)}"
        except Exception as error:  # a message box, never a traceback window
            message = f"xlcrm: unexpected error: {type(error).__name__}: {error}"
    xl.alert(message)
    return message


def _summary(report: Report) -> str:
    if report.lang == "zh":
        return f"发现 {report.errors} 个错误、{report.warnings} 个警告。"
    return f"{report.errors} errors and {report.warnings} warnings found."


def xl_validate(xl: XlBook) -> str:
    result = validate_job(ExcelSession(xl), write=True)
    return _summary(result.report)


def xl_sync(xl: XlBook) -> str:
    result = sync_job(ExcelSession(xl))
    lang = result.report.lang
    promoted = len(result.promotion.promoted) if result.promotion else 0
    done = (f"已填编号 {len(result.filled_ids)} 个，{promoted} 个赢单转入客户，记录变更 "
            f"{len(result.changes)} 条。" if lang == "zh" else
            f"{len(result.filled_ids)} IDs filled, {promoted} won deals promoted, "
            f"{len(result.changes)} changes logged.")
    return f"{_summary(result.report)}\n{done}"


def xl_promote(xl: XlBook) -> str:
    result = promote_job(ExcelSession(xl))
    promotion = result.promotion
    assert promotion is not None
    zh = result.report.lang == "zh"
    text = (f"{len(promotion.promoted)} 个赢单已转入客户，{len(promotion.skipped)} 个跳过。" if zh
            else f"{len(promotion.promoted)} won deals promoted, {len(promotion.skipped)} "
                 "skipped.")
    return text


def xl_dashboard(xl: XlBook) -> str:
    result = report_job(ExcelSession(xl), write=True)
    lang = result.report.lang
    return t("dashboard_rebuilt", lang)


def xl_changelog(xl: XlBook) -> str:
    session = ExcelSession(xl)
    count = changelog_job(session)
    lang = session.data.lang if session.data else "en"
    return f"记录了 {count} 条变更。" if lang == "zh" else f"{count} changes logged."


def xl_dedupe(xl: XlBook) -> str:
    result = dedupe_job(ExcelSession(xl), write=True)
    text = (f"找到 {result.groups} 组疑似重复记录。" if result.lang == "zh"
            else f"{result.groups} groups of likely duplicate records found.")
    return text


def xl_claim(xl: XlBook) -> str:
    """Claim the selected customer rows from the lead pool, as Excel's user name."""
    lang = "zh" if schema.CUSTOMERS.zh in xl.sheet_names() else "en"
    sheet, rows = xl.selected_rows()
    if sheet not in (schema.CUSTOMERS.en, schema.CUSTOMERS.zh) or not rows:
        return t("claim_select", lang)
    result = claim_job(ExcelSession(xl), [], xl.user_name(), rows=rows)
    lines = [t("claimed", lang, person=result.person, ids=", ".join(result.claimed))
             ] if result.claimed else []
    lines += [t("claim_refused", lang, message=message) for _, _, message in result.refused]
    return "\n".join(lines) or t("claim_select", lang)


def xl_import(xl: XlBook) -> str:
    """Ask for a file, show the import's preview, and import it on OK: the same job as
    `xlcrm import`, on the open workbook."""
    from .importer import nothing_message, preview_lines

    lang = "zh" if schema.CUSTOMERS.zh in xl.sheet_names() else "en"
    chosen = xl.ask_file()
    if chosen is None:
        return t("import_cancelled", lang)
    dry = import_job(ExcelSession(xl), Path(chosen))
    lines = preview_lines(dry.plan, lang, limit=8)
    if dry.plan.empty():
        return "\n".join([*lines, nothing_message(dry.plan, lang)])
    if not xl.confirm("\n".join([*lines, "", t("import_confirm", lang)])):
        return t("import_cancelled", lang)
    done = import_job(ExcelSession(xl), Path(chosen), apply=True)
    counts = done.plan.counts()
    return t("import_done_ribbon", lang, id=done.import_id or "-",
             customers=counts["new"]["customers"], opportunities=counts["new"]["opportunities"],
             interactions=counts["new"]["interactions"], cells=len(done.plan.changes))


def xl_help(xl: XlBook) -> str:
    return HELP["zh" if schema.CUSTOMERS.zh in xl.sheet_names() else "en"]


ACTIONS: dict[str, Callable[[XlBook], str]] = {
    "validate": xl_validate, "dedupe": xl_dedupe, "promote": xl_promote, "sync": xl_sync,
    "dashboard": xl_dashboard, "changelog": xl_changelog, "claim": xl_claim,
    "import": xl_import, "help": xl_help,
}
