"""The folder watcher: every save of a workbook in a shared folder is checked (and, in sync
mode, synced) once, on its final content, without ever writing into someone's open file.

How it stays safe (see shared notes/excel-files-facts.md):

- **Events are hints.** watchdog events (native, or `PollingObserver` with ``--poll`` for
  network shares) only put a workbook on the list to look at; a reconciliation scan at start
  and every `RESCAN_SECONDS` catches anything an observer missed. Deletions mean nothing: an
  Excel save (temp file, delete, rename) or a share outage looks like one.
- **Stable and complete first.** A workbook is processed only when two probes `settle`
  seconds apart see the same size and SHA-256 and the zip's central directory reads. A
  half-written file is looked at again later, quietly; only a file that stays unreadable
  for `GIVE_UP_PROBES` probes is reported as broken.
- **Each content once.** The SHA-256 of the last processed content (and of our own
  write-back) is remembered per workbook, on disk, so duplicate events, restarts and our own
  writes cause no second run.
- **Write-back only in sync mode, only through the safe writer** (no owner file, content
  unchanged since the read, nothing the rewrite would drop). A refused write is deferred: the
  report is published, and the write is retried when the owner file goes away (or at the next
  scan). A `PermissionError` (Windows) backs off. Stale owner files are never deleted.
- **Reports go to the sidecar** ``FOLDER/.xlcrm/<stem>/report.json`` (the `validate --format
  json` shape) and ``report.html``, published atomically. The watcher's log is
  ``FOLDER/.xlcrm/watch.log`` (JSON lines, rotated) and its health ``FOLDER/.xlcrm/
  watch-status.json``; ``FOLDER/.xlcrm/watch.lock`` keeps it to one watcher per folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import logging
import logging.handlers
import os
import queue
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from filelock import FileLock, Timeout
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from . import jobs
from .errors import (
    AlreadyWatching,
    CorruptWorkbook,
    InputError,
    UnsafeToWrite,
    WorkbookChanged,
    WorkbookOpen,
    WriteDenied,
    WriteRefused,
)
from .guard import WORKBOOK_SUFFIXES, file_sha256, owner_files, owner_name
from .issues import Report
from .messages import t, workbook_lang
from .writer import STATE_DIR, TEMP_PREFIX, clean_stale_temps, state_dir

Mode = Literal["report", "sync"]
RESCAN_SECONDS = 120.0
GIVE_UP_PROBES = 8  # stable but unreadable this many times: report it as broken
DEFERRED_RETRY = 30.0  # seconds between write-back attempts while the file is open
MAX_BACKOFF = 300.0
QUIET_SECONDS = 60.0  # a damaged workbook is reported only after staying the same this long
log = logging.getLogger("xlcrm.watch")



def is_workbook(path: Path) -> bool:
    """A workbook worth processing: .xlsx/.xlsm, not an owner file, not a temp file, not in
    our state folder."""
    name = path.name
    return (path.suffix.lower() in WORKBOOK_SUFFIXES and not name.startswith(("~$", ".~lock.",
                                                                             TEMP_PREFIX, "."))
            and STATE_DIR not in path.parts)


def workbook_of_owner_file(path: Path) -> Path | None:
    """The workbook an Excel (~$) or LibreOffice (.~lock.…#) owner file belongs to."""
    name = path.name
    if name.startswith("~$"):
        return path.with_name(name[2:])
    if name.startswith(".~lock.") and name.endswith("#"):
        return path.with_name(name[len(".~lock."):-1])
    return None


def zip_complete(path: Path) -> bool:
    """The zip's central directory reads (a half-written file fails here)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


@dataclass
class Tracked:
    """What the watcher knows about one workbook."""

    due: float = 0.0  # when to look at it next (monotonic seconds)
    probe: tuple[int, str] | None = None  # (size, sha) at the last look
    done_sha: str | None = None  # content last processed, or written by us
    incomplete: int = 0  # stable-but-unreadable probes in a row
    first_seen: float = 0.0  # when this content was first seen (a damaged file is reported
    #                           only once it has stayed the same for the watcher's `quiet`)
    deferred: bool = False  # a write-back is waiting
    backoff: float = 0.0
    runs: int = 0
    last: dict[str, Any] | None = None  # summary of the last run, for the status file


class Watcher:
    """Watches one folder. `run` is the service loop; `scan` and `step` are its parts."""

    def __init__(self, folder: Path, mode: Mode = "report", poll: float | None = None,
                 recursive: bool = False, settle: float = 1.0,
                 rescan: float = RESCAN_SECONDS, quiet: float = QUIET_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder.resolve()
        self.quiet = quiet
        self.folder_present = True
        self.mode, self.poll, self.recursive = mode, poll, recursive
        self.settle, self.rescan_every, self.clock = settle, rescan, clock
        self.state = self.folder / STATE_DIR
        self.tracked: dict[Path, Tracked] = {}
        self.hints: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self.started = dt.datetime.now().astimezone()
        self.last_scan = 0.0
        self.runs = 0

    # -- events -------------------------------------------------------------------------------

    def hint(self, path: Path) -> None:
        """An event touched `path` (thread-safe)."""
        self.hints.put(path)

    def _take_hints(self, now: float) -> None:
        while True:
            try:
                path = self.hints.get_nowait()
            except queue.Empty:
                return
            owner_of = workbook_of_owner_file(path)
            if owner_of is not None:
                path = owner_of  # an owner file came or went: a deferred write may go now
            if is_workbook(path):  # look now; processing waits for a second, equal probe
                self._track(path).due = min(self._track(path).due, now)

    def _track(self, path: Path) -> Tracked:
        path = path.resolve() if not path.is_absolute() else path
        if path not in self.tracked:
            self.tracked[path] = Tracked(done_sha=self._load_done(path))
        return self.tracked[path]

    # -- scanning -----------------------------------------------------------------------------

    def scan(self) -> None:
        """Reconciliation: every workbook in the folder is looked at (cheaply: a stat, and a
        hash only when size or mtime moved)."""
        self.last_scan = self.clock()
        try:
            pattern = "**/*" if self.recursive else "*"
            found = [p for p in self.folder.glob(pattern) if p.is_file() and is_workbook(p)]
        except OSError as error:  # share outage, permissions: try again next time
            self._log(logging.WARNING, "scan-failed", None, f"cannot list the folder: {error}")
            return
        for path in found:
            item = self._track(path)
            item.due = min(item.due, self.clock())

    def step(self) -> int:
        """Look at every workbook that is due; process the stable ones. Returns runs made."""
        now = self.clock()
        self._take_hints(now)
        made = 0
        for path, item in list(self.tracked.items()):
            if item.due > now:
                continue
            item.due = float("inf")
            try:
                made += self._look(path, item, now)
            except Exception as error:  # one bad workbook never kills the watcher
                self._log(logging.ERROR, "crashed", path, f"{type(error).__name__}: {error}")
                item.backoff = min(max(item.backoff * 2, self.settle), MAX_BACKOFF)
                item.due = now + item.backoff
        return made

    def _look(self, path: Path, item: Tracked, now: float) -> int:
        try:
            size = path.stat().st_size
            sha = file_sha256(path)
        except FileNotFoundError:
            item.probe = None  # gone (a save in progress, or deleted): nothing to report
            return 0
        except OSError as error:
            item.backoff = min(max(item.backoff * 2, self.settle), MAX_BACKOFF)
            item.due = now + item.backoff
            self._log(logging.WARNING, "unreadable", path, f"{error}; retrying")
            return 0
        if sha == item.done_sha and not item.deferred:
            item.probe = (size, sha)
            return 0
        if item.probe != (size, sha):  # first sight of this content: wait until it is stable
            if item.probe is None or item.probe[1] != sha:
                item.first_seen = now
            item.probe, item.incomplete = (size, sha), 0
            item.due = now + self.settle
            return 0
        if not zip_complete(path):
            item.incomplete += 1
            if item.incomplete < GIVE_UP_PROBES:
                item.due = now + self.settle * min(2 ** item.incomplete, 30)
                return 0  # half-written: quietly look again later
        if item.deferred and sha == item.done_sha and owner_files(path):
            item.due = now + DEFERRED_RETRY  # still open: keep waiting
            return 0
        self._process(path, item, sha, now)
        return 1

    # -- processing ---------------------------------------------------------------------------

    def _process(self, path: Path, item: Tracked, sha: str, now: float) -> None:
        try:
            self._run_job(path, item, sha, now)
        finally:  # counted once the run's outcome is published
            item.runs += 1
            self.runs += 1

    def _run_job(self, path: Path, item: Tracked, sha: str, now: float) -> None:
        item.deferred = False
        started = time.perf_counter()
        refused: WriteRefused | None = None
        try:
            if self.mode == "sync":
                result = jobs.sync_workbook(path, source="watcher")
            else:
                result = jobs.validate_workbook(path)
        except InputError as error:  # corrupt, hostile, not a workbook, missing sheet
            lang = workbook_lang(path)
            if isinstance(error, CorruptWorkbook) and now - item.first_seen < self.quiet:
                item.backoff = min(max(item.backoff * 2, self.settle), MAX_BACKOFF)
                item.due = now + item.backoff  # maybe still being written in place: wait
                self._log(logging.INFO, "waiting", path, t("watch_waiting", lang,
                                                           error=error.text(lang)))
                return
            self._publish_error(path, error.text(lang))
            self._done(path, item, sha)
            self._log(logging.WARNING, "rejected", path, error.text(lang))
            return
        except (WriteDenied, PermissionError) as error:  # Windows: open; back off, retry
            item.backoff = min(max(item.backoff * 2, 5.0), MAX_BACKOFF)
            item.deferred, item.due = True, now + item.backoff
            self._done(path, item, sha)
            self._publish(path, jobs.validate_workbook(path).report)
            lang = workbook_lang(path)
            shown = error.text(lang) if isinstance(error, WriteDenied) else str(error)
            self._log(logging.WARNING, "write-blocked", path, t(
                "watch_blocked", lang, error=shown, seconds=f"{item.backoff:.0f}"))
            return
        except WriteRefused as error:  # busy, changed or unsafe: the findings still count
            result, refused = cast(jobs.SyncResult, error.result), error
        report = result.report
        lang = report.lang
        self._publish(path, report)
        seconds = time.perf_counter() - started
        item.last = {"at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "errors": report.errors, "warnings": report.warnings,
                     "written": result.written, "seconds": round(seconds, 2)}
        if result.written:
            self._done(path, item, file_sha256(path))  # our own write: not a new save
            item.backoff = 0.0
            self._log(logging.INFO, "synced", path, t(
                "watch_synced", lang, errors=report.errors, warnings=report.warnings,
                changes=len(result.changes)), seconds=round(seconds, 2))
        elif isinstance(refused, WorkbookOpen):
            owners = owner_files(path)
            who = owner_name(owners[0]) if owners else None
            item.deferred, item.due = True, now + DEFERRED_RETRY
            self._done(path, item, sha)
            item.last["open_by"] = who
            self._log(logging.INFO, "deferred", path, t(
                "watch_deferred", lang, who=who or t("someone", lang)), open_by=who)
        elif isinstance(refused, WorkbookChanged):
            item.probe, item.due = None, now + self.settle  # a newer save: start over
            self._log(logging.INFO, "changed", path, t("watch_changed", lang))
        elif isinstance(refused, UnsafeToWrite):
            self._done(path, item, sha)
            self._log(logging.WARNING, "not-rewritten", path, refused.text(lang))
        else:
            self._done(path, item, sha)
            self._log(logging.INFO, "checked", path, t(
                "watch_checked", lang, errors=report.errors, warnings=report.warnings),
                seconds=round(seconds, 2))

    def _done(self, path: Path, item: Tracked, sha: str) -> None:
        item.done_sha, item.probe, item.incomplete = sha, None, 0
        folder = state_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / "watch.json", json.dumps({"done_sha": sha,
                                                          "deferred": item.deferred}))

    def _load_done(self, path: Path) -> str | None:
        try:
            data = json.loads((state_dir(path) / "watch.json").read_text(encoding="utf-8"))
            return None if data.get("deferred") else data.get("done_sha")
        except (OSError, ValueError):
            return None

    def _publish(self, path: Path, report: Report) -> None:
        folder = state_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / "report.json", report.dumps())
        _atomic_write(folder / "report.html", issues_html(report))

    def _publish_error(self, path: Path, message: str) -> None:
        folder = state_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"version": 1, "workbook": path.name,
                   "checked_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                   "error": message, "counts": {}, "summary": {"error": 1, "warning": 0},
                   "issues": []}
        _atomic_write(folder / "report.json", json.dumps(payload, ensure_ascii=False, indent=2))
        _atomic_write(folder / "report.html", _page(path.name, f"<p class=\"error\">"
                                                               f"{html.escape(message)}</p>"))

    # -- the service --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "folder": str(self.folder), "mode": self.mode,
                "observer": f"polling every {self.poll} s" if self.poll else "native",
                "started_at": self.started.isoformat(timespec="seconds"),
                "heartbeat_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "runs": self.runs,
                "workbooks": {str(p.relative_to(self.folder)): {
                    "runs": t.runs, "deferred": t.deferred, "last": t.last}
                    for p, t in self.tracked.items() if p.is_relative_to(self.folder)}}

    def write_status(self) -> None:
        try:
            _atomic_write(self.state / "watch-status.json",
                          json.dumps(self.status(), ensure_ascii=False, indent=2))
        except OSError as error:
            self._log(logging.WARNING, "status-failed", None, str(error))

    def observer(self) -> BaseObserver:
        observer: BaseObserver = (PollingObserver(timeout=self.poll) if self.poll
                                  else Observer())
        observer.schedule(_Handler(self), str(self.folder), recursive=self.recursive)
        return observer

    def run(self, stop: threading.Event, once: bool = False, tick: float = 0.2) -> None:
        """Watch until `stop` is set (or, with `once`, until every workbook present at start
        has been processed or found unchanged)."""
        with self.lock():
            removed = clean_stale_temps(self.folder)
            if removed:
                self._log(logging.INFO, "cleaned", None,
                          f"removed {len(removed)} stale temp files of an interrupted write")
            self._log(logging.INFO, "started", None, f"watching {self.folder} ({self.mode} "
                      f"mode, {'polling' if self.poll else 'native'} observer)")
            observer = None if once else self._start_observer()
            self.scan()
            try:
                while not stop.is_set():
                    if not once and self._folder_came_back():
                        if observer is not None:
                            observer.stop()
                        observer = self._start_observer()  # re-armed at once
                        self.scan()
                    self.step()
                    if once and not self._busy():
                        break
                    if self.clock() - self.last_scan >= self.rescan_every:
                        self.scan()
                        self.write_status()
                    if observer is not None and not observer.is_alive():
                        observer = self._start_observer()  # e.g. the share came back
                    stop.wait(tick)
            finally:
                if observer is not None:
                    observer.stop()
                    observer.join(timeout=5)
                self.write_status()
                self._log(logging.INFO, "stopped", None, f"{self.runs} runs")

    def _folder_came_back(self) -> bool:
        """Notice the folder vanishing (a NAS or VPN blip) and coming back: True once, when it
        is back, so that the observer is re-armed and the folder scanned at once."""
        present = self.folder.is_dir()
        if present == self.folder_present:
            return False
        self.folder_present = present
        if not present:
            self._log(logging.WARNING, "folder-gone", None, f"{self.folder} is gone; waiting "
                      "for it to come back")
            return False
        self._log(logging.INFO, "folder-back", None, f"{self.folder} is back; watching again")
        return True

    def _busy(self) -> bool:
        """Something is still waiting to be looked at soon (for --once)."""
        horizon = self.clock() + DEFERRED_RETRY
        return any(t.due < horizon and not t.deferred for t in self.tracked.values())

    def _start_observer(self) -> BaseObserver | None:
        try:
            observer = self.observer()
            observer.start()
            return observer
        except OSError as error:
            self._log(logging.WARNING, "observer-failed", None, f"{error}; relying on scans")
            return None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold FOLDER/.xlcrm/watch.lock (advisory: it keeps xlcrm watchers apart)."""
        self.state.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.state / "watch.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise AlreadyWatching(f"another xlcrm watch already watches {self.folder}") from None
        try:
            yield
        finally:
            lock.release()

    def _log(self, level: int, event: str, path: Path | None, message: str,
             **extra: Any) -> None:
        workbook = str(path.relative_to(self.folder)) if path is not None and (
            path.is_relative_to(self.folder)) else (path.name if path else f"{self.folder}/*")
        log.log(level, message, extra={"event": event, "workbook": workbook, "fields": extra})


class _Handler(FileSystemEventHandler):
    """Turns every watchdog event into hints (source and destination of moves)."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                self.watcher.hint(Path(text))


# ---------------------------------------------------------------------------------------------
# Logging and pages

class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"at": dt.datetime.fromtimestamp(record.created).astimezone().isoformat(
            timespec="milliseconds"), "level": record.levelname.lower(),
            "event": getattr(record, "event", None), "workbook": getattr(record, "workbook", None),
            "message": record.getMessage(), **getattr(record, "fields", {})}
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(folder: Path, console: bool = True) -> logging.Handler:
    """JSON lines into FOLDER/.xlcrm/watch.log (5 MB × 5 files), plus a console line."""
    state = folder / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(state / "watch.log", maxBytes=5_000_000,
                                                   backupCount=5, encoding="utf-8")
    handler.setFormatter(JsonLines())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    if console:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(workbook)s] "
                                              "%(message)s"))
        log.addHandler(stream)
    return handler


def issues_html(report: Report) -> str:
    rows = "".join(
        f"<tr class=\"{i.severity}\"><td>{html.escape(i.severity)}</td>"
        f"<td>{html.escape(str(i.code))}</td><td>{html.escape(i.sheet)}</td>"
        f"<td>{html.escape(i.cell or '')}</td><td>{html.escape(str(i.record_id or ''))}</td>"
        f"<td>{html.escape(i.message)}</td></tr>" for i in report.sorted_issues())
    summary = (f"<p>{report.errors} errors, {report.warnings} warnings · "
               f"{html.escape(report.checked_at.isoformat(timespec='seconds'))}</p>")
    table = ("<table><tr><th>Severity</th><th>Code</th><th>Sheet</th><th>Cell</th>"
             f"<th>Record</th><th>Message</th></tr>{rows}</table>")
    return _page(report.workbook, summary + table)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>xlcrm: "
            f"{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:20px}}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
            ".error td:first-child,.error{color:#9C0006}.warning td:first-child{color:#9C5700}"
            f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _atomic_write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
