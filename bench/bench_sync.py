"""`sync` of a bench workbook side by side with a calamine read and an openpyxl round trip of
the same file, in one run, each in its own process (seconds and peak memory):

    python bench/bench_sync.py L            # also M, S
    python bench/bench_sync.py L --no-openpyxl   # skip the (slow) openpyxl round trip

1. set-up (not compared): a first sync of a copy (IDs, promotion, engine sheets, change log);
2. a calamine read of every sheet of that file;
3. `sync` with nothing to change;
4. `sync` after a one-cell edit (a customer's city, typed as a person would: the part patched
   by the file backend and the file saved as its owner, not timed);
5. `sync` after the same edit of another customer saved by someone else: an edit-by-non-owner
   warning, so the Issues sheet changes and is rewritten whole;
6. an openpyxl load + save of the same file.

Targets (issue 15): sync ≥ 10× faster than the openpyxl round trip and ≤ 2.5× the calamine
read, with nothing to change and after a one-cell edit; peak memory below openpyxl's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import bench_args  # noqa: E402

PRELUDE = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    path = Path(sys.argv[1])
    started = time.perf_counter()
""")
CODA = textwrap.dedent("""
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                  + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
                      / 1024,  # with sync's second process (duplicates), at most
                      **(extra if "extra" in dir() else {})}))
""")
STEPS = {
    "sync": """
        from xlcrm import progress
        from xlcrm.jobs import sync_workbook
        marks = []
        with progress.listening(lambda name, _: marks.append((name, time.perf_counter()))):
            result = sync_workbook(path)
        marks.append(("end", time.perf_counter()))
        steps = {}
        for (name, at), (_, after) in zip(marks, marks[1:]):
            steps[name] = steps.get(name, 0) + after - at
        extra = {"written": result.written, "changes": len(result.changes), "steps": steps}
    """,
    "calamine": """
        import python_calamine
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        cells = sum(len(r) for n in book.sheet_names for r in book.get_sheet_by_name(n).to_python())
        extra = {"cells": cells}
    """,
    "openpyxl": """
        import openpyxl
        book = openpyxl.load_workbook(path)
        book.save(path.with_name("openpyxl-" + path.name))
    """,
    "edit": """
        import re
        from xlcrm.package import Package
        from xlcrm.session import FileSession
        with FileSession(path) as session:
            data = session.read()
            customers = data.sheets["customers"]
            middle = len(customers.frame) // 2 + int(sys.argv[3])
            record = customers.frame.iloc[middle]
            session.set_cells(customers.name, [(int(record["_row"]), customers.columns["city"],
                                                f"Xi'an (moved {sys.argv[3]})")])
            session.save()
        # who saved it: the customer's owner, or a colleague (an edit-by-non-owner warning)
        author = record["owner"] if sys.argv[2] == "owner" else "Somebody Else"
        pkg = Package(path)
        core = re.sub(rb"<cp:lastModifiedBy>.*?</cp:lastModifiedBy>", b"", pkg.read(
            "docProps/core.xml")).replace(b"</cp:coreProperties>", (
            f"<cp:lastModifiedBy>{author}</cp:lastModifiedBy></cp:coreProperties>").encode())
        pkg.put("docProps/core.xml", core)
        pkg.save(path.with_name("saved-" + path.name))
        pkg.close()
        path.with_name("saved-" + path.name).replace(path)
    """,
}


def run(step: str, path: Path, *args: str) -> dict[str, float]:
    code = PRELUDE + textwrap.dedent(STEPS[step]) + CODA
    done = subprocess.run([sys.executable, "-c", code, str(path), *args], capture_output=True,
                          text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    args, source = bench_args(__doc__, lambda p: p.add_argument("--no-openpyxl",
                                                                action="store_true"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        shutil.copyfile(source, path)
        first = run("sync", path)
        print(f"{source.name} ({source.stat().st_size / 1e6:.1f} MB): first sync "
              f"{first['seconds']:.1f} s, {first['changes']:,} changes logged (set-up)")
        calamine = min((run("calamine", path) for _ in range(2)), key=lambda r: r["seconds"])
        idle = run("sync", path)
        run("edit", path, "owner", "0")
        edited = run("sync", path)
        run("edit", path, "other", "1")
        by_other = run("sync", path)
        round_trip = None if args.no_openpyxl else run("openpyxl", path)
    rows = [("calamine read of every sheet", calamine), ("sync, nothing to change", idle),
            ("sync after a one-cell edit", edited), ("... by someone else (a warning)", by_other)]
    if round_trip:
        rows.append(("openpyxl load + save", round_trip))
    print(f"{'':<32}{'seconds':>9}{'peak MB':>9}{'÷ calamine':>12}{'openpyxl ÷':>12}")
    for label, figures in rows:
        versus = (f"{round_trip['seconds'] / figures['seconds']:11.1f}×" if round_trip
                  else f"{'—':>12}")
        print(f"{label:<32}{figures['seconds']:9.2f}{figures['peak_mb']:9.0f}"
              f"{figures['seconds'] / calamine['seconds']:11.2f}×{versus}")
    print(f"written: nothing-to-change {idle.get('written')}, one-cell edit "
          f"{edited.get('written')} ({edited.get('changes'):.0f} change logged)")
    for label, figures in (("a one-cell edit by its owner", edited),
                           ("a one-cell edit by someone else", by_other)):
        print(f"sync after {label}, by step (from each step to the next): " + ", ".join(
            f"{name} {seconds:.2f} s" for name, seconds in figures["steps"].items()))


if __name__ == "__main__":
    main()
