"""Shared fixtures: real workbooks built by the project's own code in tmp_path."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import python_calamine
from aiosmtpd.controller import Controller
from openpyxl.utils import get_column_letter, range_boundaries
from typer.testing import CliRunner

from tests.pg import postgres_cluster, postgres_url  # noqa: F401 - fixtures
from xlcrm import schema
from xlcrm.cli import app
from xlcrm.jobs import init_workbook, sync_workbook
from xlcrm.reader import read_workbook
from xlcrm.watch import setup_logging

TODAY = dt.date(2026, 11, 25)


@pytest.fixture(autouse=True)
def _no_files_outside_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test from tmp_path so nothing lands in the repository (nor in the user's
    cache folder: the sheet cache of each test is its own)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XLCRM_CACHE_DIR", str(tmp_path / ".sheet-cache"))


@pytest.fixture
def today() -> dt.date:
    return TODAY


@pytest.fixture
def clean_book(tmp_path: Path) -> Callable[..., Path]:
    """A factory: a workbook with sample records and no planted mistakes."""

    def make(lang: str = "en", sample: int = 12, name: str | None = None, **kw: Any) -> Path:
        path = tmp_path / (name or f"crm_{lang}.xlsx")
        return init_workbook(path, lang=lang, sample=sample, mistakes=False, today=TODAY,
                             **kw)  # type: ignore[arg-type]

    return make


def cell_of(path: Path, sheet_key: str, record_id: str, field: str) -> tuple[str, str, int]:
    """(sheet name, cell, row) of a record's field, found the way the engine finds it."""
    data = read_workbook(path)
    sheet = data.sheets[sheet_key]
    sdef = schema.SHEETS_BY_KEY[sheet_key]
    frame = sheet.frame
    match = frame[frame[sdef.id_field].astype(str) == record_id]
    assert len(match) == 1, f"{record_id} not found once"
    row = int(match["_row"].iloc[0])
    column = openpyxl.utils.get_column_letter(sheet.columns[field])
    return sheet.name, f"{column}{row}", row


def edit_cells(path: Path, changes: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, int]]:
    """Edit (sheet_key, record_id, field, value) cells as a user would, with openpyxl.

    Returns the (sheet name, cell, row) of each change, in order.
    """
    where = [cell_of(path, s, r, f) for s, r, f, _ in changes]
    book = openpyxl.load_workbook(path)
    for (name, cell, _), (_, _, _, value) in zip(where, changes, strict=True):
        book[name][cell].value = value
        if isinstance(value, str) and value.startswith("="):
            book[name][cell].data_type = "s"
    book.save(path)
    return where


def user_edit(path: Path, change: Callable[[openpyxl.Workbook], None]) -> None:
    book = openpyxl.load_workbook(path)
    change(book)
    book.save(path)


@pytest.fixture
def cli() -> Callable[..., Any]:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


def soffice() -> str | None:
    from shutil import which

    return which("soffice") or which("libreoffice")


def env_without_debug() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XLCRM_DEBUG", None)
    return env


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A shared folder holding one workbook of 8 sample customers (the watcher's tests)."""
    shared = tmp_path / "share"
    shared.mkdir()
    init_workbook(shared / "crm.xlsx", "en", sample=8, mistakes=False)
    return shared


@pytest.fixture
def records(folder: Path) -> Iterator[list[logging.LogRecord]]:
    """The watcher's log records (and its real log file in FOLDER/.xlcrm/watch.log)."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    file_handler = setup_logging(folder, console=False)
    logger = logging.getLogger("xlcrm.watch")
    logger.addHandler(keep)
    yield seen
    logger.removeHandler(keep)
    logger.removeHandler(file_handler)
    file_handler.close()


def append_rows(sheet: str, table: str | None, columns: dict[str, int],
                rows: list[dict[str, Any]]) -> Callable[[openpyxl.Workbook], None]:
    """A person's edit made with another program (openpyxl): records typed below the last row
    of a sheet's Table, the Table grown to hold them (blank rows at its end used first)."""

    def edit(book: openpyxl.Workbook) -> None:
        ws = book[sheet]
        tbl = ws.tables.get(table) if table else None
        if tbl is not None:
            min_col, min_row, max_col, max_row = range_boundaries(tbl.ref)
        else:
            min_col, min_row, max_col, max_row = 1, 1, max(columns.values()), ws.max_row
        next_row = max_row + 1
        while next_row - 1 > min_row and _row_blank(ws, next_row - 1, min_col, max_col):
            next_row -= 1
        for record in rows:
            for key, value in record.items():
                if key in columns and value is not None:
                    target = ws.cell(row=next_row, column=columns[key])
                    target.value = value
                    above = ws.cell(row=next_row - 1, column=columns[key])
                    if next_row - 1 > min_row and above.has_style:
                        target._style = above._style  # keep the column's number format
            next_row += 1
        if tbl is not None and next_row - 1 > max_row:
            last = get_column_letter(max_col)
            tbl.ref = f"{get_column_letter(min_col)}{min_row}:{last}{next_row - 1}"
            if tbl.autoFilter is not None:
                tbl.autoFilter.ref = tbl.ref

    return edit


def _row_blank(ws: Any, row: int, min_col: int, max_col: int) -> bool:
    return all(ws.cell(row=row, column=c).value in (None, "") for c in range(min_col, max_col + 1))


class Inbox:
    """aiosmtpd handler keeping every message it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[str]:
        return [str(m.get_payload()) for m in self.messages if m["To"] == address]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_options(path: Path, **options: Any) -> None:
    """Set values in Settings → Options, as a user would type them."""

    def change(book: openpyxl.Workbook) -> None:
        ws = book["Settings"] if "Settings" in book.sheetnames else book["设置"]
        cells = {c.value: c for row in ws.iter_rows() for c in row if c.value in options}
        for key, value in options.items():
            cell = cells[key]
            ws.cell(row=cell.row, column=cell.column + 1).value = value

    user_edit(path, change)


CUSTOMERS = [
    {"name": "Acme Ltd", "city": "Shanghai", "phone": "021-62345678"},
    {"name": "上海小鹏贸易有限公司", "city": "上海"},
    {"name": "Globex GmbH", "city": "Berlin", "phone": "030 1234567", "email": "a@globex.de"},
]


def typed_book(tmp_path: Path, lang: str = "en") -> Path:
    """An empty `xlcrm init`, three customers and four deals typed as a person types them
    (text amounts, Chinese dates, a deal for a company not yet a customer), then synced."""
    path = tmp_path / f"crm_{lang}.xlsx"
    init_workbook(path, lang=lang)  # type: ignore[arg-type]
    data = read_workbook(path)
    sheets = data.sheets
    user_edit(path, append_rows(sheets["customers"].name, sheets["customers"].table,
                                sheets["customers"].columns, CUSTOMERS))
    sync_workbook(path, today=TODAY)
    ids = read_workbook(path).sheets["customers"].frame["customer_id"].tolist()
    deals = [
        {"title": "Annual license", "customer_id": ids[0], "stage": "Proposal",
         "amount": "¥12,000", "expected_close": "2026年12月15日"},
        {"title": "Spare parts", "customer_id": ids[0], "stage": "Won", "amount": "1.2万"},
        {"title": "Pilot", "customer_id": ids[2], "stage": "Quote", "amount": 5000,
         "probability": "50%", "expected_close": dt.date(2027, 1, 20)},
        {"title": "Prospect deal", "company": "Initech", "stage": "Lead", "amount": 800},
    ]
    if lang == "zh":
        stages = {"Proposal": "方案", "Won": "赢单", "Quote": "报价", "Lead": "线索"}
        deals = [dict(d, stage=stages[str(d["stage"])]) for d in deals]
    opp = read_workbook(path).sheets["opportunities"]
    user_edit(path, append_rows(opp.name, opp.table, opp.columns, deals))
    sync_workbook(path, today=TODAY)
    return path


def workbook_ids(path: Path) -> dict[str, list[str]]:
    """Each data sheet's record IDs, read by calamine straight from the file (not through
    xlcrm's reader)."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    out = {}
    for sdef in (schema.CUSTOMERS, schema.OPPORTUNITIES, schema.INTERACTIONS):
        name = next(n for n in book.sheet_names if n in (sdef.en, sdef.zh))
        rows = book.get_sheet_by_name(name).to_python()
        header = [str(h) for h in rows[0]]
        column = header.index(sdef.fields[0].en if sdef.fields[0].en in header
                              else sdef.fields[0].zh)
        out[sdef.key] = [str(r[column]) for r in rows[1:] if str(r[column]).strip()]
    return out
