"""The `xlcrm` command line: each command is one library call plus output and an exit code.

Exit codes: 0 fine, 1 the workbook has errors, 2 bad input or usage, 3 the workbook is busy.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from . import jobs
from .errors import XlcrmError
from .issues import Report
from .schema import Lang

app = typer.Typer(
    name="xlcrm",
    help="A spreadsheet-native CRM: validate, link, dedupe and analyse an Excel CRM workbook.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_ERRORS = 1
T = TypeVar("T")


class Format(StrEnum):
    text = "text"
    json = "json"


class Language(StrEnum):
    en = "en"
    zh = "zh"


PathArg = Annotated[Path, typer.Argument(help="The workbook (.xlsx or .xlsm).")]
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
                                              mistakes=mistakes))
    out.print(f"Created {escape(str(created))}" + (f" with {sample} sample customers"
                                                   if sample else ""))


@app.command("validate")
def validate_cmd(
    path: PathArg,
    format: FormatOpt = Format.text,
    write: Annotated[bool, typer.Option("--write", help="Fill the Issues sheet and mark the bad "
                                                        "cells in the workbook.")] = False,
) -> None:
    """Check everything: required fields, types, choices, keys, owners, stage rules."""
    result = _run(lambda: jobs.validate_workbook(path, write=write))
    report = result.report
    _print_report(report, format)
    if result.written and format is Format.text:
        out.print("Wrote the Issues sheet and cell marks." if report.lang == "en"
                  else "已写入校验问题表并标记单元格。")
    _exit(result)


@app.command()
def sync(path: PathArg, format: FormatOpt = Format.text) -> None:
    """The whole job: fill blank IDs, validate, write back the results safely."""
    result = _run(lambda: jobs.sync_workbook(path))
    report = result.report
    if format is Format.json:
        payload = {"version": 1, "workbook": report.workbook, "filled_ids": len(result.filled_ids),
                   "written": result.written, "validation": report.to_json()}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_report(report, format)
        if result.written:
            zh = report.lang == "zh"
            out.print(f"已填补 {len(result.filled_ids)} 个编号，结果已写回工作簿。" if zh else
                      f"Filled {len(result.filled_ids)} IDs; results written to the workbook.")
    _exit(result)


def _exit(result: jobs.SyncResult) -> NoReturn:
    """Exit 3 (busy) or 2 (unsafe) when the write was refused, else 1 if errors, else 0."""
    if result.write_error is not None:
        _fail(str(result.write_error), result.write_error.exit_code)
    raise typer.Exit(EXIT_ERRORS if result.report.errors else 0)


@app.command()
def promote(path: PathArg, format: FormatOpt = Format.text) -> None:
    """Move won deals into Customers (link or create), then recompute roll-ups, lifecycle,
    service owner and tier. Running it twice changes nothing the second time."""
    result = _run(lambda: jobs.promote_workbook(path))
    promotion = result.promotion
    assert promotion is not None
    if format is Format.json:
        typer.echo(json.dumps(promotion.to_json(), ensure_ascii=False, indent=2))
    else:
        for item in promotion.promoted:
            how = "new customer" if item["created"] else f"linked by {item['matched_by']}"
            out.print(f"  {item['opportunity_id']} → {item['customer_id']} ({how})")
        for item in promotion.skipped:
            extra = f": {', '.join(item['candidates'])}" if item["candidates"] else ""
            out.print(f"  {item['opportunity_id']} skipped, {item['reason']}{extra}")
        out.print(f"[bold]{len(promotion.promoted)} promoted, {len(promotion.skipped)} skipped; "
                  f"{'workbook updated' if result.written else 'nothing to write'}[/bold]")
    if result.write_error is not None:
        _fail(str(result.write_error), result.write_error.exit_code)


@app.command()
def demo(
    folder: Annotated[Path, typer.Argument(help="Where to put the demo workbooks.")] = Path(
        "xlcrm-demo"),
    sample: Annotated[int, typer.Option("--sample", min=5, max=100_000,
                                        help="Sample customers per workbook.")] = 40,
) -> None:
    """Build a Chinese and an English sample workbook, sync both, and say where to look."""
    result = _run(lambda: jobs.run_demo(folder, sample=sample))
    for lang, res in result.workbooks.items():
        path = folder / f"crm_{lang}.xlsx"
        r, c = res.report, res.report.counts
        if lang == "zh":
            line = (f"客户 {c['customers']}，商机 {c['opportunities']}，跟进记录 "
                    f"{c['interactions']}；发现 {r.errors} 个错误、{r.warnings} 个警告")
        else:
            line = (f"{c['customers']} customers, {c['opportunities']} opportunities, "
                    f"{c['interactions']} interactions; {r.errors} errors and {r.warnings} "
                    "warnings found")
        out.print(f"[bold]{escape(str(path))}[/bold] ({lang}): {escape(line)}")
    out.print("Open a workbook and look at the Issues sheet (校验问题): each row links to the bad "
              "cell, which is highlighted with a note giving the reason.")
    out.print(f"Try: xlcrm validate {escape(str(folder / 'crm_en.xlsx'))}")


def _run(call: Callable[[], T]) -> T:
    try:
        return call()
    except XlcrmError as error:
        _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as error:  # never a traceback for users; XLCRM_DEBUG=1 shows it
        if os.environ.get("XLCRM_DEBUG"):
            raise
        _fail(f"unexpected error: {type(error).__name__}: {error} (set XLCRM_DEBUG=1 for "
              "details)", 2)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"xlcrm: {escape(message)}")
    raise typer.Exit(code)


def _print_report(report: Report, format: Format) -> None:
    if format is Format.json:
        typer.echo(report.dumps())
        return
    zh = report.lang == "zh"
    current = None
    for issue in report.sorted_issues():
        if issue.sheet != current:
            current = issue.sheet
            out.print(f"\n[bold]{escape(issue.sheet)}[/bold]")
        color = "red" if issue.severity == "error" else "yellow"
        out.print(f"  {issue.cell or '':>7}  [{color}]{issue.code}[/{color}]  "
                  f"{escape(issue.message)}")
    counts = report.counts
    if zh:
        line = (f"{report.workbook}：{report.errors} 个错误，{report.warnings} 个警告"
                f"（客户 {counts.get('customers', 0)}，商机 {counts.get('opportunities', 0)}，"
                f"跟进记录 {counts.get('interactions', 0)}）")
    else:
        line = (f"{report.workbook}: {report.errors} errors, {report.warnings} warnings "
                f"in {counts.get('customers', 0)} customers, "
                f"{counts.get('opportunities', 0)} opportunities, "
                f"{counts.get('interactions', 0)} interactions")
    out.print(("\n" if report.issues else "") + f"[bold]{escape(line)}[/bold]")


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
