"""The worksheet patcher on the shapes other writers produce: a namespace prefix (the .NET
Open XML SDK writes `x:`), rows and cells without `r`, an empty `<sheetData/>`, rows with an
extension, and (hypothesis) any sparse grid with any edits: the patched part holds exactly the
old cells with the edits applied, every other cell byte for byte."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from openpyxl.utils import get_column_letter

from xlcrm.sheetxml import SheetXml
from xlcrm.stylesxml import Styles

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS = f"{{{MAIN}}}"


def values(xml: bytes) -> dict[tuple[int, int], Any]:
    """(row, column) -> value of every cell, read with lxml (rows and cells without `r`
    numbered as Excel does)."""
    root = etree.fromstring(xml)
    out: dict[tuple[int, int], Any] = {}
    row_number = 0
    for row in root.iter(f"{NS}row"):
        row_number = int(row.get("r") or row_number + 1)
        column = 0
        for cell in row.iter(f"{NS}c"):
            ref = cell.get("r")
            column = (sum((ord(ch) - 64) * 26 ** i for i, ch in enumerate(reversed(
                "".join(c for c in ref if c.isalpha())))) if ref else column + 1)
            kind = cell.get("t")
            if kind == "inlineStr":
                value: Any = "".join(t.text or "" for t in cell.iter(f"{NS}t"))
            else:
                v = cell.find(f"{NS}v")
                value = None if v is None else (v.text if kind in ("s", "str") else float(
                    v.text or 0))
            if value is not None:
                out[(row_number, column)] = value
    return out


def sheet(rows: str, prefix: str = "") -> bytes:
    p = f"{prefix}:" if prefix else ""
    declare = f'xmlns:{prefix}="{MAIN}"' if prefix else f'xmlns="{MAIN}"'
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<{p}worksheet {declare}><{p}dimension ref="A1:C3"/><{p}sheetData>{rows}'
            f"</{p}sheetData></{p}worksheet>").encode()


def patch(xml: bytes, edits: dict[tuple[int, int], Any]) -> bytes:
    patcher = SheetXml(xml, Styles(None))
    for (row, column), value in edits.items():
        patcher.set(row, column, value)
    return patcher.apply()


def test_a_prefixed_namespace_is_kept() -> None:
    xml = sheet('<x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>ID</x:t></x:is></x:c>'
                '</x:row><x:row r="2"><x:c r="A2"><x:v>7</x:v></x:c></x:row>', prefix="x")
    out = patch(xml, {(2, 2): "new", (4, 1): 9})
    assert values(out) == {(1, 1): "ID", (2, 1): 7.0, (2, 2): "new", (4, 1): 9.0}
    assert b"<row" not in out and b"<x:is><x:t" in out
    assert b'ref="A1:C4"' in out  # the dimension grows to the new row


def test_rows_and_cells_without_r_are_numbered_as_excel_does() -> None:
    xml = sheet("<row><c><v>1</v></c><c><v>2</v></c></row><row><c><v>3</v></c></row>")
    out = patch(xml, {(2, 2): 20, (1, 1): 10})
    assert values(out) == {(1, 1): 10.0, (1, 2): 2.0, (2, 1): 3.0, (2, 2): 20.0}


def test_an_empty_sheet_and_a_row_extension() -> None:
    empty = (f'<worksheet xmlns="{MAIN}"><sheetData/></worksheet>').encode()
    assert values(patch(empty, {(3, 2): "x"})) == {(3, 2): "x"}
    ext = sheet('<row r="1"><c r="A1"><v>1</v></c><extLst><ext uri="{X}"/></extLst></row>')
    out = patch(ext, {(1, 2): 2})
    assert values(out) == {(1, 1): 1.0, (1, 2): 2.0}
    assert out.index(b'r="B1"') < out.index(b"<extLst>")  # cells before the extension


def test_a_date_gets_a_date_format_and_a_cleared_cell_keeps_its_style() -> None:
    styles = Styles(None)
    patcher = SheetXml(sheet('<row r="1"><c r="A1" s="0"><v>5</v></c>'
                             '<c r="B1" s="0"><v>6</v></c></row>'), styles)
    patcher.set(1, 1, dt.date(2026, 11, 3))
    patcher.set(1, 2, None)
    out = patcher.apply()
    assert styles.is_date(int(etree.fromstring(out).find(f".//{NS}c").get("s")))
    assert values(out) == {(1, 1): 46329.0}
    assert b'<c r="B1"' not in out  # a cell with no value and the default style goes


cells = st.dictionaries(st.tuples(st.integers(1, 30), st.integers(1, 8)),
                        st.one_of(st.integers(-10**6, 10**6), st.text(
                            alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
                            max_size=8).filter(lambda s: s.strip() == s and s)), max_size=60)


edits_or_clears = st.dictionaries(st.tuples(st.integers(1, 30), st.integers(1, 8)),
                                  st.one_of(st.none(), st.integers(-10**6, 10**6),
                                            st.text(max_size=3).filter(
                                                lambda s: s.strip() == s and s
                                                and all(ch.isprintable() for ch in s))),
                                  max_size=40)


@settings(max_examples=60, deadline=None)
@given(old=cells, edits=edits_or_clears)
def test_any_grid_with_any_edits(old: dict[tuple[int, int], Any],
                                 edits: dict[tuple[int, int], Any]) -> None:
    rows: dict[int, list[str]] = {}
    for (row, column), value in sorted(old.items()):
        ref = f"{get_column_letter(column)}{row}"
        if isinstance(value, str):
            text = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            rows.setdefault(row, []).append(
                f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>')
        else:
            rows.setdefault(row, []).append(f'<c r="{ref}"><v>{value}</v></c>')
    xml = sheet("".join(f'<row r="{r}">{"".join(c)}</row>' for r, c in sorted(rows.items())))
    out = patch(xml, edits)
    wanted = {k: (float(v) if isinstance(v, int) else v) for k, v in {**old, **edits}.items()
              if v is not None}
    assert values(out) == wanted
    for row, parts in rows.items():  # rows without an edit are the same bytes
        if not any(r == row for r, _ in edits):
            assert f'<row r="{row}">{"".join(parts)}</row>'.encode() in out


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=8), st.sampled_from(
    ["Acme", "项目 1", "a&b", "<x>", ""]), st.integers(-10**6, 10**6), st.floats(),
    st.dates(), st.booleans()), max_size=12), style=st.sampled_from([None, 3]))
def test_a_column_of_appended_cells_is_written_as_each_cell_alone(
        values: list[Any], style: int | None) -> None:
    """Appended records are written a column at a time through fast paths (text that needs
    no escaping as it is, values alike keyed by value): every cell must come out exactly as
    the one-cell writer makes it, whatever mix of text, blanks, numbers, dates and booleans
    a column holds (1, 1.0 and True are equal keys)."""
    part = SheetXml(b"<worksheet><sheetData></sheetData></worksheet>", Styles(None))
    rows = range(7, 7 + len(values))
    alone = [(part._cell_xml(row, 2, value, style) or b"").decode() if value is not None
             else "" for row, value in zip(rows, values, strict=True)]
    assert part._column_xml(rows, 2, values, style) == alone
