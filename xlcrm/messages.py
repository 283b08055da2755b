"""What xlcrm says to people, in English and Chinese: the command line's lines, duplicate
reasons, and the language a message should be in.

The language of a run is the workbook's (its sheet names say it); where there is no readable
workbook (a missing file, a folder, `demo`), it is `XLCRM_LANG`, else the locale (`LC_ALL`,
`LC_MESSAGES`, `LANG` starting with zh), else English.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

from lxml import etree

from .schema import Lang

TEXTS: dict[str, tuple[str, str]] = {
    "created": ("Created {path}", "已创建 {path}"),
    "created_sample": ("Created {path} with {n} sample customers",
                       "已创建 {path}，含 {n} 个示例客户"),
    "issues_written": ("Wrote the Issues sheet and cell marks.", "已写入校验问题表并标记单元格。"),
    "sync_done": ("Filled {ids} IDs, promoted {promoted} won deals, logged {changes} changes; "
                  "results written to the workbook.",
                  "已填补 {ids} 个编号，{promoted} 个赢单转入客户，记录 {changes} 条变更；"
                  "结果已写回工作簿。"),
    "notified": ("Notifications: {sent} sent, {failed} failed (retried on the next sync)",
                 "通知：已发送 {sent}，失败 {failed}（下次同步时重试）"),
    "summary": ("{workbook}: {errors} errors, {warnings} warnings in {customers} customers, "
                "{opportunities} opportunities, {interactions} interactions",
                "{workbook}：{errors} 个错误，{warnings} 个警告（客户 {customers}，商机 "
                "{opportunities}，跟进记录 {interactions}）"),
    "by_code": ("By code:", "按问题类型："),
    "first_issues": ("The first {n} issues:", "前 {n} 个问题："),
    "more_issues": ("… and {n} more: see the Issues sheet (validate --write, or sync), "
                    "--format json, or --all",
                    "……另有 {n} 个：见校验问题表（validate --write 或 sync）、"
                    "--format json 或 --all"),
    "promoted_new": ("  {opp} → {customer} (new customer)", "  {opp} → {customer}（新客户）"),
    "promoted_linked": ("  {opp} → {customer} (linked by {how})",
                        "  {opp} → {customer}（按{how}关联）"),
    "promote_skipped": ("  {opp} skipped: {reason}{extra}", "  {opp} 未转入：{reason}{extra}"),
    "promote_summary": ("{promoted} promoted, {skipped} skipped; {what}",
                        "{promoted} 个赢单转入客户，{skipped} 个未转入；{what}"),
    "workbook_updated": ("workbook updated", "已写回工作簿"),
    "nothing_to_write": ("nothing to write", "无需写入"),
    "cluster": ("{n}. {records} score {score}", "{n}. {records} 得分 {score}"),
    "clusters": ("{n} clusters", "共 {n} 组疑似重复"),
    "clusters_written": ("{n} clusters; written to the Duplicates sheet",
                         "共 {n} 组疑似重复；已写入疑似重复表"),
    "merged": ("Merged {merged} into {survivors}; undo with: xlcrm dedupe {path} --undo {id}",
               "已将 {merged} 合并到 {survivors}；撤销：xlcrm dedupe {path} --undo {id}"),
    "unmerged": ("Undid merge {id}: {records} are back.", "已撤销合并 {id}：{records} 已恢复。"),
    "log_intact": ("The change log is intact.", "变更日志完整，未被篡改。"),
    "log_tampered": ("the change log was tampered with", "变更日志已被篡改"),
    "log_count": ("{n} changes", "共 {n} 条变更"),
    "restored_row": ("Restored {id} as a new row of {sheet}.",
                     "已将 {id} 恢复为 {sheet} 的新行。"),
    "restored_fields": ("Set {id} back in {sheet}: {fields}.",
                        "已将 {sheet} 中的 {id} 恢复：{fields}。"),
    "claimed": ("{person} claimed {ids}.", "{person} 已领取 {ids}。"),
    "claim_refused": ("not claimed: {message}", "未领取：{message}"),
    "pool_done": ("Lead pool: {n} customer(s) went back to the pool ({ids}); {warned} more "
                  "will go within their warning days (their owners are told).",
                  "公海：{n} 个客户回到公海（{ids}）；另有 {warned} 个将在提醒期内回收"
                  "（已通知其客户经理）。"),
    "pool_reason_follow_up": ("No follow-up for {days} days", "{days} 天未跟进"),
    "pool_reason_win": ("No won deal for {days} days", "{days} 天未成交"),
    "claim_unknown": ("{id}: no such customer", "{id}：没有这个客户"),
    "claim_owned": ("{id}: owned by {owner}, not in the pool", "{id}：客户经理是{owner}，不在公海"),
    "claim_locked": ("{id}: locked", "{id}：已锁定"),
    "claim_cooldown": ("{id}: {person} released it on {since}; may claim it again from {until}",
                       "{id}：{person}于 {since} 释放该客户，{until} 起才能再次领取"),
    "claim_daily": ("{id}: {person} has claimed {limit} customers today, the daily limit",
                    "{id}：{person}今天已领取 {limit} 个客户，达到每日上限"),
    "claim_cap": ("{id}: {person} owns {limit} customers, the most one person may own",
                  "{id}：{person}已拥有 {limit} 个客户，达到上限"),
    "author_unknown": ("{author} (not in Settings → People)", "{author}（不在“设置 → 人员”中）"),
    "edit_deleted": ("deleted {sheet} record {id}", "删除了{sheet}记录 {id}"),
    "edit_changed": ("{fields} of {sheet} record {id}", "{sheet}记录 {id} 的{fields}"),
    "claim_select": ("Select the rows of the customers to claim on the Customers sheet first.",
                     "请先在客户表中选中要领取的客户所在的行。"),
    "restored_nothing": ("nothing (it already had those values)", "无变化（已是当时的值）"),
    "wrote_file": ("Wrote {path}", "已写入 {path}"),
    "sync_unchanged": ("Nothing to change: the workbook already holds these results.",
                       "无需改动：工作簿中已是这些结果。"),
    "dashboard_rebuilt": ("Dashboard rebuilt ✓", "看板已重建 ✓"),
    "dashboard_not_rebuilt": ("{error} (the Dashboard sheet was not rebuilt)",
                              "{error}（看板未重建）"),
    "built": ("Built {path}", "已生成 {path}"),
    "installed": ("Installed {path}; restart Excel and look for the “CRM 客户管理” tab.",
                  "已安装 {path}；重启 Excel 后可见“CRM 客户管理”选项卡。"),
    "no_folder": ("{path}: no such folder", "{path}：文件夹不存在"),
    "interrupted": ("interrupted", "已中断"),
    "bug": ("internal error (a bug in xlcrm, not in your workbook): {error}. Nothing was "
            "written. Details: {log}",
            "内部错误（xlcrm 的程序缺陷，不是工作簿的问题）：{error}。未写入任何内容。"
            "详情见 {log}"),
    "bug_nolog": ("internal error (a bug in xlcrm, not in your workbook): {error}. Nothing was "
                  "written.", "内部错误（xlcrm 的程序缺陷，不是工作簿的问题）：{error}。"
                  "未写入任何内容。"),
    "row": ("row {row}", "第 {row} 行"),
    "and_more": ("and {n} more (see the Duplicates sheet)", "等另外 {n} 条（见疑似重复表）"),
    "named_row": ("{name} (row {row})", "{name}（第 {row} 行）"),
    "action_added": ("added", "新增"),
    "action_changed": ("changed", "修改"),
    "action_deleted": ("deleted", "删除"),
    "how_customer_id": ("CustomerID", "客户编号"),
    "how_name": ("company name", "公司名称"),
    "how_email": ("e-mail", "邮箱"),
    "how_phone": ("phone", "电话"),
    "how_tax_id": ("tax ID", "统一社会信用代码"),
    "reason_unknown-customer": ("its CustomerID is not in Customers", "客户编号在客户表中不存在"),
    "reason_no-company": ("no CustomerID and no Company", "既无客户编号也无意向公司"),
    "reason_ambiguous-customer": ("it matches several customers", "匹配到多个客户"),
    "reason_other-currency": ("its currency differs from the customer's lifetime value",
                              "币种与客户累计成交金额的币种不同"),
    "watch_waiting": ("unreadable for now ({error}); it may still be being written: looking "
                      "again before reporting it",
                      "暂时无法读取（{error}）；可能仍在写入，稍后再看"),
    "watch_blocked": ("{error}; retrying in {seconds} s", "{error}；{seconds} 秒后重试"),
    "watch_synced": ("{errors} errors, {warnings} warnings; {changes} changes logged; written "
                     "back", "{errors} 个错误，{warnings} 个警告；记录 {changes} 条变更；已写回"),
    "watch_deferred": ("open by {who}; report published, write-back deferred until it is "
                       "closed", "{who} 正在打开此文件；已发布报告，关闭后再写回"),
    "someone": ("someone", "他人"),
    "watch_changed": ("changed while we worked; nothing written, looking again",
                      "处理期间文件被修改；未写入，重新检查"),
    "watch_checked": ("{errors} errors, {warnings} warnings", "{errors} 个错误，{warnings} 个警告"),
    "demo_book": ("{customers} customers, {opportunities} opportunities, {interactions} "
                  "interactions; {errors} errors and {warnings} warnings found",
                  "客户 {customers}，商机 {opportunities}，跟进记录 {interactions}；发现 {errors} "
                  "个错误、{warnings} 个警告"),
    "demo_look": ("Open a workbook and look at the Issues sheet (校验问题): each row links to the "
                  "bad cell, which is highlighted with a note giving the reason. The Dashboard "
                  "(看板) has the pipeline, forecast and charts; ChangeLog (变更日志) what "
                  "changed.",
                  "打开工作簿查看“校验问题”表：每行链接到出错的单元格，单元格已标色并附批注说明原因。"
                  "“看板”有销售漏斗、预测和图表；“变更日志”记录了改动。"),
    "demo_try": ("Try: xlcrm validate {book} · xlcrm report {book} · xlcrm dedupe {book} · "
                 "xlcrm log {book} --limit 5",
                 "试试：xlcrm validate {book} · xlcrm report {book} · xlcrm dedupe {book} · "
                 "xlcrm log {book} --limit 5"),
    "step_read": ("reading {name}", "正在读取 {name}"),
    "step_changes": ("comparing with the last run", "正在与上次运行比较"),
    "step_promote": ("promoting won deals", "正在将赢单转为客户"),
    "step_validate": ("validating", "正在校验"),
    "step_dedupe": ("looking for duplicates", "正在查找重复"),
    "step_analyse": ("computing the dashboard", "正在计算看板"),
    "step_write": ("writing {name}", "正在写入 {name}"),
    "step_mirror": ("mirroring into the database", "正在镜像到数据库"),
    "step_export": ("writing the export files", "正在写入导出文件"),
    "export_file": ("  {name}: {n} rows", "  {name}：{n} 行"),
    "export_more_problems": ("  … and {n} more in PROBLEMS.csv",
                             "  ……另有 {n} 条，见 PROBLEMS.csv"),
    "export_done": ("Written to {folder}; {n} problems. Read IMPORT.md there for the steps.",
                    "已写入 {folder}；问题 {n} 条。导入步骤见其中的 IMPORT.md。"),
    "import_no_into": ("--into names the workbook to import into",
                       "--into 指定要导入的工作簿"),
    "import_no_source": ("name the file to import (or --undo IMPORT_ID)",
                         "请指定要导入的文件（或 --undo 导入编号）"),
    "import_cancelled": ("Nothing imported.", "未导入任何内容。"),
    "import_confirm": ("Import this into the workbook? (OK: import; it can be undone with "
                       "xlcrm import --undo)", "确认导入到工作簿吗？（确定：导入；可用 "
                       "xlcrm import --undo 撤销）"),
    "import_done_ribbon": ("Imported as {id}: {customers} customers, {opportunities} "
                           "opportunities, {interactions} interactions added, {cells} cells "
                           "filled.", "已导入，编号 {id}：新增客户 {customers}、商机 "
                           "{opportunities}、跟进记录 {interactions}，填写 {cells} 个单元格。"),
    "import_title": ("Import preview", "导入预览"),
    "import_h_new": ("New records", "新增记录"),
    "import_h_changed": ("Changed cells", "修改的单元格"),
    "import_h_conflicts": ("Conflicts (left as the workbook has them)",
                           "冲突（保留工作簿中的值）"),
    "import_h_rejected": ("Rejected rows", "未导入的行"),
    "import_h_mapping": ("Column mapping", "列映射"),
    "import_source": ("{source}: {rows} rows", "{source}：{rows} 行"),
    "import_mapped": ("  {header} → {field} ({confidence}%, {how})",
                      "  {header} → {field}（{confidence}%，{how}）"),
    "import_how_synonym": ("synonym", "同义词"),
    "import_how_fuzzy": ("fuzzy match", "模糊匹配"),
    "import_how_given": ("--map", "--map 指定"),
    "import_how_saved": ("saved mapping", "已保存的映射"),
    "import_how_values": ("by its values", "按列中的值"),
    "import_left_out": ("  left out (no field): {headers}", "  未映射（无对应字段）：{headers}"),
    "import_counts": ("New: {new_customers} customers, {new_opportunities} opportunities, "
                      "{new_interactions} interactions; updated: {upd_customers} customers, "
                      "{upd_opportunities} opportunities ({cells} cells)",
                      "新增：客户 {new_customers}，商机 {new_opportunities}，跟进记录 "
                      "{new_interactions}；更新：客户 {upd_customers}，商机 {upd_opportunities}"
                      "（{cells} 个单元格）"),
    "import_new": ("  + {sheet} {id} {name} (source row {row})",
                   "  + {sheet} {id} {name}（源第 {row} 行）"),
    "import_change": ("  ~ {id} {field}: {old} → {new} (source row {row})",
                      "  ~ {id} {field}：{old} → {new}（源第 {row} 行）"),
    "import_conflict": ("  ! {id} {field}: the workbook has {workbook}, the source {source} "
                        "(source row {row}); kept; --prefer source to take the source's",
                        "  ! {id} {field}：工作簿为 {workbook}，源文件为 {source}"
                        "（源第 {row} 行）；已保留工作簿的值；用 --prefer source 改用源文件的值"),
    "import_rejected": ("  x source row {row}: {reason}", "  x 源第 {row} 行：{reason}"),
    "import_reject_nothing": ("names no customer and no deal", "既没有客户也没有商机"),
    "import_reject_unknown_id": ("a customer ID the workbook does not have, with no name, "
                                 "e-mail or phone to make a customer of",
                                 "工作簿中没有此客户编号，且没有名称、邮箱或电话可建立客户"),
    "import_reject_no_customer": ("a deal without a customer or company",
                                  "商机没有对应的客户或公司"),
    "import_unknown_stages": ("  stages not in Settings (kept as typed; add them or map "
                              "them): {stages}",
                              "  不在设置中的阶段（按原样保留；请添加或映射）：{stages}"),
    "import_new_people": ("  people not in Settings → People (kept as typed): {people}",
                          "  不在设置 → 人员中的人（按原样保留）：{people}"),
    "import_unparsed": ("  ? source row {row} {field}: {value} is not understood (kept as "
                        "typed)", "  ? 源第 {row} 行 {field}：无法识别 {value}（按原样保留）"),
    "import_ambiguous": ("  ? source row {row} matches several customers: {ids} (linked to "
                         "the first)", "  ? 源第 {row} 行匹配到多个客户：{ids}（已关联第一个）"),
    "import_skipped": ("  skipped: {title} title rows, {blank} blank rows, {totals} totals rows",
                       "  已跳过：标题行 {title}，空行 {blank}，合计行 {totals}"),
    "import_more": ("  … and {n} more (--format json lists all)",
                    "  ……另有 {n} 条（--format json 列出全部）"),
    "import_dry_run": ("Dry run: nothing was written. Run again with --apply to import.",
                       "预览：未写入任何内容。加上 --apply 再运行即可导入。"),
    "import_applied": ("Imported as {id} ({backup}). Undo: xlcrm import --undo {id} --into "
                       "{workbook}",
                       "已导入，编号 {id}（{backup}）。撤销：xlcrm import --undo {id} --into "
                       "{workbook}"),
    "import_nothing": ("Nothing to import: the workbook holds all of it already.",
                       "无需导入：工作簿中已包含全部内容。"),
    "import_nothing_mapped": ("Nothing to import: no column of the source names a field xlcrm "
                              "knows ({headers}). Say which column is which with --map.",
                              "没有可导入的内容：来源中没有一列对应 xlcrm 的字段（{headers}）。"
                              "请用 --map 指定各列对应的字段。"),
    "import_nothing_rows": ("Nothing to import: the source has no rows under its header.",
                            "没有可导入的内容：来源的表头下没有数据行。"),
    "import_nothing_rejected": ("Nothing to import: every row was rejected (the reasons are "
                                "above).",
                                "没有可导入的内容：所有行都被拒绝（原因见上）。"),
    "import_nothing_conflicts": ("Nothing to write until you choose: the source's values "
                                 "conflict with the workbook's ({n}). Run again with --prefer "
                                 "source or --prefer workbook.",
                                 "需要您选择，暂无可写入的内容：来源与工作簿的值有 {n} 处冲突。"
                                 "请加上 --prefer source 或 --prefer workbook 再运行。"),
    "import_undone": ("Import {id} undone: {n} cells and {rows} records put back.",
                      "已撤销导入 {id}：恢复了 {n} 个单元格，移除了 {rows} 条记录。"),
    "sheet_customers": ("customer", "客户"),
    "sheet_opportunities": ("opportunity", "商机"),
    "sheet_interactions": ("interaction", "跟进记录"),
    "step_import": ("planning the import", "正在生成导入预览"),
    "mirror_done": ("Mirrored into {url}: {added} added, {updated} updated, {deleted} marked "
                    "deleted, {unchanged} unchanged; {log} change-log entries",
                    "已镜像到 {url}：新增 {added} 条，更新 {updated} 条，标记删除 {deleted} 条，"
                    "未变 {unchanged} 条；变更日志 {log} 条"),
    "mirror_skipped": ("  {sheet}: {n} records without an ID (or with an ID used twice) were "
                       "not mirrored; run xlcrm sync first",
                       "  {sheet}：{n} 条记录没有编号（或编号重复），未镜像；请先运行 xlcrm sync"),
    "mirror_failed": ("The mirror was not updated ({error}); the next sync tries again.",
                      "数据库镜像未更新（{error}）；下次同步会重试。"),
}


def t(key: str, lang: str, **params: Any) -> str:
    """The text `key` in `lang`, filled with `params`."""
    pair = TEXTS[key]
    return (pair[1] if lang == "zh" else pair[0]).format(**params)


def env_lang() -> Lang:
    """The user's language where no workbook says it: XLCRM_LANG, else the locale."""
    for name in ("XLCRM_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            return "zh" if value.startswith("zh") else "en"
    return "en"


def workbook_lang(path: Path | None) -> Lang:
    """The language of the workbook at `path` (its sheet names), else `env_lang()`. Cheap:
    reads only the workbook part's sheet list, and never raises."""
    if path is None or not path.is_file():
        return env_lang()
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("xl/workbook.xml")
            if info.file_size > 4 << 20:
                return env_lang()
            root = etree.fromstring(archive.read(info), etree.XMLParser(
                resolve_entities=False, no_network=True))
    except Exception:  # noqa: BLE001 - a broken file has no language; the reader will say why
        return env_lang()
    names = {str(e.get("name", "")).strip() for e in root.iter() if str(e.tag).endswith("sheet")}
    if "客户" in names or "商机" in names:
        return "zh"
    if {"Customers", "Opportunities"} & names:
        return "en"
    return env_lang()


# Duplicate reasons are built in English by the matcher; these patterns say them in Chinese.
_REASONS_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^same tax ID (.+)$"), r"统一社会信用代码相同 \1"),
    (re.compile(r"^same phone (.+)$"), r"电话相同 \1"),
    (re.compile(r"^same e-mail (.+)$"), r"邮箱相同 \1"),
    (re.compile(r"^same company domain (.+)$"), r"企业邮箱域名相同 \1"),
    (re.compile(r"^same tax number (.+)$"), r"税号相同 \1"),
    (re.compile(r"^tax number (.+) ~ (.+)$"), r"税号相近 \1 ~ \2"),
    (re.compile(r"^same ID number (.+)$"), r"证件号相同 \1"),
    (re.compile(r"^ID number (.+) ~ (.+)$"), r"证件号相近 \1 ~ \2"),
    (re.compile(r"^same birth date (.+)$"), r"出生日期相同 \1"),
    (re.compile(r"^different birth dates$"), "出生日期不同"),
    (re.compile(r"^address (\d+)%$"), r"地址相似度 \1%"),
    (re.compile(r"^name (\d+)%$"), r"名称相似度 \1%"),
    (re.compile(r"^title (\d+)%$"), r"商机名称相似度 \1%"),
    (re.compile(r"^summary (\d+)%$"), r"内容摘要相似度 \1%"),
    (re.compile(r"^same customer, day and type$"), "客户、日期和类型相同"),
    (re.compile(r"^same customer (.+)$"), r"同一客户 \1"),
    (re.compile(r"^same amount (.+)$"), r"金额相同 \1"),
    (re.compile(r"^identical but for the ID$"), "除编号外完全相同"),
    (re.compile(r"^created (\d+) days apart$"), r"创建日期相差 \1 天"),
    (re.compile(r"^open at the same time$"), "同时处于进行中"),
    (re.compile(r"^different owners$"), "负责人不同"),
    (re.compile(r"^same owner (.+)$"), r"负责人相同 \1"),
    (re.compile(r"^same number (.+)$"), r"编号相同 \1"),
    (re.compile(r"^different phones$"), "电话不同"),
    (re.compile(r"^different tax IDs$"), "统一社会信用代码不同"),
    (re.compile(r"^different cities$"), "城市不同"),
    (re.compile(r"^different addresses$"), "地址不同"),
]


def reason_text(reason: str, lang: str) -> str:
    """One duplicate reason ("name 96%") in `lang`."""
    if lang != "zh":
        return reason
    for pattern, replacement in _REASONS_ZH:
        if pattern.match(reason):
            return pattern.sub(replacement, reason)
    return reason


def reasons_text(reasons: list[str], lang: str) -> str:
    return ("；" if lang == "zh" else "; ").join(reason_text(r, lang) for r in reasons)
