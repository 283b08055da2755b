"""Notes (legacy comments) at the part level: xlcrm's own notes replaced, everyone else's kept.

A sheet's notes live in two parts: the comments part (the texts, with authors) and a legacy
VML drawing (one hidden shape per note, which says where it pops up). The VML drawing may also
hold a person's Form Control buttons and check boxes, and Excel's VML is not always well-formed
XML, so it is edited as text: only shapes of type Note at the cells of xlcrm's removed notes
are cut out, and new note shapes are added before its end. Notes by other authors stay as they
are, and a cell that has a person's note gets no xlcrm note (the conditional format still
marks it).
"""

from __future__ import annotations

import re

from lxml import etree
from openpyxl.utils.cell import column_index_from_string

from .package import Package, parse, xml_bytes
from .sheetxml import NS, RNS, place

AUTHOR = "xlcrm"
MAX_NOTES = 10_000  # notes are heavy; past this only the conditional format marks a cell
COMMENTS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
VML_TYPE = "application/vnd.openxmlformats-officedocument.vmlDrawing"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_REF = re.compile(r"([A-Z]+)(\d+)")
_SHAPE = re.compile(rb"<v:shape\b(?:(?!<v:shape\b).)*?</v:shape>", re.S)
_ROW = re.compile(rb"<x:Row>(\d+)</x:Row>")
_COL = re.compile(rb"<x:Column>(\d+)</x:Column>")
_IDS = re.compile(rb"_x0000_s(\d+)")
_SHAPETYPE = (b'<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" '
              b'path="m,l,21600r21600,l21600,xe"><v:stroke joinstyle="miter"/>'
              b'<v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>')


def set_notes(pkg: Package, sheet_part: str, sheet: etree._Element,
              notes: dict[str, str]) -> None:
    """Make xlcrm's notes of one sheet exactly `notes` (cell -> text). `sheet` is the
    worksheet's XML without its rows (its legacyDrawing reference may be added)."""
    comments_part = next((t for _, t in pkg.related(sheet_part, "comments")), None)
    if comments_part is None and not notes:
        return
    if comments_part is not None:
        comments = parse(pkg.read(comments_part))
    else:
        comments = etree.Element(f"{NS}comments", nsmap={None: NS[1:-1]})
        etree.SubElement(comments, f"{NS}authors")
        etree.SubElement(comments, f"{NS}commentList")
    authors = comments.find(f"{NS}authors")
    listing = comments.find(f"{NS}commentList")
    assert authors is not None and listing is not None
    names = [a.text or "" for a in authors]
    ours = names.index(AUTHOR) if AUTHOR in names else None
    removed: set[str] = set()
    theirs: set[str] = set()
    for comment in list(listing):
        ref = str(comment.get("ref"))
        if ours is not None and comment.get("authorId") == str(ours):
            listing.remove(comment)
            removed.add(ref)
        else:
            theirs.add(ref)
    if ours is None:
        ours = len(names)
        etree.SubElement(authors, f"{NS}author").text = AUTHOR
    added: list[str] = []
    for ref, text in notes.items():
        if ref in theirs or len(added) >= MAX_NOTES:
            continue
        comment = etree.SubElement(listing, f"{NS}comment")
        comment.set("ref", ref)
        comment.set("authorId", str(ours))
        run = etree.SubElement(etree.SubElement(comment, f"{NS}text"), f"{NS}r")
        body = etree.SubElement(run, f"{NS}t")
        body.text = text
        body.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
        added.append(ref)
    if not removed and not added:
        return
    vml_part = _vml(pkg, sheet_part, sheet)
    pkg.put(vml_part, _edit_vml(pkg, pkg.read(vml_part), removed, added))
    if comments_part is None:
        comments_part = pkg.fresh_name("xl/comments{}.xml")
        pkg.add_rel(sheet_part, REL + "comments", comments_part)
        pkg.set_override(comments_part, COMMENTS_TYPE)
    pkg.put(comments_part, xml_bytes(comments))


def _vml(pkg: Package, sheet_part: str, sheet: etree._Element) -> str:
    """The sheet's legacy drawing part, created (and referenced) when missing."""
    legacy = sheet.find(f"{NS}legacyDrawing")
    if legacy is not None:
        rel_id = legacy.get(f"{RNS}id")
        for found_id, target in pkg.related(sheet_part):
            if found_id == rel_id:
                return target
    part = pkg.fresh_name("xl/drawings/vmlDrawing{}.vml")
    rel_id = pkg.add_rel(sheet_part, REL + "vmlDrawing", part)
    pkg.ensure_default("vml", VML_TYPE)
    taken = {int(n) for name in pkg.names() if name.endswith(".vml")
             for n in re.findall(rb'data="(\d+)', pkg.read(name))}
    block = max(taken, default=0) + 1
    pkg.put(part, (f'<xml xmlns:v="urn:schemas-microsoft-com:vml" '
                   f'xmlns:o="urn:schemas-microsoft-com:office:office" '
                   f'xmlns:x="urn:schemas-microsoft-com:office:excel">'
                   f'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{block}"/>'
                   f"</o:shapelayout></xml>").encode())
    if legacy is None:
        legacy = etree.Element(f"{NS}legacyDrawing", nsmap={"r": RNS[1:-1]})
        place(sheet, legacy)
    legacy.set(f"{RNS}id", rel_id)
    return part


def _edit_vml(pkg: Package, vml: bytes, removed: set[str], added: list[str]) -> bytes:
    gone = {_cell(ref) for ref in removed}

    def keep(shape: re.Match[bytes]) -> bytes:
        text = shape[0]
        if b'ObjectType="Note"' not in text:
            return text
        row, col = _ROW.search(text), _COL.search(text)
        if row and col and (int(row[1]), int(col[1])) in gone:
            return b""
        return text

    vml = _SHAPE.sub(keep, vml)
    if not added:
        return vml
    if b'id="_x0000_t202"' not in vml:
        vml = _insert_before_end(vml, _SHAPETYPE)
    block = re.search(rb'data="(\d+)', vml)
    start = max([int(block[1]) * 1024 if block else 1024,
                 *(int(n) for n in _IDS.findall(vml))]) + 1
    shapes = b"".join(_shape(start + index, ref) for index, ref in enumerate(added))
    return _insert_before_end(vml, shapes)


def _insert_before_end(vml: bytes, text: bytes) -> bytes:
    end = vml.rfind(b"</xml>")
    return vml[:end] + text + vml[end:] if end >= 0 else vml + text


def _cell(ref: str) -> tuple[int, int]:
    found = _REF.fullmatch(ref)
    assert found is not None
    return int(found[2]) - 1, column_index_from_string(found[1]) - 1


def _shape(number: int, ref: str) -> bytes:
    row, col = _cell(ref)
    return (f'<v:shape id="_x0000_s{number}" type="#_x0000_t202" '
            f'style="position:absolute;margin-left:59.25pt;margin-top:1.5pt;width:195pt;'
            f'height:68pt;z-index:1;visibility:hidden" fillcolor="#ffffe1" '
            f'o:insetmode="auto"><v:fill color2="#ffffe1"/>'
            f'<v:shadow on="t" color="black" obscured="t"/><v:path o:connecttype="none"/>'
            f'<v:textbox style="mso-direction-alt:auto"><div style="text-align:left"></div>'
            f'</v:textbox><x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/>'
            f"<x:Anchor>{col + 1}, 15, {row}, 2, {col + 4}, 15, {row + 4}, 16</x:Anchor>"
            f"<x:AutoFill>False</x:AutoFill><x:Row>{row}</x:Row><x:Column>{col}</x:Column>"
            f"</x:ClientData></v:shape>").encode()

