"""Times the analytics step (all dashboard figures) on a bench workbook, best of 3.

    python bench/bench_analytics.py L

The read and the validation it uses are timed apart; the figure is `analyse` alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import bench_args  # noqa: E402

from xlcrm.analytics import analyse  # noqa: E402
from xlcrm.reader import read_workbook  # noqa: E402
from xlcrm.validate import validate  # noqa: E402


def main() -> None:
    args, source = bench_args(__doc__)
    started = time.perf_counter()
    data = read_workbook(source)
    read_s = time.perf_counter() - started
    report = validate(data)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        figures = analyse(data, report=report)
        timings.append(time.perf_counter() - started)
    print(f"{source.name}: {sum(data.counts().values()):,} records; read {read_s:.2f} s")
    print(f"analyse: best {min(timings):.2f} s of {', '.join(f'{t:.2f}' for t in timings)} "
          f"({len(figures.attention):,} deals needing attention, "
          f"{len(figures.rfm):,} customers scored)")


if __name__ == "__main__":
    main()
