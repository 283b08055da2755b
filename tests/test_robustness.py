"""What must not take the process down, and what people read: hostile extents, bugs (exit 70
and a crash log), a refused replace (exit 77), leftovers of killed runs, messages in the
workbook's language, the watcher on shares that stall or vanish."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import env_without_debug
from tests.test_day_one import typed
from tests.test_watch import Clock, events, report_of, run_steps
from xlcrm import jobs, writer
from xlcrm.jobs import init_workbook
from xlcrm.watch import Watcher


@pytest.fixture
def fresh(tmp_path: Path) -> Callable[..., Path]:
    def make(lang: str = "en", name: str = "crm.xlsx") -> Path:
        return init_workbook(tmp_path / name, lang=lang)  # type: ignore[arg-type]

    return make


def peak_mib(args: list[str]) -> tuple[int, int, str]:
    """Run xlcrm in a child; its exit code, peak memory (VmHWM, MiB) and stderr."""
    child = subprocess.Popen([sys.executable, "-m", "xlcrm", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env_without_debug())
    peak = 0
    while child.poll() is None:
        try:
            for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) // 1024)
        except OSError:
            pass
        time.sleep(0.02)
    assert child.stderr is not None
    with child.stderr:
        return child.returncode, peak, child.stderr.read().decode()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize(("where", "expected"), [("XFD1048576", 0), ("V1048576", 1)])
def test_one_far_value_costs_no_memory(fresh: Callable[..., Path], where: str,
                                       expected: int) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd"}])
    book = openpyxl.load_workbook(path)
    book["Customers"][where] = "stray"
    book.save(path)
    code, peak, stderr = peak_mib(["validate", str(path), "--format", "json"])
    assert code == expected, stderr
    assert peak < 300
    # V is a column of the Table: the far row is a record (with no name), counted and flagged
    report = jobs.validate_workbook(path).report
    assert report.counts["customers"] == (2 if where.startswith("V") else 1)


def test_a_compression_bomb_of_cells_is_refused_before_it_is_read(
        fresh: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        cli: Callable[..., Any]) -> None:
    from xlcrm import reader

    path = fresh()
    typed(path, 0, [{"Name": f"Firm {i}"} for i in range(3000)])
    monkeypatch.setattr(reader, "MIN_BUDGET", 1024)  # a tiny budget stands for a huge sheet
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "compression bomb" in result.output


def test_a_bug_exits_70_with_a_crash_log(fresh: Callable[..., Path],
                                         monkeypatch: pytest.MonkeyPatch,
                                         cli: Callable[..., Any]) -> None:
    path = fresh("zh")
    monkeypatch.delenv("XLCRM_DEBUG", raising=False)

    def broken(*args: Any, **kw: Any) -> Any:
        raise TypeError("Cannot cast DatetimeArray to dtype float64")

    monkeypatch.setattr(jobs, "sync_workbook", broken)
    result = cli("sync", path)
    assert result.exit_code == 70
    assert "程序缺陷" in result.output and "Traceback" not in result.output
    [log] = (path.parent / ".xlcrm" / "crm").glob("crash-*.log")
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "Cannot cast DatetimeArray" in text and "pandas" in text


def test_a_refused_replace_exits_77_and_writes_nothing(fresh: Callable[..., Path],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd"}])
    before = path.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(writer, "os", types.SimpleNamespace(**{**vars(os), "replace": refuse}))
    result = cli("sync", path)
    assert result.exit_code == 77
    assert "cannot replace crm.xlsx: permission denied" in result.output
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [".xlcrm", "crm.xlsx"]


def test_a_killed_write_leaves_nothing_after_the_next_command(
        fresh: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = fresh()
    (path.parent / ".xlcrm-tmp-1a2b3c4d-crm.xlsx").write_bytes(b"half a write")
    (path.parent / ".xlcrm-tmp-5e6f7a8b-other.xlsx").write_bytes(b"another workbook's")
    assert cli("validate", path).exit_code == 0
    assert not (path.parent / ".xlcrm-tmp-1a2b3c4d-crm.xlsx").exists()
    assert (path.parent / ".xlcrm-tmp-5e6f7a8b-other.xlsx").exists()  # not ours to judge


def test_a_temp_file_of_a_write_under_way_is_left_alone(fresh: Callable[..., Path]) -> None:
    path = fresh()
    temp = path.parent / ".xlcrm-tmp-1a2b3c4d-crm.xlsx"
    temp.write_bytes(b"being written")
    with writer.write_lock(path):
        assert writer.clean_stale_temps(path.parent, path.name) == []
    assert temp.exists()
    assert writer.clean_stale_temps(path.parent, path.name) == [temp]


ENGLISH = ("promoted", "skipped", "clusters", "changes", "Created", "row ", "name ", "same ",
           "workbook updated", "errors", "warnings", "customer_id", "name:", "phone:")


def test_a_chinese_workbook_gets_chinese_output_from_every_command(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    path = tmp_path / "客户.xlsx"
    created = cli("init", path, "--lang", "zh")
    assert "已创建" in created.output
    typed(path, 0, [{"客户名称": "上海小鹏贸易有限公司", "电话": "13800138000"},
                    {"客户名称": "上海小鹏贸易有限公司", "电话": "13800138000"}])
    typed(path, 1, [{"商机名称": "年度采购", "意向公司": "北京华讯科技有限公司", "阶段": "赢单",
                     "预计金额": "1万"}])
    outputs = {}
    for command in (["validate"], ["dedupe"], ["promote"], ["sync"], ["log", "--limit", "3"],
                    ["report", "--no-write"]):
        result = cli(command[0], path, *command[1:])
        assert result.exit_code in (0, 1), result.output
        outputs[command[0]] = result.output
    assert "北京华讯科技有限公司" not in outputs["dedupe"]
    assert "第 2 行" in outputs["dedupe"] and "电话相同" in outputs["dedupe"]
    assert "个赢单转入客户" in outputs["promote"]
    assert "共" in outputs["log"] and "条变更" in outputs["log"]
    for command, text in outputs.items():
        lines = [line for line in text.splitlines() if line.strip()]
        for line in lines:
            assert not any(word in line for word in ENGLISH), (command, line)
    json_report = json.loads(cli("validate", path, "--format", "json").stdout)
    duplicate = [i for i in json_report["issues"] if i["code"] == "possible-duplicate"]
    assert duplicate and all("row" not in i["message"] and "name" not in i["message"]
                             for i in duplicate)


def test_errors_speak_the_language_of_the_user_where_no_workbook_does(
        tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLCRM_LANG", "zh")
    result = cli("watch", tmp_path / "missing")
    assert result.exit_code == 2 and "文件夹不存在" in result.output


def test_version_and_short_help(cli: Callable[..., Any]) -> None:
    from importlib.metadata import version

    assert cli("--version").output.strip() == f"xlcrm {version('xlcrm')}"
    assert "sync" in cli("-h").output
    assert "--all" in cli("validate", "-h").output


def test_a_long_report_prints_a_summary_and_points_at_the_rest(
        fresh: Callable[..., Path], cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": f"Firm {i}", "Email": f"bad{i}@"} for i in range(60)])
    short = cli("validate", path)
    assert short.exit_code == 1
    assert short.output.count("invalid-email") == 20 + 1  # 20 issues, then the count by code
    assert "40 more" in short.output and "--all" in short.output
    assert "invalid-email  60" in short.output
    full = cli("validate", path, "--all")
    assert full.output.count("invalid-email") == 60


def test_dedupe_names_records_whose_id_is_blank(fresh: Callable[..., Path],
                                                cli: Callable[..., Any]) -> None:
    path = fresh()
    typed(path, 0, [{"Name": "Acme Ltd", "Phone": "13800138000"},
                    {"Name": "Acme Ltd", "Phone": "13800138000"}])
    result = cli("dedupe", path)
    assert "Acme Ltd (row 2), Acme Ltd (row 3)" in result.output
    merged = cli("dedupe", path, "--merge", "--all")
    assert "Merged  into" not in merged.output and "Merged C-00000" in merged.output


# ---------------------------------------------------------------------------------------------
# The watcher on real shares

def test_a_file_written_in_place_is_never_published_as_damaged(
        folder: Path, records: list[logging.LogRecord]) -> None:
    """A sync client overwrites the workbook in place and pauses: the old central directory
    still reads at the end, the start is new bytes. It must wait, not be called damaged."""
    path = folder / "crm.xlsx"
    old = path.read_bytes()
    book = openpyxl.load_workbook(path)
    book["Customers"]["J3"] = "new@@mail"
    book.save(folder / "new.tmp")
    new = (folder / "new.tmp").read_bytes()
    (folder / "new.tmp").unlink()
    half = len(new) // 2
    path.write_bytes(new[:half] + old[half:])  # paused halfway through an in-place write
    clock = Clock()
    watcher = Watcher(folder, settle=1.0, quiet=60.0, clock=clock)
    watcher.scan()
    run_steps(watcher, clock, 30)
    assert not (folder / ".xlcrm" / "crm" / "report.json").exists()
    assert "rejected" not in events(records)
    path.write_bytes(new)  # the write completes
    watcher.hint(path)
    assert run_steps(watcher, clock, 30) == 1
    assert report_of(path)["issues"][0]["value"] == "new@@mail"


def test_a_damaged_file_is_reported_once_it_stays_damaged(folder: Path) -> None:
    path = folder / "crm.xlsx"
    old = path.read_bytes()
    path.write_bytes(b"PK" + b"\0" * 100 + old[200:])
    clock = Clock()
    watcher = Watcher(folder, settle=1.0, quiet=20.0, clock=clock)
    watcher.scan()
    run_steps(watcher, clock, 200)
    assert "error" in report_of(path)


def test_the_observer_is_re_armed_as_soon_as_the_folder_comes_back(
        folder: Path, tmp_path: Path, records: list[logging.LogRecord]) -> None:
    path = folder / "crm.xlsx"
    watcher = Watcher(folder, settle=0.2, rescan=3600, poll=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while watcher.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        away = tmp_path / "unmounted"
        folder.rename(away)
        time.sleep(1.0)
        away.rename(folder)
        book = openpyxl.load_workbook(path)
        book["Customers"]["J3"] = "back@@mail"
        book.save(path)
        deadline = time.monotonic() + 10  # far less than the 3600 s rescan
        while watcher.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.runs == 2
        assert {"folder-gone", "folder-back"} <= set(events(records))
    finally:
        stop.set()
        thread.join(timeout=10)


def test_every_watcher_log_line_names_its_workbook(folder: Path,
                                                   cli: Callable[..., Any]) -> None:
    assert cli("watch", folder, "--once", "--settle", "0.1").exit_code == 0
    lines = (folder / ".xlcrm" / "watch.log").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries and all(e["workbook"] for e in entries)


def test_errors_about_a_chinese_workbook_are_in_chinese(tmp_path: Path,
                                                        cli: Callable[..., Any]) -> None:
    path = tmp_path / "crm.xlsx"
    init_workbook(path, "zh")
    (tmp_path / "~$crm.xlsx").write_bytes(b"\x04Wang" + b" " * 60)
    result = cli("sync", path)
    assert result.exit_code == 3 and "正被" in result.output and "未写入任何内容" in result.output
    book = openpyxl.load_workbook(path)
    book.remove(book["商机"])
    book.save(path)
    (tmp_path / "~$crm.xlsx").unlink()
    result = cli("validate", path)
    assert result.exit_code == 2 and "没有名为" in result.output


def test_the_watcher_serves_the_others_beside_hostile_workbooks(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xlcrm import reader

    far = folder / "far.xlsx"
    init_workbook(far, "en")
    book = openpyxl.load_workbook(far)
    book["Customers"]["XFD1048576"] = "stray"
    book.save(far)
    bomb = folder / "bomb.xlsx"
    init_workbook(bomb, "en", sample=30)
    real_check = reader._check_budget

    def check(path: Path, extents: dict[str, Any]) -> None:  # a tiny budget for the bomb only
        if path.name == "bomb.xlsx":
            with monkeypatch.context() as patch:
                patch.setattr(reader, "MIN_BUDGET", 0)
                patch.setattr(reader, "BUDGET_PER_FILE_BYTE", 0.01)
                return real_check(path, extents)
        return real_check(path, extents)

    monkeypatch.setattr(reader, "_check_budget", check)
    watcher = Watcher(folder, mode="sync", settle=0.05)
    watcher.run(threading.Event(), once=True)
    assert "compression bomb" in report_of(bomb)["error"]
    assert report_of(far)["counts"]["customers"] == 0
    assert report_of(folder / "crm.xlsx")["counts"]["customers"] == 8
