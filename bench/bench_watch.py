"""Times a save of a bench workbook to its published sidecar report, through a real watcher
(native observer, report mode).

    python bench/bench_watch.py M [--settle 1.0] [--mode report|sync]

The save is Excel-style: the whole file to an 8-hex temp name, then renamed over the workbook.
The clock starts at the rename and stops when report.json is replaced.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import bench_args  # noqa: E402

from xlcrm.watch import Watcher  # noqa: E402


def main() -> None:
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--settle", type=float, default=1.0)
        p.add_argument("--mode", choices=["report", "sync"], default="report")

    args, source = bench_args(__doc__, options)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        path = folder / "crm.xlsx"
        shutil.copyfile(source, path)
        watcher = Watcher(folder, mode=args.mode, settle=args.settle)
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        report = folder / ".xlcrm" / "crm" / "report.json"
        while watcher.runs < 1:
            time.sleep(0.05)
        first = report.stat().st_mtime_ns
        temp = folder / "Cedd4100"
        shutil.copyfile(source, temp)
        with zipfile.ZipFile(temp, "a") as archive:  # new bytes, same workbook: a new save
            archive.comment = b"saved again"
        started = time.perf_counter()
        os.replace(temp, path)
        while not report.exists() or report.stat().st_mtime_ns == first:
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join(timeout=10)
    print(f"{source.name} ({source.stat().st_size / 1e6:.1f} MB), {args.mode} mode, settle "
          f"{args.settle} s: save → report.json in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
