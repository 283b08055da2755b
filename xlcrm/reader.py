"""Fast reading of a CRM workbook into pandas frames with python-calamine.

Every frame keeps the Excel row number of each record in the ``_row`` column, known fields
under their keys (``customer_id``), and every column we do not know under its own header.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import python_calamine as calamine
from lxml import etree

from . import progress, schema, sheetcache
from .errors import CorruptWorkbook, EncryptedWorkbook, HostileWorkbook, SheetMissing
from .guard import check_workbook_file, file_sha256
from .schema import Lang, SheetDef, normalize_header
from .settings import CustomField, Settings, settings_from_tables
from .sparse import Extent, TableInfo, read_sparse, sheet_extent, sheet_parts, sheet_tables
from .writer import clean_stale_temps

T = TypeVar("T")

ROW = "_row"
HEADER_SCAN_ROWS = 30


@dataclass
class SheetData:
    """One data sheet as read: the frame plus where each column lives in Excel."""

    key: str
    name: str  # the sheet's real name
    frame: pd.DataFrame
    columns: dict[str, int]  # field key (or unknown header) -> 1-based Excel column
    headers: dict[str, str]  # field key -> header text as the workbook spells it
    header_row: int  # Excel row number of the header
    table: str | None = None  # Excel Table holding the data, if any
    table_last_row: int | None = None  # the Table's last row (rows below it were typed
    #                                    outside it; the next write grows the Table)

    @property
    def last_row(self) -> int:
        return int(self.frame[ROW].max()) if len(self.frame) else self.header_row


@dataclass
class WorkbookData:
    """Everything read from one workbook, plus the hash that guards the write-back."""

    path: Path
    sha256: str
    lang: Lang
    settings: Settings
    sheets: dict[str, SheetData]
    sheet_names: list[str]  # every sheet, in workbook order

    def sheet(self, key: str) -> SheetData:
        return self.sheets[key]

    def counts(self) -> dict[str, int]:
        return {key: len(data.frame) for key, data in self.sheets.items()}

    def custom_columns(self, key: str) -> list[tuple[str, CustomField]]:
        """The Settings → Custom Fields declared for data sheet `key` that the sheet has, as
        (frame column, field), in the order Settings lists them."""
        aliases = schema.sheet_aliases()
        sheet = self.sheets[key]
        headers = {normalize_header(h): k for k, h in sheet.headers.items()}
        out = []
        for field in self.settings.custom_fields:
            if aliases.get(normalize_header(field.sheet)) != key:
                continue
            column = headers.get(normalize_header(field.column))
            if column is not None and column in sheet.frame.columns:
                out.append((column, field))
        return out


def read_workbook(path: str | Path) -> WorkbookData:
    """Read the data sheets and Settings of a CRM workbook.

    Raises:
        InputError: not a readable workbook, or a data sheet or key column is missing.
    """
    path = Path(path)
    progress.step("read", name=path.name)
    check_workbook_file(path)
    clean_stale_temps(path.parent, path.name)  # left by a write that was killed
    digest = file_sha256(path)
    try:
        book = calamine.CalamineWorkbook.from_path(str(path))
    except calamine.PasswordError:
        raise EncryptedWorkbook(f"{path.name}: {EncryptedWorkbook.__doc__}",
                                zh=f"{path.name}：工作簿有密码保护；请另存为无密码的 .xlsx"
                                ) from None
    except Exception as error:  # calamine raises several unrelated types for broken files
        raise CorruptWorkbook(f"{path.name}: damaged workbook ({_short(error)})",
                              zh=f"{path.name}：工作簿已损坏（{_short(error)}）") from None
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(book, archive, path, digest)
    except (calamine.CalamineError, calamine.XmlError, calamine.ZipError, zipfile.BadZipFile,
            etree.XMLSyntaxError, KeyError, ValueError) as error:
        raise CorruptWorkbook(f"{path.name}: damaged workbook ({_short(error)})",
                              zh=f"{path.name}：工作簿已损坏（{_short(error)}）") from None
    finally:
        book.close()


def sheet_keys(names: list[str]) -> dict[str, str]:
    """Sheet key -> the real name of the first sheet that carries it (either language)."""
    aliases = schema.sheet_aliases()
    by_key: dict[str, str] = {}
    for name in names:
        key = aliases.get(normalize_header(name))
        if key and key not in by_key:
            by_key[key] = name
    return by_key


class _Source:
    """The cells of one sheet: calamine's dense grid, or (for a sheet whose farthest cell
    would make that grid huge, see `xlcrm.sparse`) the cells that hold values."""

    def __init__(self, book: Any, archive: zipfile.ZipFile, name: str, member: str | None,
                 extent: Extent | None, tables: list[TableInfo],
                 grid: list[list[Any]] | None = None) -> None:
        self.name = name
        self.sparse = extent is not None and extent.sparse
        self.tables = tables
        if self.sparse:
            assert member is not None
            self.cells = read_sparse(archive, member)
        else:
            self._book = book
            self._grid: list[list[Any]] | None = grid

    def grid(self) -> list[list[Any]]:
        if self._grid is None:
            self._grid = self._book.get_sheet_by_name(self.name).to_python(
                skip_empty_area=False)
        return self._grid

    def head(self, rows: int) -> list[list[Any]]:
        """The first `rows` rows (ragged when sparse)."""
        if not self.sparse:
            return self.grid()[:rows]
        out = []
        for number in range(1, rows + 1):
            cells = self.cells.get(number, {})
            width = max(cells, default=0)
            out.append([cells.get(c, "") for c in range(1, width + 1)])
        return out

    def rows(self, first_row: int, first_col: int, width: int, last_row: int | None = None
             ) -> tuple[list[int], list[list[Any]]]:
        """Excel row numbers and values of rows `first_row`.. (to the sheet's end, or
        `last_row`), columns `first_col`..+`width`. Sparse: only rows holding a value there."""
        lo, hi = first_col - 1, first_col - 1 + width
        if not self.sparse:
            grid = self.grid()
            end = len(grid) if last_row is None else min(last_row, len(grid))
            rows = grid[first_row - 1:end]
            if lo or any(len(r) != hi for r in rows[:1]):  # calamine's rows share one width
                rows = [(r + [""] * (hi - len(r)))[lo:hi] for r in rows]
            return list(range(first_row, first_row + len(rows))), rows
        numbers, out = [], []
        for number in sorted(self.cells):
            if number < first_row or (last_row is not None and number > last_row):
                continue
            cells = self.cells[number]
            values = [cells.get(c, "") for c in range(first_col, first_col + width)]
            if any(v != "" for v in values):
                numbers.append(number)
                out.append(values)
        return numbers, out


def _read(book: Any, archive: zipfile.ZipFile, path: Path, digest: str) -> WorkbookData:
    names: list[str] = list(book.sheet_names)
    by_key = sheet_keys(names)
    missing = [s for s in schema.DATA_SHEETS if s.key not in by_key]
    if missing:
        wanted = ", ".join(f"{s.en} / {s.zh}" for s in missing)
        raise SheetMissing(f"{path.name}: no sheet named {wanted}",
                           zh=f"{path.name}：没有名为 {wanted} 的工作表")
    lang = _detect_lang(by_key)
    members = sheet_parts(archive)
    # the Tables from their own parts: calamine would load (and size) each sheet for them
    tables = {name: sheet_tables(archive, member, name) for name, member in members.items()}
    settings_names = [name for name in names if any(
        t.name.casefold() in _SETTINGS_NAMES for t in tables.get(name, []))]
    cache = sheetcache.Book(path, archive)  # sheets read before, unchanged since
    keys: dict[str, str | None] = {}
    hits: dict[str, sheetcache.Entry] = {}
    for s in schema.DATA_SHEETS:
        name = by_key[s.key]
        if cache.on and name in members:
            key = keys[name] = cache.key(members[name], name, tables.get(name, []))
            entry = cache.load(key) if key else None
            if entry is not None and entry.sheet.key == s.key:
                hits[name] = entry
    reading = [*(by_key[s.key] for s in schema.DATA_SHEETS if by_key[s.key] not in hits),
               *settings_names]
    measured = [name for name in reading if name in members]
    extents = dict(zip(measured, _in_parallel(
        lambda name: _extent(path, members[name]), measured), strict=True))
    extents |= {name: e.extent for name, e in hits.items() if e.extent is not None}
    _check_budget(path, extents)  # before calamine sees a sheet
    dense = [name for name in reading if not (name in extents and extents[name].sparse)]
    grids = dict(zip(dense, _in_parallel(lambda name: _grid(path, name), dense), strict=True))

    def source(name: str) -> _Source:
        return _Source(book, archive, name, members.get(name), extents.get(name),
                       tables.get(name, []), grids.get(name))

    sheets: dict[str, SheetData] = {}
    for s in schema.DATA_SHEETS:
        name = by_key[s.key]
        if name in hits:
            sheets[s.key] = hits[name].sheet
            continue
        sheets[s.key] = _read_sheet(source(name), s, path)
        if keys.get(name):
            cache.store(str(keys[name]), sheets[s.key], extents.get(name))
    cache.flush()
    settings = settings_from_tables(_settings_tables([source(n) for n in settings_names]),
                                    lang)
    if settings.options.language:
        lang = settings.options.language
    return WorkbookData(path=path, sha256=digest, lang=lang, settings=settings, sheets=sheets,
                        sheet_names=names)


def _in_parallel(func: Callable[[str], T], names: list[str]) -> list[T]:
    """`func` over `names` in threads: zlib and calamine work outside the GIL, so the sheets of
    a workbook are read side by side on as many cores as there are."""
    if len(names) < 2 or (os.cpu_count() or 1) < 2:
        return [func(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 2)) as pool:
        return list(pool.map(func, names))


def _extent(path: Path, member: str) -> Extent:
    with zipfile.ZipFile(path) as archive:  # one handle a thread
        return sheet_extent(archive, member)


def _grid(path: Path, name: str) -> list[list[Any]]:
    book = calamine.CalamineWorkbook.from_path(str(path))  # one reader a thread
    try:
        return list(book.get_sheet_by_name(name).to_python(skip_empty_area=False))
    finally:
        book.close()


_SETTINGS_NAMES = {t.casefold() for t in schema.SETTINGS_TABLES}
MIN_BUDGET = 512 * 1024**2
BUDGET_PER_FILE_BYTE = 40  # a real workbook needs ~20-30 bytes of memory per byte on disk


def _check_budget(path: Path, extents: dict[str, Extent]) -> None:
    """Refuse a workbook whose sheets would cost far more memory than any real workbook of its
    size on disk (a compression bomb of cells): at most 40 times its file size, and never less
    than 512 MB. The cost of each sheet is estimated by `Extent.memory`."""
    cells = sum(e.cells for e in extents.values())
    need = sum(e.memory() for e in extents.values())
    size = path.stat().st_size
    if need > max(MIN_BUDGET, BUDGET_PER_FILE_BYTE * size):
        raise HostileWorkbook(
            f"{path.name}: {cells / 1e6:.1f} million cells in a {size >> 20} MB file would "
            f"take about {need >> 20} MB to read; refused as a compression bomb",
            zh=f"{path.name}：{size >> 20} MB 的文件含 {cells / 1e6:.1f} 百万个单元格，"
               f"读取约需 {need >> 20} MB 内存；疑似压缩炸弹，已拒绝")


def _detect_lang(by_key: dict[str, str]) -> Lang:
    name = by_key["customers"]
    return "zh" if normalize_header(name) == normalize_header(schema.CUSTOMERS.zh) else "en"


def _read_sheet(source: _Source, sdef: SheetDef, path: Path) -> SheetData:
    """A data sheet: its Table (and the rows typed below it), else the header row found in the
    first rows and everything under it."""
    aliases = schema.header_aliases(sdef)
    table = _pick_table(sdef, source.tables, aliases)
    if table is not None and not all(str(h).strip() for h in table.columns):
        table = None  # a damaged Table definition: read the sheet's own header instead
    if table is not None:
        headers = list(table.columns)
        header_row, first_col, table_name = table.header_row, table.first_col, table.name
    else:
        head = source.head(HEADER_SCAN_ROWS)
        index = _find_header(head, aliases)
        if index is None:
            raise SheetMissing(f"{path.name}: sheet {source.name} has no header row with "
                               f"{sdef.fields[1].en} / {sdef.fields[1].zh}",
                               zh=f"{path.name}：工作表 {source.name} 没有含“{sdef.fields[1].zh}”"
                                  "的表头行")
        raw = head[index]
        first = next(i for i, h in enumerate(raw) if str(h).strip())
        last = max(i for i, h in enumerate(raw) if str(h).strip())
        headers = [str(h) for h in raw[first:last + 1]]
        header_row, first_col, table_name = index + 1, first + 1, None
    numbers, rows = source.rows(header_row + 1, first_col, len(headers))
    return sheet_from_rows(sdef, source.name, headers, rows, header_row, first_col, table_name,
                           path, row_numbers=numbers,
                           table_last_row=table.last_row if table is not None else None)


def sheet_from_rows(sdef: SheetDef, name: str, headers: list[str], rows: list[list[Any]],
                    header_row: int, first_col: int, table_name: str | None,
                    path: Path, row_numbers: list[int] | None = None,
                    table_last_row: int | None = None) -> SheetData:
    """A data sheet from its header texts and rows, wherever they were read (calamine here,
    xlwings in the ribbon). `row_numbers` are the rows' Excel numbers (default: consecutive
    from the row under the header). Raises SheetMissing when a key column is absent."""
    aliases = schema.header_aliases(sdef)
    keys: list[str] = []
    columns: dict[str, int] = {}
    header_text: dict[str, str] = {}
    for offset, header in enumerate(headers):
        key = aliases.get(normalize_header(header), str(header))
        if key in columns or key == ROW:  # a second column with the same meaning: user data
            key = f"{header} ({offset + first_col})"
        keys.append(key)
        columns[key] = first_col + offset
        header_text[key] = str(header)
    _require_columns(sdef, columns, name, path)
    frame = pd.DataFrame(rows, columns=keys, dtype=object) if rows else pd.DataFrame(
        columns=keys, dtype=object)
    frame = frame.replace("", None)
    if row_numbers is None:
        row_numbers = list(range(header_row + 1, header_row + 1 + len(frame)))
    frame[ROW] = row_numbers
    frame = frame.dropna(how="all", subset=keys).reset_index(drop=True)
    for f in sdef.fields:  # absent optional columns read as blank
        if f.key not in frame.columns:
            frame[f.key] = None
    return SheetData(key=sdef.key, name=name, frame=frame, columns=columns,
                     headers=header_text, header_row=header_row, table=table_name,
                     table_last_row=table_last_row)


def _pick_table(sdef: SheetDef, tables: list[Any], aliases: dict[str, str]) -> Any:
    for table in tables:
        if table.name == sdef.table:
            return table
    for table in tables:  # a renamed table still counts if it holds the sheet's columns
        known = {aliases.get(normalize_header(h)) for h in table.columns}
        if sdef.id_field in known and sdef.fields[1].key in known:
            return table
    return None


def _find_header(grid: list[list[Any]], aliases: dict[str, str]) -> int | None:
    best, best_hits = None, 1
    for index, row in enumerate(grid[:HEADER_SCAN_ROWS]):
        hits = sum(1 for cell in row if normalize_header(cell) in aliases)
        if hits > best_hits:
            best, best_hits = index, hits
    return best


def _require_columns(sdef: SheetDef, columns: dict[str, int], name: str, path: Path) -> None:
    needed = [f for f in sdef.fields if f.key == sdef.id_field or f.required]
    absent = [f for f in needed if f.key not in columns]
    if absent:
        wanted = ", ".join(f"{f.en} / {f.zh}" for f in absent)
        raise SheetMissing(f"{path.name}: sheet {name} has no column {wanted}",
                           zh=f"{path.name}：工作表 {name} 缺少列 {wanted}")


def _settings_tables(sources: list[_Source]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for source in sources:
        for table in source.tables:
            key = next((n for n in schema.SETTINGS_TABLES
                        if n.casefold() == table.name.casefold()), None)
            if key is None or key in found:
                continue
            _, rows = source.rows(table.header_row + 1, table.first_col, table.width,
                                  last_row=table.last_row)
            found[key] = settings_rows(key, list(table.columns), rows)
    return found


def settings_rows(table_name: str, headers: list[Any], rows: list[list[Any]]
                  ) -> list[dict[str, Any]]:
    """The rows of a Settings table as dicts keyed by column key (blank cells as None)."""
    if table_name == "Lists":
        aliases = schema.list_aliases()
    else:
        aliases = schema.settings_aliases(table_name)
    keys = [aliases.get(normalize_header(h), str(h)) for h in headers]
    return [{k: (None if v == "" else v) for k, v in zip(keys, row, strict=False)}
            for row in rows]


def _short(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]
