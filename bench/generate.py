"""Bench workbooks S, M and L, written fast with openpyxl's write-only mode.

    python bench/generate.py L [--lang en|zh] [--out bench/out]

Sizes (customers / opportunities / interactions):
    S = 1,000 / 5,000 / 15,000      M = 5,000 / 25,000 / 75,000
    L = 20,000 / 100,000 / 300,000

The records come from xlcrm.sample (realistic, keyed, with a handful of planted mistakes);
the layout is the template's: the three data sheets as Excel Tables plus the Settings tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableColumn

from xlcrm import schema
from xlcrm.sample import sample_records, sample_rows
from xlcrm.schema import Lang
from xlcrm.template import settings_blocks

SIZES = {"S": (1_000, 5_000, 15_000), "M": (5_000, 25_000, 75_000),
         "L": (20_000, 100_000, 300_000)}
OUT = Path(__file__).with_name("out")


def add_table(ws: Any, name: str, headers: list[str], first_row: int, rows: int) -> None:
    ref = f"A{first_row}:{get_column_letter(len(headers))}{first_row + max(rows, 1)}"
    table = Table(displayName=name, ref=ref)
    table.tableColumns = [TableColumn(id=i, name=h) for i, h in enumerate(headers, start=1)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "In write-only mode")  # the columns are set above
        ws.add_table(table)


def generate(size: str, lang: Lang = "en", out: Path = OUT, today: dt.date | None = None) -> Path:
    customers, opportunities, interactions = SIZES[size]
    records = sample_rows(sample_records(customers, lang, seed=11, today=today,
                                         opportunities=opportunities,
                                         interactions=interactions))
    book = Workbook(write_only=True)
    for sdef in schema.DATA_SHEETS:
        ws = book.create_sheet(sdef.label(lang))
        headers = [f.label(lang) for f in sdef.fields]
        keys = [f.key for f in sdef.fields]
        ws.append(headers)
        rows = records[sdef.key]
        for record in rows:
            ws.append([record.get(k) for k in keys])
        add_table(ws, sdef.table or sdef.key, headers, 1, len(rows))
    ws = book.create_sheet(schema.SETTINGS.label(lang))
    row = 1
    for name, (headers, rows) in settings_blocks(lang).items():
        ws.append(headers)
        for values in rows:
            ws.append(values)
        add_table(ws, name, headers, row, len(rows))
        ws.append([])
        row += len(rows) + 2
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_{size}_{lang}.xlsx"
    book.save(path)
    return path


def bench_args(doc: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> tuple[argparse.Namespace, Path]:
    """Parse a bench script's arguments (a size, plus `extra`); return them and the bench
    workbook of that size, generated first when missing."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("size", choices=sorted(SIZES))
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    source = OUT / f"bench_{args.size}_en.xlsx"
    if not source.exists():
        generate(args.size)
    return args, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("--lang", choices=["en", "zh"], default="en")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    path = generate(args.size, args.lang, args.out)
    print(f"{path}  {path.stat().st_size / 1e6:.1f} MB  in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
