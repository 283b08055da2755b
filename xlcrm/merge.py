"""Merging duplicate customers, and undoing a merge exactly.

`plan_merge` is pure: for one cluster it picks the survivor (the oldest Created date, then
the most complete record, then the first row), fills the survivor's empty fields from the
others in row order, points every opportunity and interaction of the others at the survivor,
and lists the rows to remove.

A merge removes rows by moving the cells below them up inside the Customers Table and
shrinking the Table (`WorkbookSession.close_rows`; deleting sheet rows would leave Tables,
validations and conditional formats pointing at the wrong rows). Before anything changes, the
merge stores every cell it will touch, as stored (formula, style and all): the cells it sets
and the whole block of the Table from the first removed row down. Undo writes exactly those
cells back and restores the Table's extent, so merge + undo leaves every cell as it was. Undo
refuses when the workbook changed since the merge (it would overwrite those edits).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import normalize as nz
from .errors import UnsafeToWrite
from .reader import ROW, WorkbookData
from .session import WorkbookSession


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


def apply_merge(session: WorkbookSession, data: WorkbookData, plans: Sequence[MergePlan]
                ) -> dict[str, Any]:
    """Queue the plans on `session`: set the cells, then close up the removed rows inside the
    Customers Table. Returns the record `undo_record` needs to put every cell back."""
    cells = []
    for plan in plans:
        for sheet, items in plan.cells.items():  # as stored before the merge, at the place
            cells += session.set_cells_undoable(sheet, items)
    removed = sorted(r for p in plans for r in p.remove_rows)
    block = session.close_rows("customers", removed)
    return {"backend": session.backend, "block": block, "cells": cells}


def undo_record(session: WorkbookSession, record: dict[str, Any]) -> None:
    """Queue on `session` everything needed to put back what a merge (one `block` of moved
    rows) or an import (`blocks` of appended rows) changed."""
    if "block" not in record and "blocks" not in record:
        raise UnsafeToWrite("this merge was stored by an older xlcrm and cannot be undone "
                            "automatically (restore single records with xlcrm restore)",
                            zh="此合并由旧版 xlcrm 记录，无法自动撤销"
                               "（请用 xlcrm restore 逐条恢复）")
    for block in record.get("blocks", [record.get("block")]):
        session.put_block(block)
    session.put_cells_back(record["cells"])
