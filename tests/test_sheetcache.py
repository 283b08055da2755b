"""The sheet cache: a data sheet whose part is unchanged is not parsed again, and nothing that
changes a sheet's values (its XML, the shared strings it uses, the date formats) is missed."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from xlcrm import reader, sheetcache
from xlcrm.reader import read_workbook
from xlcrm.session import FileSession


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The data sheets parsed from their XML (not taken from the cache), by name; every
    sheet is cached whatever its size."""
    monkeypatch.setattr(sheetcache, "MIN_RECORDS", 0)
    names: list[str] = []
    original = reader._read_sheet

    def spy(source: Any, sdef: Any, path: Path) -> Any:
        names.append(source.name)
        return original(source, sdef, path)

    monkeypatch.setattr(reader, "_read_sheet", spy)
    return names


def read(path: Path) -> reader.WorkbookData:
    data = read_workbook(path)
    sheetcache.wait()  # the entries are written by a second process
    return data


def uncached(path: Path, monkeypatch: pytest.MonkeyPatch) -> reader.WorkbookData:
    with monkeypatch.context() as m:
        m.setenv("XLCRM_CACHE_DIR", "off")
        return read_workbook(path)


def same_sheets(a: reader.WorkbookData, b: reader.WorkbookData) -> None:
    for key in a.sheets:
        pd.testing.assert_frame_equal(a.sheets[key].frame, b.sheets[key].frame)
        assert a.sheets[key].columns == b.sheets[key].columns
        assert a.sheets[key].table_last_row == b.sheets[key].table_last_row


def rewrite(path: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite one zip member the way another program would save the file."""
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    parts[member] = change(parts[member])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)


def test_a_second_read_parses_no_sheet_and_gives_the_same_frames(
        clean_book: Callable[..., Path], parsed: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_book("zh", sample=40)
    parsed.clear()
    first = read(path)
    assert len(parsed) <= 3  # (parsed now, or already when init wrote the file)
    parsed.clear()
    second = read(path)
    assert parsed == []  # all three from the cache
    same_sheets(second, first)
    same_sheets(second, uncached(path, monkeypatch))
    second.sheets["customers"].frame.loc[0, "name"] = "changed in memory"  # a job's edit
    assert read(path).sheets["customers"].frame.loc[0, "name"] != "changed in memory"


def test_only_the_edited_sheet_is_parsed_again(clean_book: Callable[..., Path],
                                               parsed: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_book("en", sample=40)
    data = read(path)
    customers = data.sheets["customers"]
    row = int(customers.frame["_row"].iloc[3])
    with FileSession(path) as session:
        session.read()
        session.set_cells(customers.name, [(row, customers.columns["city"], "Xi'an (moved)")])
        session.save()
    parsed.clear()
    after = read(path)
    assert parsed == [customers.name]
    assert "Xi'an (moved)" in set(after.sheets["customers"].frame["city"])
    same_sheets(after, uncached(path, monkeypatch))


_INLINE = re.compile(rb'(<c [^>]*?) t="inlineStr"><is><t(?: [^>]*)?>(.*?)</t></is></c>', re.S)
_SST = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"


def with_shared_strings(path: Path) -> None:
    """Every text cell moved into a shared-strings part, the way Excel stores text."""
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    strings: dict[bytes, int] = {}

    def shared(match: re.Match[bytes]) -> bytes:
        index = strings.setdefault(match.group(2), len(strings))
        return match.group(1) + b' t="s"><v>%d</v></c>' % index

    for name in [n for n in parts if n.startswith("xl/worksheets/sheet")]:
        parts[name] = _INLINE.sub(shared, parts[name])
    items = b"".join(b'<si><t xml:space="preserve">%s</t></si>' % s for s in strings)
    parts["xl/sharedStrings.xml"] = (
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        b'count="%d" uniqueCount="%d">%s</sst>' % (len(strings), len(strings), items))
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>", b'<Relationship Id="rIdSst" Type="%s" '
        b'Target="sharedStrings.xml"/></Relationships>' % _SST)
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)


def _strings(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("xl/sharedStrings.xml")


def test_appended_shared_strings_keep_the_other_sheets_reordered_ones_do_not(
        clean_book: Callable[..., Path], parsed: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_book("en", sample=40)
    before = uncached(path, monkeypatch)
    with_shared_strings(path)
    assert b"<si>" in _strings(path)
    same_sheets(read(path), before)
    parsed.clear()

    # a new text typed in Customers: one string appended, the Customers sheet changed
    rewrite(path, "xl/sharedStrings.xml",
            lambda data: data.replace(b"</sst>", b"<si><t>Typed later</t></si></sst>")
            .replace(b'uniqueCount="', b'uniqueCount="1'))  # the counts change too
    count = _strings(path).count(b"<si>")
    customers = read_workbook(path).sheets["customers"]
    parsed.clear()
    member = reader.sheet_parts(zipfile.ZipFile(path))[customers.name]
    row = int(customers.frame["_row"].iloc[0])
    column = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[customers.columns["city"] - 1]
    rewrite(path, member, lambda data: re.sub(
        rf'<c r="{column}{row}"[^>]*?(/>|>.*?</c>)'.encode(),
        f'<c r="{column}{row}" t="s"><v>{count - 1}</v></c>'.encode(), data, count=1))
    after = read(path)
    assert parsed == [customers.name]  # the other two sheets still from the cache
    assert after.sheets["customers"].frame.loc[0, "city"] == "Typed later"
    same_sheets(after, uncached(path, monkeypatch))

    # the same strings in another order: every sheet that uses them reads them again
    parsed.clear()
    items = re.findall(rb"<si>.*?</si>", _strings(path), re.S)
    assert items[0] != items[1]
    swapped = b"".join([items[1], items[0], *items[2:]])
    rewrite(path, "xl/sharedStrings.xml",
            lambda data: re.sub(rb"<si>.*</si>", lambda _: swapped, data, count=1, flags=re.S))
    after = read(path)
    assert len(parsed) == 3
    same_sheets(after, uncached(path, monkeypatch))


def test_a_changed_date_format_reads_again(clean_book: Callable[..., Path], parsed: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_book("en", sample=40)
    read(path)
    parsed.clear()
    # every date format turned into a plain number format: dates read as serial numbers
    rewrite(path, "xl/styles.xml", lambda data: re.sub(rb'formatCode="[^"]*[dmy][^"]*"',
                                                       b'formatCode="0.00"', data))
    after = read(path)
    assert len(parsed) == 3
    same_sheets(after, uncached(path, monkeypatch))


def test_a_damaged_entry_is_read_again_and_replaced(clean_book: Callable[..., Path],
                                                   parsed: list[str], tmp_path: Path) -> None:
    path = clean_book("en", sample=40)
    first = read(path)
    entries = sorted((tmp_path / ".sheet-cache").glob("*.pickle"))
    assert len(entries) >= 3  # (and those of the file as init first wrote it)
    for entry in entries:
        entry.write_bytes(b"\x80\x05not a pickle")
    parsed.clear()
    same_sheets(read(path), first)
    assert len(parsed) == 3
    parsed.clear()
    read(path)
    assert parsed == []  # written again


def test_off_writes_nothing(clean_book: Callable[..., Path], parsed: list[str],
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLCRM_CACHE_DIR", "off")
    path = clean_book("en", sample=40)
    parsed.clear()
    read(path)
    read(path)
    assert len(parsed) == 6
    assert not (tmp_path / ".sheet-cache").exists()


def test_prune_drops_stale_entries_then_the_oldest_past_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    root = tmp_path / "cache"
    root.mkdir()
    now = time.time()
    for name, age_days, size in [("stale", 30, 10), ("old", 3, 600), ("new", 1, 600)]:
        path = root / f"{name}.pickle"
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age_days * 86400,) * 2)
    monkeypatch.setattr(sheetcache, "MAX_BYTES", 1000)
    sheetcache.prune(root, now)
    assert sorted(p.stem for p in root.glob("*.pickle")) == ["new"]
