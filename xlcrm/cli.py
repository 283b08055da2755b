"""The `xlcrm` command line: each command is one library call plus output and an exit code.

Exit codes: 0 fine, 1 the workbook has errors, 2 bad input or usage, 3 the workbook is busy,
70 an internal error (a bug; a crash log is written), 77 the system will not let xlcrm replace
the workbook. Output is in the workbook's language (see `xlcrm.messages`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

from . import jobs, progress, schema
from .changes import show, show_record
from .crash import write_crash_log
from .errors import EXIT_BUG, InputError, WriteRefused, XlcrmError
from .history import parse_stamp, parse_user_time
from .issues import Report
from .messages import env_lang, reasons_text, t, workbook_lang
from .pool import Recycling
from .schema import Lang

app = typer.Typer(
    name="xlcrm",
    help="A spreadsheet-native CRM: validate, link, dedupe and analyse an Excel CRM workbook. "
         "电子表格原生的 CRM：校验、关联、查重和分析 Excel 客户管理工作簿。",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
SHOWN_ISSUES = 20  # issues printed before the summary points at the rest
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_ERRORS = 1
T = TypeVar("T")
R = TypeVar("R")


def _version_callback(value: bool) -> None:
    if value:
        try:
            number = version("xlcrm")
        except PackageNotFoundError:
            number = "unknown"
        typer.echo(f"xlcrm {number}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[bool, typer.Option("--version", "-V", callback=_version_callback,
                                               is_eager=True,
                                               help="Show the version and exit.")] = False,
) -> None:
    """A spreadsheet-native CRM: validate, link, dedupe and analyse an Excel CRM workbook."""


class Format(StrEnum):
    text = "text"
    json = "json"


class Language(StrEnum):
    en = "en"
    zh = "zh"


PathArg = Annotated[Path, typer.Argument(help="The workbook (.xlsx or .xlsm).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Print every issue (default: the first "
                                                    f"{SHOWN_ISSUES}, then a count by code).")]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]


@app.command()
def init(
    path: PathArg,
    lang: Annotated[Language, typer.Option("--lang", help="Template language.")] = Language.en,
    sample: Annotated[int, typer.Option("--sample", min=0, max=1_000_000,
                                        help="Add N sample customers (and ~2N opportunities, "
                                             "~5N interactions).")] = 0,
    mistakes: Annotated[bool, typer.Option(help="Plant a handful of realistic mistakes in the "
                                                "sample.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Create a new CRM workbook from the template."""
    code: Lang = "zh" if lang is Language.zh else "en"
    created = _run(lambda: jobs.init_workbook(path, code, sample=sample, force=force,
                                              mistakes=mistakes), path, code)
    out.print(escape(t("created_sample", code, path=created, n=sample) if sample
                     else t("created", code, path=created)))


@app.command("validate")
def validate_cmd(
    path: PathArg,
    format: FormatOpt = Format.text,
    write: Annotated[bool, typer.Option("--write", help="Fill the Issues sheet and mark the bad "
                                                        "cells in the workbook.")] = False,
    show_all: AllOpt = False,
) -> None:
    """Check everything: required fields, types, choices, keys, owners, stage rules."""
    result, refused = _run(lambda: _attempt(lambda: jobs.validate_workbook(path, write=write)),
                           path)
    report = result.report
    _print_report(report, format, show_all)
    if result.written and format is Format.text:
        out.print(t("issues_written", report.lang))
    _exit(result, refused)


@app.command()
def sync(path: PathArg, format: FormatOpt = Format.text, show_all: AllOpt = False) -> None:
    """The whole job: fill blank IDs, validate, write back the results safely."""
    result, refused = _run(lambda: _attempt(lambda: jobs.sync_workbook(path)), path)
    report = result.report
    delivery = result.delivery
    pool = result.pool or Recycling()
    if format is Format.json:
        payload = {"version": 1, "workbook": report.workbook, "filled_ids": len(result.filled_ids),
                   "written": result.written, "changes": len(result.changes),
                   "promoted": len(result.promotion.promoted) if result.promotion else 0,
                   "pool": {"recycled": [d.customer_id for d in pool.recycled],
                            "warned": [d.customer_id for d in pool.warned]},
                   "notifications": {"sent": delivery.sent if delivery else 0,
                                     "failed": delivery.failed if delivery else 0},
                   "mirror": (result.mirror.to_json() if result.mirror else
                              {"error": result.mirror_error} if result.mirror_error else None),
                   "validation": report.to_json()}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_report(report, format, show_all)
        if result.written:
            promoted = len(result.promotion.promoted) if result.promotion else 0
            out.print(t("sync_done", report.lang, ids=len(result.filled_ids), promoted=promoted,
                        changes=len(result.changes)))
        elif refused is None:
            out.print(t("sync_unchanged", report.lang))
        if pool.recycled or pool.warned:
            out.print(escape(t("pool_done", report.lang, n=len(pool.recycled),
                               ids=", ".join(d.customer_id for d in pool.recycled) or "-",
                               warned=len(pool.warned))))
        if delivery and (delivery.sent or delivery.failed):
            out.print(t("notified", report.lang, sent=delivery.sent, failed=delivery.failed))
        if result.mirror is not None:
            _print_mirror(result.mirror, report.lang)
        elif result.mirror_error:
            out.print(escape(t("mirror_failed", report.lang, error=result.mirror_error)))
    _exit(result, refused)


class Prefer(StrEnum):
    none = "none"
    source = "source"
    workbook = "workbook"


class PreviewFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@app.command("import")
def import_cmd(
    source: Annotated[Path | None, typer.Argument(
        help="The sheet to bring in: .xlsx/.xlsm/.xls (any sheet) or .csv/.tsv/.txt (UTF-8 or "
             "GBK, the delimiter detected).")] = None,
    into: Annotated[Path | None, typer.Option("--into", help="The xlcrm workbook.")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="The source's sheet (default: "
                                                             "the first with data).")] = None,
    map_file: Annotated[Path | None, typer.Option(
        "--map", help='A JSON file {"source header": "customers.city" or null} that decides '
                      "columns by hand (the mapping used is saved and reused).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="Match customers by this field alone (name, email, phone, tax_id …) "
                      "instead of the duplicate matcher.")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Write the import (default: a dry "
                                                        "run that changes nothing).")] = False,
    prefer: Annotated[Prefer, typer.Option(
        "--prefer", help="When a cell differs: none (list the conflict, keep the workbook's), "
                         "source (take the source's), workbook (keep, do not list).")
    ] = Prefer.none,
    dayfirst: Annotated[bool | None, typer.Option(
        "--dayfirst/--monthfirst", help="How 03/11/2026 is read (default: Settings → "
                                        "date_order).")] = None,
    undo: Annotated[str | None, typer.Option("--undo", help="Undo the import with this ID.")
                    ] = None,
    format: Annotated[PreviewFormat, typer.Option("--format", help="Output format.")
                      ] = PreviewFormat.text,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the preview (html or "
                                                                "json) to this file.")] = None,
) -> None:
    """Bring an existing sheet or CSV (a CRM's export, a mixed customer-and-deal sheet, a
    colleague's workbook) into the workbook: a preview first (new records, changed cells old →
    new, conflicts, rejected rows, the column mapping), then with --apply an upsert that never
    overwrites a value with a blank; --undo IMPORT_ID puts every cell back. Exit 1 when the
    preview lists conflicts or rejected rows."""
    if into is None:
        _fail(t("import_no_into", env_lang()), 2)
    lang = workbook_lang(into)
    if undo is not None:
        cells, rows = _run(lambda: jobs.undo_import(into, undo), into)
        out.print(escape(t("import_undone", lang, id=undo, n=cells, rows=rows)))
        return
    if source is None:
        _fail(t("import_no_source", lang), 2)
    result = _run(lambda: jobs.import_workbook(into, source, sheet, map_file, apply,
                                               prefer.value, dayfirst, key), into)
    plan = result.plan
    from .importer import nothing_message, preview_html, preview_lines

    payload = None
    if format is PreviewFormat.json:
        payload = json.dumps({**plan.to_json(), "applied": result.applied,
                              "import_id": result.import_id}, ensure_ascii=False, indent=2,
                             default=str)
    elif format is PreviewFormat.html:
        payload = preview_html(plan, lang)
    if payload is not None and out_file is not None:
        text = payload
        _run(lambda: _write_text(out_file, text), into)
    elif payload is not None:
        typer.echo(payload)
    if format is PreviewFormat.text or out_file is not None:
        for line in preview_lines(plan, lang):
            out.print(escape(line))
        if result.applied:
            out.print(f"[bold]{escape(t('import_applied', lang, id=result.import_id, backup=result.backup, workbook=into))}[/bold]")  # noqa: E501
        elif plan.empty():
            out.print(escape(nothing_message(plan, lang)))
        else:
            out.print(f"[bold]{escape(t('import_dry_run', lang))}[/bold]")
    if plan.conflicts or plan.rejected:
        raise typer.Exit(EXIT_ERRORS)


class Target(StrEnum):
    hubspot = "hubspot"
    salesforce = "salesforce"
    zoho = "zoho"
    odoo = "odoo"


@app.command()
def export(
    path: PathArg,
    to: Annotated[Target, typer.Option("--to", help="The CRM the files are for.")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the files (default: NAME-TARGET beside the workbook).")] = None,
    every_note: Annotated[bool, typer.Option(
        "--all", help="HubSpot: every interaction in the notes file, not only those not "
                      "exported before (HubSpot cannot update notes).")] = False,
    format: FormatOpt = Format.text,
) -> None:
    """Files a full CRM imports as they are, one per object in import order, with an
    IMPORT.md of the steps; our IDs are the upsert keys, so exporting again updates the same
    records. Exit 1 when some values could not be exported as the target wants (listed, and
    in PROBLEMS.csv)."""
    result, folder = _run(lambda: jobs.export_workbook(path, to.value, out_dir, every_note),
                          path)
    lang = result.lang
    if format is Format.json:
        typer.echo(json.dumps(result.to_json(folder), ensure_ascii=False, indent=2))
    else:
        for f in result.files:
            out.print(escape(t("export_file", lang, name=f.name, n=len(f.rows))))
        for problem in result.problems[:SHOWN_ISSUES]:
            out.print(f"  [yellow]{escape(problem.text(lang))}[/yellow]")
        if len(result.problems) > SHOWN_ISSUES:
            out.print(escape(t("export_more_problems", lang,
                               n=len(result.problems) - SHOWN_ISSUES)))
        out.print(f"[bold]{escape(t('export_done', lang, folder=folder, n=len(result.problems)))}[/bold]")  # noqa: E501
    if result.problems:
        raise typer.Exit(EXIT_ERRORS)


@app.command()
def mirror(
    path: PathArg,
    url: Annotated[str | None, typer.Argument(
        help="SQLite file or postgresql://user@host/db (default: Settings' mirror_url, else "
             "NAME.mirror.sqlite beside the workbook). A password comes from PGPASSWORD or "
             "~/.pgpass, never the command line.")] = None,
    format: FormatOpt = Format.text,
) -> None:
    """Mirror the workbook into SQLite or PostgreSQL: typed tables with keys, only what
    changed since the last mirror, deleted records marked, all in one transaction."""
    result = _run(lambda: jobs.mirror_workbook(path, url), path)
    if format is Format.json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_mirror(result, workbook_lang(path))


def _print_mirror(result: Any, lang: Lang) -> None:
    for sheet, count in result.skipped.items():
        if count:
            out.print(escape(t("mirror_skipped", lang, sheet=sheet, n=count)))
    out.print(escape(t("mirror_done", lang, url=result.url, added=sum(result.added.values()),
                       updated=sum(result.updated.values()),
                       deleted=sum(result.deleted.values()),
                       unchanged=sum(result.unchanged.values()), log=result.change_log)))


def _attempt(call: Callable[[], R]) -> tuple[R, WriteRefused | None]:
    """Run a job whose findings are worth showing when its write is refused: (its result,
    the refusal or None)."""
    try:
        return call(), None
    except WriteRefused as error:
        if error.result is None:
            raise
        return cast(R, error.result), error


def _exit(result: jobs.SyncResult, refused: WriteRefused | None) -> NoReturn:
    """Exit with the refusal's code (3 busy, 2 unsafe, 77 denied) when the write was refused,
    else 1 if errors, else 0."""
    if refused is not None:
        _fail(refused.text(result.report.lang), refused.exit_code)
    raise typer.Exit(EXIT_ERRORS if result.report.errors else 0)


@app.command()
def promote(path: PathArg, format: FormatOpt = Format.text) -> None:
    """Move won deals into Customers (link or create), then recompute roll-ups, lifecycle,
    service owner and tier. Running it twice changes nothing the second time."""
    result, refused = _run(lambda: _attempt(lambda: jobs.promote_workbook(path)), path)
    promotion = result.promotion
    assert promotion is not None
    lang = result.report.lang
    if format is Format.json:
        typer.echo(json.dumps(promotion.to_json(), ensure_ascii=False, indent=2))
    else:
        for item in promotion.promoted:
            if item["created"]:
                line = t("promoted_new", lang, opp=item["opportunity_id"],
                         customer=item["customer_id"])
            else:
                line = t("promoted_linked", lang, opp=item["opportunity_id"],
                         customer=item["customer_id"],
                         how=t(f"how_{item['matched_by']}", lang))
            out.print(escape(line))
        for item in promotion.skipped:
            extra = f": {', '.join(item['candidates'])}" if item["candidates"] else ""
            out.print(escape(t("promote_skipped", lang, opp=item["opportunity_id"],
                               reason=t(f"reason_{item['reason']}", lang), extra=extra)))
        what = t("workbook_updated" if result.written else "nothing_to_write", lang)
        out.print(f"[bold]{escape(t('promote_summary', lang, promoted=len(promotion.promoted), skipped=len(promotion.skipped), what=what))}[/bold]")  # noqa: E501
    if refused is not None:
        _fail(refused.text(lang), refused.exit_code)


@app.command()
def dedupe(
    path: PathArg,
    sheet: Annotated[str, typer.Option("--sheet", help="customers, opportunities or "
                                                       "interactions (either language).")
                     ] = "customers",
    threshold: Annotated[float | None, typer.Option("--threshold", min=0, max=1, help="Score "
                                                    "from which a pair counts (default: "
                                                    "Settings duplicate_threshold).")] = None,
    format: FormatOpt = Format.text,
    write: Annotated[bool, typer.Option("--write", help="Fill the Duplicates sheet.")] = False,
    merge: Annotated[bool, typer.Option("--merge", help="Merge duplicates (with --cluster N "
                                                        "or --all).")] = False,
    cluster: Annotated[int | None, typer.Option("--cluster", min=1, help="The cluster to "
                                                "merge, numbered as listed.")] = None,
    merge_all: Annotated[bool, typer.Option("--all", help="Merge every cluster.")] = False,
    undo: Annotated[str | None, typer.Option("--undo", help="Undo the merge with this ID.")
                    ] = None,
) -> None:
    """Find duplicates (customers; opportunities; interactions): clusters with a score and the
    reasons for each pair; --merge merges customers safely, --undo MERGE_ID puts it back."""
    sheet_key = schema.sheet_aliases().get(schema.normalize_header(sheet))
    if sheet_key not in ("customers", "opportunities", "interactions"):
        _fail(f"--sheet {sheet}: customers, opportunities or interactions", 2)
    if merge and sheet_key != "customers":
        _fail("--merge merges customers only", 2)
    lang = workbook_lang(path)
    if undo:
        restored = _run(lambda: jobs.undo_merge(path, undo), path)
        out.print(escape(t("unmerged", lang, id=undo, records=", ".join(restored))))
        return
    if merge:
        if (cluster is None) == (not merge_all):
            _fail("--merge needs --cluster N or --all", 2)
        done = _run(lambda: jobs.merge_duplicates(path, cluster=cluster, threshold=threshold),
                    path)
        out.print(escape(t("merged", lang, merged=", ".join(done.merged),
                           survivors=", ".join(done.survivors), path=path, id=done.merge_id)))
        return
    result, refused = _run(lambda: _attempt(lambda: jobs.dedupe_workbook(
        path, threshold=threshold, write=write, sheet_key=str(sheet_key))), path)
    lang = result.lang
    if format is Format.json:
        typer.echo(json.dumps({"version": 1, "clusters": result.clusters}, ensure_ascii=False,
                              indent=2))
    else:
        for number, group in enumerate(result.clusters, start=1):
            records = ", ".join(group["labels"])
            out.print(escape(t("cluster", lang, n=number, records=records,
                               score=f"{group['score']:.2f}")))
            labels = dict(zip(group["record_ids"], group["labels"], strict=True))
            for pair in group["pairs"]:
                out.print(f"     {escape(labels.get(pair['a'], pair['a']))} ~ "
                          f"{escape(labels.get(pair['b'], pair['b']))} {pair['score']:.2f}: "
                          f"{escape(reasons_text(pair['reasons'], lang))}")
        key = "clusters_written" if result.written else "clusters"
        out.print(f"[bold]{escape(t(key, lang, n=len(result.clusters)))}[/bold]")
    if refused is not None:
        _fail(refused.text(lang), refused.exit_code)


@app.command("log")
def log_cmd(
    path: PathArg,
    record: Annotated[str | None, typer.Option("--record", help="Only this record ID.")] = None,
    field: Annotated[str | None, typer.Option("--field", help="Only this field (key or header, "
                                                               "e.g. phone or 电话).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only changes by this user.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only changes from this date or "
                                                               "time on (local time).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N changes, the "
                                                                      "newest.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain instead: exit 1 "
                                                          "if the log was tampered with.")] = False,
    format: FormatOpt = Format.text,
) -> None:
    """The change history: who changed what, when, old and new values."""
    lang = workbook_lang(path)
    if verify:
        problems = _run(lambda: jobs.verify_log(path), path)
        if format is Format.json:
            typer.echo(json.dumps({"version": 1, "intact": not problems, "problems": problems},
                                  ensure_ascii=False, indent=2))
        elif problems:
            for problem in problems:
                err.print(f"xlcrm: {escape(problem)}")
            err.print(f"xlcrm: {t('log_tampered', lang)}")
        else:
            out.print(t("log_intact", lang))
        raise typer.Exit(EXIT_ERRORS if problems else 0)
    moment = _run(lambda: parse_user_time(since), path) if since else None
    entries = _run(lambda: jobs.change_log(path, record=record, field_name=field, user=user,
                                           since=moment), path)
    if limit:
        entries = entries[-limit:]
    if format is Format.json:
        typer.echo(json.dumps({"version": 1, "changes": [log_json(e) for e in entries]},
                              ensure_ascii=False, indent=2))
        return
    for entry in entries:
        item = log_json(entry)
        sheet_key = str(entry["sheet"])
        what = schema.field_label(sheet_key, item["field"], lang) if item["field"] else ""
        if item["action"] == "changed":
            detail = f"{what}: {show(entry['old'])} → {show(entry['new'])}"
        else:
            values = entry["new"] if item["action"] == "added" else entry["old"]
            detail = (show_record(sheet_key, values, lang) if isinstance(values, dict)
                      and sheet_key in schema.SHEETS_BY_KEY else show(values))[:120]
        action = t(f"action_{item['action']}", lang) if item["action"] in (
            "added", "changed", "deleted") else item["action"]
        out.print(f"{item['at'][:19].replace('T', ' ')}  {escape(str(item['user']))}  "
                  f"{item['record_id']}  {action}  {escape(detail)}")
    out.print(f"[bold]{escape(t('log_count', lang, n=len(entries)))}[/bold]")


@app.command()
def restore(
    path: PathArg,
    record_id: Annotated[str, typer.Argument(help="The ID of the record to bring back.")],
    at: Annotated[str | None, typer.Option("--at", help="Values as they were at this time "
                                                        "(local); default: just before the "
                                                        "record was deleted.")] = None,
) -> None:
    """Bring back a deleted record, or a record's values as they were at a time."""
    lang = workbook_lang(path)
    moment = _run(lambda: parse_user_time(at, end_of_day=True), path) if at else None
    done = _run(lambda: jobs.restore_record(path, record_id, at=moment), path)
    if done.row_added:
        out.print(escape(t("restored_row", lang, id=done.record_id, sheet=done.sheet)))
    else:
        fields = ", ".join(done.fields) or t("restored_nothing", lang)
        out.print(escape(t("restored_fields", lang, id=done.record_id, sheet=done.sheet,
                           fields=fields)))


@app.command()
def claim(
    path: PathArg,
    customer_ids: Annotated[list[str], typer.Argument(help="IDs of the customers to claim.")],
    person: Annotated[str, typer.Option("--as", help="Who claims them: a name or e-mail in "
                                                     "Settings → People.")],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
) -> None:
    """Take customers from the lead pool (公海) within the Settings' limits. Exit 0 when all
    were claimed, 1 when some were refused (the others are claimed), 2 when none could be."""
    lang = workbook_lang(path)
    done = _run(lambda: jobs.claim_workbook(path, customer_ids, person), path)
    if format is Format.json:
        out.print_json(data={"person": done.person, "claimed": done.claimed,
                             "refused": [{"customer_id": c, "reason": r, "message": m}
                                         for c, r, m in done.refused]})
    else:
        if done.claimed:
            out.print(escape(t("claimed", lang, person=done.person,
                               ids=", ".join(done.claimed))))
        for _, _, message in done.refused:
            err.print(escape(t("claim_refused", lang, message=message)))
    if done.refused:
        raise typer.Exit(EXIT_ERRORS if done.claimed else 2)


def log_json(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored entry in the `xlcrm log --format json` shape."""
    sheet = schema.SHEETS_BY_KEY.get(str(entry["sheet"]))

    def value(stored: Any) -> Any:
        if isinstance(stored, dict) and not ({"$d", "$t"} & stored.keys()):
            return {k: show(v) for k, v in stored.items()}
        return None if stored is None else show(stored)

    return {"at": parse_stamp(entry["at"]).astimezone().isoformat(timespec="seconds"),
            "user": entry["user"], "source": entry["source"], "job": entry["job"],
            "run_id": entry["run_id"], "sheet": sheet.en if sheet else entry["sheet"],
            "record_id": entry["record_id"], "action": entry["action"],
            "field": entry["field"], "old": value(entry["old"]), "new": value(entry["new"])}


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@app.command()
def report(
    path: PathArg,
    format: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = (
        ReportFormat.text),
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the output to this file "
                                                              "instead of the terminal.")] = None,
    write: Annotated[bool, typer.Option("--write/--no-write", help="Also rebuild the workbook's "
                                                                   "Dashboard sheet.")] = True,
) -> None:
    """Pipeline, forecast, funnel, win rates, time in stage, customer segments and team
    figures; rebuilds the Dashboard sheet unless --no-write."""
    from .report import render_html, render_text

    result, refused = _run(lambda: _attempt(lambda: jobs.report_workbook(path, write=write)),
                           path)
    figures = result.analytics
    assert figures is not None
    lang = result.report.lang
    if format is ReportFormat.json:
        text = json.dumps({"workbook": path.name, **figures.to_json()}, ensure_ascii=False,
                          indent=2)
    elif format is ReportFormat.html:
        text = render_html(figures, lang, path.name, dt.date.today())
    else:
        text = render_text(figures, lang, path.name)
    if out_file is not None:
        _run(lambda: _write_text(out_file, text), path)
        out.print(escape(t("wrote_file", lang, path=out_file)))
    else:
        typer.echo(text)
    if refused is not None:
        _fail(t("dashboard_not_rebuilt", lang, error=refused.text(lang)), refused.exit_code)


def _write_text(path: Path, text: str) -> None:
    try:
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None


class WatchMode(StrEnum):
    report = "report"
    sync = "sync"


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="The shared folder holding the workbooks.")],
    poll: Annotated[float | None, typer.Option("--poll", min=0.5, help="Poll every SECONDS "
                                               "instead of native events (network shares).")
                    ] = None,
    mode: Annotated[WatchMode, typer.Option("--mode", help="report: sidecar reports only; "
                                                           "sync: also write results back when "
                                                           "safe.")] = WatchMode.report,
    once: Annotated[bool, typer.Option("--once", help="Process what is there, then exit.")
                    ] = False,
    recursive: Annotated[bool, typer.Option("--recursive", help="Watch subfolders too.")
                         ] = False,
    settle: Annotated[float, typer.Option("--settle", min=0.05, help="Seconds a file must stay "
                                                                     "unchanged before it is "
                                                                     "processed.")] = 1.0,
) -> None:
    """Check (or sync) every workbook saved in FOLDER, with reports in FOLDER/.xlcrm/."""
    import signal
    import threading

    from .watch import Watcher, setup_logging

    if not folder.is_dir():
        _fail(t("no_folder", env_lang(), path=folder), 2)
    setup_logging(folder)
    chosen: Literal["report", "sync"] = "sync" if mode is WatchMode.sync else "report"
    watcher = Watcher(folder, mode=chosen, poll=poll, recursive=recursive, settle=settle)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _run(lambda: watcher.run(stop, once=once), folder)


addin_app = typer.Typer(help="The Excel add-in (xlcrm.xlam) with the CRM ribbon.",
                        no_args_is_help=True)
app.add_typer(addin_app, name="addin")


@addin_app.command("build")
def addin_build(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for xlcrm.xlam.")] = Path("."),
) -> None:
    """Build xlcrm.xlam from the xlwings ribbon template (same inputs, same bytes)."""
    from .addin import build

    path = _run(lambda: build(out_dir), out_dir)
    out.print(escape(t("built", env_lang(), path=path)))


@addin_app.command("install")
def addin_install(
    addin: Annotated[Path | None, typer.Option("--addin", help="A built xlcrm.xlam (default: "
                                                               "build one now).")] = None,
) -> None:
    """Install xlcrm.xlam where Excel loads add-ins at start-up (Windows, macOS)."""
    import tempfile

    from .addin import build, install

    def go() -> Path:
        if addin is not None:
            return install(addin)
        with tempfile.TemporaryDirectory() as folder:
            return install(build(Path(folder)))

    target = _run(go)
    out.print(escape(t("installed", env_lang(), path=target)))


@app.command()
def demo(
    folder: Annotated[Path, typer.Argument(help="Where to put the demo workbooks.")] = Path(
        "xlcrm-demo"),
    sample: Annotated[int, typer.Option("--sample", min=5, max=100_000,
                                        help="Sample customers per workbook.")] = 40,
) -> None:
    """Build a Chinese and an English sample workbook, sync both, and say where to look."""
    result = _run(lambda: jobs.run_demo(folder, sample=sample), folder)
    lang = env_lang()
    for book_lang, res in result.workbooks.items():
        path = folder / f"crm_{book_lang}.xlsx"
        r, c = res.report, res.report.counts
        line = t("demo_book", book_lang, customers=c["customers"],
                 opportunities=c["opportunities"], interactions=c["interactions"],
                 errors=r.errors, warnings=r.warnings)
        out.print(f"[bold]{escape(str(path))}[/bold] ({book_lang}): {escape(line)}")
    out.print(escape(t("demo_look", lang)))
    book = folder / "crm_en.xlsx"
    out.print(escape(t("demo_try", lang, book=book)))


def _run(call: Callable[[], T], target: Path | None = None, lang: Lang | None = None) -> T:
    """Run one library call: an XlcrmError is its one-line message and exit code; anything
    else is a bug (exit 70, the traceback in a crash log); never a traceback on the terminal.
    A terminal gets a spinner with the job's steps; a pipe gets nothing extra."""
    lang = lang or workbook_lang(target)
    try:
        if not err.is_terminal:
            return call()
        with err.status("xlcrm …") as status:
            def show(name: str, params: dict[str, Any]) -> None:
                status.update(escape(t(f"step_{name}", lang, **params)) + " …")

            with progress.listening(show):
                return call()
    except XlcrmError as error:
        _fail(error.text(lang), error.exit_code)
    except KeyboardInterrupt:
        _fail(t("interrupted", lang), 130)
    except Exception as error:  # a bug: one line for the user, the details in a crash log
        if os.environ.get("XLCRM_DEBUG"):
            raise
        log = write_crash_log(error, target)
        what = f"{type(error).__name__}: {error}"
        _fail(t("bug", lang, error=what, log=log) if log else t("bug_nolog", lang, error=what),
              EXIT_BUG)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"xlcrm: {escape(message)}")
    raise typer.Exit(code)


def _print_report(report: Report, format: Format, show_all: bool = False) -> None:
    """The issues (the first SHOWN_ISSUES unless `show_all`, then a count by code and where
    the rest are) and a one-line summary."""
    if format is Format.json:
        typer.echo(report.dumps())
        return
    lang = report.lang
    issues = report.sorted_issues()
    shown = issues if show_all else issues[:SHOWN_ISSUES]
    current = None
    for issue in shown:
        if issue.sheet != current:
            current = issue.sheet
            out.print(f"\n[bold]{escape(issue.sheet)}[/bold]")
        color = "red" if issue.severity == "error" else "yellow"
        out.print(f"  {issue.cell or '':>7}  [{color}]{issue.code}[/{color}]  "
                  f"{escape(issue.message)}")
    if len(shown) < len(issues):
        out.print(f"\n{escape(t('more_issues', lang, n=len(issues) - len(shown)))}")
        out.print(t("by_code", lang))
        for (code, severity), count in sorted(
                Counter((str(i.code), i.severity) for i in issues).items(),
                key=lambda item: (item[0][1] != "error", -item[1], item[0][0])):
            color = "red" if severity == "error" else "yellow"
            out.print(f"  [{color}]{code}[/{color}]  {count}")
    counts = report.counts
    line = t("summary", lang, workbook=report.workbook, errors=report.errors,
             warnings=report.warnings, customers=counts.get("customers", 0),
             opportunities=counts.get("opportunities", 0),
             interactions=counts.get("interactions", 0))
    out.print(("\n" if report.issues else "") + f"[bold]{escape(line)}[/bold]")


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
