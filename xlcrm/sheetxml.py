"""Patching one worksheet part at the byte level: the rows a write changes are rewritten, every
other byte of the part is copied as it is.

A worksheet is split in three: the head (everything up to ``<sheetData>``), the rows, and the
tail (``</sheetData>`` to the end: merged cells, conditional formats, validations, hyperlinks,
drawings, Table parts, extensions). Rows are located with one regular-expression pass over the
bytes (rows are stored in ascending order); only the rows holding a changed cell are parsed and
rebuilt, their other cells copied byte for byte. Head and tail are small and edited as XML
(dimension, conditional-format marks, the legacy drawing of notes) with every element and
extension kept.

Values are written as Excel would store them: numbers, booleans, dates as serial numbers with
a date format, text as inline strings (the shared-strings part is left as it is; see
docs/safety.md), and a `Formula` as a formula. A cell keeps its style; a new cell in a row
appended to a Table takes the style of the cell above it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import column_index_from_string

from .errors import UnsafeToWrite
from .package import parse, xml_bytes
from .stylesxml import Styles

NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RNS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
# CT_Worksheet's children, in the order the schema requires
ORDER = ("sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData",
         "sheetCalcPr", "sheetProtection", "protectedRanges", "scenarios", "autoFilter",
         "sortState", "dataConsolidate", "customSheetViews", "mergeCells", "phoneticPr",
         "conditionalFormatting", "dataValidations", "hyperlinks", "printOptions",
         "pageMargins", "pageSetup", "headerFooter", "rowBreaks", "colBreaks",
         "customProperties", "cellWatches", "ignoredErrors", "smartTags", "drawing",
         "legacyDrawing", "legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls",
         "webPublishItems", "tableParts", "extLst")
_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b[^>]*?(/?)>")
_FAST_ROW = re.compile(rb'<row r="(\d+)"')
_ANY_ROW = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_ROW_R = re.compile(rb'\br="(\d+)"')
_ROW_START = re.compile(rb"\s*<((?:\w+:)?)row\b([^>]*?)(/?)>", re.S)
_CELL = re.compile(rb"<((?:\w+:)?)c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.S)
_ATTR = re.compile(rb'(\w+)="([^"]*)"')
_REF = re.compile(rb"([A-Z]{1,3})(\d+)")
ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not XML 1.0
_A1 = re.compile(r"(?<![A-Za-z_\[\]])\$?[A-Za-z]{1,3}\$?\d+(?![\w(\[])")
_STRING = re.compile(r'"[^"]*"')
_UNSEEN = object()
_ONE_KIND = frozenset({str, float, int, dt.date, dt.datetime})  # hashable, keyed alike
EXCEL_EPOCH = dt.datetime(1899, 12, 30)


@dataclass(frozen=True)
class Formula:
    """A formula to write (text without the leading '=')."""

    text: str


@dataclass(frozen=True)
class RawCell:
    """A cell exactly as it was stored (its XML), to be put back at another or the same row."""

    xml: bytes


@dataclass
class _Cell:
    column: int
    xml: bytes
    attrs: dict[str, str]

    @property
    def style(self) -> int | None:
        return int(self.attrs["s"]) if "s" in self.attrs else None

    @property
    def has_formula(self) -> bool:
        return b"<f" in self.xml


class SheetXml:
    """One worksheet part being patched; see the module docstring."""

    def __init__(self, data: bytes, styles: Styles) -> None:
        self.styles = styles
        match = _SHEET_DATA.search(data)
        if match is None:
            raise UnsafeToWrite("a worksheet without sheetData")
        prefix = match[1]
        self.prefix = prefix
        if match[2]:  # <sheetData/>
            self.head = data[:match.start()] + b"<" + prefix + b"sheetData>"
            self.rows = b""
            self.tail = b"</" + prefix + b"sheetData>" + data[match.end():]
        else:
            close = data.rfind(b"</" + prefix + b"sheetData>")
            self.head, self.rows, self.tail = (data[:match.end()], data[match.end():close],
                                               data[close:])
        self._index: tuple[list[int], list[int]] | None = None
        self.edits: dict[int, dict[int, Any]] = {}  # row -> column -> value
        self.inherit: dict[int, int] = {}  # a new row -> the row whose styles it takes
        self.blocks: list[tuple[int, dict[int, list[Any]], int | None, int]] = []  # appended
        self.formulas_touched = False
        self.shared_refs = 0  # shared-string references added (+) or replaced (-)
        self._parsed: dict[int, list[_Cell]] = {}
        self._row_styles: dict[int, dict[int, int | None]] = {}
        self._p = prefix.decode()
        self._extent = (0, 0)  # the last row and column of the appended blocks

    # reading ---------------------------------------------------------------------------------

    def _rows(self) -> tuple[list[int], list[int]]:
        """(row numbers, start offsets), ascending."""
        if self._index is None:
            numbers, starts = [], []
            fast = list(_FAST_ROW.finditer(self.rows))
            if len(fast) == self.rows.count(b"<row ") and b":row " not in self.rows:
                for found in fast:
                    numbers.append(int(found[1]))
                    starts.append(found.start())
            else:
                last = 0
                for found in _ANY_ROW.finditer(self.rows):
                    number = _ROW_R.search(found[1])
                    last = int(number[1]) if number else last + 1
                    numbers.append(last)
                    starts.append(found.start())
            self._index = (numbers, starts)
        return self._index

    def _span(self, row: int) -> tuple[int, int] | None:
        numbers, starts = self._rows()
        at = bisect.bisect_left(numbers, row)
        if at < len(numbers) and numbers[at] == row:
            end = starts[at + 1] if at + 1 < len(starts) else len(self.rows)
            return starts[at], end
        return None

    def rows_between(self, first: int, last: int) -> list[int]:
        """The numbers of the stored rows from `first` to `last`."""
        numbers, _ = self._rows()
        return numbers[bisect.bisect_left(numbers, first):bisect.bisect_right(numbers, last)]

    def cells(self, row: int) -> list[_Cell]:
        if row not in self._parsed:
            span = self._span(row)
            self._parsed[row] = _parse_cells(self.rows[span[0]:span[1]]) if span else []
        return self._parsed[row]

    def cell(self, row: int, column: int) -> _Cell | None:
        return next((c for c in self.cells(row) if c.column == column), None)

    def raw(self, row: int, column: int) -> RawCell | None:
        found = self.cell(row, column)
        return RawCell(found.xml) if found is not None else None

    # writing ---------------------------------------------------------------------------------

    def set(self, row: int, column: int, value: Any) -> None:
        self.edits.setdefault(row, {})[column] = value

    def append(self, first_row: int, columns: dict[int, list[Any]], style_row: int | None,
               count: int) -> None:
        """Records from `first_row` on, one list of values per column (None: no cell), their
        cells styled like `style_row`'s. Cells `set` in those rows win."""
        self.blocks.append((first_row, columns, style_row, count))

    def apply(self) -> bytes:
        """The patched part."""
        if not self.edits and not self.blocks:
            return self.head + self.rows + self.tail
        runs = self._appended_runs()
        numbers, starts = self._rows()
        out: list[bytes] = []
        position = 0
        for row in sorted([*self.edits, *runs]):
            span = None if row in runs else self._span(row)
            if span is None:  # a row the part lacks (or a run of appended ones)
                at = bisect.bisect_left(numbers, row)
                insert = starts[at] if at < len(starts) else len(self.rows)
                out.append(self.rows[position:insert])
                out.append(runs[row] if row in runs else
                           self._new_row_xml(row, self.edits[row]))
                position = insert
            else:
                out.append(self.rows[position:span[0]])
                out.append(self._row_xml(row, self.rows[span[0]:span[1]], self.edits[row]))
                position = span[1]
        out.append(self.rows[position:])
        self._grow_dimension()
        return self.head + b"".join(out) + self.tail

    def _row_xml(self, row: int, old: bytes, edits: dict[int, Any]) -> bytes:
        start = _ROW_START.match(old) if old else None
        p = self.prefix
        if start is not None:
            attrs = re.sub(rb'\s+spans="[^"]*"', b"", start[2])
            lead = old[:start.start(1) - 1]
            trailer = b"" if start[3] else _row_trailer(old)
        else:
            attrs, lead, trailer = b' r="%d"' % row, b"", b""
        cells = {c.column: c for c in self.cells(row)}
        above = {c.column: c for c in self.cells(self.inherit[row])} if row in self.inherit \
            else {}
        for column, value in edits.items():
            current = cells.get(column)
            if current is not None and current.has_formula:
                self.formulas_touched = True
            if current is not None and current.attrs.get("t") == "s":
                self.shared_refs -= 1
            style = current.style if current is not None else (
                above[column].style if column in above else None)
            xml = self._cell_xml(row, column, value, style)
            if xml is None:
                cells.pop(column, None)
            else:
                cells[column] = _Cell(column, xml, {})
        body = b"".join(cells[c].xml for c in sorted(cells))
        return lead + b"<" + p + b"row" + attrs + b">" + body + trailer + b"</" + p + b"row>"

    def _new_row_xml(self, row: int, edits: dict[int, Any]) -> bytes:
        """A row the part does not have yet (`_row_xml` of an empty row, made quickly)."""
        above = self._styles_of(self.inherit[row]) if row in self.inherit else {}
        cells = []
        for column in sorted(edits):
            xml = self._cell_xml(row, column, edits[column], above.get(column))
            if xml is not None:
                cells.append(xml)
        p = self.prefix
        return b"<%brow r=\"%d\">%b</%brow>" % (p, row, b"".join(cells), p)

    def _appended_runs(self) -> dict[int, bytes]:
        """The appended rows as XML, by runs of rows the part lacks and nothing else edits
        (first row -> the run's XML); the other appended rows become edits."""
        out: dict[int, bytes] = {}
        for first, columns, style_row, count in self.blocks:
            last = first + count - 1
            held = set(self.rows_between(first, last)) | {r for r in self.edits
                                                           if first <= r <= last}
            for row in held:
                edits = self.edits.setdefault(row, {})
                for column, values in columns.items():
                    if values[row - first] is not None:
                        edits.setdefault(column, values[row - first])
                if style_row is not None and style_row != row:
                    self.inherit[row] = style_row
            above = self._styles_of(style_row) if style_row is not None else {}
            start = first
            for stop in [*sorted(held), last + 1]:
                if stop > start:
                    out[start] = self._rows_xml(start, stop, first, columns, above)
                start = stop + 1
            self._extent = (max(self._extent[0], last), max(self._extent[1], *columns, 1))
        return out

    def _rows_xml(self, start: int, stop: int, first: int, columns: dict[int, list[Any]],
                  above: dict[int, int | None]) -> bytes:
        """Rows `start` to `stop - 1` of a block beginning at `first`, built a column at a
        time: each distinct value's cell XML is made once, a cell costs a look-up."""
        rows = range(start, stop)
        p = self._p
        cells = [self._column_xml(rows, column, values[start - first:stop - first],
                                  above.get(column)) for column, values in
                 sorted(columns.items())]
        opens = [f'<{p}row r="{row}">' for row in rows]
        return "".join(chain.from_iterable(zip(opens, *cells, repeat(f"</{p}row>", len(rows)),
                                               strict=True))).encode()

    def _column_xml(self, rows: range, column: int, values: list[Any], style: int | None
                    ) -> list[str]:
        head = f'<{self._p}c r="{get_column_letter(column)}'
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if kinds == {str}:  # text that needs no escaping goes in as it is (IDs, titles)
            texts = [v for v in values if v is not None]
            joined = " ".join(texts)
            if all(texts) and joined.isprintable() and not (
                    "&" in joined or "<" in joined or ">" in joined):
                p = self._p
                s = f' s="{style}"' if style else ""
                return ["" if value is None else
                        f'{head}{row}"{s} t="inlineStr"><{p}is><{p}t xml:space="preserve">'
                        f'{value}</{p}t></{p}is></{p}c>'
                        for row, value in zip(rows, values, strict=True)]
        if len(kinds) == 1 and next(iter(kinds)) in _ONE_KIND:  # values alike: keyed as such
            rests: dict[Any, str | None] = {v: self._cell_rest(v, style) for v in set(values)
                                           if v is not None}
            rests[None] = None
            return [f'{head}{row}"{rest}' if (rest := rests[value]) is not None else ""
                    for row, value in zip(rows, values, strict=True)]
        memo: dict[tuple[type, Any], Any] = {}
        out = []
        for row, value in zip(rows, values, strict=True):
            if value is None:
                out.append("")
                continue
            if isinstance(value, RawCell):  # a stored cell moved here: its own XML
                xml = self._cell_xml(row, column, value, style)
                out.append(xml.decode() if xml is not None else "")
                continue
            key = (type(value), value)  # (1, 1.0 and True are equal keys)
            try:
                rest = memo.get(key, _UNSEEN)
            except TypeError:  # not hashable: made for this cell alone
                rest = self._cell_rest(value, style)
            if rest is _UNSEEN:
                rest = memo[key] = self._cell_rest(value, style)
            out.append(f'{head}{row}"{rest}' if rest is not None else "")
        return out

    def _styles_of(self, row: int) -> dict[int, int | None]:
        found = self._row_styles.get(row)
        if found is None:
            found = self._row_styles[row] = {c.column: c.style for c in self.cells(row)}
        return found

    def _cell_xml(self, row: int, column: int, value: Any, style: int | None) -> bytes | None:
        if isinstance(value, RawCell):
            ref = f"{get_column_letter(column)}{row}"
            xml = re.sub(rb'(<(?:\w+:)?c\b[^>]*?\br=")[A-Z]+\d+"', lambda m: m[1]
                         + ref.encode() + b'"', value.xml, count=1)
            if b"<f" in xml:
                self.formulas_touched = True
            if re.match(rb'<(?:\w+:)?c\b[^>]*?\bt="s"', xml):
                self.shared_refs += 1
            return xml
        rest = self._cell_rest(value, style)
        if rest is None:
            return None
        # (openpyxl caches the column letters)
        return f'<{self._p}c r="{get_column_letter(column)}{row}"{rest}'.encode()

    def _cell_rest(self, value: Any, style: int | None) -> str | None:
        """A cell's XML after its reference (`<c r="B7"` + this), or None for no cell."""
        kind = type(value)
        p = self._p
        if kind is str and value:  # the common cases first, each in one format
            s = f' s="{style}"' if style else ""
            if not value.isprintable():  # tabs, newlines and the characters XML forbids
                value = ILLEGAL_XML.sub("", value)
            if "&" in value or "<" in value or ">" in value:
                value = escape(value)
            return (f'{s} t="inlineStr"><{p}is><{p}t xml:space="preserve">{value}</{p}t>'
                    f'</{p}is></{p}c>')
        if (kind is float and math.isfinite(value)) or kind is int:
            s = f' s="{style}"' if style else ""
            return f'{s}><{p}v>{_number(value)}</{p}v></{p}c>'
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if isinstance(value, dt.date) and not self.styles.is_date(style):
            style = self.styles.date_style(style, isinstance(value, dt.datetime))
        s = f' s="{style}"' if style else ""
        if value is None or (isinstance(value, str) and value == ""):
            return f'{s}/>' if style else None
        if isinstance(value, Formula):
            self.formulas_touched = True
            return f"{s}><{p}f>{escape(value.text)}</{p}f></{p}c>"
        if isinstance(value, bool):
            return f'{s} t="b"><{p}v>{int(value)}</{p}v></{p}c>'
        if isinstance(value, int | float):
            return f'{s}><{p}v>{_number(value)}</{p}v></{p}c>'
        if isinstance(value, dt.date):
            return f'{s}><{p}v>{_number(_serial(value))}</{p}v></{p}c>'
        text = ILLEGAL_XML.sub("", str(value))
        return (f'{s} t="inlineStr"><{p}is><{p}t xml:space="preserve">'
                f"{escape(text)}</{p}t></{p}is></{p}c>")

    def _grow_dimension(self) -> None:
        match = re.search(rb'<(?:\w+:)?dimension\b[^>]*?\bref="([^"]*)"', self.head)
        if match is None or not (self.edits or self.blocks):
            return
        ends = match[1].split(b":")
        found = _REF.fullmatch(ends[-1])
        if found is None:
            return
        last_row = max(int(found[2]), max(self.edits, default=0), self._extent[0])
        last_col = max(column_index_from_string(found[1].decode()),
                       max((c for cells in self.edits.values() for c in cells), default=0),
                       self._extent[1])
        start = ends[0] if len(ends) > 1 else b"A1"
        ref = start + b":" + f"{get_column_letter(last_col)}{last_row}".encode()
        self.head = self.head[:match.start(1)] + ref + self.head[match.end(1):]

    # head and tail as XML ---------------------------------------------------------------------

    def frame(self) -> etree._Element:
        """The part without its rows, as XML to edit (see `set_frame`)."""
        return parse(self.head + self.tail)

    def set_frame(self, root: etree._Element) -> None:
        data = xml_bytes(root)
        match = _SHEET_DATA.search(data)
        assert match is not None
        if match[2]:
            self.head = data[:match.start()] + b"<" + match[1] + b"sheetData>"
            self.tail = b"</" + match[1] + b"sheetData>" + data[match.end():]
        else:
            close = data.rfind(b"</" + match[1] + b"sheetData>")
            self.head, self.tail = data[:match.end()], data[close:]
        self._parsed.clear()
        self._row_styles.clear()


def place(root: etree._Element, element: etree._Element) -> None:
    """Insert `element` among a worksheet's children where the schema wants it."""
    name = etree.QName(element).localname
    rank = ORDER.index(name)
    for index, child in enumerate(root):
        tag = etree.QName(child).localname if isinstance(child.tag, str) else ""
        if tag in ORDER and ORDER.index(tag) > rank:
            root.insert(index, element)
            return
    root.append(element)


def movable(cell: RawCell) -> bool:
    """A stored cell whose meaning does not change when it moves to another row: no formula,
    or a formula without A1 references (structured references, constants)."""
    match = re.search(rb"<(?:\w+:)?f\b([^>]*)(?:/>|>(.*?)</(?:\w+:)?f>)", cell.xml, re.S)
    if match is None:
        return True
    if b"shared" in match[1] or b"array" in match[1]:
        return False
    text = _STRING.sub("", (match[2] or b"").decode("utf-8", "replace"))
    return _A1.search(text) is None


def _parse_cells(fragment: bytes) -> list[_Cell]:
    out: list[_Cell] = []
    start = _ROW_START.match(fragment)
    body = fragment[start.end():] if start else fragment
    column = 0
    for found in _CELL.finditer(body):
        attrs = {k.decode(): v.decode() for k, v in _ATTR.findall(found[2])}
        ref = _REF.fullmatch(attrs.get("r", "").encode())
        column = column_index_from_string(ref[1].decode()) if ref else column + 1
        out.append(_Cell(column, found[0], attrs))
    return out


def _row_trailer(fragment: bytes) -> bytes:
    """A row's children that are not cells (an extLst)."""
    found = re.search(rb"<(?:\w+:)?extLst\b.*</(?:\w+:)?extLst>", fragment, re.S)
    return found[0] if found else b""


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _serial(value: dt.date) -> float:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return (value - EXCEL_EPOCH).total_seconds() / 86400


def refs(cells: Iterable[tuple[int, int]]) -> str:
    return " ".join(f"{get_column_letter(c)}{r}" for r, c in cells)

