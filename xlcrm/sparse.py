"""Reading a sheet cell by cell, for sheets whose extent is a lie.

calamine (the fast reader) builds a dense grid from A1 to the last cell it finds. One value
typed at XFD1048576 makes that grid 17 billion cells: hundreds of GB, and the process dies. A
stray value at V1048576 costs 800 MB for a five-row sheet. `sheet_extent` measures, by
streaming the sheet's XML, how many cells a sheet really holds and how large a grid they would
claim; `read_sparse` then reads such a sheet with lxml's streaming parser into the rows that hold
values, never allocating the empty area. Both stream: memory stays bounded by the rows kept.

Dates: a number cell whose style has a date format (a built-in date format, or a custom format
with d, m or y outside quotes and brackets) is read as a date, as calamine does.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from lxml import etree
from openpyxl.utils.cell import column_index_from_string

from . import normalize as nz

NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
DENSE_LIMIT = 4_000_000  # cells a grid may claim before the sheet is read sparsely
_ROW = re.compile(rb"<(?:\w+:)?row\b[^>]*?\br=\"(\d+)\"")
_WIDE = re.compile(rb"<(?:\w+:)?c\b[^>]*?\br=\"([A-Z]{2,3})\d")
_FAST_ROW = re.compile(rb'<row r="(\d+)"')
_FAST_WIDE = re.compile(rb'<c r="([A-Z]{2,3})\d')
DATE_FORMAT_IDS = frozenset({*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59)})
_QUOTED = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.')


def is_date_format(code: str) -> bool:
    """A custom number format that shows a date: d, m or y outside quotes and brackets."""
    return any(ch in _QUOTED.sub("", code).lower() for ch in "dmy")
EXCEL_EPOCH = dt.datetime.combine(nz.EXCEL_EPOCH, dt.time())


@dataclass(frozen=True)
class Extent:
    """What a sheet holds (cells) and the grid its farthest cell claims (rows × columns)."""

    cells: int
    rows: int  # the farthest row
    columns: int  # the farthest column (26 when no cell is past Z: not searched below that)
    row_elements: int = 0  # rows that hold something

    @property
    def claimed(self) -> int:
        return self.rows * self.columns

    @property
    def sparse(self) -> bool:
        """Reading it densely would cost far more than its cells: rows far below the last
        real one, or columns far right of the rest. Read it sparsely."""
        if self.claimed <= DENSE_LIMIT:
            return False
        far_rows = self.rows > 8 * max(self.row_elements, 1)
        wide = self.columns > 26 and self.claimed > 8 * max(self.cells, 1)
        return far_rows or wide

    def memory(self) -> int:
        """Bytes reading it will take, about (measured: a sparse cell ~1.2 KB; a dense grid
        ~120 bytes a cell holding a value and ~32 an empty one)."""
        if self.sparse:
            return self.cells * 1200
        return self.cells * 120 + self.claimed * 32


class Parts(Protocol):
    """What `sheet_parts` reads from: a zip, or a package being changed."""

    def read(self, name: str) -> bytes: ...


def sheet_parts(archive: Parts) -> dict[str, str]:
    """Sheet name -> the zip member holding its XML."""
    book = etree.fromstring(archive.read("xl/workbook.xml"))
    rels = etree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    out = {}
    for sheet in book.iter(f"{NS}sheet"):
        target = targets.get(sheet.get(f"{REL_NS}id"), "")
        if not target:
            continue
        member = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
            posixpath.join("xl", target))
        out[str(sheet.get("name"))] = member
    return out


def sheet_extent(archive: zipfile.ZipFile, member: str) -> Extent:
    """Count a sheet's cells and find its farthest row and column, streaming its XML.

    Excel, LibreOffice and openpyxl write `r` as the first attribute of rows and cells, which
    literal-prefix searches find at memory speed; a chunk where they miss some falls back to a
    search that takes the attributes in any order."""
    cells = rows = row_elements = 0
    columns = 26  # one-letter columns need no search
    tail = b""
    with archive.open(member) as part:
        for chunk in iter(lambda: part.read(1 << 22), b""):
            block = tail + chunk
            cut = block.rfind(b"<")  # a tag split between chunks waits for the next one
            if cut < len(block) - 512:
                cut = len(block)
            body, tail = block[:cut], block[cut:]
            found_cells = body.count(b"<c ") + body.count(b"<c>")
            cells += found_cells
            row_numbers = _FAST_ROW.findall(body)
            if len(row_numbers) != body.count(b"<row "):
                row_numbers = _ROW.findall(body)
            if row_numbers:
                rows = max(rows, max(map(int, row_numbers)))
                row_elements += len(row_numbers)
            letters = _FAST_WIDE.findall(body)
            if body.count(b'<c r="') != found_cells:
                letters = _WIDE.findall(body)
            for word in set(letters):
                columns = max(columns, column_index_from_string(word.decode()))
    return Extent(cells=cells, rows=rows, columns=columns, row_elements=row_elements)


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    out: list[str] = []
    with archive.open("xl/sharedStrings.xml") as part:
        for _, item in etree.iterparse(part, tag=f"{NS}si", resolve_entities=False,
                                       no_network=True, huge_tree=False):
            out.append("".join(t.text or "" for t in item.iter(f"{NS}t")
                               if t.getparent() is not None
                               and t.getparent().tag != f"{NS}rPh"))
            item.clear()
    return out


def _date_styles(archive: zipfile.ZipFile) -> set[int]:
    """Indexes of the cell formats (cellXfs) that show a date."""
    if "xl/styles.xml" not in archive.namelist():
        return set()
    root = etree.fromstring(archive.read("xl/styles.xml"))
    custom = set()
    for fmt in root.iter(f"{NS}numFmt"):
        if is_date_format(fmt.get("formatCode", "")):
            custom.add(int(fmt.get("numFmtId", "0")))
    xfs = root.find(f"{NS}cellXfs")
    if xfs is None:
        return set()
    dates = DATE_FORMAT_IDS | custom
    return {i for i, xf in enumerate(xfs) if int(xf.get("numFmtId", "0")) in dates}


def read_sparse(archive: zipfile.ZipFile, member: str) -> dict[int, dict[int, Any]]:
    """Row number -> column number -> value, for every cell that holds a value."""
    strings = _shared_strings(archive)
    dates = _date_styles(archive)
    out: dict[int, dict[int, Any]] = {}
    with archive.open(member) as part:
        for row, column, value in _cells(part, strings, dates):
            out.setdefault(row, {})[column] = value
    return out


_REF = re.compile(r"([A-Z]+)(\d+)")


def _cells(part: Any, strings: list[str], dates: set[int]) -> Iterator[tuple[int, int, Any]]:
    for _, cell in etree.iterparse(part, tag=f"{NS}c", resolve_entities=False, no_network=True):
        match = _REF.fullmatch(cell.get("r", ""))
        value = _value(cell, strings, dates)
        cell.clear()
        if match is None or value is None or value == "":
            continue
        yield int(match[2]), column_index_from_string(match[1]), value


def _value(cell: Any, strings: list[str], dates: set[int]) -> Any:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{NS}t"))
    v = cell.find(f"{NS}v")
    if v is None or v.text is None:
        return None
    raw = v.text
    if kind == "s":
        index = int(raw)
        return strings[index] if 0 <= index < len(strings) else None
    if kind in ("str", "e"):
        return raw
    if kind == "b":
        return raw == "1"
    try:
        number = float(raw)
    except ValueError:
        return raw
    if int(cell.get("s", "0")) in dates and 0 <= number < 2958466:
        return EXCEL_EPOCH + dt.timedelta(days=number)
    return number  # as calamine gives numbers: always float


@dataclass(frozen=True)
class TableInfo:
    """An Excel Table as the reader needs it, from calamine or from the table's own XML."""

    name: str
    sheet: str
    header_row: int  # 1-based Excel row of the header
    first_col: int  # 1-based
    last_row: int  # 1-based, the Table's last row as its ref says
    columns: tuple[str, ...]

    @property
    def width(self) -> int:
        return len(self.columns)


_RANGE = re.compile(r"\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?")


def sheet_tables(archive: zipfile.ZipFile, member: str, sheet: str) -> list[TableInfo]:
    """The Tables of one sheet, read from their parts (no cell is loaded)."""
    folder, base = posixpath.split(member)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    if rels_name not in archive.namelist():
        return []
    out = []
    for rel in etree.fromstring(archive.read(rels_name)):
        if not rel.get("Type", "").endswith("/table"):
            continue
        target = rel.get("Target", "")
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
            posixpath.join(folder, target))
        if part not in archive.namelist():
            continue
        root = etree.fromstring(archive.read(part))
        match = _RANGE.fullmatch(root.get("ref", ""))
        if match is None or root.get("headerRowCount", "1") == "0":
            continue
        names = tuple(str(c.get("name", "")) for c in root.iter(f"{NS}tableColumn"))
        last_col = column_index_from_string(match[3] or match[1])
        if len(names) != last_col - column_index_from_string(match[1]) + 1:
            continue  # a damaged Table definition: the sheet's own header is read instead
        out.append(TableInfo(name=str(root.get("displayName") or root.get("name")),
                             sheet=sheet, header_row=int(match[2]),
                             first_col=column_index_from_string(match[1]),
                             last_row=int(match[4] or match[2]), columns=names))
    return out
