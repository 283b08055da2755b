"""The folder watcher: real files, real observers, and handler-level steps on a fake clock."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import cell_of
from xlcrm import jobs, writer
from xlcrm.guard import file_sha256
from xlcrm.watch import AlreadyWatching, Watcher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def events(records: list[logging.LogRecord]) -> list[str]:
    return [getattr(r, "event", "") for r in records]


def report_of(path: Path) -> dict[str, Any]:
    sidecar = path.parent / ".xlcrm" / path.stem / "report.json"
    return dict(json.loads(sidecar.read_text(encoding="utf-8")))


def edited_copy(path: Path, where: Path, email: str) -> bytes:
    """The bytes of `path` with customer C-000002's e-mail changed, as Excel would save them."""
    name, cell, _ = cell_of(path, "customers", "C-000002", "email")
    book = openpyxl.load_workbook(path)
    book[name][cell].value = email
    book.save(where)
    data = where.read_bytes()
    where.unlink()
    return data


def excel_save(path: Path, content: bytes, variant: str) -> None:
    """Save the way Excel does: the whole file to an 8-hex temp name, then into place."""
    temp = path.with_name("Cedd4100")
    temp.write_bytes(content)
    if variant == "rename-over":
        os.replace(temp, path)
    elif variant == "delete-then-rename":
        path.unlink()
        os.rename(temp, path)
    else:  # the .tmp variant: the original is renamed away first, deleted afterwards
        old = path.with_name("A1B2C3D4.tmp")
        os.rename(path, old)
        os.rename(temp, path)
        old.unlink()


def run_steps(watcher: Watcher, clock: Clock, seconds: float, tick: float = 0.1) -> int:
    made = 0
    for _ in range(int(seconds / tick)):
        made += watcher.step()
        clock.advance(tick)
    return made


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def running() -> Iterator[Callable[..., Watcher]]:
    """Start a watcher with a real observer in a thread; stop it at the end."""
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(folder: Path, **kw: Any) -> Watcher:
        watcher = Watcher(folder, settle=0.3, rescan=3600, **kw)
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))
        return watcher

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the watcher did not stop within 10 s"


@pytest.mark.parametrize("variant", ["rename-over", "delete-then-rename", "tmp-variant"])
def test_an_excel_style_save_is_processed_once_on_its_final_content(
        folder: Path, records: list[logging.LogRecord], running: Callable[..., Watcher],
        variant: str, tmp_path: Path) -> None:
    path = folder / "crm.xlsx"
    watcher = running(folder)
    assert wait_for(lambda: watcher.runs == 1)  # the start-up scan
    assert report_of(path)["summary"]["error"] == 0
    excel_save(path, edited_copy(path, tmp_path / "x.xlsx", "broken@@mail"), variant)
    assert wait_for(lambda: watcher.runs == 2)
    time.sleep(1.0)  # late or duplicate events must not cause a third run
    assert watcher.runs == 2
    issues = report_of(path)["issues"]
    assert [(i["code"], i["value"]) for i in issues] == [("invalid-email", "broken@@mail")]
    assert not [r for r in records if r.levelno >= logging.WARNING]
    assert sorted(p.name for p in folder.iterdir()) == [".xlcrm", "crm.xlsx"]


def test_polling_sees_a_rename_over_as_a_save_not_a_deletion(
        folder: Path, records: list[logging.LogRecord], running: Callable[..., Watcher],
        tmp_path: Path) -> None:
    path = folder / "crm.xlsx"
    watcher = running(folder, poll=0.2)
    assert wait_for(lambda: watcher.runs == 1)
    excel_save(path, edited_copy(path, tmp_path / "x.xlsx", "polled@@mail"), "rename-over")
    assert wait_for(lambda: watcher.runs == 2)
    assert report_of(path)["issues"][0]["value"] == "polled@@mail"
    assert not [r for r in records if r.levelno >= logging.WARNING]


def test_our_own_write_back_does_not_trigger_another_run(
        folder: Path, records: list[logging.LogRecord], running: Callable[..., Watcher]) -> None:
    path = folder / "crm.xlsx"
    before = file_sha256(path)
    watcher = running(folder, mode="sync")
    assert wait_for(lambda: watcher.runs == 1)
    assert file_sha256(path) != before  # written back (IDs, Issues, ChangeLog, Dashboard)
    time.sleep(1.5)
    assert watcher.runs == 1
    assert events(records).count("synced") == 1


def test_a_half_written_file_is_waited_for_quietly(
        folder: Path, records: list[logging.LogRecord]) -> None:
    path = folder / "crm.xlsx"
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 2])  # a save caught halfway
    clock = Clock()
    watcher = Watcher(folder, settle=1.0, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 20) == 0
    assert not (folder / ".xlcrm" / "crm" / "report.json").exists()
    assert [e for e in events(records) if e] == []  # no "invalid", no log entry at all
    path.write_bytes(full)  # the save completes
    watcher.hint(path)
    assert run_steps(watcher, clock, 40) == 1
    assert report_of(path)["summary"]["error"] == 0  # the complete file, checked once


def test_a_burst_of_saves_yields_one_run_per_distinct_content(
        folder: Path, tmp_path: Path) -> None:
    path = folder / "crm.xlsx"
    clock = Clock()
    watcher = Watcher(folder, settle=1.0, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 3) == 1
    versions = [edited_copy(path, tmp_path / "x.xlsx", f"v{i}@@mail") for i in range(5)]
    for content in versions:  # five saves in two seconds
        excel_save(path, content, "rename-over")
        watcher.hint(path)
        run_steps(watcher, clock, 0.4)
    assert run_steps(watcher, clock, 5) == 1  # only the final content
    assert report_of(path)["issues"][0]["value"] == "v4@@mail"
    for _ in range(5):  # the same events again
        watcher.hint(path)
        watcher.hint(path.with_name("Cedd4100"))
    assert run_steps(watcher, clock, 5) == 0


def test_the_reconciliation_scan_catches_a_missed_event(folder: Path, tmp_path: Path) -> None:
    path = folder / "crm.xlsx"
    clock = Clock()
    watcher = Watcher(folder, settle=0.5, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 2) == 1
    excel_save(path, edited_copy(path, tmp_path / "x.xlsx", "missed@@mail"), "rename-over")
    assert run_steps(watcher, clock, 3) == 0  # no event arrived
    watcher.scan()
    assert run_steps(watcher, clock, 3) == 1
    assert report_of(path)["issues"][0]["value"] == "missed@@mail"


def test_an_open_workbook_is_never_written_and_the_write_waits(
        folder: Path, records: list[logging.LogRecord]) -> None:
    path = folder / "crm.xlsx"
    name = "Alice Chen"
    owner = folder / "~$crm.xlsx"  # Excel's 165-byte owner file
    ansi = name.encode("latin-1")
    owner.write_bytes((bytes([len(ansi)]) + ansi).ljust(55, b" ")
                      + len(name).to_bytes(2, "little") + name.encode("utf-16-le")
                      + b"\x00" * (165 - 57 - 2 * len(name)))
    assert owner.stat().st_size == 165
    before = path.read_bytes()
    clock = Clock()
    watcher = Watcher(folder, mode="sync", settle=0.5, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 3) == 1
    assert path.read_bytes() == before  # never written while open
    assert report_of(path)["counts"]["customers"] == 8  # but the sidecar is there
    deferred = [r for r in records if getattr(r, "event", "") == "deferred"]
    assert deferred and "Alice Chen" in deferred[0].getMessage()
    assert owner.exists()  # never deleted by us
    owner.unlink()  # Excel closes the workbook
    watcher.hint(owner)
    assert run_steps(watcher, clock, 3) == 1
    assert path.read_bytes() != before
    assert events(records).count("synced") == 1


def test_a_file_replaced_between_read_and_write_is_left_alone_and_requeued(
        folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = folder / "crm.xlsx"
    newer = edited_copy(path, tmp_path / "x.xlsx", "newer@@mail")
    real_validate = jobs.validate
    replaced: list[bool] = []

    def validate_then_someone_saves(*args: Any, **kw: Any) -> Any:
        if not replaced:
            path.write_bytes(newer)  # a user saves while we work
            replaced.append(True)
        return real_validate(*args, **kw)

    monkeypatch.setattr(jobs, "validate", validate_then_someone_saves)
    clock = Clock()
    watcher = Watcher(folder, mode="sync", settle=0.5, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 0.7) == 1
    assert path.read_bytes() == newer  # our write was aborted
    assert run_steps(watcher, clock, 3) == 1  # and the new content is processed
    assert path.read_bytes() != newer
    assert report_of(path)["issues"][0]["value"] == "newer@@mail"


def test_permission_error_on_replace_backs_off_to_the_sidecar(
        folder: Path, monkeypatch: pytest.MonkeyPatch,
        records: list[logging.LogRecord]) -> None:
    path = folder / "crm.xlsx"
    before = path.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(32, "The process cannot access the file", str(dst))

    monkeypatch.setattr(writer, "os", types.SimpleNamespace(**{**vars(os), "replace": refuse}))
    clock = Clock()
    watcher = Watcher(folder, mode="sync", settle=0.5, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 2) == 1
    assert path.read_bytes() == before
    assert report_of(path)["counts"]["customers"] == 8
    assert "write-blocked" in events(records)
    assert sorted(p.name for p in folder.iterdir()) == [".xlcrm", "crm.xlsx"]  # no temp left
    assert run_steps(watcher, clock, 3) == 0  # backing off
    monkeypatch.undo()
    assert run_steps(watcher, clock, 20) == 1  # then it goes through
    assert path.read_bytes() != before


def test_bad_files_are_rejected_and_the_watcher_lives_on(folder: Path, tmp_path: Path,
                                                        records: list[logging.LogRecord]
                                                        ) -> None:
    (folder / "notes.xlsx").write_text("this is not a workbook", encoding="utf-8")
    (folder / ".xlcrm-tmp-1a2b3c4d-crm.xlsx").write_bytes(b"half a write")  # a crash's temp
    slicer = folder / "slicer.xlsx"  # a part an openpyxl round trip would have dropped
    shutil.copyfile(folder / "crm.xlsx", slicer)
    import zipfile
    with zipfile.ZipFile(slicer, "a") as archive:
        archive.writestr("xl/slicers/slicer1.xml", "<slicer/>")
    slicer_before = slicer.read_bytes()
    (folder / "busy.xlsx").write_bytes((folder / "crm.xlsx").read_bytes())
    (folder / "~$busy.xlsx").write_bytes(b"\x04Wang" + b" " * 160)
    busy_before = (folder / "busy.xlsx").read_bytes()
    watcher = Watcher(folder, mode="sync", settle=0.05)
    started = time.monotonic()
    watcher.run(threading.Event(), once=True)
    assert time.monotonic() - started < 60
    assert "error" in report_of(folder / "notes.xlsx")
    assert report_of(folder / "crm.xlsx")["counts"]["customers"] == 8
    with zipfile.ZipFile(slicer) as archive:  # written, and the part kept
        assert archive.read("xl/slicers/slicer1.xml") == b"<slicer/>"
    assert slicer.read_bytes() != slicer_before
    assert (folder / "busy.xlsx").read_bytes() == busy_before  # open: reported, not rewritten
    assert report_of(folder / "busy.xlsx")["counts"]["customers"] == 8
    assert not (folder / ".xlcrm-tmp-1a2b3c4d-crm.xlsx").exists()
    assert {"rejected", "deferred", "synced", "cleaned"} <= set(events(records))
    status = json.loads((folder / ".xlcrm" / "watch-status.json").read_text(encoding="utf-8"))
    assert status["runs"] == 4 and status["mode"] == "sync"


def test_one_watcher_per_folder(folder: Path) -> None:
    first, second = Watcher(folder), Watcher(folder)
    with first.lock(), pytest.raises(AlreadyWatching):
        second.run(threading.Event(), once=True)


def test_watch_command_once_writes_the_log(folder: Path, cli: Callable[..., Any]) -> None:
    result = cli("watch", folder, "--once", "--settle", "0.1")
    assert result.exit_code == 0, result.output
    lines = (folder / ".xlcrm" / "watch.log").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["event"] for e in entries][:2] == ["started", "checked"]
    assert entries[1]["workbook"] == "crm.xlsx"
    assert cli("watch", folder / "missing").exit_code == 2


def test_a_folder_that_disappears_for_a_while_does_not_kill_the_watcher(
        folder: Path, running: Callable[..., Watcher], tmp_path: Path) -> None:
    path = folder / "crm.xlsx"
    watcher = running(folder, poll=0.2)
    assert wait_for(lambda: watcher.runs == 1)
    content = edited_copy(path, tmp_path / "x.xlsx", "after@@outage")
    away = tmp_path / "unmounted"
    folder.rename(away)  # the share goes away ...
    time.sleep(1.0)
    watcher.scan()  # a scan during the outage only logs
    away.rename(folder)  # ... and comes back
    excel_save(path, content, "rename-over")
    watcher.scan()
    assert wait_for(lambda: watcher.runs == 2)
    assert report_of(path)["issues"][0]["value"] == "after@@outage"


def test_sigterm_stops_the_watch_command_within_seconds(folder: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.conftest import env_without_debug

    process = subprocess.Popen([sys.executable, "-m", "xlcrm", "watch", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env_without_debug())
    try:
        status = folder / ".xlcrm" / "watch-status.json"
        log_file = folder / ".xlcrm" / "watch.log"
        assert wait_for(lambda: log_file.exists() and '"checked"' in log_file.read_text(
            encoding="utf-8"), timeout=30)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert json.loads(status.read_text(encoding="utf-8"))["runs"] == 1
        assert '"stopped"' in log_file.read_text(encoding="utf-8")
    finally:
        if process.poll() is None:
            process.kill()


def test_formula_looking_text_stays_text_through_a_sync_write_back(folder: Path) -> None:
    path = folder / "crm.xlsx"
    name, cell, _ = cell_of(path, "customers", "C-000002", "notes")
    book = openpyxl.load_workbook(path)
    book[name][cell].value = "=HYPERLINK(\"http://evil\")"
    book[name][cell].data_type = "s"  # the user typed it as text
    book.save(path)
    clock = Clock()
    watcher = Watcher(folder, mode="sync", settle=0.5, clock=clock)
    watcher.scan()
    assert run_steps(watcher, clock, 2) == 1
    written = openpyxl.load_workbook(path)[name][cell]
    assert written.data_type == "s" and written.value == "=HYPERLINK(\"http://evil\")"
