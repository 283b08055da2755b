"""One benchmark step in a process of its own: `run_step(code, *args)` runs `code` (its
arguments in `argv`, the clock started) and returns the JSON it prints: seconds, peak memory
and whatever the step put in `extra`. A fresh process per step, so no step inherits another's
caches or memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    argv = sys.argv[1:]
    started = time.perf_counter()
""")
TAIL = textwrap.dedent("""
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      **(extra if "extra" in dir() else {})}))
""")


def run_step(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", HEAD + textwrap.dedent(code) + TAIL, *args],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
