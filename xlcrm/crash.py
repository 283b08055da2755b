"""Crash logs: an error nobody expected is a bug. The user gets one line saying so and where
the details are; the traceback goes to `.xlcrm/<stem>/crash-<time>.log` beside the workbook
(or `.xlcrm/` in the folder a command works on)."""

from __future__ import annotations

import datetime as dt
import platform
import sys
import tempfile
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .writer import STATE_DIR, state_dir


def crash_folder(target: Path | None) -> Path:
    """Where the crash log of a run on `target` (a workbook, a folder or nothing) goes."""
    if target is None:
        return Path.cwd() / STATE_DIR
    if target.is_dir():
        return target / STATE_DIR
    return state_dir(target)


def write_crash_log(error: BaseException, target: Path | None) -> Path | None:
    """Save the traceback and the versions that matter; None when no folder would take it."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    text = "".join([
        f"xlcrm {_version('xlcrm')} crashed at {dt.datetime.now().astimezone().isoformat()}\n",
        f"command: {' '.join(sys.argv)}\n",
        f"python {platform.python_version()} on {platform.platform()}; "
        + ", ".join(f"{p} {_version(p)}" for p in ("pandas", "numpy", "openpyxl",
                                                    "python-calamine", "lxml")) + "\n\n",
        *traceback.format_exception(error),
    ])
    for folder in (crash_folder(target), Path(tempfile.gettempdir()) / "xlcrm"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log = folder / f"crash-{stamp}.log"
            log.write_text(text, encoding="utf-8")
            return log
        except OSError:
            continue
    return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
