"""The library API behind every command, ribbon button and watcher run.

Each job reads the workbook once, runs pure steps over the frames, and writes back (if at
all) once through `write_workbook`. `sync` is the whole pipeline; later capabilities plug in
as steps of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl import load_workbook

from . import schema
from .edits import append_rows, mark_cells, set_cells, write_issues_sheet
from .errors import AlreadyExists, BusyError, NotAWorkbook, UnsafeToWrite, XlcrmError
from .guard import WORKBOOK_SUFFIXES
from .ids import FilledId, fill_blank_ids
from .issues import Report
from .promote import Promotion, promote_won_deals
from .reader import WorkbookData, read_workbook
from .sample import sample_records, sample_rows
from .schema import Lang
from .template import copy_template
from .validate import validate
from .writer import Edit, check_not_open, write_workbook


@dataclass
class SyncResult:
    """What a sync (or `validate --write`) did. When the write was refused (busy, changed,
    or lossy), `write_error` says why and nothing was written; the report is still valid."""

    report: Report
    filled_ids: list[FilledId] = field(default_factory=list)
    written: bool = False
    backup: Path | None = None
    write_error: XlcrmError | None = None
    promotion: Promotion | None = None


def init_workbook(path: Path, lang: Lang = "en", sample: int = 0, force: bool = False,
                  mistakes: bool = True, seed: int = 7, today: dt.date | None = None) -> Path:
    """Create a workbook from the template, optionally with sample records.

    Raises:
        AlreadyExists: `path` exists and `force` is not set.
        NotAWorkbook: `path` does not end in .xlsx or .xlsm.
    """
    if path.suffix.lower() not in WORKBOOK_SUFFIXES:
        raise NotAWorkbook(f"{path.name}: the workbook name must end in .xlsx")
    if path.suffix.lower() == ".xlsm":
        raise NotAWorkbook(f"{path.name}: init writes .xlsx; save it as .xlsm in Excel later")
    if path.exists() and not force:
        raise AlreadyExists(f"{path} exists already (use --force to overwrite)")
    if path.exists():
        check_not_open(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".xlcrm-init-{path.name}")
    copy_template(lang, temp)
    if sample > 0:
        data = read_workbook(temp)
        records = sample_rows(sample_records(sample, lang, seed=seed, today=today,
                                             mistakes=mistakes, settings=data.settings))
        book = load_workbook(temp)
        for key, rows in records.items():
            sheet = data.sheets[key]
            append_rows(sheet.name, sheet.table, sheet.columns, rows)(book)
        book.save(temp)
    temp.replace(path)
    return path


def validate_workbook(path: Path, write: bool = False,
                      today: dt.date | None = None) -> SyncResult:
    """Validate; with `write`, also fill the Issues sheet and mark the bad cells.

    Raises:
        InputError: the workbook cannot be read.
    """
    data = read_workbook(path)
    result = SyncResult(report=validate(data, today=today))
    if write:
        _write(result, data, report_edits(data, result.report))
    return result


def sync_workbook(path: Path, today: dt.date | None = None) -> SyncResult:
    """The whole job: read, fill blank IDs, promote won deals, validate, write back safely.

    Validation sees the workbook as read (plus the IDs filled); rows that promotion adds are
    checked on the next run.
    """
    data = read_workbook(path)
    filled = fill_blank_ids(data)
    promotion = promote_won_deals(data, today=today)
    report = validate(data, today=today, extra=promotion.issues)
    result = SyncResult(report=report, filled_ids=filled, promotion=promotion)
    edits = [*id_edits(filled), *promotion_edits(data, promotion), *report_edits(data, report)]
    _write(result, data, edits)
    return result


def promote_workbook(path: Path, today: dt.date | None = None) -> SyncResult:
    """Move won deals into Customers and recompute roll-ups; writes only when something changes.
    """
    data = read_workbook(path)
    promotion = promote_won_deals(data, today=today)
    result = SyncResult(report=Report(workbook=path.name, counts=data.counts(), lang=data.lang,
                                      issues=list(promotion.issues)), promotion=promotion)
    if promotion.changes:
        _write(result, data, promotion_edits(data, promotion))
    return result


def promotion_edits(data: WorkbookData, promotion: Promotion) -> list[Edit]:
    edits = [set_cells(sheet, cells) for sheet, cells in promotion.cells.items()]
    for key, rows in (("customers", promotion.new_customers),
                      ("interactions", promotion.new_interactions)):
        if rows:
            sheet = data.sheets[key]
            edits.append(append_rows(sheet.name, sheet.table, sheet.columns, rows))
    return edits


def _write(result: SyncResult, data: WorkbookData, edits: list[Edit]) -> None:
    """Write through the safe writer; a refusal is recorded, not raised."""
    try:
        result.backup = write_workbook(data.path, data.sha256, edits)
        result.written = True
    except (BusyError, UnsafeToWrite) as error:
        result.write_error = error


def report_edits(data: WorkbookData, report: Report) -> list[Edit]:
    names = [s.name for s in data.sheets.values()]
    return [write_issues_sheet(report, data.lang), mark_cells(report, names)]


def id_edits(filled: list[FilledId]) -> list[Edit]:
    by_sheet: dict[str, list[tuple[int, int, str]]] = {}
    for f in filled:
        by_sheet.setdefault(f.sheet, []).append((f.row, f.column, f.value))
    return [set_cells(sheet, cells) for sheet, cells in by_sheet.items()]


@dataclass
class DemoResult:
    folder: Path
    workbooks: dict[Lang, SyncResult]


def run_demo(folder: Path, sample: int = 40, today: dt.date | None = None) -> DemoResult:
    """Create one Chinese and one English sample workbook in `folder` and sync both."""
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[Lang, SyncResult] = {}
    for lang in schema.LANGS:
        path = folder / f"crm_{lang}.xlsx"
        init_workbook(path, lang=lang, sample=sample, force=True, today=today)
        result = sync_workbook(path, today=today)
        if result.write_error is not None:
            raise result.write_error
        results[lang] = result
    return DemoResult(folder=folder, workbooks=results)
