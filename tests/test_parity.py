"""One engine: each ribbon button, run on the xlwings stand-in, and the same job run on a copy
of the file leave the same values in every data and engine sheet.

Two columns differ by design and are left out: the ChangeLog's time (each run has its own)
and its source ("Excel ribbon" or "command line": where the change was made).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import TODAY, append_rows
from tests.xlwings_standin import Book
from xlcrm import jobs
from xlcrm.excel import XlBook
from xlcrm.jobs import init_workbook
from xlcrm.reader import read_workbook
from xlcrm.ribbon import run
from xlcrm.session import FileSession

SHEETS = ("Customers", "Opportunities", "Interactions", "Issues", "Duplicates", "ChangeLog",
          "Dashboard", "客户", "商机", "跟进记录", "校验问题", "疑似重复", "变更日志", "看板")
FILE_JOBS: dict[str, Callable[[Path], Any]] = {
    "validate": lambda p: jobs.validate_workbook(p, write=True),
    "sync": lambda p: jobs.sync_workbook(p),
    "promote": lambda p: jobs.promote_workbook(p),
    "dashboard": lambda p: jobs.report_workbook(p, write=True),
    "dedupe": lambda p: jobs.dedupe_workbook(p, write=True),
    "changelog": lambda p: jobs.changelog_job(FileSession(p)),
    "claim": lambda p: jobs.claim_workbook(p, ["C-000902"], claimant(p)),
}


def claimant(path: Path) -> str:
    """Who claims in the claim button's run: a sales person of the workbook's language."""
    return "Alice Chen" if read_workbook(path).lang == "en" else "张伟"


def select_for_claim(book: Book, path: Path) -> None:
    """What a person does before pressing Claim: selects a pool customer's row, as a user
    Excel knows by name."""
    customers = read_workbook(path).sheets["customers"]
    frame = customers.frame
    book.app.api.UserName = claimant(path)
    book.select(customers.name, int(frame.loc[frame["customer_id"] == "C-000902",
                                              "_row"].iloc[0]))


@pytest.fixture(scope="module", params=["en", "zh"])
def original(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Sample records with their mistakes, a blank ID, a deal just won, and twins."""
    path = tmp_path_factory.mktemp("original") / "crm.xlsx"
    init_workbook(path, lang=request.param, sample=15, today=TODAY)
    data = read_workbook(path)
    book = openpyxl.load_workbook(path)
    opps, customers = data.sheets["opportunities"], data.sheets["customers"]
    append_rows(opps.name, opps.table, opps.columns, [
        {"opportunity_id": "O-000900", "title": "Brand new deal", "company": "Zeta Robotics Ltd",
         "stage": "Won", "amount": 120_000, "owner": "Alice Chen",
         "closed_at": dt.date(2026, 11, 20)}])(book)
    append_rows(customers.name, customers.table, customers.columns, [
        {"name": "Twin Robotics Ltd", "phone": "13912345678"},
        {"customer_id": "C-000902", "name": "Twin Robotics Limited", "phone": "13912345678"}
    ])(book)
    book.save(path)
    return path


def shown(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        value = value.date()
    if isinstance(value, float):  # as shown: openpyxl writes 15 significant digits
        value = int(value) if value.is_integer() else float(f"{value:.12g}")
    return None if value == "" else value


def file_values(path: Path) -> dict[str, dict[tuple[int, int], Any]]:
    book = openpyxl.load_workbook(path)
    return {name: {(c.row, c.column): shown(c.value) for row in book[name].iter_rows()
                   for c in row if shown(c.value) is not None}
            for name in SHEETS if name in book.sheetnames}


def standin_values(book: Book) -> dict[str, dict[tuple[int, int], Any]]:
    names = {s.name for s in book.sheets}
    return {name: {key: shown(v) for key, v in book.sheets[name].cells.items()
                   if shown(v) is not None} for name in SHEETS if name in names}


def without_run_columns(values: dict[str, dict[tuple[int, int], Any]]) -> None:
    log = values.get("ChangeLog") or values.get("变更日志") or {}
    for key in [k for k in log if k[0] > 1 and k[1] in (1, 3)]:  # time, source
        del log[key]


@pytest.mark.parametrize("action", sorted(FILE_JOBS))
def test_ribbon_and_file_leave_the_same_values(action: str, original: Path,
                                               tmp_path: Path) -> None:
    excel, file = tmp_path / "excel" / "crm.xlsx", tmp_path / "file" / "crm.xlsx"
    for path in (excel, file):
        path.parent.mkdir()
        shutil.copyfile(original, path)
    book = Book(excel)
    if action == "claim":
        select_for_claim(book, excel)
    message = run(action, XlBook(book))
    assert not message.startswith("xlcrm:"), message
    if action == "claim":  # claimed, not refused (the same refusal on both sides would pass)
        assert message.startswith(claimant(file)), message
    FILE_JOBS[action](file)
    ribbon, cli = standin_values(book), file_values(file)
    without_run_columns(ribbon)
    without_run_columns(cli)
    for name in SHEETS:
        assert ribbon.get(name) == cli.get(name), (
            f"{action}: {name} differs: "
            f"{sorted(set(ribbon.get(name, {}).items()) ^ set(cli.get(name, {}).items()))[:6]}")
