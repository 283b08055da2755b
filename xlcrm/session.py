"""One engine, two backends: every job reads and writes a workbook through a `WorkbookSession`.

A job calls `read()`, then queues what it changes: cells (`set_cells`), records appended to a
Table (`append_rows`), records removed from a Table (`close_rows`, for merges) and put back
(`put_block`), an engine sheet's rows (`fill_sheet`), the issue marks (`mark`), the Dashboard
(`draw_dashboard`). `save()` applies the whole queue at once, or nothing of it.

- `FileSession` (this module) writes the file: part by part through `xlcrm.package`, under
  the safety rules of `xlcrm.writer` (refuse when open or changed, temp file, backup, atomic
  replace). Data sheets are patched; engine sheets are regenerated and grafted; every other
  part is copied as it is.
- `ExcelSession` (`xlcrm.excel`) drives the open workbook through xlwings, for the ribbon.

Decisions the two old code paths disagreed on, now one behaviour for both:

- **Notes and fills.** A person's note is never replaced or deleted, and a person's fill is
  never touched: issue marks are a conditional format (red for errors, amber for warnings) that
  lies over the fill, and notes authored "xlcrm"; only those are removed on the next run.
- **Duplicates sheet.** Sync fills it in both backends.
- **Notifications.** Queued and sent after every successful sync in both backends.
- **Hyperlinks.** Each Issues row links to its cell in both backends.
- **Dashboard layout.** One layout (`xlcrm.dashboard.layout`), drawn by each backend: the
  same cells, number formats and charts; the file backend also draws the tiles' fills and
  merges and makes each block an Excel Table (the ribbon leaves those cosmetic parts out).
- **A missing engine sheet** is added at the end, with its header, in both backends.
- **When the change log commits.** Only after the write succeeded. For an open workbook the
  ribbon saves the workbook at the end of a job that changed it (like the file path, a sync is
  a write), and commits the change log after that save. A job that fails before the save
  commits nothing, so no change is logged that the file does not hold.
- **Nothing to write, nothing written.** A save whose queue changes nothing leaves the file
  (and its backup list) alone; an engine sheet or a sheet's marks identical to the last ones
  xlcrm wrote are not rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import progress, schema
from .errors import UnsafeToWrite
from .guard import file_sha256
from .issues import Report
from .reader import SheetData, WorkbookData, read_workbook
from .schema import Lang
from .writer import (
    TEMP_PREFIX,
    check_not_open,
    check_unchanged,
    replace_with,
    state_dir,
    write_lock,
)

Cell = tuple[int, int, Any]  # (row, column, value), 1-based


@dataclass
class EngineSheet:
    """The rows of an engine sheet under its header, and links (row, column, 'Sheet'!A1)."""

    key: str
    lang: Lang
    rows: list[list[Any]]
    links: list[tuple[int, int, str]] = field(default_factory=list)

    def digest(self) -> str:
        text = json.dumps([self.key, self.lang, self.rows, self.links], default=str,
                          ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Appended:
    """Records appended below a sheet's records, held column by column (an import's 100k
    deals are a few lists, not 700k queued cells): the values of `first_row` onwards, one
    list per column (None: no cell), and the row whose cell styles the new cells take."""

    first_row: int
    columns: dict[int, list[Any]]
    style_row: int | None
    count: int

    def cells(self) -> list[Cell]:
        return [(self.first_row + at, column, value) for column, values in self.columns.items()
                for at, value in enumerate(values) if value is not None]


@dataclass
class Plan:
    """Everything a job queued, in the form both backends apply. Cells queued for an
    appended row win over the appended values."""

    cells: dict[str, dict[tuple[int, int], Any]] = field(default_factory=dict)
    appended: dict[str, list[Appended]] = field(default_factory=dict)
    tables: dict[str, tuple[str, int]] = field(default_factory=dict)  # sheet -> (Table, last)
    engine: dict[str, EngineSheet] = field(default_factory=dict)
    dashboard: Any = None  # a dashboard.Layout
    marks: Report | None = None
    moved: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # close_rows

    def as_cells(self, sheet: str) -> None:
        """Turn the records appended to a sheet into queued cells (where rows move, or for a
        backend that writes cells)."""
        target = self.cells.setdefault(sheet, {})
        for block in self.appended.pop(sheet, []):
            for row, column, value in block.cells():
                target.setdefault((row, column), value)

    def empty(self) -> bool:
        return not (self.cells or self.appended or self.tables or self.engine
                    or self.dashboard is not None or self.marks is not None)


class WorkbookSession(ABC):
    """See the module docstring."""

    source = "cli"
    backend = "abstract"  # what `close_rows` snapshots can only be put back by

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: WorkbookData | None = None
        self.plan = Plan()
        self._next_row: dict[str, int] = {}
        self._table_end: dict[str, int] = {}
        self._first_free: dict[str, int] = {}

    # reading ---------------------------------------------------------------------------------

    @abstractmethod
    def read(self) -> WorkbookData:
        """Read the data sheets and Settings (and remember them for the writes)."""

    def loaded(self, data: WorkbookData) -> WorkbookData:
        """Remember a fresh read (where each sheet's records end, before any step appends
        records to the frames)."""
        self.data = data
        self.plan = Plan()
        self._next_row.clear()
        self._table_end.clear()
        self._first_free = {s.name: s.last_row + 1 for s in data.sheets.values()}
        return data

    @property
    def sha256(self) -> str | None:
        """The file's hash as read, or after the last save (what the change log ties its runs
        to); each backend keeps `data.sha256` current when it saves."""
        return self.data.sha256 if self.data is not None and self.data.sha256 else None

    @abstractmethod
    def block(self, sheet: str, first_row: int, last_row: int, first_col: int,
              last_col: int) -> dict[tuple[int, int], Any]:
        """The stored cells of a block, as this backend can put them back exactly."""

    # queueing --------------------------------------------------------------------------------

    def _sheet(self, key_or_name: str) -> SheetData:
        assert self.data is not None, "read() first"
        if key_or_name in self.data.sheets:
            return self.data.sheets[key_or_name]
        return next(s for s in self.data.sheets.values() if s.name == key_or_name)

    def set_cells(self, sheet: str, cells: Sequence[Cell]) -> None:
        """Set cells of the sheet with this real name."""
        if not cells:
            return
        target = self.plan.cells.setdefault(sheet, {})
        for row, column, value in cells:
            target[(int(row), int(column))] = value

    def append_rows(self, key: str, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append records (field -> value) below the last record of a data sheet, inside its
        Table; returns their rows."""
        if not rows:
            return []
        sheet = self._sheet(key)
        start = self._next_row.get(sheet.name, self._last(sheet) + 1)
        out = list(range(start, start + len(rows)))
        named = set().union(*rows)  # the fields any record names, each taken column-wise
        columns = {}
        for name, column in sheet.columns.items():
            if name in named:
                values = [r.get(name) for r in rows]
                if any(v is not None for v in values):
                    columns[column] = values
        # new cells take the styles (date and number formats) of the record above, or of
        # the first record row when the sheet has none yet: never the header's
        self.plan.appended.setdefault(sheet.name, []).append(
            Appended(start, columns, max(start - 1, sheet.header_row + 1), len(rows)))
        self._next_row[sheet.name] = start + len(rows)
        self._grow(sheet, start + len(rows) - 1)
        return out

    def set_cells_undoable(self, sheet: str, cells: Sequence[Cell]) -> list[list[Any]]:
        """`set_cells`, returning each cell as stored before ([sheet, row, column, stored]),
        which `put_cells_back` writes back exactly (formula, style and all)."""
        before = []
        for row, column, _ in cells:
            stored = self.block(sheet, row, row, column, column)
            before.append([sheet, row, column, self.stored_json(stored.get((row, column)))])
        self.set_cells(sheet, cells)
        return before

    def put_cells_back(self, cells: Sequence[Sequence[Any]]) -> None:
        """Write back cells `set_cells_undoable` returned."""
        for sheet, row, column, stored in cells:
            self.set_cells(sheet, [(row, column, self.stored_value(stored))])

    def append_undoable(self, key: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """`append_rows`, returning what `put_block` needs to take them out again: the block
        they fill as stored before, and the Table's extent before."""
        if not rows:
            return {}
        sheet = self._sheet(key)
        first_col, last_col = min(sheet.columns.values()), max(sheet.columns.values())
        end = self._table_end.get(sheet.name, max(sheet.table_last_row or 0, self._last(sheet)))
        placed = self.append_rows(key, rows)
        stored = self.block(sheet.name, placed[0], placed[-1], first_col, last_col)
        return {"backend": self.backend, "sheet": sheet.name, "table": sheet.table,
                "table_end": end, "cells": [[r, c, self.stored_json(v)]
                                            for (r, c), v in stored.items()],
                "first_row": placed[0], "last_row": placed[-1], "first_col": first_col,
                "last_col": last_col}

    def _last(self, sheet: SheetData) -> int:
        """The last record's row as read."""
        return self._first_free.get(sheet.name, sheet.last_row + 1) - 1

    def _grow(self, sheet: SheetData, last: int) -> None:
        if sheet.table:
            end = self._table_end.get(sheet.name, sheet.table_last_row or self._last(sheet))
            self._table_end[sheet.name] = max(end, last)
            self.plan.tables[sheet.name] = (sheet.table, self._table_end[sheet.name])

    def close_rows(self, key: str, removed: Sequence[int]) -> dict[str, Any]:
        """Remove records from a data sheet by moving the rows below them up inside its Table
        (only the Table's columns move; the Table shrinks). Returns what `put_block` needs to
        put every cell back. Queued cells of the moved rows move with them."""
        sheet = self._sheet(key)
        removed_set = sorted(set(int(r) for r in removed))
        if not removed_set:
            return {}
        first_col, last_col = min(sheet.columns.values()), max(sheet.columns.values())
        end = self._table_end.get(sheet.name, max(sheet.table_last_row or 0, self._last(sheet)))
        first = removed_set[0]
        stored = self.block(sheet.name, first, end, first_col, last_col)
        self.plan.as_cells(sheet.name)
        pending = self.plan.cells.get(sheet.name, {})
        kept = [r for r in range(first, end + 1) if r not in removed_set]
        for offset, row in enumerate(range(first, end + 1)):
            source = kept[offset] if offset < len(kept) else None
            for column in range(first_col, last_col + 1):
                if source is None:
                    value = None
                elif (source, column) in pending:
                    value = pending[(source, column)]
                else:
                    value = stored.get((source, column))
                self.set_cells(sheet.name, [(row, column, value)])
        self.plan.moved[sheet.name] = (first, end, first_col, last_col)
        if sheet.table:
            self._table_end[sheet.name] = max(end - len(removed_set), sheet.header_row + 1)
            self.plan.tables[sheet.name] = (sheet.table, self._table_end[sheet.name])
        return {"backend": self.backend, "sheet": sheet.name, "table": sheet.table,
                "table_end": end, "cells": [[r, c, self.stored_json(v)]
                                            for (r, c), v in stored.items()],
                "first_row": first, "last_row": end, "first_col": first_col,
                "last_col": last_col}

    def put_block(self, snapshot: Mapping[str, Any]) -> None:
        """Put back a block `close_rows` returned (cells and the Table's extent)."""
        if not snapshot:
            return
        if snapshot.get("backend") != self.backend:
            raise UnsafeToWrite("this merge was made in the other backend (Excel or file); "
                                "undo it there",
                                zh="此合并是在另一端（Excel 或文件）完成的；请在那里撤销")
        name = snapshot["sheet"]
        stored = {(int(r), int(c)): self.stored_value(v) for r, c, v in snapshot["cells"]}
        for row in range(int(snapshot["first_row"]), int(snapshot["last_row"]) + 1):
            for column in range(int(snapshot["first_col"]), int(snapshot["last_col"]) + 1):
                self.set_cells(name, [(row, column, stored.get((row, column)))])
        if snapshot.get("table"):
            self._table_end[name] = int(snapshot["table_end"])
            self.plan.tables[name] = (snapshot["table"], int(snapshot["table_end"]))

    def stored_json(self, value: Any) -> Any:
        return value

    def stored_value(self, value: Any) -> Any:
        return value

    def fill_sheet(self, sheet: EngineSheet) -> None:
        self.plan.engine[sheet.key] = sheet

    def mark(self, report: Report) -> None:
        """Mark the report's cells (and unmark the last run's) in every data sheet."""
        self.plan.marks = report

    def draw_dashboard(self, layout: Any) -> None:
        self.plan.dashboard = layout

    # saving ----------------------------------------------------------------------------------

    def save(self) -> Path | None:
        """Apply the queue. Returns the backup of the previous version (None when nothing
        was written). Raises a WriteRefused (busy, unsafe, denied) with nothing written."""
        assert self.data is not None, "read() first"
        for sheet in self.data.sheets.values():  # rows typed below a Table are records now
            typed = self._last(sheet)
            if sheet.table and sheet.table_last_row is not None \
                    and typed > sheet.table_last_row:
                self._grow(sheet, typed)
        plan, self.plan = self.plan, Plan()
        self._next_row.clear()
        self._table_end.clear()
        if plan.empty():
            return None
        progress.step("write", name=self.path.name)
        return self._flush(plan)

    @abstractmethod
    def _flush(self, plan: Plan) -> Path | None:
        """Apply `plan` in this backend, and set `data.sha256` to the saved file's hash."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing
        """Release what the session holds."""

    def __enter__(self) -> WorkbookSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class FileSession(WorkbookSession):
    """A workbook file; see the module docstring and `xlcrm.filewrite`."""

    backend = "file"

    def __init__(self, path: Path, source: str = "cli", keep_backup: bool = True) -> None:
        super().__init__(path)
        self.source = source
        self.keep_backup = keep_backup  # False for a file of xlcrm's own (init's temp file)
        self._package: Any = None
        self._blocks: dict[str, Any] = {}

    def read(self) -> WorkbookData:
        self.close()  # a new read sees the file as it is now
        self._blocks.clear()
        return self.loaded(read_workbook(self.path))

    def _open(self) -> Any:
        from .package import Package

        if self._package is None:
            self._package = Package(self.path)
        return self._package

    def block(self, sheet: str, first_row: int, last_row: int, first_col: int,
              last_col: int) -> dict[tuple[int, int], Any]:
        from .filewrite import read_block

        return read_block(self._open(), sheet, first_row, last_row, first_col, last_col,
                          self._blocks)

    def stored_json(self, value: Any) -> Any:
        return None if value is None else value.xml.decode("utf-8")

    def stored_value(self, value: Any) -> Any:
        from .sheetxml import RawCell

        return None if value is None else RawCell(str(value).encode("utf-8"))

    def _flush(self, plan: Plan) -> Path | None:
        from .filewrite import apply_plan

        assert self.data is not None
        path = self.path
        check_not_open(path)
        check_unchanged(path, self.data.sha256)
        package = self._open()
        temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
        lock = write_lock(path) if self.keep_backup else contextlib.nullcontext()
        with lock:
            try:
                written = apply_plan(package, plan, self.data, temp,
                                     remember=self.keep_backup)
                if written is None:
                    return None
                self.close()  # the zip is read; Windows would not replace an open file
                backup = replace_with(path, temp, self.data.sha256, backup=self.keep_backup)
                if self.keep_backup:
                    written.store(path)
                self.data.sha256 = file_sha256(path)
                return backup
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()

    def close(self) -> None:
        if self._package is not None:
            self._package.close()
            self._package = None


def engine_state(path: Path) -> Path:
    """Where a file session remembers what it last wrote into engine sheets and marks."""
    return state_dir(path) / "written.json"


def engine_name(data: WorkbookData, key: str, lang: Lang) -> str:
    """The real name of engine sheet `key` (either language), or the name to create."""
    sdef = schema.SHEETS_BY_KEY[key]
    for title in (sdef.label(lang), sdef.en, sdef.zh):
        if title in data.sheet_names:
            return title
    return sdef.label(lang)

