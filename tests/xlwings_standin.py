"""A small stand-in for the xlwings objects `xlcrm.ribbon.XlBook` uses: Book, Sheet, Range,
Table, Note, Chart, App.alert. It holds a real workbook's cell values (loaded with openpyxl)
in memory and records what the ribbon writes. Real Excel is NOT exercised by these tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import column_index_from_string, get_column_letter, range_boundaries

ENGINE_SHEETS = {"Issues", "Duplicates", "ChangeLog", "Dashboard", "校验问题", "疑似重复",
                 "变更日志", "看板"}


class Note:
    def __init__(self, text: str) -> None:
        self.text = text


class Chart:
    def __init__(self, sheet: Sheet) -> None:
        self.sheet, self.source, self.chart_type, self.name = sheet, None, None, None

    def set_source_data(self, rng: Range) -> None:
        self.source = rng.address

    def delete(self) -> None:
        self.sheet.charts_list.remove(self)


class Charts:
    def __init__(self, sheet: Sheet) -> None:
        self.sheet = sheet

    def add(self, left: float = 0, top: float = 0, width: float = 355,
            height: float = 211) -> Chart:
        chart = Chart(self.sheet)
        self.sheet.charts_list.append(chart)
        return chart

    def __iter__(self) -> Any:
        return iter(list(self.sheet.charts_list))


class Columns:
    def __init__(self, count: int) -> None:
        self.count = count


class Range:
    def __init__(self, sheet: Sheet, r1: int, c1: int, r2: int, c2: int) -> None:
        self.sheet, self.r1, self.c1, self.r2, self.c2 = sheet, r1, c1, r2, c2

    row = property(lambda self: self.r1)
    column = property(lambda self: self.c1)
    columns = property(lambda self: Columns(self.c2 - self.c1 + 1))
    left = property(lambda self: float(self.c1 * 50))
    top = property(lambda self: float(self.r1 * 15))
    last_cell = property(lambda self: Range(self.sheet, self.r2, self.c2, self.r2, self.c2))

    @property
    def address(self) -> str:
        return (f"${get_column_letter(self.c1)}${self.r1}:${get_column_letter(self.c2)}"
                f"${self.r2}")

    def options(self, **_: Any) -> Range:
        return self

    @property
    def value(self) -> Any:
        rows = [[self.sheet.cells.get((r, c)) for c in range(self.c1, self.c2 + 1)]
                for r in range(self.r1, self.r2 + 1)]
        return rows[0][0] if self.r1 == self.r2 and self.c1 == self.c2 else rows

    @value.setter
    def value(self, value: Any) -> None:
        if self.sheet.name in ENGINE_SHEETS:
            assert not self.sheet.api.protected, f"{self.sheet.name} is protected"
        self.sheet.writes += 1
        rows = value if isinstance(value, list) else [[value]]
        rows = [r if isinstance(r, list) else [r] for r in rows]
        for i, row in enumerate(rows):
            for j, item in enumerate(row):
                self.sheet.set(self.r1 + i, self.c1 + j, item)

    @property
    def formula(self) -> Any:
        return self.value

    @formula.setter
    def formula(self, value: Any) -> None:
        self.value = value

    @property
    def number_format(self) -> Any:
        return self.sheet.formats.get((self.r1, self.c1))

    @number_format.setter
    def number_format(self, code: str) -> None:
        for r in range(self.r1, self.r2 + 1):
            for c in range(self.c1, self.c2 + 1):
                self.sheet.formats[(r, c)] = code

    def add_hyperlink(self, address: str, text_to_display: str | None = None,
                      screen_tip: str | None = None) -> None:
        self.sheet.links[(self.r1, self.c1)] = address
        if text_to_display is not None:
            self.sheet.set(self.r1, self.c1, text_to_display)

    @property
    def api(self) -> RangeApi:
        return RangeApi(self.sheet, [self])

    def clear_contents(self) -> None:
        for r in range(self.r1, self.r2 + 1):
            for c in range(self.c1, self.c2 + 1):
                self.sheet.cells.pop((r, c), None)

    @property
    def color(self) -> Any:
        return self.sheet.colors.get((self.r1, self.c1))

    @color.setter
    def color(self, value: Any) -> None:
        for r in range(self.r1, self.r2 + 1):
            for c in range(self.c1, self.c2 + 1):
                if value is None:
                    self.sheet.colors.pop((r, c), None)
                else:
                    self.sheet.colors[(r, c)] = value

    @property
    def note(self) -> Any:
        found = self.sheet.notes.get((self.r1, self.c1))
        return None if found is None else _BoundNote(self.sheet, (self.r1, self.c1))

    def add_note(self, text: str) -> Note:
        assert (self.r1, self.c1) not in self.sheet.notes, "a note is there already"
        self.sheet.notes[(self.r1, self.c1)] = Note(text)
        return self.sheet.notes[(self.r1, self.c1)]


class _BoundNote:
    def __init__(self, sheet: Sheet, key: tuple[int, int]) -> None:
        self.sheet, self.key = sheet, key

    @property
    def text(self) -> str:
        return self.sheet.notes[self.key].text

    @text.setter
    def text(self, value: str) -> None:
        self.sheet.notes[self.key].text = value

    def delete(self) -> None:
        self.sheet.notes.pop(self.key, None)


class Colour:
    def __init__(self) -> None:
        self.Color: int | None = None  # noqa: N815 - the COM name


class FormatCondition:
    """One conditional format (COM): a formula, a fill and a font colour over some cells."""

    def __init__(self, sheet: Sheet, cells: list[tuple[int, int]], formula: str) -> None:
        self.sheet, self.cells, self.Formula1 = sheet, cells, formula
        self.Interior, self.Font = Colour(), Colour()

    def Delete(self) -> None:  # noqa: N802 - the COM name
        self.sheet.conditions.remove(self)


class FormatConditions:
    def __init__(self, sheet: Sheet, cells: list[tuple[int, int]]) -> None:
        self.sheet, self.cells = sheet, cells

    def Add(self, kind: int, operator: Any = None, formula: str = "") -> FormatCondition:  # noqa: N802
        assert kind == 2, "xlcrm adds expression conditions only"
        condition = FormatCondition(self.sheet, self.cells, formula)
        self.sheet.conditions.append(condition)
        return condition

    @property
    def Count(self) -> int:  # noqa: N802
        return len(self.sheet.conditions)

    def Item(self, index: int) -> FormatCondition:  # noqa: N802 - 1-based, as in COM
        return self.sheet.conditions[index - 1]


class RangeApi:
    def __init__(self, sheet: Sheet, ranges: list[Range]) -> None:
        self.FormatConditions = FormatConditions(  # noqa: N815
            sheet, [(r, c) for rng in ranges for r in range(rng.r1, rng.r2 + 1)
                    for c in range(rng.c1, rng.c2 + 1)])


class MultiRange:
    """`sheet.range("A1,B2")`: colour and conditional formats are set on such ranges."""

    def __init__(self, parts: list[Range]) -> None:
        self.parts = parts

    @property
    def api(self) -> RangeApi:
        return RangeApi(self.parts[0].sheet, self.parts)

    @property
    def color(self) -> Any:
        return self.parts[0].color

    @color.setter
    def color(self, value: Any) -> None:
        for part in self.parts:
            part.color = value


class Table:
    def __init__(self, sheet: Sheet, name: str, ref: str) -> None:
        self.sheet, self.name = sheet, name
        c1, r1, c2, r2 = range_boundaries(ref)
        self.range = Range(sheet, r1, c1, r2, c2)

    def resize(self, rng: Range) -> None:
        self.range = rng


class _Address:
    def __init__(self, key: tuple[int, int]) -> None:
        self.Address = f"${get_column_letter(key[1])}${key[0]}"  # noqa: N815


class Comment:
    def __init__(self, key: tuple[int, int], note: Note) -> None:
        self.Parent, self.note = _Address(key), note

    def Text(self) -> str:  # noqa: N802
        return self.note.text


class SheetApi:
    """The COM object's calls xlcrm makes: protection (Windows names), the sheet's conditional
    formats and its notes."""

    def __init__(self, sheet: Sheet) -> None:
        self.sheet = sheet
        self.protected, self.calls = True, []  # type: ignore[var-annotated]

    @property
    def Cells(self) -> Any:  # noqa: N802
        return RangeApi(self.sheet, [])

    @property
    def Comments(self) -> list[Comment]:  # noqa: N802
        return [Comment(key, note) for key, note in sorted(self.sheet.notes.items())]

    def Unprotect(self) -> None:  # noqa: N802 - the COM name
        self.protected = False
        self.calls.append("Unprotect")

    def Protect(self) -> None:  # noqa: N802
        self.protected = True
        self.calls.append("Protect")


class Sheet:
    def __init__(self, name: str) -> None:
        self.name = name
        self.api = SheetApi(self)
        self.cells: dict[tuple[int, int], Any] = {}
        self.formats: dict[tuple[int, int], str] = {}
        self.links: dict[tuple[int, int], str] = {}
        self.conditions: list[FormatCondition] = []
        self.colors: dict[tuple[int, int], Any] = {}
        self.notes: dict[tuple[int, int], Note] = {}
        self.tables: list[Table] = []
        self.charts_list: list[Chart] = []
        self.charts = Charts(self)
        self.writes = 0

    def set(self, row: int, column: int, value: Any) -> None:
        if isinstance(value, str) and value.startswith("'"):
            value = value[1:]  # Excel: a leading apostrophe means "text", and is not shown
        if value is None or value == "":
            self.cells.pop((row, column), None)
        else:
            self.cells[(row, column)] = value

    def marked(self) -> dict[tuple[int, int], int]:
        """Cell -> the fill colour xlcrm's conditional formats give it."""
        return {cell: c.Interior.Color for c in self.conditions for cell in c.cells
                if c.Formula1 == '="xlcrm"="xlcrm"'}

    def range(self, first: Any, second: Any = None) -> Any:
        if isinstance(first, str):
            parts = [self._a1(part) for part in first.split(",")]
            return parts[0] if len(parts) == 1 else MultiRange(parts)
        r2, c2 = second if second is not None else first
        return Range(self, first[0], first[1], r2, c2)

    def _a1(self, ref: str) -> Range:
        letters = "".join(ch for ch in ref if ch.isalpha())
        row = int("".join(ch for ch in ref if ch.isdigit()))
        column = column_index_from_string(letters)
        return Range(self, row, column, row, column)

    @property
    def used_range(self) -> Range:
        rows = [r for r, _ in self.cells] or [1]
        columns = [c for _, c in self.cells] or [1]
        return Range(self, 1, 1, max(rows), max(columns))

    def column_values(self, row: int, width: int) -> list[Any]:
        return [self.cells.get((row, c)) for c in range(1, width + 1)]


class Sheets:
    def __init__(self, sheets: list[Sheet]) -> None:
        self.items = sheets

    def __iter__(self) -> Any:
        return iter(self.items)

    def __getitem__(self, name: str) -> Sheet:
        return next(s for s in self.items if s.name == name)

    def add(self, name: str, after: Sheet | None = None) -> Sheet:
        sheet = Sheet(name)
        sheet.api.protected = False
        position = self.items.index(after) + 1 if after is not None else 0
        self.items.insert(position, sheet)
        return sheet


class AppApi:
    UserName = ""  # noqa: N815 - the COM name
    next_file: object = False  # what the Open dialog returns (False: cancelled)

    def GetOpenFilename(self, file_filter: str = "") -> object:  # noqa: N802 - the COM name
        return self.next_file


class App:
    def __init__(self) -> None:
        self.alerts: list[str] = []
        self.answers: list[str] = []  # what OK / Cancel boxes are answered, in turn
        self.api = AppApi()

    def alert(self, prompt: str, title: str | None = None, buttons: str = "ok",
              **_: Any) -> str:
        self.alerts.append(prompt)
        return self.answers.pop(0) if buttons != "ok" and self.answers else "ok"


class Book:
    """An open workbook: the cells of a real .xlsx, in memory."""

    def __init__(self, path: Path) -> None:
        self.fullname = str(path)
        self.app = App()
        wb = openpyxl.load_workbook(path)
        sheets = []
        for ws in wb.worksheets:
            sheet = Sheet(ws.title)
            for row in ws.iter_rows():
                for cell in row:
                    if cell.value is not None:
                        sheet.cells[(cell.row, cell.column)] = cell.value
                    if cell.comment is not None:
                        sheet.notes[(cell.row, cell.column)] = Note(cell.comment.text)
            for table in ws.tables.values():
                sheet.tables.append(Table(sheet, table.name, table.ref))
            sheets.append(sheet)
        self.sheets = Sheets(sheets)
        self.saves = 0
        self.selection: Range | None = None

    def select(self, sheet: str, first_row: int, last_row: int | None = None) -> None:
        """The user selects rows (a range of cells in them) on a sheet."""
        self.selection = Range(self.sheets[sheet], first_row, 1, last_row or first_row, 3)

    def save(self) -> None:
        """Excel saves the book (the stand-in counts the saves)."""
        self.saves += 1
