"""The workbook's styles part (xl/styles.xml), extended in place and never rewritten from a
model: a date format for a cell that gets a date, the two fills that mark issues, and the
formats of an engine sheet built elsewhere (`import_xf`). Existing entries keep their indexes,
so every cell of the workbook keeps its look."""

from __future__ import annotations

import copy

from lxml import etree

from .package import parse, xml_bytes
from .sparse import DATE_FORMAT_IDS, is_date_format

NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
DATE_FORMAT, DATETIME_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm"
# the order of styleSheet's children (CT_Stylesheet)
ORDER = ("numFmts", "fonts", "fills", "borders", "cellStyleXfs", "cellXfs", "cellStyles",
         "dxfs", "tableStyles", "colors", "extLst")


class Styles:
    """See the module docstring."""

    def __init__(self, data: bytes | None) -> None:
        self.root = parse(data) if data else _empty()
        self.changed = data is None
        self._dates: dict[tuple[int, bool], int] = {}
        self._imported: dict[tuple[int, int], int] = {}

    def bytes(self) -> bytes:
        return xml_bytes(self.root)

    def _list(self, name: str) -> etree._Element:
        found = self.root.find(f"{NS}{name}")
        if found is None:
            found = etree.Element(f"{NS}{name}")
            found.set("count", "0")
            position = ORDER.index(name)
            index = 0
            for index, child in enumerate(self.root):  # noqa: B007
                tag = etree.QName(child).localname
                if tag in ORDER and ORDER.index(tag) > position:
                    break
            else:
                index = len(self.root)
            self.root.insert(index, found)
        return found

    def _append(self, name: str, element: etree._Element) -> int:
        holder = self._list(name)
        holder.append(element)
        holder.set("count", str(len(holder)))
        self.changed = True
        self.__dict__.pop("_is_date", None)  # a new format: ask again
        return len(holder) - 1

    def format_code(self, xf: int) -> str | None:
        xfs = self._list("cellXfs")
        if not 0 <= xf < len(xfs):
            return None
        number = int(xfs[xf].get("numFmtId", "0"))
        if number in DATE_FORMAT_IDS:
            return DATE_FORMAT
        for fmt in self._list("numFmts"):
            if int(fmt.get("numFmtId", "-1")) == number:
                return str(fmt.get("formatCode", ""))
        return None

    def is_date(self, xf: int | None) -> bool:
        """Whether cell format `xf` shows a date (asked once per format: a write of 100k rows
        asks it per date cell)."""
        if xf is None:
            return False
        cache: dict[int, bool] = self.__dict__.setdefault("_is_date", {})
        if xf not in cache:
            code = self.format_code(xf)
            cache[xf] = code is not None and is_date_format(code)
        return cache[xf]

    def number_format(self, code: str) -> int:
        """The numFmtId of a custom format code, added when missing."""
        formats = self._list("numFmts")
        for fmt in formats:
            if fmt.get("formatCode") == code:
                return int(fmt.get("numFmtId", "0"))
        number = max([163, *(int(f.get("numFmtId", "0")) for f in formats)]) + 1
        element = etree.Element(f"{NS}numFmt")
        element.set("numFmtId", str(number))
        element.set("formatCode", code)
        self._append("numFmts", element)
        return number

    def date_style(self, base: int | None, with_time: bool = False) -> int:
        """A cell format like `base` (or the default) that shows a date."""
        key = (base or 0, with_time)
        if key not in self._dates:
            xfs = self._list("cellXfs")
            source = xfs[base] if base is not None and 0 <= base < len(xfs) else (
                xfs[0] if len(xfs) else etree.Element(f"{NS}xf"))
            xf = copy.deepcopy(source)
            xf.set("numFmtId", str(self.number_format(DATETIME_FORMAT if with_time
                                                      else DATE_FORMAT)))
            xf.set("applyNumberFormat", "1")
            self._dates[key] = self._append("cellXfs", xf)
        return self._dates[key]

    def dxf(self, fill_rgb: str, font_rgb: str) -> int:
        """A differential format (fill and font colour), reused when present."""
        holder = self._list("dxfs")
        for index, dxf in enumerate(holder):
            fonts = [c.get("rgb") for c in dxf.iter(f"{NS}color")]
            fills = [c.get("rgb") for c in dxf.iter(f"{NS}bgColor")]
            if fills == [fill_rgb] and fonts == [font_rgb]:
                return index
        dxf = etree.Element(f"{NS}dxf")
        font = etree.SubElement(dxf, f"{NS}font")
        etree.SubElement(font, f"{NS}color").set("rgb", font_rgb)
        fill = etree.SubElement(etree.SubElement(dxf, f"{NS}fill"), f"{NS}patternFill")
        etree.SubElement(fill, f"{NS}bgColor").set("rgb", fill_rgb)
        return self._append("dxfs", dxf)

    def import_xf(self, other: Styles, xf: int) -> int:
        """The index here of `other`'s cell format `xf` (its font, fill, border and number
        format copied over once)."""
        key = (id(other), xf)
        if key in self._imported:
            return self._imported[key]
        source_xfs = other._list("cellXfs")
        if not 0 <= xf < len(source_xfs):
            return 0
        element = copy.deepcopy(source_xfs[xf])
        for attribute, name in (("fontId", "fonts"), ("fillId", "fills"),
                                ("borderId", "borders")):
            index = int(element.get(attribute, "0"))
            items = other._list(name)
            if 0 <= index < len(items):
                element.set(attribute, str(self._same_or_append(name, items[index])))
        number = int(element.get("numFmtId", "0"))
        if number >= 164:
            code = next((f.get("formatCode") for f in other._list("numFmts")
                         if int(f.get("numFmtId", "-1")) == number), None)
            element.set("numFmtId", str(self.number_format(code) if code else 0))
        element.set("xfId", "0")
        self._imported[key] = self._append("cellXfs", element)
        return self._imported[key]

    def import_dxf(self, other: Styles, dxf: int) -> int:
        """The index here of `other`'s differential format `dxf` (copied over once)."""
        items = other._list("dxfs")
        if not 0 <= dxf < len(items):
            return dxf
        return self._same_or_append("dxfs", items[dxf])

    def _same_or_append(self, name: str, item: etree._Element) -> int:
        wanted = etree.tostring(item)
        for index, existing in enumerate(self._list(name)):
            if etree.tostring(existing) == wanted:
                return index
        return self._append(name, copy.deepcopy(item))


def _empty() -> etree._Element:
    root = etree.Element(f"{NS}styleSheet", nsmap={None: NS[1:-1]})
    fonts = etree.SubElement(root, f"{NS}fonts", count="1")
    etree.SubElement(fonts, f"{NS}font")
    fills = etree.SubElement(root, f"{NS}fills", count="2")
    for pattern in ("none", "gray125"):
        etree.SubElement(etree.SubElement(fills, f"{NS}fill"), f"{NS}patternFill",
                         patternType=pattern)
    borders = etree.SubElement(root, f"{NS}borders", count="1")
    etree.SubElement(borders, f"{NS}border")
    xfs = etree.SubElement(root, f"{NS}cellXfs", count="1")
    etree.SubElement(xfs, f"{NS}xf", numFmtId="0", fontId="0", fillId="0", borderId="0")
    return root
