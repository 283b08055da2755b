"""The one way xlcrm writes a workbook: refuse when busy, never half-write, keep a backup.

`write_workbook` loads the workbook with openpyxl, applies edits (callables, see
``xlcrm.edits``), and replaces the file atomically:

1. refuse (WorkbookOpen) while an Excel ``~$`` or LibreOffice ``.~lock`` owner file exists;
2. refuse (UnsafeToWrite) when the file holds parts an openpyxl round trip would drop;
3. refuse (WorkbookChanged) when the content hash differs from the one read;
4. save to a hidden temp file beside it, fsync, check 1 and 3 again, back up the current
   file under ``.xlcrm/<stem>/backups/`` (the newest `BACKUPS_KEPT`), ``os.replace``, fsync
   the folder. Any failure removes the temp file and leaves the workbook as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import openpyxl
from filelock import FileLock, Timeout
from openpyxl import Workbook

from .errors import CorruptWorkbook, UnsafeToWrite, WorkbookChanged, WorkbookOpen, WriteDenied
from .guard import file_sha256, lossy_parts, owner_files, owner_name

Edit = Callable[[Workbook], None]
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


def write_workbook(path: Path, read_sha256: str, edits: Iterable[Edit]) -> Path:
    """Apply `edits` to the workbook at `path` and replace it atomically.

    Args:
        path: the workbook.
        read_sha256: the content hash when its data was read (guards against lost updates).
        edits: functions that change the loaded openpyxl workbook in place.

    Returns:
        The backup of the previous version.

    Raises:
        WorkbookOpen, WorkbookChanged: busy; nothing written.
        UnsafeToWrite: a rewrite would lose parts of the workbook; nothing written.
    """
    check_not_open(path)
    lost = lossy_parts(path)
    if lost:
        raise UnsafeToWrite(f"{path.name} holds {', '.join(lost)}, which a rewrite would drop; "
                            "nothing was written (results are in the report)",
                            zh=f"{path.name} 含有重写会丢失的内容（{', '.join(lost)}）；"
                               "未写入任何内容（结果见报告）")
    check_unchanged(path, read_sha256)
    book = _load(path)
    for edit in edits:
        edit(book)
    temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
    with write_lock(path):
        try:
            book.save(temp)
            _fsync_file(temp)
            check_not_open(path)
            check_unchanged(path, read_sha256)
            backup = make_backup(path)
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except PermissionError as error:
            raise WriteDenied(f"xlcrm cannot replace {path.name}: permission denied "
                              f"({error.filename or path})",
                              zh=f"xlcrm 无法替换 {path.name}：没有权限（{error.filename or path}）"
                              ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return backup


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


def _load(path: Path) -> Workbook:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about extensions it keeps anyway
            return openpyxl.load_workbook(path, keep_vba=path.suffix.lower() == ".xlsm",
                                          keep_links=True, rich_text=True)
    except Exception as error:  # openpyxl raises many types for broken parts
        raise CorruptWorkbook(f"{path.name}: cannot be rewritten ({error})") from None


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
