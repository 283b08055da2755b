"""Edits the engine applies to a loaded workbook (see ``xlcrm.writer.write_workbook``).

Each function returns an `Edit`: a callable that changes an openpyxl Workbook in place and
touches nothing but what it names, so user formatting, extra columns, formulas, validation,
names and Tables stay as they were.

Cell marks are conditional formats whose formula is `MARK_FORMULA` plus notes authored by
`MARK_AUTHOR`: both can be found and removed on the next run without knowing what the cell
looked like before, and the user's own fills are never overwritten.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.comments import Comment
from openpyxl.formatting.formatting import ConditionalFormattingList
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from . import schema
from .changes import show, show_record
from .history import parse_stamp
from .issues import Issue, Report
from .schema import Lang
from .template import protect_sheet, write_engine_header
from .writer import Edit

MARK_FORMULA = '"xlcrm"="xlcrm"'
MARK_AUTHOR = "xlcrm"
CHANGELOG_TEXT = 250  # characters of a value shown in the ChangeLog sheet
MAX_NOTES = 10_000  # notes are heavy; past this only the fill marks the cell
MARK_STYLES = {
    "error": (PatternFill(bgColor="FFC7CE"), Font(color="9C0006")),
    "warning": (PatternFill(bgColor="FFEB9C"), Font(color="9C5700")),
}
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def put(cell: Cell, value: Any) -> None:
    """Set a cell's value; user text never becomes a formula."""
    if isinstance(value, str):
        value = _ILLEGAL.sub("", value)
        cell.value = value
        if value.startswith("="):
            cell.data_type = "s"
    else:
        cell.value = value


def set_cells(sheet: str, cells: Sequence[tuple[int, int, Any]]) -> Edit:
    """Set (row, column, value) cells of one sheet."""

    def edit(book: Workbook) -> None:
        ws = book[sheet]
        for row, column, value in cells:
            put(ws.cell(row=row, column=column), value)

    return edit


def append_rows(sheet: str, table: str | None, columns: Mapping[str, int],
                rows: Sequence[Mapping[str, Any]]) -> Edit:
    """Append records below the last row of a sheet's Table, and grow the Table to hold them.

    Blank rows the Table already holds at its end are used first.
    """

    def edit(book: Workbook) -> None:
        ws = book[sheet]
        tbl = ws.tables.get(table) if table else None
        if tbl is not None:
            min_col, min_row, max_col, max_row = range_boundaries(tbl.ref)
        else:
            min_col, min_row, max_col, max_row = 1, 1, max(columns.values()), ws.max_row
        next_row = max_row + 1
        while next_row - 1 > min_row and _row_blank(ws, next_row - 1, min_col, max_col):
            next_row -= 1
        for record in rows:
            for key, value in record.items():
                if key in columns and value is not None:
                    target = ws.cell(row=next_row, column=columns[key])
                    put(target, value)
                    above = ws.cell(row=next_row - 1, column=columns[key])
                    if next_row - 1 > min_row and above.has_style:
                        target._style = above._style  # keep the column's number format
            next_row += 1
        if tbl is not None and next_row - 1 > max_row:
            last = get_column_letter(max_col)
            tbl.ref = f"{get_column_letter(min_col)}{min_row}:{last}{next_row - 1}"
            if tbl.autoFilter is not None:
                tbl.autoFilter.ref = tbl.ref

    return edit


def grow_tables(sheets: Iterable[tuple[str, str | None, int]]) -> Edit:
    """Grow each (sheet, Table, last data row) Table over the rows typed below it (Excel with
    AutoExpand off, LibreOffice, WPS, a paste after a gap), so that they sort and filter with
    the rest."""

    def edit(book: Workbook) -> None:
        for sheet, table, last_row in sheets:
            tbl = book[sheet].tables.get(table) if table else None
            if tbl is None:
                continue
            min_col, min_row, max_col, max_row = range_boundaries(tbl.ref)
            if last_row > max_row:
                tbl.ref = (f"{get_column_letter(min_col)}{min_row}:"
                           f"{get_column_letter(max_col)}{last_row}")
                if tbl.autoFilter is not None:
                    tbl.autoFilter.ref = tbl.ref

    return edit


def _row_blank(ws: Worksheet, row: int, min_col: int, max_col: int) -> bool:
    return all(ws.cell(row=row, column=c).value in (None, "") for c in range(min_col, max_col + 1))


def engine_sheet(book: Workbook, key: str, lang: Lang) -> Worksheet:
    """The engine sheet `key` (either language), created with its header when missing."""
    sdef = schema.SHEETS_BY_KEY[key]
    for title in (sdef.label(lang), sdef.en, sdef.zh):
        if title in book.sheetnames:
            return book[title]
    ws = book.create_sheet(sdef.label(lang))
    write_engine_header(ws, key, lang)
    protect_sheet(ws)
    return ws


def write_rows(ws: Worksheet, rows: Iterable[Sequence[Any]], width: int) -> int:
    """Replace everything below the header of an engine sheet with `rows`."""
    if ws.max_row > 1:
        ws.delete_rows(2, ws.max_row - 1)
    count = 0
    for count, values in enumerate(rows, start=1):
        for col, value in enumerate(values, start=1):
            put(ws.cell(row=count + 1, column=col), value)
    last = get_column_letter(width)
    ws.auto_filter.ref = f"A1:{last}{count + 1}"
    return count


def write_issues_sheet(report: Report, lang: Lang) -> Edit:
    """Fill the Issues sheet: one row per issue, each cell linked to the bad cell."""

    def edit(book: Workbook) -> None:
        ws = engine_sheet(book, "issues", lang)
        columns = [c[0] for c in schema.ENGINE_COLUMNS["issues"]]
        issues = report.sorted_issues()
        write_rows(ws, issue_rows(report, lang), len(columns))
        link_col = columns.index("cell") + 1
        for index, issue in enumerate(issues, start=2):
            if issue.cell and issue.sheet in book.sheetnames:
                cell = ws.cell(row=index, column=link_col)
                cell.hyperlink = Hyperlink(ref=cell.coordinate,
                                           location=f"'{issue.sheet}'!{issue.cell}")
                cell.font = Font(color="0563C1", underline="single")

    return edit


def write_changelog_sheet(entries: Sequence[Mapping[str, Any]], lang: Lang,
                          sheet_names: Mapping[str, str]) -> Edit:
    """Fill the ChangeLog sheet with `entries` (newest first), in the workbook's language.

    `sheet_names` maps sheet keys to the sheets' real names."""

    def edit(book: Workbook) -> None:
        ws = engine_sheet(book, "changelog", lang)
        rows = changelog_rows(entries, lang, sheet_names)
        write_rows(ws, rows, len(schema.ENGINE_COLUMNS["changelog"]))

    return edit


def changelog_rows(entries: Sequence[Mapping[str, Any]], lang: Lang,
                   sheet_names: Mapping[str, str]) -> list[list[Any]]:
    """The ChangeLog sheet's rows for `entries`, as a person reads them in `lang`."""
    columns = [c[0] for c in schema.ENGINE_COLUMNS["changelog"]]
    rows = []
    for entry in entries:
        sheet = str(entry["sheet"])
        shown = {
            "at": local_time(str(entry["at"])),
            "user": entry["user"],
            "source": schema.label(schema.SOURCE_LABELS.get(
                str(entry["source"]), (str(entry["source"]),) * 2), lang),
            "sheet": sheet_names.get(sheet, sheet),
            "record_id": entry["record_id"],
            "action": schema.label(schema.ACTION_LABELS[str(entry["action"])], lang),
            "field": schema.field_label(sheet, entry.get("field"), lang),
            "old": _shown(sheet, entry.get("old"), lang),
            "new": _shown(sheet, entry.get("new"), lang),
        }
        rows.append([shown[c] for c in columns])
    return rows


def _shown(sheet: str, value: Any, lang: Lang) -> str:
    if isinstance(value, dict) and not ({"$d", "$t"} & value.keys()):
        text = show_record(sheet, value, lang)
    else:
        text = show(value)
    return text[:CHANGELOG_TEXT]


def write_duplicates_sheet(rows: Sequence[Sequence[Any]], lang: Lang) -> Edit:
    """Fill the Duplicates sheet: one row per member of each cluster."""

    def edit(book: Workbook) -> None:
        ws = engine_sheet(book, "duplicates", lang)
        write_rows(ws, rows, len(schema.ENGINE_COLUMNS["duplicates"]))

    return edit


def local_time(stamp_text: str) -> str:
    """A stored UTC time as local time, to the second."""
    return parse_stamp(stamp_text).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def issue_rows(report: Report, lang: Lang) -> list[list[Any]]:
    """The Issues sheet's rows, in report order, severities in `lang`."""
    columns = [c[0] for c in schema.ENGINE_COLUMNS["issues"]]
    rows = []
    for issue in report.sorted_issues():
        data = issue.to_json()
        data["severity"] = schema.label(schema.SEVERITY_LABELS[issue.severity], lang)
        rows.append([data[c] for c in columns])
    return rows


def mark_cells(report: Report, sheets: Iterable[str]) -> Edit:
    """Remove the previous run's marks from `sheets`, then mark this report's bad cells."""

    def edit(book: Workbook) -> None:
        by_sheet: dict[str, dict[str, list[Issue]]] = defaultdict(lambda: defaultdict(list))
        for issue in report.issues:
            if issue.cell:
                by_sheet[issue.sheet][issue.cell].append(issue)
        notes_left = MAX_NOTES
        for name in sheets:
            if name not in book.sheetnames:
                continue
            ws = book[name]
            clear_marks(ws)
            cells = by_sheet.get(name, {})
            for severity in ("error", "warning"):
                refs = [ref for ref, issues in cells.items()
                        if _worst(issues) == severity]
                if refs:
                    fill, font = MARK_STYLES[severity]
                    ws.conditional_formatting.add(
                        " ".join(refs), FormulaRule(formula=[MARK_FORMULA], fill=fill, font=font))
            for ref, issues in cells.items():
                if notes_left <= 0:
                    break
                cell = ws[ref]
                if cell.comment is not None and cell.comment.author != MARK_AUTHOR:
                    continue  # never replace a person's note
                text = "\n".join(f"[{i.code}] {i.message}" for i in issues)
                cell.comment = Comment(f"xlcrm:\n{text}", MARK_AUTHOR, width=260, height=90)
                notes_left -= 1

    return edit


def clear_marks(ws: Worksheet) -> None:
    """Remove xlcrm's conditional-format marks and notes from a sheet."""
    kept = ConditionalFormattingList()
    for formatting in ws.conditional_formatting:
        for rule in formatting.rules:
            if list(rule.formula or []) != [MARK_FORMULA]:
                kept.add(str(formatting.sqref), rule)
    ws.conditional_formatting = kept
    for cell in list(ws._cells.values()):
        if cell.comment is not None and cell.comment.author == MARK_AUTHOR:
            cell.comment = None


def _worst(issues: list[Issue]) -> str:
    return "error" if any(i.severity == "error" for i in issues) else "warning"
