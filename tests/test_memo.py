"""A sync of a workbook exactly as the last sync of the day left it reads and writes nothing,
and says what that sync said; anything that could change the outcome runs it in full."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TODAY, edit_cells
from xlcrm import jobs


def shown(result: jobs.SyncResult) -> dict[str, Any]:
    data = result.report.to_json()
    data.pop("checked_at")
    return data


@pytest.fixture
def synced(clean_book: Callable[..., Path]) -> tuple[Path, jobs.SyncResult]:
    path = clean_book()
    edit_cells(path, [("customers", "C-000002", "email", "bad@@x")])  # an issue to remember
    first = jobs.sync_workbook(path, today=TODAY)
    assert first.written and first.report.errors == 1
    return path, first


def no_full_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("a full run")

    monkeypatch.setattr(jobs, "sync_job", refuse)


def test_an_unchanged_workbook_is_not_read_again(synced: tuple[Path, jobs.SyncResult],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path, first = synced
    before = path.read_bytes()
    no_full_runs(monkeypatch)
    again = jobs.sync_workbook(path, today=TODAY)
    assert shown(again) == shown(first) and not again.written and not again.changes
    assert path.read_bytes() == before


@pytest.mark.parametrize("what", ["a save", "a new day", "another run"])
def test_anything_that_could_change_the_outcome_runs_in_full(
        synced: tuple[Path, jobs.SyncResult], monkeypatch: pytest.MonkeyPatch,
        what: str) -> None:
    path, first = synced
    day = TODAY
    if what == "a save":
        edit_cells(path, [("customers", "C-000002", "email", "good@example.com")])
    elif what == "a new day":
        day = TODAY + dt.timedelta(days=1)
    else:  # restore, merge, the ribbon: a run the memo did not see
        jobs.restore_record(path, "C-000003", at=dt.datetime.now(dt.UTC))
    ran: list[bool] = []
    real = jobs.sync_job
    monkeypatch.setattr(jobs, "sync_job", lambda *a, **k: ran.append(True) or real(*a, **k))
    again = jobs.sync_workbook(path, today=day)
    assert ran == [True]
    if what == "a save":
        assert again.report.errors == 0 and shown(again) != shown(first)


def test_the_command_says_there_was_nothing_to_change(
        synced: tuple[Path, jobs.SyncResult], cli: Callable[..., Any]) -> None:
    path, _ = synced
    assert cli("sync", path).exit_code == 1  # today's first sync writes today's dashboard
    result = cli("sync", path)  # the second has nothing to change
    assert result.exit_code == 1  # the remembered error is still an error
    assert "invalid-email" in result.stdout
    assert "Nothing to change: the workbook already holds these results." in result.stdout
