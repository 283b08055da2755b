"""Grafting the parts of workbooks saved by real Excel (shared/data/excel-made) into an xlcrm
workbook, for the tests that show a write keeps them.

`graft_excel` copies every sheet of the Excel file into the xlcrm workbook (renamed
"X<n> <name>"), with every part reachable from it (drawings, images, charts, notes, Tables,
controls...), the workbook-level parts it needs (cell metadata and rich values of in-cell
images, the feature property bag of cell checkboxes, a VBA project), their relationships and
content types, its cell formats imported into the workbook's styles and its shared strings
written inline. With `attach`, the first sheet's drawing and notes are also attached to the
Customers sheet itself (a logo on the sheet xlcrm patches, a person's notes beside xlcrm's).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from xlcrm.graft import _STYLE, _next_table_id, sheet_parts
from xlcrm.package import CT, Package, parse, relative, rels_name, resolve, xml_bytes
from xlcrm.sheetxml import NS, RNS, SheetXml, place
from xlcrm.stylesxml import Styles

EXCEL_MADE = Path(__file__).parent / "data" / "excel-made"  # copied from shared/data
SHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
CHARTSHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/chartsheet"
WORKBOOK_LEVEL_SKIP = ("/worksheet", "/chartsheet", "/styles", "/theme", "/sharedStrings",
                       "/calcChain")
_SHARED = re.compile(rb'<c\b([^>]*?)\bt="s"([^>]*)>\s*<v>(\d+)</v>\s*</c>')
_DXF = re.compile(rb'(\b\w*[dD]xfId=")(\d+)(")')
_NUMBERED = re.compile(r"\d+(?=\.\w+$)")


def _strings(source: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in source.namelist():
        return []
    root = parse(source.read("xl/sharedStrings.xml"))
    return ["".join(t.text or "" for t in si.iter(f"{NS}t")) for si in root]


class _Copier:
    def __init__(self, pkg: Package, source: zipfile.ZipFile, styles: Styles,
                 source_styles: Styles) -> None:
        self.pkg, self.source = pkg, source
        self.styles, self.source_styles = styles, source_styles
        self.types = parse(source.read("[Content_Types].xml"))
        self.copied: dict[str, str] = {}  # source part -> target part

    def content_type(self, part: str) -> str | None:
        for item in self.types:
            if item.tag == f"{CT}Override" and item.get("PartName") == "/" + part:
                return str(item.get("ContentType"))
        return None

    def defaults(self) -> None:
        for item in self.types:
            if item.tag == f"{CT}Default":
                self.pkg.ensure_default(str(item.get("Extension")), str(item.get("ContentType")))

    def copy(self, part: str, data: bytes | None = None, fresh: bool = True) -> str:
        """Copy a part and (recursively) what it leads to; returns its name in the target."""
        if part in self.copied and data is None:
            return self.copied[part]
        target = (self.pkg.fresh_name(_NUMBERED.sub("{}", part)) if fresh and _NUMBERED.search(
            part) else part)
        if not fresh and self.pkg.has(target):
            return target
        self.copied[part] = target
        body = self.source.read(part) if data is None else data
        if part.startswith("xl/tables/"):
            body = _dxfs(body, self.styles, self.source_styles)
            body = re.sub(rb'(<table\b[^>]*?\bid=")(\d+)(")',
                          lambda m: m[1] + str(_next_table_id(self.pkg)).encode() + m[3], body,
                          count=1)
            body = re.sub(rb'((?:displayName|name)=")([^"]+)(")',
                          lambda m: m[1] + b"X_" + m[2] + m[3], body, count=2)
        self.pkg.put(target, body)
        kind = self.content_type(part)
        if kind:
            self.pkg.set_override(target, kind)
        rels = rels_name(part)
        if rels in self.source.namelist():
            root = parse(self.source.read(rels))
            for rel in root:
                if rel.get("TargetMode") == "External":
                    continue
                inner = resolve(part, str(rel.get("Target")))
                if inner in self.source.namelist():
                    rel.set("Target", relative(target, self.copy(inner)))
            self.pkg.put(rels_name(target), xml_bytes(root))
        return target


def graft_excel(target: Path, source_path: Path, out: Path, attach: bool = True) -> None:
    """See the module docstring. `out` gets the result; `target` is left as it was."""
    source = zipfile.ZipFile(source_path)
    pkg = Package(target)
    styles = Styles(pkg.read("xl/styles.xml"))
    source_styles = Styles(source.read("xl/styles.xml"))
    strings = _strings(source)
    copier = _Copier(pkg, source, styles, source_styles)
    copier.defaults()
    book = parse(source.read("xl/workbook.xml"))
    book_rels = {r.get("Id"): r for r in parse(source.read("xl/_rels/workbook.xml.rels"))}
    for rel in book_rels.values():  # workbook-level parts: metadata, rich values, VBA...
        kind = str(rel.get("Type"))
        if kind.endswith(WORKBOOK_LEVEL_SKIP):
            continue
        part = resolve("xl/workbook.xml", str(rel.get("Target")))
        copied = copier.copy(part, fresh=False)
        pkg.add_rel("xl/workbook.xml", kind, copied)
        if kind.endswith("/vbaProject"):
            pkg.set_override("xl/workbook.xml",
                             "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    target_book = parse(pkg.read("xl/workbook.xml"))
    sheets = target_book.find(f"{NS}sheets")
    assert sheets is not None
    first_sheet: str | None = None
    for number, sheet in enumerate(book.iter(f"{NS}sheet"), start=1):
        rel = book_rels[sheet.get(f"{RNS}id")]
        part = resolve("xl/workbook.xml", str(rel.get("Target")))
        data = source.read(part)
        data = _SHARED.sub(lambda m: b"<c" + m[1] + b't="inlineStr"' + m[2] + b"><is><t>"
                           + escape(strings[int(m[3])]).encode() + b"</t></is></c>", data)
        data = _STYLE.sub(lambda m: m[1] + str(styles.import_xf(source_styles, int(m[2])))
                          .encode() + m[3], data)
        data = data.replace(b' tabSelected="1"', b"")
        data = _dxfs(data, styles, source_styles)
        copied = copier.copy(part, data)
        rel_id = pkg.add_rel("xl/workbook.xml", str(rel.get("Type")), copied)
        entry = etree.SubElement(sheets, f"{NS}sheet")
        entry.set("name", f"X{number} {sheet.get('name')}"[:31])
        entry.set("sheetId", str(max(int(s.get("sheetId", "0")) for s in sheets) + 1))
        entry.set(f"{RNS}id", rel_id)
        if first_sheet is None and str(rel.get("Type")).endswith("/worksheet"):
            first_sheet = part
    pkg.put("xl/workbook.xml", xml_bytes(target_book))
    pkg.put("xl/styles.xml", styles.bytes())
    if attach and first_sheet is not None:
        _attach(pkg, copier, source, first_sheet, styles)
    pkg.save(out)
    pkg.close()


def _attach(pkg: Package, copier: _Copier, source: zipfile.ZipFile, sheet_part: str,
            styles: Styles) -> None:
    """Attach the first sheet's drawing and notes to the Customers sheet."""
    rels = rels_name(sheet_part)
    if rels not in source.namelist():
        return
    customers = sheet_parts(pkg)["Customers"]
    xml = SheetXml(pkg.read(customers), styles)
    frame = xml.frame()
    source_sheet = parse(source.read(sheet_part))
    for rel in parse(source.read(rels)):
        kind = str(rel.get("Type"))
        element = None
        if kind.endswith("/drawing"):
            element = "drawing"
        elif kind.endswith("/vmlDrawing"):
            legacy = source_sheet.find(f"{NS}legacyDrawing")
            if legacy is None or legacy.get(f"{RNS}id") != rel.get("Id"):
                continue  # a header image's drawing (legacyDrawingHF) stays on its sheet
            element = "legacyDrawing"
        elif not kind.endswith("/comments"):
            continue
        copier.copied.pop(resolve(sheet_part, str(rel.get("Target"))), None)
        target = copier.copy(resolve(sheet_part, str(rel.get("Target"))))
        rel_id = pkg.add_rel(customers, kind, target)
        if element is not None and frame.find(f"{NS}{element}") is None:
            node = etree.Element(f"{NS}{element}", nsmap={"r": RNS[1:-1]})
            node.set(f"{RNS}id", rel_id)
            place(frame, node)
    xml.set_frame(frame)
    pkg.put(customers, xml.apply())


def _dxfs(data: bytes, styles: Styles, source: Styles) -> bytes:
    """Differential formats (of conditional formats and Tables) imported into `styles`."""
    return _DXF.sub(lambda m: m[1] + str(styles.import_dxf(source, int(m[2]))).encode() + m[3],
                    data)


def excel_made() -> list[Path]:
    return sorted(p for p in EXCEL_MADE.glob("*.xls*"))
