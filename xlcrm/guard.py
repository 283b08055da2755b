"""Checks made before a workbook is parsed or written: what kind of file it is, whether it is
hostile, and who has it open."""

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
