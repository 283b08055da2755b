"""The open workbook as a `WorkbookSession` (the ribbon's backend), through xlwings.

`XlBook` is the only code that touches xlwings objects: a few calls per kind of write, each on
whole blocks (never a loop of single-cell reads). `ExcelSession` applies a job's plan with it:
cells as blocks of contiguous runs, Tables resized, engine sheets filled under their headers
with links, marks as a conditional format plus notes, the Dashboard's cells and charts. Then
it saves the workbook through Excel, and only then does the job commit its change log (see the
decisions in `xlcrm.session`).

Text that Excel would parse as a formula or a number (it begins with =, +, - or @) is written
with a leading apostrophe, which Excel keeps as "this is text" and does not show. xlcrm's notes
are the notes whose text begins with "xlcrm:" (the xlwings note API sets no author); only those
are replaced or removed.

xlwings is never imported here: the calling book comes from `xlcrm.ribbon.dispatch`, so this
module imports (and is tested against a stand-in) on machines without Excel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import schema
from .changes import cell_json, cell_value
from .errors import SheetMissing
from .guard import file_sha256
from .reader import WorkbookData, settings_rows, sheet_from_rows, sheet_keys
from .schema import Lang
from .session import EngineSheet, Plan, WorkbookSession, engine_name
from .settings import settings_from_tables

MARK_FORMULA = '="xlcrm"="xlcrm"'
MARK_COLORS = {"error": ((255, 199, 206), (156, 0, 6)), "warning": ((255, 235, 156),
                                                                    (156, 87, 0))}
NOTE_PREFIX = "xlcrm:"
MAX_NOTES = 500  # notes through COM are slow; past this only the conditional format marks
XL_EXPRESSION = 2  # XlFormatConditionType.xlExpression
CHART_TYPES = {"bar": "bar_clustered", "col": "column_clustered", "pie": "pie"}
_TEXT_MARKERS = ("=", "+", "-", "@", "'")


def _rgb(color: tuple[int, int, int]) -> int:
    red, green, blue = color
    return red + green * 256 + blue * 65536  # Excel's BGR long


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

    def read_block(self, sheet: str, top: int, left: int, bottom: int, right: int
                   ) -> list[list[Any]]:
        """A block's formulas (values where a cell holds no formula), in one read."""
        area = self.book.sheets[sheet].range((top, left), (bottom, right)).options(ndim=2)
        return [list(r) for r in (area.formula if hasattr(area, "formula") else area.value)]

    def write_block(self, sheet: str, top: int, left: int, rows: Sequence[Sequence[Any]]
                    ) -> None:
        if rows:
            self.book.sheets[sheet].range((top, left)).value = [
                [_as_text(v) for v in r] for r in rows]

    def write_formulas(self, sheet: str, top: int, left: int, rows: Sequence[Sequence[Any]]
                       ) -> None:
        area = self.book.sheets[sheet].range((top, left))
        if hasattr(area, "formula"):
            area.formula = [list(r) for r in rows]
        else:
            area.value = [list(r) for r in rows]

    def replace_below_header(self, sheet: str, width: int, rows: Sequence[Sequence[Any]]
                             ) -> None:
        """An engine sheet: clear everything under the header, write `rows`."""
        ws = self.book.sheets[sheet]
        last = max(int(ws.used_range.last_cell.row), 2)
        ws.range((2, 1), (last, width)).clear_contents()
        self.write_block(sheet, 2, 1, rows)

    def link(self, sheet: str, row: int, column: int, location: str, text: Any) -> None:
        """A link from a cell to a place in the workbook ('Sheet'!A1)."""
        self.book.sheets[sheet].range((row, column)).add_hyperlink(
            "#" + location, text_to_display=str(text))

    def resize_table(self, sheet: str, name: str, last_row: int) -> None:
        table = self.tables(sheet).get(name)
        if table is None:
            return
        area = table.range
        ws = self.book.sheets[sheet]
        table.resize(ws.range((area.row, area.column),
                              (last_row, area.column + area.columns.count - 1)))

    def clear_marks(self, sheet: str) -> list[str]:
        """Remove xlcrm's conditional formats and notes from a sheet; returns the cells whose
        notes were removed."""
        ws = self.book.sheets[sheet]
        conditions = ws.api.Cells.FormatConditions
        for index in range(int(conditions.Count), 0, -1):
            condition = conditions.Item(index)
            if getattr(condition, "Formula1", None) == MARK_FORMULA:
                condition.Delete()
        removed = []
        for address, note in self.notes(sheet):
            if note.startswith(NOTE_PREFIX):
                ws.range(address).note.delete()
                removed.append(address)
        return removed

    def notes(self, sheet: str) -> list[tuple[str, str]]:
        """(cell address, text) of the sheet's notes."""
        out = []
        for comment in self.book.sheets[sheet].api.Comments:
            out.append((str(comment.Parent.Address).replace("$", ""), str(comment.Text())))
        return out

    def mark(self, sheet: str, severity: str, addresses: Sequence[str]) -> None:
        """A conditional format (always true) that colours the cells: over a person's fill,
        never instead of it."""
        ws = self.book.sheets[sheet]
        fill, font = MARK_COLORS[severity]
        for start in range(0, len(addresses), 20):  # Excel takes ~255 characters a range
            condition = ws.range(",".join(addresses[start:start + 20])).api.FormatConditions.Add(
                XL_EXPRESSION, None, MARK_FORMULA)
            condition.Interior.Color = _rgb(fill)
            condition.Font.Color = _rgb(font)

    def add_note(self, sheet: str, address: str, text: str) -> None:
        self.book.sheets[sheet].range(address).add_note(text)

    def chart(self, sheet: str, kind: str, source: tuple[int, int, int, int], top_row: int,
              title: str) -> None:
        ws = self.book.sheets[sheet]
        r1, c1, r2, c2 = source
        anchor = ws.range((top_row, 6))
        chart = ws.charts.add(left=anchor.left, top=anchor.top, width=420, height=220)
        chart.set_source_data(ws.range((r1, c1), (r2, c2)))
        chart.chart_type = CHART_TYPES[kind]
        chart.name = title[:31]

    def number_format(self, sheet: str, row: int, column: int, code: str) -> None:
        self.book.sheets[sheet].range((row, column)).number_format = code

    def add_sheet(self, name: str, header: Sequence[Any]) -> None:
        """A new sheet at the end, with a header row."""
        sheets = self.book.sheets
        ws = sheets.add(name, after=list(sheets)[-1])
        if header:
            ws.range((1, 1)).value = [list(header)]

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

    def save(self) -> None:
        self.book.save()

    def selected_rows(self) -> tuple[str, list[int]]:
        """The sheet of the current selection and the rows it covers (every area of it)."""
        selection = self.book.selection
        rows: list[int] = []
        for area in getattr(selection, "areas", [selection]):
            rows.extend(range(int(area.row), int(area.last_cell.row) + 1))
        return str(selection.sheet.name), sorted(set(rows))

    def user_name(self) -> str:
        """Excel's user name (File → Options → General), who the ribbon acts as."""
        return str(self.book.app.api.UserName or "")

    def alert(self, text: str) -> None:
        self.book.app.alert(text, title="xlcrm")

    def confirm(self, text: str) -> bool:
        """An OK / Cancel message box; True for OK."""
        return str(self.book.app.alert(text, title="xlcrm", buttons="ok_cancel")) == "ok"

    def ask_file(self) -> Path | None:
        """Excel's own Open dialog for a file to import (Windows: Application.
        GetOpenFilename through COM; macOS: the same command through AppleScript, which
        nobody here has run); None when cancelled."""
        api = self.book.app.api
        kinds = "CRM data (*.xlsx;*.xlsm;*.xls;*.csv;*.txt),*.xlsx;*.xlsm;*.xls;*.csv;*.txt"
        try:
            chosen = api.GetOpenFilename(kinds)
        except AttributeError:
            chosen = api.get_open_filename()
        return None if chosen in (None, False, "", "False") else Path(str(chosen))


def _as_text(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_TEXT_MARKERS):
        return "'" + value
    return value


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
                                           header_row, first_col, table.name, xl.path,
                                           table_last_row=header_row + len(rows))
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
    sha = file_sha256(xl.path) if xl.path.is_file() else ""
    return WorkbookData(path=xl.path, sha256=sha, lang=lang, settings=settings, sheets=sheets,
                        sheet_names=names)


class ExcelSession(WorkbookSession):
    """The open workbook (see the module docstring)."""

    backend = "excel"
    source = "ribbon"

    def __init__(self, xl: XlBook) -> None:
        super().__init__(xl.path)
        self.xl = xl

    def read(self) -> WorkbookData:
        return self.loaded(read_live(self.xl))

    def block(self, sheet: str, first_row: int, last_row: int, first_col: int,
              last_col: int) -> dict[tuple[int, int], Any]:
        rows = self.xl.read_block(sheet, first_row, first_col, last_row, last_col)
        return {(first_row + r, first_col + c): value for r, row in enumerate(rows)
                for c, value in enumerate(row) if value not in (None, "")}

    def stored_json(self, value: Any) -> Any:
        return cell_json(value)

    def stored_value(self, value: Any) -> Any:
        return cell_value(value)

    def _flush(self, plan: Plan) -> Path | None:
        assert self.data is not None
        xl = self.xl
        for sheet in list(plan.appended):
            plan.as_cells(sheet)
        for sheet, cells in plan.cells.items():
            for top, left, block in _blocks(cells):
                if sheet in plan.moved:
                    xl.write_formulas(sheet, top, left, block)
                else:
                    xl.write_block(sheet, top, left, block)
        for sheet, (table, last) in plan.tables.items():
            xl.resize_table(sheet, table, last)
        for engine in plan.engine.values():
            self._engine(engine)
        if plan.marks is not None:
            self._marks(plan.marks)
        if plan.dashboard is not None:
            self._dashboard(plan.dashboard)
        xl.save()
        self.data.sha256 = file_sha256(self.path) if self.path.is_file() else ""
        return self.path

    def _name(self, key: str, lang: Lang) -> str:
        """The engine sheet's real name; a missing one is added, with its header."""
        assert self.data is not None
        name = engine_name(self.data, key, lang)
        if name not in self.xl.sheet_names():
            columns = schema.ENGINE_COLUMNS.get(key, ())
            self.xl.add_sheet(name, [en if lang == "en" else zh for _, en, zh in columns])
        return name

    def _engine(self, sheet: EngineSheet) -> None:
        name = self._name(sheet.key, sheet.lang)
        with self.xl.unprotected(name):
            self.xl.replace_below_header(name, len(schema.ENGINE_COLUMNS[sheet.key]),
                                         sheet.rows)
            for row, column, location in sheet.links:
                self.xl.link(name, row, column, location, sheet.rows[row - 2][column - 1])

    def _marks(self, report: Any) -> None:
        from .filewrite import sheet_marks

        assert self.data is not None
        marks = sheet_marks(report)
        for sheet in self.data.sheets.values():
            self.xl.clear_marks(sheet.name)
            cells = marks.get(sheet.name, {})
            for severity in ("error", "warning"):
                refs = [ref for ref, (worst, _) in cells.items() if worst == severity]
                if refs:
                    self.xl.mark(sheet.name, severity, refs)
            theirs = {address for address, _ in self.xl.notes(sheet.name)}
            for ref, (_, text) in list(cells.items())[:MAX_NOTES]:
                if ref not in theirs:  # never a person's note
                    self.xl.add_note(sheet.name, ref, text)

    def _dashboard(self, layout: Any) -> None:
        name = self._name("dashboard", layout.lang)
        with self.xl.unprotected(name):
            self.xl.clear_sheet(name)
            cells = {(row, column): value for row, column, value, _, _ in layout.cells}
            for top, left, block in _blocks(cells):
                self.xl.write_block(name, top, left, block)
            for row, column, _, code, _ in layout.cells:
                if code:
                    self.xl.number_format(name, row, column, code)
            for chart in layout.charts:
                width = max(chart.values)
                self.xl.chart(name, chart.kind, (chart.header, 1, chart.last, width),
                              chart.anchor, chart.title)


def _blocks(cells: dict[tuple[int, int], Any]) -> Iterator[tuple[int, int, list[list[Any]]]]:
    """Cells grouped into runs of neighbouring columns in one row (one write each)."""
    by_row: dict[int, list[int]] = {}
    for row, column in cells:
        by_row.setdefault(row, []).append(column)
    for row in sorted(by_row):
        columns = sorted(by_row[row])
        start = previous = columns[0]
        for column in [*columns[1:], 0]:  # 0 ends the last run
            if column == previous + 1:
                previous = column
                continue
            yield row, start, [[cells[(row, c)] for c in range(start, previous + 1)]]
            start = previous = column
