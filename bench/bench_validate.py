"""Times `validate` against a plain python-calamine read and an openpyxl read-only load of the
same workbook, in one run, and prints the figures.

    python bench/bench_validate.py L [--repeat 3]

Targets (issue #2): validate of L within 2x the plain calamine read, and at least 5x faster
than openpyxl read-only. Each figure is the best of --repeat runs (wall clock).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import openpyxl
import python_calamine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import OUT, generate  # noqa: E402

from xlcrm import schema  # noqa: E402
from xlcrm.reader import read_workbook  # noqa: E402
from xlcrm.validate import validate  # noqa: E402

DATA_SHEETS = [s.en for s in schema.DATA_SHEETS] + [s.zh for s in schema.DATA_SHEETS]


def calamine_read(path: Path) -> int:
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    cells = 0
    for name in book.sheet_names:
        if name in DATA_SHEETS:
            rows = book.get_sheet_by_name(name).to_python()
            cells += sum(len(r) for r in rows)
    return cells


def openpyxl_read_only(path: Path) -> int:
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    cells = 0
    for name in book.sheetnames:
        if name in DATA_SHEETS:
            for row in book[name].iter_rows(values_only=True):
                cells += len(row)
    book.close()
    return cells


def xlcrm_validate(path: Path) -> int:
    report = validate(read_workbook(path))
    return len(report.issues)


def best(func: Callable[[Path], int], path: Path, repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = func(path)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=["S", "M", "L"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lang", choices=["en", "zh"], default="en")
    args = parser.parse_args()
    path = OUT / f"bench_{args.size}_{args.lang}.xlsx"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        generate(args.size, args.lang)
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
    calamine_s, cells = best(calamine_read, path, args.repeat)
    validate_s, issues = best(xlcrm_validate, path, args.repeat)
    openpyxl_s, _ = best(openpyxl_read_only, path, 1)
    print(f"{'plain calamine read':<24}{calamine_s:8.2f} s   ({cells:,} cells)")
    print(f"{'xlcrm validate':<24}{validate_s:8.2f} s   ({issues:,} issues)")
    print(f"{'openpyxl read-only':<24}{openpyxl_s:8.2f} s")
    print(f"validate / calamine  = {validate_s / calamine_s:.2f}x   (target <= 2.0x)")
    print(f"openpyxl / validate  = {openpyxl_s / validate_s:.2f}x   (target >= 5.0x)")


if __name__ == "__main__":
    main()
