"""The way out on a bench workbook: the mirror into SQLite and into a real PostgreSQL server,
and the export to each CRM, beside a calamine read of the same file.

    python bench/bench_way_out.py L          # also M, S

1. set-up (not compared): a first sync of a copy (IDs, promotion, change log);
2. a calamine read of every sheet;
3. a full mirror into a new SQLite file and into a new PostgreSQL database (a throwaway
   cluster on a Unix socket, as the tests start it, warmed by one mirror into a scratch
   database first, its time printed, not compared; a checkpoint before each timed step, as a
   server in use has made one): `xlcrm mirror` whole (read + mirror), and the mirror step
   alone;
4. a day's edits — 1 % of each sheet's records changed, 100 deleted and 100 added per sheet,
   made in memory after one read, as `bench_changelog.py` does — mirrored into each database:
   the mirror step alone (what `sync` adds when Settings ask it to mirror: sync has read the
   workbook already) and the whole command;
5. `xlcrm export` to each target, whole (read + export + files).

Each step is printed against a calamine read made right before it (this machine's speed
drifts by a fifth within a run) and against the best of the two reads at the start.

Targets (issue 17): full mirror ≤ 2× the calamine read; after a day's edits ≤ 0.5× it;
export ≤ 2× it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from generate import bench_args  # noqa: E402
from isolated import run_step  # noqa: E402

ARGS = 'path = Path(argv[0])\nurl = argv[1] if len(argv) > 1 else None\n'
STEPS = {
    "calamine": """
        import python_calamine
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        cells = sum(len(r) for n in book.sheet_names for r in book.get_sheet_by_name(n).to_python())
    """,
    "sync": """
        from xlcrm.jobs import sync_workbook
        sync_workbook(path)
    """,
    "mirror": """
        from xlcrm.reader import read_workbook
        from xlcrm.mirror import mirror_data
        data = read_workbook(path)
        read_at = time.perf_counter()
        result = mirror_data(data, url)
        extra = {"step": time.perf_counter() - read_at, "added": sum(result.added.values()),
                 "log": result.change_log}
    """,
    "edited": """
        import pandas as pd
        from xlcrm.reader import read_workbook
        from xlcrm.mirror import mirror_data
        data = read_workbook(path)
        for key, field, value in (("customers", "city", "Suzhou"),
                                  ("opportunities", "next_step", "Call back"),
                                  ("interactions", "summary", "Edited")):
            sheet = data.sheets[key]
            frame = sheet.frame
            step = max(1, len(frame) // (len(frame) // 100))
            frame.loc[frame.index[::100], field] = value  # 1 % changed
            frame.drop(index=frame.index[1:10001:100], inplace=True)  # 100 deleted
            extra_rows = frame.iloc[:100].copy()
            id_field = {"customers": "customer_id", "opportunities": "opportunity_id",
                        "interactions": "interaction_id"}[key]
            extra_rows[id_field] = [f"NEW-{key[:3]}-{n}" for n in range(100)]
            sheet.frame = pd.concat([frame, extra_rows], ignore_index=True)
        started_step = time.perf_counter()
        result = mirror_data(data, url)
        extra = {"step": time.perf_counter() - started_step,
                 "updated": sum(result.updated.values()), "added": sum(result.added.values()),
                 "deleted": sum(result.deleted.values())}
    """,
    "export": """
        from xlcrm.jobs import export_workbook
        result, folder = export_workbook(path, url, path.with_name("export-" + url))
        extra = {"rows": sum(len(f.rows) for f in result.files)}
    """,
}


def run(step: str, path: Path, *args: str) -> dict[str, float]:
    return run_step(ARGS + textwrap.dedent(STEPS[step]), str(path), *args)  # type: ignore[return-value]


def main() -> None:
    from tests.pg import Cluster, _binaries

    _, source = bench_args(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        shutil.copyfile(source, path)
        run("sync", path)
        calamine = min((run("calamine", path) for _ in range(2)), key=lambda r: r["seconds"])
        base = calamine["seconds"]
        print(f"{source.name} ({source.stat().st_size / 1e6:.1f} MB): calamine read "
              f"{base:.2f} s")
        rows: list[tuple[str, float, float]] = []  # label, seconds, the read just before

        def read() -> float:  # a calamine read right before each step: the machine drifts
            return run("calamine", path)["seconds"]

        sqlite_url = str(Path(folder) / "mirror.sqlite")
        pg_folder = Path(tempfile.mkdtemp(prefix="xlcrm-pg-"))
        pg_folder.chmod(0o755)
        import os
        import pwd

        user = "postgres" if os.geteuid() == 0 else None
        bin_dir = _binaries()
        cluster = Cluster(pg_folder, bin_dir, user) if bin_dir else None
        try:
            urls = [("SQLite", sqlite_url)]
            if cluster is not None:
                if user:
                    pwd.getpwnam(user)
                cluster.start()
                # a fresh cluster creates its WAL segment files on first use (zero-filled,
                # 16 MB each: about 2 s for a load of this size); a server in use recycles
                # them at each checkpoint, so one mirror into a scratch database goes first,
                # not timed, and a checkpoint before each timed step (its files recycled,
                # none of the last step's writes still pending)
                before = read()
                cold = run("mirror", path, cluster.new_database())
                rows.append(("(not compared) full mirror into a fresh PostgreSQL cluster, "
                             "whole", cold["seconds"], before))
                urls.append(("PostgreSQL", cluster.new_database()))
            for name, url in urls:
                if name == "PostgreSQL":
                    _checkpoint(cluster)
                before = read()
                full = run("mirror", path, url)
                rows.append((f"full mirror into {name} (whole)", full["seconds"], before))
                rows.append((f"full mirror into {name} (mirror step)", full["step"], before))
                if name == "PostgreSQL":
                    _checkpoint(cluster)
                before = read()
                edited = run("edited", path, url)
                rows.append((f"a day's edits into {name} (mirror step: "
                             f"{edited['updated']:.0f} updated, {edited['added']:.0f} added, "
                             f"{edited['deleted']:.0f} deleted)", edited["step"], before))
                rows.append((f"a day's edits into {name} (whole, read included)",
                             edited["seconds"], before))
        finally:
            if cluster is not None:
                cluster.stop()
            shutil.rmtree(pg_folder, ignore_errors=True)
        for target in ("hubspot", "salesforce", "zoho", "odoo"):
            before = read()
            figures = run("export", path, target)
            rows.append((f"export to {target} ({figures['rows']:,.0f} rows, whole)",
                         figures["seconds"], before))
    print(f"{'':<78}{'seconds':>9}{'read':>7}{'÷ read':>8}{'÷ first':>9}")
    for label, seconds, before in rows:
        print(f"{label:<78}{seconds:9.2f}{before:7.2f}{seconds / before:7.2f}×"
              f"{seconds / base:8.2f}×")
    print("targets: full mirror <= 2x; a day's edits <= 0.5x; export <= 2x the calamine read "
          "(÷ read: the read made right before the step; ÷ first: the best of the first two)")


def _checkpoint(cluster: Any) -> None:
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as connection:
        connection.execute("CHECKPOINT")


if __name__ == "__main__":
    main()
