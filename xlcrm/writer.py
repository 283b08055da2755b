"""The safety rules of every write (`xlcrm.session.FileSession` applies them):

1. refuse (WorkbookOpen) while an Excel ``~$`` or LibreOffice ``.~lock`` owner file exists;
2. refuse (WorkbookChanged) when the content hash differs from the one read;
3. write a hidden temp file beside it under the workbook's write lock, fsync, check 1 and 2
   again, back up the current file under ``.xlcrm/<stem>/backups/`` (the newest
   `BACKUPS_KEPT`), ``os.replace``, fsync the folder. Any failure removes the temp file and
   leaves the workbook as it was; a temp file left by a killed run is removed by the next
   command (`clean_stale_temps`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import WorkbookChanged, WorkbookOpen, WriteDenied
from .guard import file_sha256, owner_files, owner_name

BACKUPS_KEPT = 10
STATE_DIR = ".xlcrm"
TEMP_PREFIX = ".xlcrm-tmp-"


def state_dir(path: Path) -> Path:
    """The folder beside a workbook where xlcrm keeps its state (backups, history, ...)."""
    return path.parent / STATE_DIR / path.stem


def check_not_open(path: Path) -> None:
    """Raise WorkbookOpen when someone has `path` open (owner file present)."""
    found = owner_files(path)
    if found:
        who = owner_name(found[0])
        by = f" by {who}" if who else ""
        raise WorkbookOpen(f"{path.name} is open{by} ({found[0].name}); nothing was written",
                           zh=f"{path.name} 正被{who or '他人'}打开（{found[0].name}）；"
                              "未写入任何内容")


def check_unchanged(path: Path, sha256: str) -> None:
    if file_sha256(path) != sha256:
        raise WorkbookChanged(f"{path.name} changed since it was read; nothing was written",
                              zh=f"{path.name} 在读取后被修改；未写入任何内容")


def replace_with(path: Path, temp: Path, read_sha256: str, backup: bool = True) -> Path:
    """Put the finished temp file in place of the workbook: fsync it, check again that the
    workbook is not open and not changed, back it up, replace it atomically and fsync the
    folder. Returns the backup (`path` itself when `backup` is off). Call under `write_lock`;
    the caller removes the temp file if this raises.

    Raises:
        WorkbookOpen, WorkbookChanged: busy; nothing written.
        WriteDenied: the system refused the replace; nothing written.
    """
    try:
        fsync_file(temp)
        check_not_open(path)
        check_unchanged(path, read_sha256)
        saved = make_backup(path) if backup else path
        os.replace(temp, path)
        fsync_dir(path.parent)
        return saved
    except PermissionError as error:
        raise WriteDenied(f"xlcrm cannot replace {path.name}: permission denied "
                          f"({error.filename or path})",
                          zh=f"xlcrm 无法替换 {path.name}：没有权限（{error.filename or path}）"
                          ) from None


def write_lock(path: Path) -> FileLock:
    """The lock a write holds while its temp file exists: a temp file whose workbook's lock is
    free was left by a run that died, and may go."""
    folder = state_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / "write.lock")


def make_backup(path: Path, keep: int = BACKUPS_KEPT) -> Path:
    folder = state_dir(path) / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    backup = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.copy2(path, backup)
    backups = sorted(folder.glob(f"{path.stem}.*{path.suffix}"))
    for old in backups[:-keep]:
        old.unlink(missing_ok=True)
    return backup


def clean_stale_temps(folder: Path, workbook: str | None = None) -> list[Path]:
    """Remove the temp files that killed writes left in `folder` (only `workbook`'s, if given):
    those whose workbook nobody is writing now (its write lock is free)."""
    removed = []
    for temp in folder.glob(f"{TEMP_PREFIX}*-{workbook or '*'}"):
        name = temp.name.split("-", 3)[-1]  # .xlcrm-tmp-<token>-<workbook>
        lock = write_lock(folder / name) if (folder / STATE_DIR / Path(name).stem).is_dir() \
            else None
        try:
            if lock is not None:
                lock.acquire(timeout=0)
            with contextlib.suppress(OSError):
                temp.unlink()
                removed.append(temp)
        except Timeout:
            continue  # a write is under way
        finally:
            if lock is not None and lock.is_locked:
                lock.release()
    return removed


def fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
