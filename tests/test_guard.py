"""Hostile and broken inputs: a clear one-line error, exit 2, bounded time and memory."""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from msoffcrypto.format.ooxml import OOXMLFile

from tests.conftest import env_without_debug
from xlcrm.guard import owner_name

MEMORY_LIMIT = 1536 * 1024**2  # the child process may not grow past this
TIME_LIMIT = 120  # seconds; a hang fails the test instead of the CI run


def run_limited(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child with an address-space cap, as a user's machine would."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run([sys.executable, "-m", "xlcrm", *map(str, args)], capture_output=True,
                          text=True, timeout=TIME_LIMIT, preexec_fn=cap, env=env_without_debug())


def rebuild(source: Path, dest: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            out.writestr(item.filename, replace.pop(item.filename, None) or src.read(item))
        for name, data in replace.items():
            out.writestr(name, data)
    return dest


def assert_refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xlcrm: ")
    assert words in lines[0]


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "crm.xlsx"
    path.write_text("Name,Phone\nAcme,123\n", encoding="utf-8")
    assert_refused(run_limited("validate", path), "not an Excel workbook")


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "crm.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert_refused(run_limited("validate", path), "not an Excel workbook")


def test_truncated_zip(clean_book: Callable[..., Path]) -> None:
    path = clean_book()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_refused(run_limited("validate", path), "damaged")


def test_zip_bomb_is_refused_before_parsing(clean_book: Callable[..., Path],
                                            tmp_path: Path) -> None:
    path = clean_book()
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename != "xl/sharedStrings.xml":
                out.writestr(item.filename, src.read(item))
        with out.open("xl/sharedStrings.xml", "w") as part:
            part.write(b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/'
                       b'spreadsheetml/2006/main">')
            chunk = b"<si><t>aaaaaaaaaaaaaaaa</t></si>" * 32768
            for _ in range(300):  # ~300 MB expanded, under 1 MB on disk
                part.write(chunk)
            part.write(b"</sst>")
    assert bomb.stat().st_size < 2 * 1024**2
    assert_refused(run_limited("validate", bomb), "zip bomb")


def test_billion_laughs_is_refused(clean_book: Callable[..., Path], tmp_path: Path) -> None:
    path = clean_book()
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    with zipfile.ZipFile(path) as src:
        workbook = src.read("xl/workbook.xml").decode()
    hostile = workbook.replace("<workbook", f"<!DOCTYPE workbook [{entities}]><workbook", 1)
    hostile = hostile.replace("<workbookPr", "<workbookPr codeName=\"&lol9;\"", 1)
    laughs = rebuild(path, tmp_path / "laughs.xlsx", {"xl/workbook.xml": hostile.encode()})
    assert_refused(run_limited("validate", laughs), "entities")


def test_dtd_hidden_behind_a_long_comment_is_refused(clean_book: Callable[..., Path],
                                                     tmp_path: Path) -> None:
    path = clean_book()
    with zipfile.ZipFile(path) as src:
        workbook = src.read("xl/workbook.xml").decode()
    padded = workbook.replace(
        "<workbook", "<!--" + "x" * 100_000 + '--><!DOCTYPE w [<!ENTITY a "b">]><workbook', 1)
    sneaky = rebuild(path, tmp_path / "sneaky.xlsx", {"xl/workbook.xml": padded.encode()})
    assert_refused(run_limited("validate", sneaky), "entities")


def test_encrypted_workbook(clean_book: Callable[..., Path], tmp_path: Path) -> None:
    path = clean_book()
    locked = tmp_path / "locked.xlsx"
    with path.open("rb") as plain, locked.open("wb") as out:
        OOXMLFile(plain).encrypt("secret", out)
    assert_refused(run_limited("validate", locked), "password-protected")


def test_missing_file_and_missing_sheet(clean_book: Callable[..., Path],
                                        tmp_path: Path) -> None:
    assert_refused(run_limited("validate", tmp_path / "nope.xlsx"), "no such workbook")
    path = clean_book()
    import openpyxl

    book = openpyxl.load_workbook(path)
    del book["Interactions"]
    book.save(path)
    assert_refused(run_limited("sync", path), "Interactions / 跟进记录")


def test_owner_name_from_lock_files(tmp_path: Path) -> None:
    excel = tmp_path / "~$crm.xlsx"
    name = "张伟"
    data = bytearray(b" " * 165)
    ansi = name.encode("gbk")
    data[0] = len(ansi)
    data[1:1 + len(ansi)] = ansi
    data[55:57] = len(name).to_bytes(2, "little")
    data[57:57 + 2 * len(name)] = name.encode("utf-16-le")
    excel.write_bytes(bytes(data))
    assert owner_name(excel) == "张伟"
    office = tmp_path / ".~lock.crm.xlsx#"
    office.write_text("Li Na,lina,PC-7,25.11.2026 10:00,file:///x;", encoding="utf-8")
    assert owner_name(office) == "Li Na"


def test_guard_reads_in_memory_cheaply() -> None:
    """A sanity check of the bomb constants: a real 100k-row sheet is far below the ratio cap."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        rows = "".join(f'<row r="{i}"><c r="A{i}" t="s"><v>{i % 977}</v></c>'
                       f'<c r="B{i}"><v>{i * 37.5}</v></c></row>' for i in range(1, 100_001))
        archive.writestr("xl/worksheets/sheet1.xml", rows)
    info = zipfile.ZipFile(buffer).getinfo("xl/worksheets/sheet1.xml")
    from xlcrm.guard import MAX_RATIO

    assert info.file_size / info.compress_size < MAX_RATIO / 4
