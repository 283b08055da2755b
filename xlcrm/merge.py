"""Merging duplicate customers, and undoing a merge exactly.

`plan_merge` is pure: for one cluster it picks the survivor (the oldest Created date, then
the most complete record, then the first row), fills the survivor's empty fields from the
others in row order, points every opportunity and interaction of the others at the survivor,
and lists the rows to remove.

The edits remove rows by moving the values below them up inside the Customers Table and
shrinking the Table (openpyxl's delete_rows would leave Tables, validations and conditional
formats pointing at the wrong rows). Before anything changes, the merge stores every value it
will touch: the cells it sets and the whole block of the Table from the first removed row down.
Undo writes exactly those values back and restores the Table's extent, so merge + undo leaves
every cell as it was. Undo refuses when the workbook changed since the merge (it would
overwrite those edits).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter, range_boundaries

from . import normalize as nz
from .changes import cell_json, cell_value
from .edits import put
from .reader import ROW, WorkbookData
from .writer import Edit


@dataclass
class MergePlan:
    survivor: str  # record ID
    merged: list[str]  # record IDs removed
    cells: dict[str, list[tuple[int, int, Any]]] = field(default_factory=dict)  # sheet -> cells
    remove_rows: list[int] = field(default_factory=list)  # Excel rows of Customers


def plan_merge(data: WorkbookData, indices: Sequence[Any]) -> MergePlan:
    """What merging the customers at frame `indices` changes."""
    sheet = data.sheets["customers"]
    frame = sheet.frame.loc[list(indices)]
    created = frame["created_at"].map(nz.date_parser(data.settings.day_first))
    filled = frame.notna().sum(axis=1)
    order = sorted(frame.index, key=lambda i: (created[i] or dt.date.max, -int(filled[i]),
                                               int(frame.at[i, ROW])))
    survivor, others = order[0], order[1:]
    survivor_id = nz.text(frame.at[survivor, "customer_id"])
    plan = MergePlan(survivor_id, [nz.text(frame.at[i, "customer_id"]) for i in others])
    survivor_row = int(frame.at[survivor, ROW])
    fills = []
    for key, column in sheet.columns.items():
        if key in ("customer_id",) or not nz.is_blank(frame.at[survivor, key]):
            continue
        for other in sorted(others, key=lambda i: int(frame.at[i, ROW])):
            if not nz.is_blank(frame.at[other, key]):
                fills.append((survivor_row, column, frame.at[other, key]))
                break
    if fills:
        plan.cells[sheet.name] = fills
    merged = {nz.record_id(rid) for rid in plan.merged}
    for key in ("opportunities", "interactions"):
        target = data.sheets[key]
        ids = target.frame["customer_id"].map(nz.record_id)
        rows = target.frame.loc[ids.isin(merged), ROW]
        if len(rows):
            plan.cells[target.name] = [(int(r), target.columns["customer_id"], survivor_id)
                                       for r in rows]
    plan.remove_rows = sorted(int(frame.at[i, ROW]) for i in others)
    return plan


def snapshot_for_undo(book: Workbook, data: WorkbookData, plans: Sequence[MergePlan]
                      ) -> dict[str, Any]:
    """Every value the plans will change, read from the loaded workbook before the edits."""
    customers = data.sheets["customers"]
    ws = book[customers.name]
    table = ws.tables[customers.table] if customers.table in ws.tables else None
    ref = table.ref if table is not None else None
    min_col, _, max_col, max_row = (range_boundaries(ref) if ref else
                                    (1, 1, max(customers.columns.values()), ws.max_row))
    removed = sorted(r for p in plans for r in p.remove_rows)
    block = []
    if removed:
        for row in range(removed[0], int(max_row) + 1):
            block.append([cell_json(ws.cell(row=row, column=c).value)
                          for c in range(int(min_col), int(max_col) + 1)])
    cells = []
    for plan in plans:
        for sheet, items in plan.cells.items():
            for row, column, _ in items:
                cells.append([sheet, row, column, cell_json(book[sheet].cell(
                    row=row, column=column).value)])
    return {"sheet": customers.name, "table": customers.table, "ref": ref,
            "first_row": removed[0] if removed else None, "min_col": int(min_col),
            "block": block, "cells": cells}


def merge_edit(data: WorkbookData, plans: Sequence[MergePlan], undo: dict[str, Any]) -> Edit:
    """Apply the plans: set the cells, then close up the removed rows inside the Table.
    `undo` is filled with the values needed to undo (see `snapshot_for_undo`)."""

    def edit(book: Workbook) -> None:
        undo.update(snapshot_for_undo(book, data, plans))
        for plan in plans:
            for sheet, items in plan.cells.items():
                ws = book[sheet]
                for row, column, value in items:
                    put(ws.cell(row=row, column=column), value)
        removed = set(r for p in plans for r in p.remove_rows)
        if not removed:
            return
        ws = book[undo["sheet"]]
        start, first_col = undo["first_row"], undo["min_col"]
        height, width = len(undo["block"]), len(undo["block"][0]) if undo["block"] else 0
        current = [[ws.cell(row=start + r, column=first_col + c).value for c in range(width)]
                   for r in range(height)]  # after the fills
        kept = [row for r, row in enumerate(current) if start + r not in removed]
        for r in range(height):
            values = kept[r] if r < len(kept) else [None] * width
            for c, value in enumerate(values):
                put(ws.cell(row=start + r, column=first_col + c), value)
        _resize(ws, undo, -len(removed))

    return edit


def undo_edit(record: dict[str, Any]) -> Edit:
    """Put back every value a merge changed, and the Table's extent."""

    def edit(book: Workbook) -> None:
        ws = book[record["sheet"]]
        start, first_col = record["first_row"], record["min_col"]
        if start is not None:
            for offset, values in enumerate(record["block"]):
                for c, stored in enumerate(values):
                    put(ws.cell(row=start + offset, column=first_col + c), cell_value(stored))
        for sheet, row, column, stored in record["cells"]:
            if sheet == record["sheet"] and start is not None and row >= start:
                continue  # inside the restored block already
            put(book[sheet].cell(row=row, column=column), cell_value(stored))
        if record["ref"] and record["table"] in ws.tables:
            table = ws.tables[record["table"]]
            table.ref = record["ref"]
            if table.autoFilter is not None:
                table.autoFilter.ref = record["ref"]

    return edit


def _resize(ws: Any, undo: dict[str, Any], rows: int) -> None:
    if not undo["ref"] or undo["table"] not in ws.tables:
        return
    table = ws.tables[undo["table"]]
    min_col, min_row, max_col, max_row = range_boundaries(undo["ref"])
    new_max = max(int(max_row) + rows, int(min_row) + 1)
    table.ref = (f"{get_column_letter(int(min_col))}{min_row}:"
                 f"{get_column_letter(int(max_col))}{new_max}")
    if table.autoFilter is not None:
        table.autoFilter.ref = table.ref
