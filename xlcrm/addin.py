"""Build and install the Excel add-in ``xlcrm.xlam`` from the ribbon add-in template that ships
inside the pinned xlwings.

The build, deterministic (same inputs, same bytes):

1. Every part of xlwings' ``quickstart_addin_ribbon.xlam`` is copied in order, with its own
   timestamps, except two:
2. ``customUI/customUI.xml`` becomes ``xlcrm/addin_src/customUI.xml`` (the ribbon: one
   callback, a ``tag`` per button).
3. In ``xl/vbaProject.bin`` only the stream of the module ``RibbonMyAddin`` changes: its source
   becomes ``xlcrm/addin_src/RibbonMyAddin.bas``, compressed with the MS-OVBA algorithm
   (§2.4.1), written after the module's performance cache, which is left as it was and which
   Office ignores because ``_VBA_PROJECT.Version`` is 0xFFFF (MS-OVBA §2.3.4.1). The source is
   padded with a trailing comment so the stream keeps its size: olefile (BSD) can then
   rewrite it in place, the ``dir`` stream and every other stream stay byte-identical, and no
   compound-file writer is needed (the one found, cfbwrite, is AGPL).

The compressor is ours (about 50 lines): the one on PyPI (ms-ovba 0.0.1) corrupts long modules.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

import olefile

from .errors import AddinError

ADDIN_NAME = "xlcrm.xlam"
MODULE = "RibbonMyAddin"
CUSTOM_UI = "customUI/customUI.xml"
VBA_PART = "xl/vbaProject.bin"
ADDIN_CONTENT_TYPE = "application/vnd.ms-excel.addin.macroEnabled.main+xml"
PAD_PREFIX = b"' xlcrm-pad "  # the comment line that makes the module fill its stream
PAD_FILLER = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" * 8



def template_path() -> Path:
    """xlwings' ribbon add-in template (in the installed, pinned xlwings)."""
    import xlwings

    path = Path(xlwings.__file__).with_name("quickstart_addin_ribbon.xlam")
    if not path.is_file():
        raise AddinError(f"xlwings {xlwings.__version__} has no quickstart_addin_ribbon.xlam")
    return path


def source(name: str) -> bytes:
    return resources.files("xlcrm").joinpath("addin_src", name).read_bytes()


def build(out_dir: Path) -> Path:
    """Write ``xlcrm.xlam`` into `out_dir`; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ADDIN_NAME
    with zipfile.ZipFile(template_path()) as template:
        parts = [(info, template.read(info.filename)) for info in template.infolist()]
    replaced = {CUSTOM_UI: source("customUI.xml")}
    vba = next(data for info, data in parts if info.filename == VBA_PART)
    replaced[VBA_PART] = patch_module(vba, MODULE, source(f"{MODULE}.bas").decode("ascii"))
    temp = target.with_name(f".{ADDIN_NAME}.tmp")
    with zipfile.ZipFile(temp, "w") as out:
        for info, data in parts:
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            out.writestr(copy, replaced.get(info.filename, data))
    os.replace(temp, target)
    return target


# ---------------------------------------------------------------------------------------------
# The VBA project

def module_offsets(vba: bytes) -> dict[str, tuple[str, int]]:
    """Module name -> (stream path, text offset), read from the ``VBA/dir`` stream
    (MS-OVBA §2.3.4.2: records of id, size, data; PROJECTVERSION is the one exception)."""
    with olefile.OleFileIO(io.BytesIO(vba)) as ole:
        data = decompress(ole.openstream("VBA/dir").read())
    modules: dict[str, tuple[str, int]] = {}
    name = stream = ""
    offset = 0
    position = 0
    while position + 6 <= len(data):
        record = int.from_bytes(data[position:position + 2], "little")
        size = int.from_bytes(data[position + 2:position + 6], "little")
        body = data[position + 6:position + 6 + size]
        if record == 0x0009:  # PROJECTVERSION: Reserved(4) = 4, then 6 bytes
            size = 6
        elif record == 0x0019:  # MODULENAME
            name = body.decode("cp1252")
        elif record == 0x001A:  # MODULESTREAMNAME
            stream = body.decode("cp1252")
        elif record == 0x0031:  # MODULEOFFSET
            offset = int.from_bytes(body, "little")
        elif record == 0x002B:  # the end of a module's records
            modules[name] = (f"VBA/{stream}", offset)
        elif record == 0x0010:  # the end of the dir stream
            break
        position += 6 + size
    return modules


def patch_module(vba: bytes, module: str, text: str) -> bytes:
    """`vba` with the source of `module` replaced by `text`; every other stream unchanged."""
    stream, offset = module_offsets(vba)[module]
    with olefile.OleFileIO(io.BytesIO(vba)) as ole:
        old = ole.openstream(stream).read()
    compressed = compress_to_size(text.encode("cp1252"), len(old) - offset)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vbaProject.bin"
        path.write_bytes(vba)
        with olefile.OleFileIO(str(path), write_mode=True) as ole:
            ole.write_stream(stream, old[:offset] + compressed)
        return path.read_bytes()


def compress_to_size(source_bytes: bytes, size: int) -> bytes:
    """Compress `source_bytes` (a module's source, CRLF lines) to exactly `size` bytes by
    adding a trailing comment line of filler.

    Raises:
        AddinError: the source does not fit.
    """
    for length in range(len(PAD_FILLER)):
        padded = source_bytes + (PAD_PREFIX + PAD_FILLER[:length] + b"\r\n" if length else b"")
        packed = compress(padded)
        if len(packed) == size:
            return packed
        if len(packed) > size:
            break
    raise AddinError(f"the module source does not fit its stream ({size} bytes)")


def compress(data: bytes) -> bytes:
    """MS-OVBA compression (§2.4.1.3): a signature byte, then 4096-byte chunks of flag bytes
    and literal or copy tokens."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 4096):
        chunk = data[start:start + 4096]
        body = _compress_chunk(chunk)
        if len(body) > 4096:  # incompressible: a raw chunk of exactly 4096 bytes
            out += (0x3FFF & (4096 - 1) | 0x3000).to_bytes(2, "little")
            out += chunk.ljust(4096, b"\x00")
        else:
            out += ((len(body) + 2 - 3) | 0x3000 | 0x8000).to_bytes(2, "little") + body
    return bytes(out)


def decompress(data: bytes) -> bytes:
    """MS-OVBA decompression (§2.4.1.3.1), the inverse of `compress`."""
    if not data or data[0] != 1:
        raise AddinError("not an MS-OVBA compressed container")
    out = bytearray()
    position = 1
    while position + 2 <= len(data):
        header = int.from_bytes(data[position:position + 2], "little")
        end = min(position + (header & 0x0FFF) + 3, len(data))
        position += 2
        start = len(out)
        if not header & 0x8000:  # a raw chunk
            out += data[position:position + 4096]
            position += 4096
            continue
        while position < end:
            flags = data[position]
            position += 1
            for bit in range(8):
                if position >= end:
                    break
                if not flags & (1 << bit):
                    out.append(data[position])
                    position += 1
                    continue
                token = int.from_bytes(data[position:position + 2], "little")
                position += 2
                bit_count = max((len(out) - start - 1).bit_length(), 4)
                length = (token & (0xFFFF >> bit_count)) + 3
                offset = (token >> (16 - bit_count)) + 1
                for _ in range(length):
                    out.append(out[-offset])
    return bytes(out)


def _compress_chunk(chunk: bytes) -> bytes:
    out = bytearray()
    position, end = 0, len(chunk)
    while position < end:
        flag_at = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if position >= end:
                break
            offset, length = _match(chunk, position)
            if length >= 3:
                bit_count = max((position - 1).bit_length(), 4)
                token = ((offset - 1) << (16 - bit_count)) | (length - 3)
                out += token.to_bytes(2, "little")
                flags |= 1 << bit
                position += length
            else:
                out.append(chunk[position])
                position += 1
        out[flag_at] = flags
    return bytes(out)


def _match(chunk: bytes, position: int) -> tuple[int, int]:
    """The longest earlier match (offset, length) the copy token at `position` can hold."""
    if position == 0:
        return 0, 0
    bit_count = max((position - 1).bit_length(), 4)
    longest = min((0xFFFF >> bit_count) + 3, len(chunk) - position)
    best_offset, best_length = 0, 0
    for candidate in range(position - 1, -1, -1):
        length = 0
        while length < longest and chunk[candidate + length] == chunk[position + length]:
            length += 1
        if length > best_length:
            best_offset, best_length = position - candidate, length
            if length == longest:
                break
    return best_offset, best_length


# ---------------------------------------------------------------------------------------------
# Installing

def install(addin: Path) -> Path:
    """Copy the add-in where Excel loads add-ins at start-up, as ``xlwings addin install``
    does: the folder the running (or a hidden) Excel reports as its start-up path, else the
    usual XLSTART folder.

    Raises:
        AddinError: there is no Excel on this system (Linux).
    """
    folder = xlstart_folder()  # raises on Linux
    try:
        from xlwings.cli import get_addin_dir

        folder = Path(str(get_addin_dir()))  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001, S110 - Excel not reachable: the usual folder will do
        pass
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ADDIN_NAME
    shutil.copyfile(addin, target)
    return target


def xlstart_folder() -> Path:
    home = Path.home()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA") or str(home / "AppData" / "Roaming")
        return Path(appdata) / "Microsoft" / "Excel" / "XLSTART"
    if sys.platform == "darwin":
        return (home / "Library" / "Containers" / "com.microsoft.Excel" / "Data" / "Library"
                / "Application Support" / "Microsoft" / "Office" / "Startup" / "Excel")
    raise AddinError("there is no Excel on Linux to install the add-in into; build it with "
                     "`xlcrm addin build` and copy xlcrm.xlam to a Windows or macOS machine "
                     "(Excel → XLSTART), or run `xlcrm addin install` there")
