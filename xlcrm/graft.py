"""Engine sheets (Issues, Duplicates, ChangeLog, Dashboard) built with openpyxl in a scratch
workbook of their own, then grafted into the user's workbook part by part.

The engine owns these sheets, so they are regenerated whole; nothing else is. The graft puts
the new sheet XML at the old sheet's part name (its name, position and id in workbook.xml stay),
drops the old sheet's own parts (its drawing and charts, Tables, notes), copies the scratch
sheet's parts under fresh names, and imports its cell formats into the workbook's styles
(existing formats keep their indexes). A sheet that is missing is added at the end.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

from lxml import etree
from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from . import sparse
from .package import CT, Package, parse, relative, rels_name, resolve, xml_bytes
from .stylesxml import Styles

NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RNS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
SHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
_STYLE = re.compile(rb'(<(?:\w+:)?(?:c|row)\b[^>]*?\ss=")(\d+)(")')
_COL_STYLE = re.compile(rb'(<(?:\w+:)?col\b[^>]*?\sstyle=")(\d+)(")')
_NUMBERED = re.compile(r"\d+(?=\.\w+$)")


def sheet_parts(pkg: Package) -> dict[str, str]:
    """Sheet name -> its part (the reader's lookup, on the package as it is being changed)."""
    return sparse.sheet_parts(pkg)


def build(name: str, fill: Callable[[Worksheet], None]) -> bytes:
    """A one-sheet workbook, saved to bytes, whose sheet `name` is filled by `fill`."""
    scratch = Workbook()
    ws = scratch.active
    assert ws is not None
    ws.title = name
    fill(ws)
    out = io.BytesIO()
    scratch.save(out)
    return out.getvalue()


def graft(pkg: Package, styles: Styles, name: str, built: bytes) -> list[str]:
    """Replace (or add) the sheet `name` of `pkg` by the one sheet of `built`. Returns the
    parts of the old sheet that were dropped on purpose."""
    source = zipfile.ZipFile(io.BytesIO(built))
    source_styles = Styles(source.read("xl/styles.xml"))
    source_part = _only_sheet(source)
    parts = sheet_parts(pkg)
    dropped: list[str] = []
    if name in parts:
        target = parts[name]
        dropped = pkg.drop_tree(target)
    else:
        target = _add_sheet(pkg, name)
    xml = source.read(source_part)
    xml = _STYLE.sub(lambda m: m[1] + str(styles.import_xf(source_styles, int(m[2]))).encode()
                     + m[3], xml)
    xml = _COL_STYLE.sub(lambda m: m[1] + str(styles.import_xf(source_styles, int(m[2])))
                         .encode() + m[3], xml)
    xml = xml.replace(b' tabSelected="1"', b"")
    pkg.put(target, xml)
    pkg.set_override(target, SHEET_TYPE)
    _copy_rels(pkg, source, source_part, target)
    return dropped


def _copy_rels(pkg: Package, source: zipfile.ZipFile, source_part: str, target: str) -> None:
    """Copy `source_part`'s related parts into `pkg` under fresh names, keeping the ids."""
    rels_part = rels_name(source_part)
    if rels_part not in source.namelist():
        return
    types = parse(source.read("[Content_Types].xml"))
    rels = parse(source.read(rels_part))
    for rel in rels:
        if rel.get("TargetMode") == "External":
            continue
        old = resolve(source_part, str(rel.get("Target")))
        new = pkg.fresh_name(_NUMBERED.sub("{}", old) if _NUMBERED.search(old) else old)
        data = source.read(old)
        if rel.get("Type", "").endswith("/table"):
            data = re.sub(rb'(<(?:\w+:)?table\b[^>]*?\bid=")(\d+)(")',
                          lambda m: m[1] + str(_next_table_id(pkg)).encode() + m[3], data,
                          count=1)
        pkg.put(new, data)
        content_type = _type_of(types, old)
        if content_type:
            pkg.set_override(new, content_type)
        _copy_rels(pkg, source, old, new)
        rel.set("Target", relative(target, new))
    pkg.put(rels_name(target), xml_bytes(rels))


def _type_of(types: etree._Element, part: str) -> str | None:
    for item in types:
        if item.tag == f"{CT}Override" and item.get("PartName") == "/" + part:
            return str(item.get("ContentType"))
    return None


def _next_table_id(pkg: Package) -> int:
    ids = [0]
    for name in pkg.names():
        if name.startswith("xl/tables/") and name.endswith(".xml"):
            found = re.search(rb'<(?:\w+:)?table\b[^>]*?\bid="(\d+)"', pkg.read(name))
            if found:
                ids.append(int(found[1]))
    return max(ids) + 1


def _only_sheet(source: zipfile.ZipFile) -> str:
    book = parse(source.read("xl/workbook.xml"))
    rels = {r.get("Id"): r.get("Target") for r in parse(source.read(
        "xl/_rels/workbook.xml.rels"))}
    sheet = next(book.iter(f"{NS}sheet"))
    return resolve("xl/workbook.xml", str(rels[sheet.get(f"{RNS}id")]))


def _add_sheet(pkg: Package, name: str) -> str:
    part = pkg.fresh_name("xl/worksheets/sheet{}.xml")
    rel_id = pkg.add_rel("xl/workbook.xml", SHEET_REL, part)
    book = parse(pkg.read("xl/workbook.xml"))
    sheets = book.find(f"{NS}sheets")
    assert sheets is not None
    ids = [int(s.get("sheetId", "0")) for s in sheets]
    sheet = etree.SubElement(sheets, f"{NS}sheet")
    sheet.set("name", name)
    sheet.set("sheetId", str(max(ids, default=0) + 1))
    sheet.set(f"{RNS}id", rel_id)
    pkg.put("xl/workbook.xml", xml_bytes(book))
    return part

