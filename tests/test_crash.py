"""Crash safety: `kill -9` at any moment of a sync leaves the old or the new workbook (never a
broken one), a readable backup, and no temp file once the next command has run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import edit_cells, env_without_debug
from xlcrm.jobs import init_workbook
from xlcrm.reader import read_workbook
from xlcrm.writer import TEMP_PREFIX

SYNC = [sys.executable, "-m", "xlcrm", "sync"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sync(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*SYNC, str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env_without_debug())


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_at_any_moment_of_a_sync(tmp_path: Path) -> None:
    path = init_workbook(tmp_path / "crm.xlsx", sample=400, mistakes=True)
    started = time.perf_counter()
    assert sync(path).wait(timeout=300) in (0, 1)  # the first run (baseline) writes
    whole = time.perf_counter() - started
    killed = 0
    for step in range(12):
        edit_cells(path, [("customers", "C-000002", "city", f"City {step}")])
        before = sha(path)
        process = sync(path)
        time.sleep(whole * (0.15 + 0.07 * step))  # across reading, working and writing
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=60)
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None  # the workbook is whole ...
        city = read_workbook(path).sheets["customers"].frame.set_index("customer_id").at[
            "C-000002", "city"]
        assert city == f"City {step}"  # ... and readable: the old version or the new one
        if sha(path) == before:
            assert process.returncode != 0  # unchanged only when the run did not finish
        backups = sorted((path.parent / ".xlcrm" / path.stem / "backups").glob("*.xlsx"))
        assert backups and read_workbook(backups[-1]).counts()["customers"] == 400
        done = subprocess.run([*SYNC, str(path)], capture_output=True, env=env_without_debug(),
                              timeout=300)
        assert done.returncode in (0, 1), done.stderr
        assert not list(path.parent.glob(f"{TEMP_PREFIX}*")), "a temp file was left"
    assert killed >= 6  # most runs were really interrupted
