"""The Excel ribbon's entry points. Every button of the "CRM 客户管理" tab calls the VBA
callback ``RibbonMyAddin.OnAction``, which runs ``xlcrm.ribbon.dispatch('<tag>')`` through
xlwings' RunPython.

Each ``xl_…`` function reads the calling workbook's Tables whole (never cell by cell), calls
the same library functions as the CLI, and writes the results into the *open* workbook
(Excel holds the file, so the safe file writer is not the path here): the Issues sheet, marked
cells with notes, new rows (growing the Table), the Duplicates, ChangeLog and Dashboard
sheets. It ends with a short message box; an error is a message box too, never a traceback.

`XlBook` is the only code that touches xlwings objects, and xlwings is imported only inside
`dispatch`: this module imports on Linux without Excel. The tests run these functions
against a small stand-in for the xlwings calls `XlBook` makes; real Excel is not exercised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import schema
from .analytics import analyse
from .changes import Tracker, newest_entries, stage_cells, stage_history, start_tracking
from .dashboard import COLUMN_LABELS, KPI_LABELS, LAYOUT, TITLES, shown_cell
from .dedupe import all_duplicates, duplicate_sheet_rows
from .edits import changelog_rows, issue_rows
from .errors import SheetMissing, XlcrmError
from .history import History, history_path
from .ids import fill_blank_ids
from .issues import Report
from .promote import promote_won_deals
from .reader import WorkbookData, settings_rows, sheet_from_rows, sheet_keys
from .schema import Lang
from .settings import settings_from_tables
from .validate import validate
from .writer import state_dir

ERROR_COLOR, WARNING_COLOR = (255, 199, 206), (255, 235, 156)
MAX_NOTES = 500
HELP = {
    "en": ("xlcrm — the CRM tab\n\nValidate: check every sheet and mark bad cells.\n"
           "Find Duplicates: list likely duplicate customers.\nPromote Won Deals: move won "
           "deals into Customers.\nSync: IDs, change log, promotion, validation, dashboard.\n"
           "Dashboard: rebuild the Dashboard sheet.\nChange Log: record and show what "
           "changed.\n\nDocs: README.md and docs/ of the xlcrm project."),
    "zh": ("xlcrm — CRM 客户管理\n\n校验：检查所有工作表并标记问题单元格。\n"
           "查重：列出疑似重复的客户。\n成交转客户：将赢单商机转入客户表。\n"
           "同步：编号、变更日志、转客户、校验、看板。\n看板：重建看板。\n"
           "变更日志：记录并显示变更。\n\n文档：xlcrm 项目的 README.md 与 docs/。"),
}


class XlBook:
    """The calling workbook, through the few xlwings calls xlcrm needs."""

    def __init__(self, book: Any) -> None:
        self.book = book

    @property
    def path(self) -> Path:
        return Path(self.book.fullname)

    def sheet_names(self) -> list[str]:
        return [sheet.name for sheet in self.book.sheets]

    def tables(self, sheet: str) -> dict[str, Any]:
        return {table.name: table for table in self.book.sheets[sheet].tables}

    def read_table(self, table: Any) -> tuple[list[Any], list[list[Any]], int, int]:
        """(headers, rows, header row, first column) of an Excel Table, in one read."""
        area = table.range
        values = area.options(ndim=2).value
        return list(values[0]), [list(r) for r in values[1:]], int(area.row), int(area.column)

    def write_block(self, sheet: str, top: int, left: int, rows: Sequence[Sequence[Any]]
                    ) -> None:
        if rows:
            self.book.sheets[sheet].range((top, left)).value = [list(r) for r in rows]

    def replace_below_header(self, sheet: str, width: int, rows: Sequence[Sequence[Any]]
                             ) -> None:
        """An engine sheet: clear everything under the header, write `rows`."""
        ws = self.book.sheets[sheet]
        last = max(int(ws.used_range.last_cell.row), 2)
        ws.range((2, 1), (last, width)).clear_contents()
        self.write_block(sheet, 2, 1, rows)

    def set_cells(self, sheet: str, cells: Sequence[tuple[int, int, Any]]) -> None:
        ws = self.book.sheets[sheet]
        for row, column, value in cells:
            ws.range((row, column)).value = value

    def grow_table(self, sheet: str, table: Any, last_row: int) -> None:
        area = table.range
        ws = self.book.sheets[sheet]
        table.resize(ws.range((area.row, area.column),
                              (last_row, area.column + area.columns.count - 1)))

    def mark(self, sheet: str, cells: dict[str, tuple[str, str]]) -> None:
        """Fill (error red, warning amber) and note each cell: address -> (severity, text)."""
        ws = self.book.sheets[sheet]
        for severity, color in (("error", ERROR_COLOR), ("warning", WARNING_COLOR)):
            addresses = [a for a, (s, _) in cells.items() if s == severity]
            for start in range(0, len(addresses), 20):  # Excel takes ~255 characters a range
                ws.range(",".join(addresses[start:start + 20])).color = color
        for address, (_, text) in list(cells.items())[:MAX_NOTES]:
            cell = ws.range(address)
            if cell.note is not None:
                cell.note.text = text
            else:
                cell.add_note(text)

    def unmark(self, sheet: str, addresses: Sequence[str]) -> None:
        ws = self.book.sheets[sheet]
        for start in range(0, len(addresses), 20):
            ws.range(",".join(addresses[start:start + 20])).color = None
        for address in addresses[:MAX_NOTES]:
            note = ws.range(address).note
            if note is not None:
                note.delete()

    def chart(self, sheet: str, kind: str, source: tuple[int, int, int, int], top_row: int,
              title: str) -> None:
        ws = self.book.sheets[sheet]
        r1, c1, r2, c2 = source
        anchor = ws.range((top_row, 7))
        chart = ws.charts.add(left=anchor.left, top=anchor.top, width=420, height=220)
        chart.set_source_data(ws.range((r1, c1), (r2, c2)))
        chart.chart_type = {"bar": "bar_clustered", "col": "column_clustered",
                            "pie": "pie"}[kind]
        chart.name = title[:31]

    def clear_sheet(self, sheet: str) -> None:
        ws = self.book.sheets[sheet]
        for chart in list(ws.charts):
            chart.delete()
        ws.used_range.clear_contents()

    @contextlib.contextmanager
    def unprotected(self, sheet: str) -> Iterator[None]:
        """Lift the protection of an engine sheet while writing it, then put it back
        (Windows COM names first, then the Mac ones; no password is set)."""
        api = self.book.sheets[sheet].api
        for name in ("Unprotect", "unprotect"):
            if hasattr(api, name):
                getattr(api, name)()
                break
        try:
            yield
        finally:
            for name in ("Protect", "protect"):
                if hasattr(api, name):
                    getattr(api, name)()
                    break

    def alert(self, text: str) -> None:
        self.book.app.alert(text, title="xlcrm")


# ---------------------------------------------------------------------------------------------
# Reading the open workbook

def read_live(xl: XlBook) -> WorkbookData:
    """The calling workbook as `WorkbookData`, from its Tables (one read per Table)."""
    names = xl.sheet_names()
    by_key = sheet_keys(names)
    sheets = {}
    for sdef in schema.DATA_SHEETS:
        if sdef.key not in by_key:
            raise SheetMissing(f"no sheet named {sdef.en} / {sdef.zh}")
        name = by_key[sdef.key]
        tables = xl.tables(name)
        table = tables.get(str(sdef.table)) or next(iter(tables.values()), None)
        if table is None:
            raise SheetMissing(f"sheet {name} has no Excel Table (Insert → Table)")
        headers, rows, header_row, first_col = xl.read_table(table)
        sheets[sdef.key] = sheet_from_rows(sdef, name, [str(h) for h in headers], rows,
                                           header_row, first_col, table.name, xl.path)
    lang: Lang = "zh" if by_key["customers"] == schema.CUSTOMERS.zh else "en"
    settings_tables: dict[str, list[dict[str, Any]] | None] = {}
    if "settings" in by_key:
        found = xl.tables(by_key["settings"])
        for table_name in schema.SETTINGS_TABLES:
            table = next((t for n, t in found.items() if n.casefold() == table_name.casefold()),
                         None)
            if table is not None:
                headers, rows, _, _ = xl.read_table(table)
                settings_tables[table_name] = settings_rows(table_name, headers, rows)
    settings = settings_from_tables(settings_tables, lang)
    if settings.options.language:
        lang = settings.options.language
    return WorkbookData(path=xl.path, sha256="", lang=lang, settings=settings, sheets=sheets,
                        sheet_names=names)


# ---------------------------------------------------------------------------------------------
# The buttons

def dispatch(action: str) -> None:
    """The one entry point the VBA callback calls with the button's tag."""
    import xlwings as xw

    run(action, XlBook(xw.Book.caller()))


def run(action: str, xl: XlBook) -> str:
    """Run one button's action and show its summary (or error) in a message box."""
    try:
        function = ACTIONS[action]
    except KeyError:
        message = f"xlcrm: unknown action {action!r}"
    else:
        try:
            message = function(xl)
        except XlcrmError as error:
            message = f"xlcrm: {error}"
        except Exception as error:  # a message box, never a traceback window
            message = f"xlcrm: unexpected error: {type(error).__name__}: {error}"
    xl.alert(message)
    return message


def xl_validate(xl: XlBook) -> str:
    data = read_live(xl)
    report = validate(data)
    _show_issues(xl, data, report)
    return _summary(report)


def xl_promote(xl: XlBook) -> str:
    data = read_live(xl)
    with History(xl.path) as history:
        tracker = start_tracking(history, data, "ribbon", job="promote")
        promotion = promote_won_deals(data)
        _apply_promotion(xl, data, tracker, promotion)
        tracker.commit()
    zh = data.lang == "zh"
    return (f"{len(promotion.promoted)} 个赢单已转入客户，{len(promotion.skipped)} 个跳过。" if zh
            else f"{len(promotion.promoted)} won deals promoted, {len(promotion.skipped)} "
                 "skipped.")


def xl_sync(xl: XlBook) -> str:
    data = read_live(xl)
    today = dt.date.today()
    filled = fill_blank_ids(data)
    for sheet, cells in _group((f.sheet, (f.row, f.column, f.value)) for f in filled).items():
        xl.set_cells(sheet, cells)
    with History(xl.path) as history:
        tracker = start_tracking(history, data, "ribbon", job="sync")
        stage = stage_cells(tracker, today)
        tracker.apply("opportunities", stage, job="stage")
        xl.set_cells(data.sheets["opportunities"].name, stage)
        promotion = promote_won_deals(data, today=today)
        _apply_promotion(xl, data, tracker, promotion)
        report = validate(data, today=today)
        _show_issues(xl, data, report)
        figures = analyse(data, today=today, report=report,
                          stays=stage_history(history, today, pending=tracker))
        _show_dashboard(xl, data, figures, today)
        _show_changelog(xl, data, history, tracker)
        tracker.commit()
    return (f"{_summary(report)}\n{len(filled)} IDs filled, {len(promotion.promoted)} won deals "
            f"promoted, {len(tracker.changes)} changes logged.")


def xl_dashboard(xl: XlBook) -> str:
    data = read_live(xl)
    today = dt.date.today()
    report = validate(data, today=today)
    stays = None
    if history_path(xl.path).exists():
        with History(xl.path, create=False) as history:
            stays = stage_history(history, today)
    figures = analyse(data, today=today, report=report, stays=stays)
    _show_dashboard(xl, data, figures, today)
    return schema.label(TITLES["dashboard"], data.lang) + " ✓"


def xl_changelog(xl: XlBook) -> str:
    data = read_live(xl)
    fill_blank_ids(data)  # unnumbered rows are numbered by Sync; here they are skipped
    with History(xl.path) as history:
        tracker = start_tracking(history, data, "ribbon", job="changelog")
        _show_changelog(xl, data, history, tracker)
        count = len(tracker.changes)
        tracker.commit()
    return (f"记录了 {count} 条变更。" if data.lang == "zh" else f"{count} changes logged.")


def xl_dedupe(xl: XlBook) -> str:
    data = read_live(xl)
    options = data.settings.options
    found = all_duplicates(data.sheets, options.phone_region, options.duplicate_threshold,
                           data.settings.closed_stages())
    rows = duplicate_sheet_rows(data.sheets, found, data.lang)
    name = _engine_sheet(xl, "duplicates", data.lang)
    with xl.unprotected(name):
        xl.replace_below_header(name, len(schema.ENGINE_COLUMNS["duplicates"]), rows)
    groups = sum(len(m) for m in found.values())
    return (f"找到 {groups} 组疑似重复记录。" if data.lang == "zh"
            else f"{groups} groups of likely duplicate records found.")


def xl_help(xl: XlBook) -> str:
    names = xl.sheet_names()
    return HELP["zh" if schema.CUSTOMERS.zh in names else "en"]


ACTIONS: dict[str, Callable[[XlBook], str]] = {
    "validate": xl_validate, "dedupe": xl_dedupe, "promote": xl_promote, "sync": xl_sync,
    "dashboard": xl_dashboard, "changelog": xl_changelog, "help": xl_help,
}


# ---------------------------------------------------------------------------------------------
# Writing into the open workbook

def _summary(report: Report) -> str:
    if report.lang == "zh":
        return f"发现 {report.errors} 个错误、{report.warnings} 个警告。"
    return f"{report.errors} errors and {report.warnings} warnings found."


def _engine_sheet(xl: XlBook, key: str, lang: Lang) -> str:
    sdef = schema.SHEETS_BY_KEY[key]
    names = xl.sheet_names()
    for title in (sdef.label(lang), sdef.en, sdef.zh):
        if title in names:
            return title
    raise SheetMissing(f"no sheet named {sdef.label(lang)}")


def _show_issues(xl: XlBook, data: WorkbookData, report: Report) -> None:
    name = _engine_sheet(xl, "issues", data.lang)
    with xl.unprotected(name):
        xl.replace_below_header(name, len(schema.ENGINE_COLUMNS["issues"]),
                                issue_rows(report, data.lang))
    marks_file = state_dir(xl.path) / "ribbon-marks.json"
    try:
        previous = json.loads(marks_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    for sheet, addresses in previous.items():
        if sheet in xl.sheet_names():
            xl.unmark(sheet, addresses)
    marks: dict[str, dict[str, tuple[str, str]]] = {}
    for issue in report.issues:
        if not issue.cell:
            continue
        cells = marks.setdefault(issue.sheet, {})
        severity, text = cells.get(issue.cell, ("warning", ""))
        severity = "error" if issue.severity == "error" else severity
        cells[issue.cell] = (severity, f"{text}\n[{issue.code}] {issue.message}".strip())
    for sheet, cells in marks.items():
        xl.mark(sheet, cells)
    marks_file.parent.mkdir(parents=True, exist_ok=True)
    marks_file.write_text(json.dumps({s: list(c) for s, c in marks.items()}), encoding="utf-8")


def _apply_promotion(xl: XlBook, data: WorkbookData, tracker: Tracker, promotion: Any) -> None:
    names = {s.name: key for key, s in data.sheets.items()}
    for sheet, cells in promotion.cells.items():
        tracker.apply(names[sheet], cells, job="promote")
        xl.set_cells(sheet, cells)
    for key, rows in (("customers", promotion.new_customers),
                      ("interactions", promotion.new_interactions)):
        if not rows:
            continue
        sheet = data.sheets[key]
        start = sheet.last_row + 1
        width = max(sheet.columns.values()) - min(sheet.columns.values()) + 1
        first = min(sheet.columns.values())
        block = [[None] * width for _ in rows]
        for r, record in enumerate(rows):
            for field, value in record.items():
                if field in sheet.columns and value is not None:
                    block[r][sheet.columns[field] - first] = value
        xl.write_block(sheet.name, start, first, block)
        table = xl.tables(sheet.name).get(str(sheet.table))
        if table is not None:
            xl.grow_table(sheet.name, table, start + len(rows) - 1)
        tracker.apply(key, rows=rows, job="promote")


def _show_changelog(xl: XlBook, data: WorkbookData, history: History, tracker: Tracker
                    ) -> None:
    entries = newest_entries(history, tracker, data.settings.options.changelog_rows)
    names = {key: sheet.name for key, sheet in data.sheets.items()}
    name = _engine_sheet(xl, "changelog", data.lang)
    with xl.unprotected(name):
        xl.replace_below_header(name, len(schema.ENGINE_COLUMNS["changelog"]),
                                changelog_rows(entries, data.lang, names))


def _show_dashboard(xl: XlBook, data: WorkbookData, figures: Any, today: dt.date) -> None:
    """The Dashboard as values (title, KPIs, one block per table) and native charts."""
    lang = data.lang
    name = _engine_sheet(xl, "dashboard", lang)
    with xl.unprotected(name):
        _fill_dashboard(xl, name, lang, figures, today)


def _fill_dashboard(xl: XlBook, name: str, lang: Lang, figures: Any, today: dt.date) -> None:
    xl.clear_sheet(name)
    xl.write_block(name, 1, 1, [[schema.label(TITLES["dashboard"], lang)],
                                [schema.label(TITLES["as_of"], lang).format(
                                    date=today.isoformat())]])
    kpis = [[schema.label(label, lang) for label in KPI_LABELS.values()],
            [figures.kpis.get(key) for key in KPI_LABELS]]
    xl.write_block(name, 3, 1, kpis)
    row = 6
    for key, columns, chart, _values in LAYOUT:
        table = getattr(figures, key)
        header = [schema.label(COLUMN_LABELS[c], lang) for c in columns]
        body = [[shown_cell(c, r[c], lang) for c in columns]
                for r in table[list(columns)].to_dict("records")]
        xl.write_block(name, row, 1, [[schema.label(TITLES[key], lang)], header, *body])
        if chart and body:
            xl.chart(name, chart, (row + 1, 1, row + 1 + len(body), len(columns)), row,
                     schema.label(TITLES[key], lang))
        row += max(len(body) + 4, 17 if chart else 0)


def _group(items: Any) -> dict[str, list[tuple[int, int, Any]]]:
    out: dict[str, list[tuple[int, int, Any]]] = {}
    for sheet, cell in items:
        out.setdefault(sheet, []).append(cell)
    return out
