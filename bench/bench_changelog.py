"""Times the change-log diff on a bench workbook: the first run (baseline) and a later run with
edits, deletions and additions, against a real history.sqlite.

    python bench/bench_changelog.py L

The workbook is read once; the later run edits the frames in memory the way a day of work
would (1,000 changed cells, 100 deleted and 100 new records per sheet) and re-diffs them, so
the figure is the diff itself, not the read or the write.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import bench_args  # noqa: E402

from xlcrm import schema  # noqa: E402
from xlcrm.changes import start_tracking  # noqa: E402
from xlcrm.history import History  # noqa: E402
from xlcrm.ids import fill_blank_ids  # noqa: E402
from xlcrm.reader import ROW, read_workbook  # noqa: E402

T = TypeVar("T")


def timed(step: Callable[[], T]) -> tuple[T, float]:
    """The step's result and its seconds."""
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def main() -> None:
    args, source = bench_args(__doc__)
    started = time.perf_counter()
    data = read_workbook(source)
    fill_blank_ids(data)
    read_s = time.perf_counter() - started
    records = sum(data.counts().values())
    with tempfile.TemporaryDirectory() as folder:
        data.path = Path(folder) / source.name  # the history goes beside this path
        with History(data.path) as history:
            tracker, baseline_s = timed(lambda: start_tracking(history, data, "cli", "sync"))
            _, commit_s = timed(tracker.commit)
            size_mb = history.path.stat().st_size / 1e6

            edits = edit_frames(data, random.Random(1))
            second, diff_s = timed(lambda: start_tracking(history, data, "cli", "sync"))
            _, commit2_s = timed(second.commit)
            problems, verify_s = timed(history.verify)
    kinds = pd.Series([c.action for c in second.changes]).value_counts().to_dict()
    print(f"{source.name}: {records:,} records; read {read_s:.2f} s (not part of the diff)")
    print(f"{'baseline diff':<22}{baseline_s:8.2f} s   ({len(tracker.changes):,} records added)")
    print(f"{'baseline commit':<22}{commit_s:8.2f} s   (history.sqlite {size_mb:,.0f} MB)")
    print(f"{'diff after edits':<22}{diff_s:8.2f} s   ({edits} edits made; logged {kinds})")
    print(f"{'commit after edits':<22}{commit2_s:8.2f} s")
    print(f"{'verify chain':<22}{verify_s:8.2f} s   ({'intact' if not problems else problems})")


def edit_frames(data: object, rng: random.Random) -> int:
    """Change 1,000 cells, delete 100 records and add 100 per sheet (fewer in a sheet of
    under 2,400 records), in place."""
    made = 0
    for sdef in schema.DATA_SHEETS:
        sheet = data.sheets[sdef.key]  # type: ignore[attr-defined]
        frame = sheet.frame
        field = next(f.key for f in sdef.fields if f.type == "text" and not f.required)
        scale = min(1.0, len(frame) / 2_400)  # a small workbook gets proportionally fewer
        edit, drop, add = int(1_000 * scale), int(100 * scale), int(100 * scale)
        rows = rng.sample(range(len(frame)), edit + drop + add)
        for position in rows[:edit]:
            frame.iat[position, frame.columns.get_loc(field)] = f"edited {position}"
        dropped = frame.index[rows[edit:edit + drop]]
        new = frame.iloc[rows[edit + drop:]].copy()
        new[sdef.id_field] = [f"NEW-{sdef.key}-{i}" for i in range(len(new))]
        new[ROW] = range(10**7, 10**7 + len(new))
        sheet.frame = pd.concat([frame.drop(index=dropped), new], ignore_index=True)
        made += len(rows)
    return made


if __name__ == "__main__":
    main()
