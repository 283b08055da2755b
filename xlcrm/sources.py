"""Reading a sheet a team already has, for `xlcrm import`: any workbook's sheet or a CSV.

- **Workbooks** (`.xlsx`, `.xlsm`, `.xls`) through calamine, the sheet named or the first one
  with data; Excel date cells come back as dates.
- **CSV / TSV / TXT**: the encoding is decided by the bytes, in this order: a UTF-8 (or
  UTF-16) byte-order mark; valid UTF-8; GB18030, the superset of the GBK that Chinese Excel and
  WPS write ("CSV (逗号分隔)"); else charset-normalizer's best guess. The dialect (delimiter,
  quote) by clevercsv's sniffer over the first 64 KB, with the tab for .tsv. We wrote the
  encoding order ourselves: a detector guessing from a few Chinese characters misreads short
  GBK files as other code pages, while strict decoding never does.
- **The header row** is the first row, within the first 30, whose cells name at least two
  known fields (`importmap.concept_of`); failing that, the first row as wide as the widest.
  Title rows above it (a merged title cell arrives as one cell), blank rows and totals rows
  (合计 / 总计 / Total …) are left out and counted; every row keeps its number in the source
  (the Excel row, or the CSV line) for the preview.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, WorkbookNotFound
from .normalize import is_blank

WORKBOOKS = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
TEXTS = (".csv", ".tsv", ".txt")
HEADER_SCAN = 30
TOTAL_WORDS = re.compile(r"^\s*(合计|总计|小计|汇总|total|totals|sum|grand total)\s*[:：]?\s*$",
                         re.IGNORECASE)


class SourceUnreadable(InputError):
    """The file to import cannot be read"""


@dataclass
class SourceTable:
    """The rows of a source under its header."""

    name: str  # file (and sheet) as shown to people
    headers: list[str]
    rows: list[list[Any]]
    row_numbers: list[int]  # each row's number in the source (1-based, as the user sees it)
    encoding: str | None = None
    delimiter: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # title, blank, totals


def read_source(path: Path, sheet: str | None = None,
                known: Callable[[str], bool] | None = None) -> SourceTable:
    """The table in `path` (see the module docstring). `known(header)` says whether a header
    names a field (for finding the header row).

    Raises:
        WorkbookNotFound: no such file.
        SourceUnreadable: not a workbook or text file that can be read, or no such sheet.
    """
    if not path.exists():
        raise WorkbookNotFound(f"{path}: no such file", zh=f"{path}：文件不存在")
    suffix = path.suffix.lower()
    if suffix in WORKBOOKS:
        grid, label = _workbook_grid(path, sheet)
        encoding = delimiter = None
    elif suffix in TEXTS or suffix == "":
        grid, encoding, delimiter = _text_grid(path)
        label = path.name
    else:
        raise SourceUnreadable(f"{path.name}: not a workbook or CSV file ({suffix})",
                               zh=f"{path.name}：不是工作簿或 CSV 文件（{suffix}）")
    return _table(label, grid, known or (lambda h: False), encoding, delimiter)


def read_source_soon(path: Path, sheet: str | None = None,
                     known: Callable[[str], bool] | None = None) -> Callable[[], SourceTable]:
    """`read_source` begun in a thread: calamine parses a workbook without holding the GIL,
    so the caller's own work (reading the workbook it imports into) goes on meanwhile. Call
    what it returns for the table; it raises what `read_source` raises."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlcrm-source")
    try:
        return pool.submit(read_source, path, sheet, known).result
    finally:
        pool.shutdown(wait=False)


def _workbook_grid(path: Path, sheet: str | None) -> tuple[list[list[Any]], str]:
    import python_calamine as calamine

    try:
        book = calamine.CalamineWorkbook.from_path(str(path))
    except Exception as error:  # calamine raises several unrelated types for broken files
        raise SourceUnreadable(f"{path.name}: cannot be read ({str(error)[:120]})",
                               zh=f"{path.name}：无法读取（{str(error)[:120]}）") from None
    try:
        names = book.sheet_names
        if sheet is not None:
            wanted = [n for n in names if n.strip().casefold() == sheet.strip().casefold()]
            if not wanted:
                raise SourceUnreadable(f"{path.name} has no sheet {sheet!r} (it has "
                                       f"{', '.join(names)})",
                                       zh=f"{path.name} 中没有工作表 {sheet!r}（现有："
                                          f"{'、'.join(names)}）")
            chosen = wanted[0]
            grid = book.get_sheet_by_name(chosen).to_python(skip_empty_area=False)
        else:
            chosen, grid = names[0] if names else "", []
            for name in names:
                rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
                if any(any(not is_blank(v) for v in r) for r in rows):
                    chosen, grid = name, rows
                    break
    finally:
        book.close()
    return grid, f"{path.name} [{chosen}]"


def _text_grid(path: Path) -> tuple[list[list[Any]], str, str]:
    raw = path.read_bytes()
    text, encoding = decode(raw)
    sample = text[:65536]
    if path.suffix.lower() == ".tsv":
        delimiter, quote = "\t", '"'
    else:
        delimiter, quote = _sniff(sample)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote)
    return [list(row) for row in reader], encoding, delimiter


def decode(raw: bytes) -> tuple[str, str]:
    """Text and the encoding it was in (see the module docstring)."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            return raw.decode(name), name
    for name in ("utf-8", "gb18030"):
        try:
            return raw.decode(name), name
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise SourceUnreadable("the file is not text in any encoding xlcrm knows",
                               zh="文件不是可识别编码的文本")
    return str(best), best.encoding


def _sniff(sample: str) -> tuple[str, str]:
    try:
        import clevercsv

        dialect = clevercsv.Sniffer().sniff(sample, delimiters=",;\t|")
        if dialect is not None and dialect.delimiter:
            return dialect.delimiter, dialect.quotechar or '"'
    except Exception:  # noqa: BLE001 - a sample the sniffer cannot decide: count instead
        pass
    first = sample.splitlines()[0] if sample else ""
    counts = {d: first.count(d) for d in ",;\t|"}
    return max(counts, key=counts.__getitem__) if any(counts.values()) else ",", '"'


def _table(label: str, grid: list[list[Any]], known: Callable[[str], bool],
           encoding: str | None, delimiter: str | None) -> SourceTable:
    skipped = {"title": 0, "blank": 0, "totals": 0}
    header_at = None
    for n, row in enumerate(grid[:HEADER_SCAN]):
        if sum(1 for v in row if not is_blank(v) and known(str(v))) >= 2:
            header_at = n
            break
    if header_at is None:  # no known headers: the first row as wide as the widest
        widths = [sum(1 for v in r if not is_blank(v)) for r in grid[:HEADER_SCAN]]
        widest = max(widths, default=0)
        header_at = next((n for n, w in enumerate(widths) if w == widest and w), 0)
    skipped["title"] = sum(1 for r in grid[:header_at] if any(not is_blank(v) for v in r))
    header_row = grid[header_at] if grid else []
    headers = [str(v).strip() if not is_blank(v) else "" for v in header_row]
    while headers and not headers[-1]:
        headers.pop()
    rows, numbers = [], []
    width = len(headers)

    for n, row in enumerate(grid[header_at + 1:], start=header_at + 2):
        if len(row) < width:
            row = list(row) + [None] * (width - len(row))
        # text trimmed, every kind of blank None
        values = [(v.strip() or None) if type(v) is str else None if is_blank(v) else v
                  for v in row[:width]]
        filled = [v for v in values if v is not None]
        if not filled:
            skipped["blank"] += 1
            continue
        if isinstance(filled[0], str) and TOTAL_WORDS.match(filled[0]) and \
                values.index(filled[0]) <= 1:
            skipped["totals"] += 1
            continue
        rows.append(values)
        numbers.append(n)
    return SourceTable(label, headers, rows, numbers, encoding, delimiter,
                       {k: v for k, v in skipped.items() if v})
