"""The ribbon's buttons on the xlwings stand-in (tests/xlwings_standin.py): seconds per button
on a sample workbook, best of two, optionally beside the same buttons of an older commit.

    python bench/bench_ribbon.py [--sample 300] [--against 4c0031e]

`--against REV` checks REV out in a temporary git worktree and runs the same measurement there
(its own xlcrm and its own stand-in), so the two columns compare the code, not the machine.
Real Excel is not involved: this measures everything up to the xlwings boundary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUTTONS = ("validate", "sync", "dashboard", "dedupe", "promote", "changelog")
MEASURE = """
import datetime as dt, json, shutil, sys, tempfile, time
from pathlib import Path
root = Path(sys.argv[1]); sys.path.insert(0, str(root))
from tests.xlwings_standin import Book
from xlcrm.jobs import init_workbook
from xlcrm.ribbon import run
try:
    from xlcrm.excel import XlBook
except ImportError:  # before the one-engine change XlBook lived in the ribbon module
    from xlcrm.ribbon import XlBook
folder = Path(tempfile.mkdtemp())
source = init_workbook(folder / "source.xlsx", sample=int(sys.argv[2]),
                       today=dt.date(2026, 11, 25))
out = {}
for button in sys.argv[3].split(","):
    best = None
    for _ in range(2):
        copy = Path(tempfile.mkdtemp()) / "crm.xlsx"
        shutil.copyfile(source, copy)
        book = Book(copy)
        started = time.perf_counter()
        message = run(button, XlBook(book))
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    out[button] = [best, message.splitlines()[0][:50]]
print(json.dumps(out))
"""


def measure(root: Path, sample: int) -> dict[str, list[object]]:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(root), str(sample),
                           ",".join(BUTTONS)], capture_output=True, text=True, check=True,
                          cwd=root)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--against", help="an older commit to measure beside this one")
    args = parser.parse_args()
    now = measure(ROOT, args.sample)
    before: dict[str, list[object]] = {}
    if args.against:
        with tempfile.TemporaryDirectory() as folder:
            tree = Path(folder) / "old"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", str(tree),
                            args.against], check=True, capture_output=True)
            try:
                before = measure(tree, args.sample)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=False, capture_output=True)
    print(f"{args.sample} sample customers; seconds per button (best of 2)")
    print(f"{'button':<12}{'now':>8}" + (f"{args.against:>12}" if before else ""))
    for button in BUTTONS:
        line = f"{button:<12}{now[button][0]:8.2f}"
        if before and button in before:
            line += f"{before[button][0]:12.2f}"
        print(line + f"   {now[button][1]}")


if __name__ == "__main__":
    main()
