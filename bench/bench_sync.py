"""Times a whole `sync` (read, fill IDs, validate, safe write-back) on a copy of a bench workbook.

    python bench/bench_sync.py M

The write-back loads and saves the whole workbook with openpyxl, so it dominates; see
docs/safety.md ("Speed").
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import bench_args  # noqa: E402

from xlcrm import jobs  # noqa: E402
from xlcrm.promote import promote_won_deals  # noqa: E402
from xlcrm.reader import read_workbook  # noqa: E402
from xlcrm.validate import validate  # noqa: E402


def main() -> None:
    args, source = bench_args(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        shutil.copyfile(source, path)
        started = time.perf_counter()
        data = read_workbook(path)
        read_s = time.perf_counter() - started
        report = validate(data)
        validate_s = time.perf_counter() - started - read_s
        started = time.perf_counter()
        promotion = promote_won_deals(data)
        promote_s = time.perf_counter() - started
        started = time.perf_counter()
        result = jobs.sync_workbook(path)
        sync_s = time.perf_counter() - started
    print(f"{source.name}: {sum(data.counts().values()):,} records, {len(report.issues):,} issues")
    print(f"{'read':<10}{read_s:8.2f} s")
    print(f"{'validate':<10}{validate_s:8.2f} s")
    print(f"{'promote':<10}{promote_s:8.2f} s   ({len(promotion.promoted):,} won deals promoted)")
    print(f"{'sync':<10}{sync_s:8.2f} s   (written: {result.written})")


if __name__ == "__main__":
    main()
