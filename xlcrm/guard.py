"""Checks made before a workbook is parsed or written: what kind of file it is, whether it is
hostile, who has it open, and whether a rewrite would lose parts of it."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

from .errors import (
    CorruptWorkbook,
    EncryptedWorkbook,
    HostileWorkbook,
    NotAWorkbook,
    WorkbookNotFound,
)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_UNCOMPRESSED = 1024**3  # a real CRM workbook is far below this (L: 265 MB)
MAX_RATIO = 60  # deflated XML of real sheets stays at 5-15; zip bombs are 100 and more
RATIO_FLOOR = 16 * 1024**2  # parts smaller than this cannot hurt, whatever their ratio
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
PROLOGUE_LIMIT = 64 * 1024
_ROOT = re.compile(rb"<[A-Za-z_]")


def check_workbook_file(path: Path) -> None:
    """Refuse anything that is not a sane .xlsx/.xlsm zip, before any parser sees it.

    Raises:
        WorkbookNotFound, NotAWorkbook, EncryptedWorkbook, CorruptWorkbook, HostileWorkbook
    """
    if not path.is_file():
        raise WorkbookNotFound(f"{path}: no such workbook", zh=f"{path}：工作簿不存在")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head == OLE_MAGIC:
        raise EncryptedWorkbook(f"{path.name}: {EncryptedWorkbook.__doc__}",
                                zh=f"{path.name}：工作簿有密码保护（或是旧的 .xls 文件）；"
                                   "请在 Excel 中另存为无密码的 .xlsx")
    if not head.startswith(b"PK"):
        raise NotAWorkbook(f"{path.name}: not an Excel workbook (.xlsx or .xlsm)",
                           zh=f"{path.name}：不是 Excel 工作簿（.xlsx 或 .xlsm）")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = {i.filename for i in infos}
            if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
                raise NotAWorkbook(f"{path.name}: a zip file, but not an Excel workbook",
                                   zh=f"{path.name}：是 zip 文件，但不是 Excel 工作簿")
            total = sum(i.file_size for i in infos)
            if total > MAX_UNCOMPRESSED:
                raise HostileWorkbook(f"{path.name}: expands to {total >> 20} MB; refused",
                                      zh=f"{path.name}：解压后达 {total >> 20} MB；已拒绝")
            for info in infos:
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                    raise HostileWorkbook(
                        f"{path.name}: part {info.filename} expands {ratio:.0f}-fold "
                        "(zip bomb?); refused")
            for info in infos:
                if info.filename.endswith((".xml", ".rels", ".vml")) and info.file_size:
                    with archive.open(info) as part:
                        start = part.read(PROLOGUE_LIMIT)
                    if _hostile_prologue(start):
                        raise HostileWorkbook(
                            f"{path.name}: part {info.filename} declares XML entities; refused")
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as error:
        raise CorruptWorkbook(f"{path.name}: damaged workbook ({error})",
                              zh=f"{path.name}：工作簿已损坏（{error}）") from None


def _hostile_prologue(start: bytes) -> bool:
    """A DTD (the root of entity-expansion attacks) before the root element, or a prologue too
    long to see the root element at all. Real Office parts never carry a DTD."""
    root = _ROOT.search(start)
    prologue = start[:root.start()] if root else start
    return b"<!DOCTYPE" in prologue or b"<!ENTITY" in prologue or root is None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Owner (lock) files: Excel's ~$NAME and LibreOffice's .~lock.NAME#

def owner_files(path: Path) -> list[Path]:
    """The owner files that say someone has `path` open (Excel or LibreOffice)."""
    name = path.name
    candidates = [f"~${name}", f".~lock.{name}#"]  # Excel keeps the whole name (Word does not)
    return [path.with_name(c) for c in candidates if path.with_name(c).exists()]


def owner_name(owner_file: Path) -> str | None:
    """The user named in an owner file, if it can be read."""
    try:
        data = owner_file.read_bytes()[:4096]
    except OSError:
        return None
    if owner_file.name.startswith(".~lock."):
        text = data.decode("utf-8", "replace")
        return text.split(",", 1)[0].strip() or None
    if len(data) >= 57:  # Excel: UTF-16 copy of the name after the ANSI block
        length = int.from_bytes(data[55:57], "little")
        if 0 < length <= 52 and len(data) >= 57 + 2 * length:
            return data[57:57 + 2 * length].decode("utf-16-le", "replace").strip() or None
    if data:
        length = data[0]
        if 0 < length <= 52:
            return data[1:1 + length].decode("gbk", "replace").strip() or None
    return None


# ---------------------------------------------------------------------------------------------
# Parts an openpyxl load-and-save would drop (see shared notes/excel-files-facts.md)

_LOSSY_FOLDERS = {
    "xl/ctrlProps/": "form controls",
    "xl/slicers/": "slicers",
    "xl/slicerCaches/": "slicers",
    "xl/timelines/": "timelines",
    "xl/timelineCaches/": "timelines",
    "xl/threadedComments/": "threaded comments",
    "customXml/": "custom XML parts",
    "xl/activeX/": "ActiveX controls",
}
_X14 = re.compile(rb"<x14:(conditionalFormattings?|dataValidations?|sparklineGroups?|slicerList)")
_SHAPES = re.compile(rb"<xdr:(sp|grpSp|cxnSp)[ >]")


def lossy_parts(path: Path) -> list[str]:
    """What a rewrite of `path` would lose, as short descriptions (empty when nothing)."""
    found: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for name in names:
            for folder, what in _LOSSY_FOLDERS.items():
                if name.startswith(folder):
                    found.add(what)
            if name.startswith("xl/drawings/") and name.endswith(".xml"):
                if _SHAPES.search(archive.read(name)):
                    found.add("shapes or text boxes")
            elif re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name):
                if _scan(archive, name, b"<extLst", _X14):
                    found.add("Excel 2010+ extensions (data bars, x14 validation, sparklines)")
        if path.suffix.lower() != ".xlsm" and "xl/vbaProject.bin" in names:
            found.add("macros (save the workbook as .xlsm)")
        if any(n.startswith("xl/media/") for n in names):
            try:
                import PIL  # noqa: F401  openpyxl keeps images only with Pillow
            except ImportError:
                found.add("images")
    return sorted(found)


def _scan(archive: zipfile.ZipFile, name: str, marker: bytes, pattern: re.Pattern[bytes]) -> bool:
    """Stream one part, looking for `pattern` after the first `marker` (cheap on big sheets)."""
    tail = b""
    seen = False
    with archive.open(name) as part:
        for chunk in iter(lambda: part.read(1 << 20), b""):
            block = tail + chunk
            if not seen and marker in block:
                seen = True
            if seen and pattern.search(block):
                return True
            tail = block[-256:]
    return False
