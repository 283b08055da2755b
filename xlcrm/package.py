"""A workbook as the zip package it is: parts read on demand, a few replaced, the rest copied.

`Package` opens an .xlsx/.xlsm for patching. Parts are read (decompressed) only when asked
for; `put` replaces or adds a part, `drop` removes one. `save` writes a new zip where every
part nobody touched is copied as its compressed stream, byte for byte (Python's zipfile has no
raw copy, so this module writes the zip records itself), and only changed parts are deflated.

Package bookkeeping lives here too: relationships (`rels`, `add_rel`, `drop_rels_to`),
content-type overrides, fresh part names, and the last guard of every write, `check_kept`:
a part that was in the old zip and is not in the new one must have been dropped on purpose.
"""

from __future__ import annotations

import posixpath
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from .errors import CorruptWorkbook, UnsafeToWrite

CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
PR = "{http://schemas.openxmlformats.org/package/2006/relationships}"
CONTENT_TYPES = "[Content_Types].xml"
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_UTF8_FLAG = 0x800


def xml_bytes(root: etree._Element) -> bytes:
    """A part's XML as Office writes it: declaration, UTF-8, standalone."""
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True))


def parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True,
                             remove_blank_text=False)
    return etree.fromstring(data, parser)


def rels_name(part: str) -> str:
    """The relationships part of `part` (xl/worksheets/sheet1.xml ->
    xl/worksheets/_rels/sheet1.xml.rels)."""
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", base + ".rels")


def resolve(source: str, target: str) -> str:
    """The part a relationship of `source` points at."""
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def relative(source: str, part: str) -> str:
    return posixpath.relpath(part, posixpath.dirname(source))


class Package:
    """An open workbook zip; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise CorruptWorkbook(f"{path.name}: damaged workbook ({error})") from None
        self._file: BinaryIO = path.open("rb")
        self.infos = {i.filename: i for i in self._zip.infolist()}
        self.order = [i.filename for i in self._zip.infolist()]
        self.changed: dict[str, bytes] = {}
        self.dropped: set[str] = set()
        self._types: etree._Element | None = None

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def __enter__(self) -> Package:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # parts ------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [n for n in self.order if n not in self.dropped] + [
            n for n in self.changed if n not in self.infos]

    def has(self, name: str) -> bool:
        return name in self.changed or (name in self.infos and name not in self.dropped)

    def read(self, name: str) -> bytes:
        if name in self.changed:
            return self.changed[name]
        if name in self.dropped or name not in self.infos:
            raise KeyError(name)
        return self._zip.read(name)

    def put(self, name: str, data: bytes) -> None:
        self.changed[name] = data
        self.dropped.discard(name)

    def drop(self, name: str) -> None:
        self.changed.pop(name, None)
        if name in self.infos:
            self.dropped.add(name)
        self.drop_override(name)

    def crc(self, name: str) -> int | None:
        """The stored CRC-32 of an unchanged part (None when changed or absent)."""
        if name in self.changed or name not in self.infos or name in self.dropped:
            return None
        return self.infos[name].CRC

    def fresh_name(self, pattern: str) -> str:
        """An unused part name from a pattern with one `{}` for a number
        (xl/drawings/drawing{}.xml)."""
        taken = set(self.names())
        number = 1
        while pattern.format(number) in taken:
            number += 1
        return pattern.format(number)

    # relationships ---------------------------------------------------------------------------

    def rels(self, part: str) -> etree._Element:
        name = rels_name(part)
        if self.has(name):
            return parse(self.read(name))
        return etree.Element(f"{PR}Relationships", nsmap={None: PR[1:-1]})

    def put_rels(self, part: str, root: etree._Element) -> None:
        if len(root):
            self.put(rels_name(part), xml_bytes(root))
        elif self.has(rels_name(part)):
            self.drop(rels_name(part))

    def related(self, part: str, kind: str | None = None) -> list[tuple[str, str]]:
        """(relationship id, target part) of `part`'s internal relationships, of one `kind`
        (the end of the Type URI) if given."""
        out = []
        for rel in self.rels(part):
            if rel.get("TargetMode") == "External":
                continue
            if kind is None or rel.get("Type", "").endswith("/" + kind):
                out.append((str(rel.get("Id")), resolve(part, str(rel.get("Target")))))
        return out

    def add_rel(self, part: str, kind_uri: str, target: str) -> str:
        """Add a relationship from `part` to the part `target`; returns its id."""
        root = self.rels(part)
        ids = {r.get("Id") for r in root}
        number = len(ids) + 1
        while f"rId{number}" in ids:
            number += 1
        rel = etree.SubElement(root, f"{PR}Relationship")
        rel.set("Id", f"rId{number}")
        rel.set("Type", kind_uri)
        rel.set("Target", relative(part, target))
        self.put_rels(part, root)
        return f"rId{number}"

    def drop_rel(self, part: str, rel_id: str) -> None:
        root = self.rels(part)
        for rel in list(root):
            if rel.get("Id") == rel_id:
                root.remove(rel)
        self.put_rels(part, root)

    def drop_tree(self, part: str, keep: Iterable[str] = ()) -> list[str]:
        """Drop `part`, its relationships and every part only it leads to (a sheet's drawing,
        the drawing's charts, the charts' styles...). Returns the parts dropped."""
        kept = set(keep)
        referenced = self._referenced_elsewhere(part)
        dropped = []
        stack = [part]
        while stack:
            current = stack.pop()
            if current in kept or not self.has(current):
                continue
            for _, target in self.related(current):
                if target not in referenced:
                    stack.append(target)
            if self.has(rels_name(current)):
                self.drop(rels_name(current))
            self.drop(current)
            dropped.append(current)
        return dropped

    def _referenced_elsewhere(self, part: str) -> set[str]:
        """Parts that some relationships part other than `part`'s own tree points at."""
        out: set[str] = set()
        for name in self.names():
            if name.endswith(".rels") and name != rels_name(part):
                source = _rels_source(name)
                if source == part:
                    continue
                for rel in parse(self.read(name)):
                    if rel.get("TargetMode") != "External":
                        out.add(resolve(source, str(rel.get("Target"))))
        return out

    # content types ---------------------------------------------------------------------------

    @property
    def types(self) -> etree._Element:
        if self._types is None:
            self._types = parse(self.read(CONTENT_TYPES))
        return self._types

    def content_type(self, part: str) -> str | None:
        for item in self.types:
            if item.tag == f"{CT}Override" and item.get("PartName") == "/" + part:
                return str(item.get("ContentType"))
        extension = part.rsplit(".", 1)[-1]
        for item in self.types:
            if item.tag == f"{CT}Default" and item.get("Extension", "").lower() == extension:
                return str(item.get("ContentType"))
        return None

    def set_override(self, part: str, content_type: str) -> None:
        self.drop_override(part)
        item = etree.SubElement(self.types, f"{CT}Override")
        item.set("PartName", "/" + part)
        item.set("ContentType", content_type)
        self._types_changed()

    def ensure_default(self, extension: str, content_type: str) -> None:
        for item in self.types:
            if item.tag == f"{CT}Default" and item.get("Extension", "").lower() == extension:
                return
        item = etree.Element(f"{CT}Default")
        item.set("Extension", extension)
        item.set("ContentType", content_type)
        self.types.insert(0, item)
        self._types_changed()

    def drop_override(self, part: str) -> None:
        if part == CONTENT_TYPES or (self._types is None and CONTENT_TYPES not in self.infos):
            return
        for item in list(self.types):
            if item.tag == f"{CT}Override" and item.get("PartName") == "/" + part:
                self.types.remove(item)
                self._types_changed()

    def _types_changed(self) -> None:
        self.changed[CONTENT_TYPES] = b""  # serialised in save()

    # writing ---------------------------------------------------------------------------------

    def check_kept(self, meant: Iterable[str]) -> None:
        """The last guard: every part of the old zip is in the new one, unless it was dropped
        on purpose (`meant`)."""
        lost = sorted((self.dropped - set(meant)) - set(self.changed))
        if lost:
            raise UnsafeToWrite(f"{self.path.name}: the write would lose {', '.join(lost[:5])}; "
                                "nothing was written",
                                zh=f"{self.path.name}：写入会丢失 {', '.join(lost[:5])}；"
                                   "未写入任何内容")

    def save(self, dest: Path) -> None:
        """Write the package to `dest`: untouched parts copied compressed as they are."""
        if CONTENT_TYPES in self.changed:
            self.changed[CONTENT_TYPES] = xml_bytes(self.types)
        entries: list[tuple[str, int, int, int, int, int, int]] = []
        with dest.open("wb") as out:
            for name in self.names():
                offset = out.tell()
                if name in self.changed:
                    data = self.changed[name]
                    method, crc, size = zipfile.ZIP_DEFLATED, zlib.crc32(data), len(data)
                    packer = zlib.compressobj(_level(data), zlib.DEFLATED, -15)
                    body = packer.compress(data) + packer.flush()
                    stamp = _dos_time(time.localtime()[:6])
                else:
                    info = self.infos[name]
                    method, crc, size = info.compress_type, info.CRC, info.file_size
                    body = self._raw(info)
                    stamp = _dos_time(info.date_time)
                encoded = name.encode("utf-8")
                flags = _UTF8_FLAG if not name.isascii() else 0
                if len(body) >= 0xFFFFFFFF or size >= 0xFFFFFFFF or offset >= 0xFFFFFFFF:
                    raise UnsafeToWrite(f"{self.path.name}: a part over 4 GB; nothing written")
                out.write(_LOCAL.pack(0x04034B50, 20, flags, method, stamp[1], stamp[0], crc,
                                      len(body), size, len(encoded), 0))
                out.write(encoded)
                out.write(body)
                entries.append((name, flags, method, crc, len(body), size, offset))
            start = out.tell()
            for name, flags, method, crc, csize, size, offset in entries:
                encoded = name.encode("utf-8")
                stamp = (_dos_time(self.infos[name].date_time) if name in self.infos
                         and name not in self.changed else _dos_time(time.localtime()[:6]))
                out.write(_CENTRAL.pack(0x02014B50, 20, 20, flags, method, stamp[1], stamp[0],
                                        crc, csize, size, len(encoded), 0, 0, 0, 0, 0, offset))
                out.write(encoded)
            end = out.tell()
            out.write(_END.pack(0x06054B50, 0, 0, len(entries), len(entries), end - start,
                                start, 0))

    def _raw(self, info: zipfile.ZipInfo) -> bytes:
        """A member's compressed bytes, as stored."""
        data = stored_bytes(self._file, info)
        if data is None:
            raise CorruptWorkbook(f"{self.path.name}: damaged zip entry {info.filename}")
        return data


def _level(data: bytes) -> int:
    """The deflate level of a part the writer changed: zlib's default, 6; 3 for a part over
    8 MB (a data sheet of some 20k rows and more), where it is twice as fast for an 11 %
    bigger part (a 60 MB sheet: 0.45 s instead of 1.0 s). Excel's own files compress no
    tighter than level 1 does (the Excel-made files in shared/data: 48.0 KB, level 1 48.8 KB,
    level 6 42.9 KB), and Excel's next save deflates every part its own way anyway."""
    return 3 if len(data) > 8 << 20 else 6


def stored_bytes(stream: BinaryIO, info: zipfile.ZipInfo) -> bytes | None:
    """A zip member's bytes as stored (compressed), read from `stream` past its local header;
    None when no local header is where the central directory says."""
    stream.seek(info.header_offset)
    fields = _LOCAL.unpack(stream.read(_LOCAL.size))
    if fields[0] != 0x04034B50:
        return None
    stream.seek(info.header_offset + _LOCAL.size + fields[9] + fields[10])
    return stream.read(info.compress_size)


def _rels_source(rels: str) -> str:
    folder, base = posixpath.split(rels)
    return posixpath.join(posixpath.dirname(folder), base[:-len(".rels")])


def _dos_time(stamp: tuple[int, ...]) -> tuple[int, int]:
    year, month, day, hour, minute, second = stamp[:6]
    year = max(year, 1980)
    return ((year - 1980) << 9 | month << 5 | day, hour << 11 | minute << 5 | second // 2)

