"""Knowing that a sync has nothing to do, without doing it again.

A sync's outcome is a function of the workbook's bytes, the day, the change log and xlcrm's
version. After a sync that wrote (or found nothing to write), `remember` stores its report
beside the workbook with the run's id, the workbook's hash after it and the day. A later sync
on the same day, of a workbook whose bytes are those same bytes, whose change log's newest run
is that run and holds no notification waiting to be retried, by the same version, can only
find the same: `recall` gives back the report and the sync reads and writes nothing. Any save
of the workbook, a new day, any other run (restore, merge, the ribbon) or another version, and
the sync runs in full.

The memo is JSON (a shared folder is no place to unpickle what others can write); a memo that
cannot be read is ignored.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .guard import file_sha256
from .history import History, history_path
from .issues import Code, Issue, Report
from .notify import MAX_ATTEMPTS
from .writer import state_dir

MEMO = "last-sync.json"


def _version() -> str:
    try:
        return version("xlcrm")
    except PackageNotFoundError:
        return "unknown"


def remember(path: Path, today: dt.date, run_id: str, sha_after: str, report: Report) -> None:
    data = {"version": _version(), "today": today.isoformat(), "run_id": run_id,
            "sha": sha_after, "lang": report.lang, "workbook": report.workbook,
            "counts": report.counts, "sheet_order": report.sheet_order,
            "issues": [i.to_json() for i in report.issues]}
    target = state_dir(path) / MEMO
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_suffix(".tmp")
    temp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    temp.replace(target)


def mirror_pending(path: Path) -> Path:
    """The marker a sync leaves when its mirror failed (Settings → mirror_url); while it is
    there, `recall` says no, so the next sync runs in full and mirrors again."""
    return state_dir(path) / "mirror-pending"


def forget(path: Path) -> None:
    (state_dir(path) / MEMO).unlink(missing_ok=True)


def recall(path: Path, today: dt.date) -> Report | None:
    """The report of the last sync, if a sync now could find nothing else."""
    try:
        data: dict[str, Any] = json.loads((state_dir(path) / MEMO).read_text(encoding="utf-8"))
        if (data["version"], data["today"]) != (_version(), today.isoformat()):
            return None
        if not history_path(path).exists() or file_sha256(path) != data["sha"]:
            return None
        if mirror_pending(path).exists():  # a mirror that failed: run in full, mirror again
            return None
        with History(path, create=False) as history:
            if history.last_run() != (data["run_id"], data["sha"]):
                return None
            if history.pending(MAX_ATTEMPTS):  # notifications to retry: a full run sends them
                return None
        issues = [Issue(code=Code(i["code"]), sheet=i["sheet"], row=i["row"], cell=i["cell"],
                        field=i["field"], record_id=i["record_id"], value=i["value"],
                        message=i["message"], severity=i["severity"]) for i in data["issues"]]
        return Report(workbook=data["workbook"], counts=data["counts"], lang=data["lang"],
                      issues=issues, sheet_order=data["sheet_order"])
    except Exception:  # noqa: BLE001 - a memo that cannot be trusted is no memo: run in full
        return None
