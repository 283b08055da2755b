"""Data sheets read before, kept so that a sheet whose XML has not changed is not parsed again.

A sync after a one-cell edit used to parse every sheet again: on a workbook of 400k records
most of the time went on the two sheets nobody touched. Here a sheet as read (its `SheetData`)
is stored under a key that covers everything its values depend on:

- the sheet part's bytes, as stored in the zip (compressed: hashing them costs ~2 ms a MB,
  where parsing costs ~200 ms a MB);
- the shared strings, up to the last string the workbook had when the entry was stored: a
  save that only appends strings (Excel after a new text) keeps the entries of the other
  sheets, a save that reorders or drops strings does not;
- the cell formats and number formats (a date is a number with a date format) and the 1904
  date system;
- the sheet's name, its Tables' names, places and headers, the source of the reading code,
  and the versions of Python, pandas and numpy (the pickle format).

Any difference is a miss: the sheet is read as before, and stored again. A damaged entry is a
miss too. Entries live in the user's own cache folder (never beside the workbook, which may
be on a shared folder: an entry is a pickle, and only its owner may write it), one file each,
named by the key; those not used for `KEEP_DAYS` days go, as do the oldest when the folder
passes `MAX_BYTES`. Sheets under `MIN_RECORDS` records are not stored (they parse faster than
an entry loads). `XLCRM_CACHE_DIR` moves the folder; set to `off`, it turns the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import os
import pickle
import re
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lxml import etree

from .package import stored_bytes

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what an entry holds changes
MIN_RECORDS = 5_000
MAX_BYTES = 1024**3
KEEP_DAYS = 14
_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_SECTIONS = re.compile(rb"<(?:\w+:)?(numFmts|cellXfs)\b.*?</(?:\w+:)?\1>", re.S)
_DATE1904 = re.compile(rb"\bdate1904\s*=\s*[\"'](?:1|true)[\"']")


def folder() -> Path | None:
    """Where entries live (None: the cache is off)."""
    chosen = os.environ.get("XLCRM_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "no") else Path(chosen)
    import platformdirs

    return Path(platformdirs.user_cache_dir("xlcrm", appauthor=False)) / "sheets"


@dataclass
class Entry:
    """What is stored for one sheet: the sheet as read, and what the reader measured of it."""

    sheet: Any  # reader.SheetData
    extent: Any  # sparse.Extent | None
    strings_end: int  # the shared strings the sheet could use: bytes of their items
    strings_hash: str  # ... and their hash


class Book:
    """The workbook-wide part of every key, read once per read of a workbook."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.root = folder()
        self._strings: bytes | None = None
        self._pending: dict[str, Entry] = {}
        if self.root is None:
            return
        parts = _workbook_parts(archive)
        styles = _read(archive, parts.get("styles"))
        workbook = _read(archive, "xl/workbook.xml")
        self.common = _digest(
            f"{FORMAT}|{_versions()}".encode(),
            b"|".join(m.group(0) for m in _SECTIONS.finditer(styles)),
            b"1904" if _DATE1904.search(workbook) else b"1900")
        self._strings_part = parts.get("sharedStrings")

    @property
    def on(self) -> bool:
        return self.root is not None

    def strings(self) -> bytes:
        """The shared strings' items (the part after its root's start tag)."""
        if self._strings is None:
            data = _read(self.archive, self._strings_part)
            start = re.search(rb"<(?:\w+:)?sst\b[^>]*>", data)
            self._strings = data[start.end():] if start else b""
        return self._strings

    def key(self, member: str, name: str, tables: list[Any]) -> str | None:
        """The key of a sheet part (None when it cannot be read raw)."""
        raw = _raw(self.path, self.archive, member)
        if raw is None:
            return None
        method = str(self.archive.NameToInfo[member].compress_type).encode()
        return _digest(self.common.encode(), method, name.encode("utf-8"),
                       repr(sorted(tables, key=repr)).encode("utf-8"), raw)

    def load(self, key: str) -> Entry | None:
        """The entry stored under `key`, when its shared strings still read the same."""
        assert self.root is not None
        path = self.root / f"{key}.pickle"
        try:
            with open(path, "rb") as stream:
                entry = pickle.load(stream)
            if not isinstance(entry, Entry):
                raise TypeError(type(entry).__name__)
        except FileNotFoundError:
            return None
        except Exception as error:  # noqa: BLE001 - a damaged entry is a miss
            log.info("sheet cache: %s unreadable (%s); dropped", path.name, error)
            path.unlink(missing_ok=True)
            return None
        strings = self.strings()
        if (len(strings) < entry.strings_end
                or _digest(strings[:entry.strings_end]) != entry.strings_hash):
            return None
        os.utime(path)  # recently used: kept longest
        return entry

    def store(self, key: str, sheet: Any, extent: Any) -> None:
        """Keep a sheet as read, when `flush` is called."""
        if self.root is not None and len(sheet.frame) >= MIN_RECORDS:
            strings = self.strings()
            end = strings.rfind(b"si>") + 3 if b"si>" in strings else 0
            self._pending[key] = Entry(sheet=sheet, extent=extent, strings_end=end,
                                       strings_hash=_digest(strings[:end]))

    def flush(self) -> None:
        """Write the entries `store` was given. Pickling a sheet of 300k records costs ~1.5 s,
        so on Linux with a second core a forked child writes them while this process goes on
        with the sheets (shared by the fork, never copied); elsewhere they are written here.
        Never fails the read: a cache that cannot be written is only slower."""
        if not self._pending or self.root is None:
            return
        entries, self._pending = self._pending, {}
        for done in [c for c in _children if not c.is_alive()]:  # a long-lived watcher
            done.join()
            _children.remove(done)
        if sys.platform == "linux" and (os.cpu_count() or 1) > 1:
            context = multiprocessing.get_context("fork")
            child = context.Process(target=_write, args=(self.root, entries), daemon=False)
            try:
                child.start()  # joined at exit by multiprocessing, or by `wait`
                _children.append(child)
                return
            except OSError:
                pass
        _write(self.root, entries)


_children: list[Any] = []


def wait() -> None:
    """Wait for the entries being written in the background."""
    while _children:
        _children.pop().join()


def _write(root: Path, entries: dict[str, Entry]) -> None:
    for key, entry in entries.items():
        temp: Path | None = None
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".", suffix=".tmp",
                                             delete=False) as out:
                temp = Path(out.name)
                pickle.dump(entry, out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temp, root / f"{key}.pickle")
        except (OSError, pickle.PicklingError) as error:
            log.info("sheet cache not written: %s", error)
            if temp is not None:
                temp.unlink(missing_ok=True)
    try:
        prune(root)
    except OSError as error:
        log.info("sheet cache not pruned: %s", error)


def prune(root: Path, now: float | None = None) -> None:
    """Drop entries unused for KEEP_DAYS days, then the oldest past MAX_BYTES."""
    now = now or time.time()
    entries = []
    for path in root.glob("*.pickle"):
        try:
            stat = path.stat()
        except OSError:
            continue
        if now - stat.st_mtime > KEEP_DAYS * 86400:
            path.unlink(missing_ok=True)
        else:
            entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= MAX_BYTES:
            break
        path.unlink(missing_ok=True)
        total -= size
    for temp in root.glob(".*.tmp"):  # left by a store that was killed
        try:
            if now - temp.stat().st_mtime > 3600:
                temp.unlink(missing_ok=True)
        except OSError:
            continue


_READING_CODE = ("reader.py", "sparse.py", "schema.py", "sheetcache.py")


@functools.cache
def _versions() -> str:
    """The reading code itself (so an entry never outlives a change to how sheets are read,
    released or not), Python, pandas and numpy."""
    here = Path(__file__).parent
    code = _digest(*((here / name).read_bytes() for name in _READING_CODE))
    return f"{code}|{sys.version_info[:3]}|{pd.__version__}|{np.__version__}"


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _read(archive: zipfile.ZipFile, member: str | None) -> bytes:
    if member is None or member not in archive.NameToInfo:
        return b""
    return archive.read(member)


def _workbook_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """'styles' and 'sharedStrings' -> their members, from the workbook's relationships."""
    rels = etree.fromstring(_read(archive, "xl/_rels/workbook.xml.rels") or b"<r/>")
    out = {}
    for rel in rels.iter(f"{_REL_NS}Relationship"):
        kind = rel.get("Type", "").rsplit("/", 1)[-1]
        target = rel.get("Target", "")
        if kind in ("styles", "sharedStrings") and target:
            out[kind] = target.lstrip("/") if target.startswith("/") else (
                os.path.normpath(os.path.join("xl", target)).replace(os.sep, "/"))
    return out


def _raw(path: Path, archive: zipfile.ZipFile, member: str) -> bytes | None:
    """A member's bytes as stored (compressed), read from its own file handle."""
    info = archive.NameToInfo.get(member)
    if info is None:
        return None
    with open(path, "rb") as stream:
        return stored_bytes(stream, info)
