"""What the engine writes into its own sheets (Issues, Duplicates, ChangeLog), as rows both
backends fill (`xlcrm.session.EngineSheet`), and how the file backend draws them with openpyxl
before grafting them into the workbook (`fill_engine_sheet`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openpyxl.cell.cell import Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from . import schema
from .changes import show, show_record
from .history import parse_stamp
from .issues import Report
from .schema import Lang
from .session import EngineSheet
from .sheetxml import ILLEGAL_XML
from .template import protect_sheet, write_engine_header

CHANGELOG_TEXT = 250  # characters of a value shown in the ChangeLog sheet
LINK_FONT = Font(color="0563C1", underline="single")


def put(cell: Cell, value: Any) -> None:
    """Set a cell's value; user text never becomes a formula."""
    if isinstance(value, str):
        value = ILLEGAL_XML.sub("", value)
        cell.value = value
        if value.startswith("="):
            cell.data_type = "s"
    else:
        cell.value = value


def fill_engine_sheet(ws: Worksheet, sheet: EngineSheet) -> None:
    """Draw an engine sheet on an empty openpyxl sheet: header, rows, links, filter,
    protection."""
    write_engine_header(ws, sheet.key, sheet.lang)
    width = len(schema.ENGINE_COLUMNS[sheet.key])
    write_rows(ws, sheet.rows, width)
    for row, column, location in sheet.links:
        cell = ws.cell(row=row, column=column)
        cell.hyperlink = Hyperlink(ref=cell.coordinate, location=location)
        cell.font = LINK_FONT
    protect_sheet(ws)


def write_rows(ws: Worksheet, rows: Iterable[Sequence[Any]], width: int) -> int:
    """Write `rows` below the header of an empty engine sheet, under an autofilter."""
    count = 0
    for count, values in enumerate(rows, start=1):
        for col, value in enumerate(values, start=1):
            put(ws.cell(row=count + 1, column=col), value)
    ws.auto_filter.ref = f"A1:{get_column_letter(width)}{count + 1}"
    return count


def issues_sheet(report: Report, lang: Lang) -> EngineSheet:
    """The Issues sheet: one row per issue, its cell column linked to the bad cell."""
    columns = [c[0] for c in schema.ENGINE_COLUMNS["issues"]]
    link_col = columns.index("cell") + 1
    links = [(index, link_col, f"'{issue.sheet}'!{issue.cell}")
             for index, issue in enumerate(report.sorted_issues(), start=2)
             if issue.cell and issue.sheet]
    return EngineSheet("issues", lang, issue_rows(report, lang), links)


def changelog_sheet(entries: Sequence[Mapping[str, Any]], lang: Lang,
                    sheet_names: Mapping[str, str]) -> EngineSheet:
    """The ChangeLog sheet with `entries` (newest first); `sheet_names` maps sheet keys to the
    sheets' real names."""
    return EngineSheet("changelog", lang, changelog_rows(entries, lang, sheet_names))


def duplicates_sheet(rows: Sequence[Sequence[Any]], lang: Lang) -> EngineSheet:
    """The Duplicates sheet: one row per member of each cluster."""
    return EngineSheet("duplicates", lang, [list(r) for r in rows])


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
