"""Applying a session's plan to a workbook file, part by part (see `xlcrm.session`).

Data sheets are patched (`xlcrm.sheetxml`): the cells set, rows appended or closed up, the
Tables' `ref` and `autoFilter` grown or shrunk together, the issue marks (a conditional format
and notes authored "xlcrm"). Engine sheets are rebuilt and grafted (`xlcrm.graft`). Styles get
new entries only. `calcChain.xml` is dropped (with its relationship and content type) when a
formula cell changes; Excel rebuilds it. Everything else is copied as it was, and the package
refuses to save if a part would be lost that was not dropped on purpose.

What cannot be patched safely is refused (UnsafeToWrite, exit 2) before anything is written:
moving a formula with A1 references or a shared or array formula to another row, and moving
rows through merged cells.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from lxml import etree
from openpyxl.utils import range_boundaries

from . import notesxml
from .dashboard import render_openpyxl
from .edits import fill_engine_sheet
from .errors import UnsafeToWrite
from .graft import build, graft, sheet_parts
from .issues import Issue, Report
from .package import Package, parse, xml_bytes
from .reader import WorkbookData
from .session import Plan, engine_name, engine_state
from .sheetxml import NS, RawCell, SheetXml, movable, place
from .stylesxml import Styles

MARK_FORMULA = '"xlcrm"="xlcrm"'
MARK_COLORS = {"error": ("FFFFC7CE", "FF9C0006"), "warning": ("FFFFEB9C", "FF9C5700")}
CALC_CHAIN = "xl/calcChain.xml"
SHARED_STRINGS = "xl/sharedStrings.xml"
_SHARED_CELL = re.compile(rb'<(?:\w+:)?c\b[^>]*?\bt="s"')
_COUNT = re.compile(rb'(<(?:\w+:)?sst\b[^>]*?\scount=")(\d+)(")')
_R = re.compile(rb'\br="([A-Z]+)(\d+)"')


@dataclass
class Written:
    """What a write put into engine sheets and marks, remembered to skip identical rewrites."""

    state: dict[str, Any] = field(default_factory=dict)

    def store(self, path: Path) -> None:
        target = engine_state(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.state), encoding="utf-8")


def load_state(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(engine_state(path).read_text(encoding="utf-8"))
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def read_block(pkg: Package, sheet: str, first_row: int, last_row: int, first_col: int,
               last_col: int, cache: dict[str, Any]) -> dict[tuple[int, int], RawCell]:
    """The stored cells of a block (the parsed sheet is kept in `cache`)."""
    if sheet not in cache:
        cache[sheet] = SheetXml(pkg.read(sheet_parts(pkg)[sheet]), Styles(None))
    xml = cache[sheet]
    out = {}
    for row in xml.rows_between(first_row, last_row):
        for cell in xml.cells(row):
            if first_col <= cell.column <= last_col:
                out[(row, cell.column)] = RawCell(cell.xml)
    return out


def apply_plan(pkg: Package, plan: Plan, data: WorkbookData, temp: Path,
               remember: bool = True) -> Written | None:
    """Write the patched package to `temp`; None when the plan changes nothing. With
    `remember`, engine sheets and marks identical to the last ones written are skipped."""
    styles = Styles(pkg.read("xl/styles.xml") if pkg.has("xl/styles.xml") else None)
    parts = sheet_parts(pkg)
    previous = load_state(data.path) if remember else {}
    state: dict[str, Any] = {"engine": dict(previous.get("engine", {})),
                             "marks": dict(previous.get("marks", {}))}
    sheets: dict[str, SheetXml] = {}

    def sheet_xml(name: str) -> SheetXml:
        if name not in sheets:
            sheets[name] = SheetXml(pkg.read(parts[name]), styles)
        return sheets[name]

    for name, blocks in plan.appended.items():
        for block in blocks:
            for column, values in block.columns.items():
                for at, value in enumerate(values):
                    if isinstance(value, RawCell):
                        _check_movable(name, block.first_row + at, column, value)
            sheet_xml(name).append(block.first_row, block.columns, block.style_row,
                                   block.count)
    for name, cells in plan.cells.items():
        xml = sheet_xml(name)
        for (row, column), value in cells.items():
            if isinstance(value, RawCell):
                _check_movable(name, row, column, value)
            xml.set(row, column, value)
    for name, (first, last, first_col, last_col) in plan.moved.items():
        _check_merged(sheet_xml(name), name, first, last, first_col, last_col)
    if plan.marks is not None:
        _marks(pkg, plan.marks, data, state, sheet_xml, parts)
    formulas, shared = False, 0
    for name, xml in sheets.items():
        patched = xml.apply()
        formulas = formulas or xml.formulas_touched
        shared += xml.shared_refs
        if xml.blocks or patched != pkg.read(parts[name]):  # (rows appended: it changed)
            pkg.put(parts[name], patched)
    for name, (table, last) in plan.tables.items():
        _resize_table(pkg, parts[name], table, last)
    dropped: list[str] = []
    engine = {engine_name(data, s.key, s.lang) for s in plan.engine.values()}
    if plan.dashboard is not None:
        engine.add(engine_name(data, "dashboard", plan.dashboard.lang))
    before = {name: _shared_refs(pkg.read(parts[name])) for name in engine
              if name in parts} if pkg.has(SHARED_STRINGS) else {}
    for sheet in plan.engine.values():
        dropped += _regenerate(pkg, styles, engine_name(data, sheet.key, sheet.lang),
                               sheet.digest(), partial(fill_engine_sheet, sheet=sheet), state)
    if plan.dashboard is not None:
        layout = plan.dashboard
        dropped += _regenerate(pkg, styles, engine_name(data, "dashboard", layout.lang),
                               layout.digest(), partial(render_openpyxl, layout), state)
    for name, part in sheet_parts(pkg).items():  # a regenerated engine sheet's old cells
        if name in before and part in pkg.changed:
            shared += _shared_refs(pkg.read(part)) - before[name]
    if formulas:
        dropped += _drop_calc_chain(pkg)
    if shared:
        _count_shared(pkg, shared)
    if styles.changed:
        pkg.put("xl/styles.xml", styles.bytes())
    if not pkg.changed:
        return None
    pkg.check_kept(dropped)
    pkg.save(temp)
    for entry in state["engine"].values():
        if entry.get("part") in pkg.changed:
            entry["crc"] = zlib.crc32(pkg.changed[entry["part"]])
    return Written(state)


def _check_movable(sheet: str, row: int, column: int, value: RawCell) -> None:
    found = _R.search(value.xml)
    if found and int(found[2]) != row and not movable(value):
        raise UnsafeToWrite(f"{sheet}: the formula in {found[1].decode()}{found[2].decode()} "
                            "would have to move to another row, which changes what it "
                            "computes; nothing was written (remove the rows in Excel)",
                            zh=f"{sheet}：{found[1].decode()}{found[2].decode()} 的公式需要"
                               "移到另一行，其结果会改变；未写入任何内容"
                               "（请在 Excel 中删除这些行）")


def _check_merged(xml: SheetXml, sheet: str, first: int, last: int, first_col: int,
                  last_col: int) -> None:
    for merged in xml.frame().iter(f"{NS}mergeCell"):
        min_col, min_row, max_col, max_row = range_boundaries(str(merged.get("ref")))
        if max_row >= first and min_row <= last and max_col >= first_col \
                and min_col <= last_col:
            raise UnsafeToWrite(f"{sheet}: merged cells {merged.get('ref')} lie across rows "
                                "that would move; nothing was written (unmerge them first)",
                                zh=f"{sheet}：合并单元格 {merged.get('ref')} 跨越需要移动的行；"
                                   "未写入任何内容（请先取消合并）")


def _resize_table(pkg: Package, sheet_part: str, table: str, last: int) -> None:
    for _, part in pkg.related(sheet_part, "table"):
        root = parse(pkg.read(part))
        if table not in (root.get("displayName"), root.get("name")):
            continue
        min_col, min_row, max_col, max_row = range_boundaries(str(root.get("ref")))
        if max_row == last:
            return
        start, end = root.get("ref", "").split(":")
        ref = f"{start}:{re.sub(r'[0-9]+$', str(last), end)}"
        root.set("ref", ref)
        auto = root.find(f"{NS}autoFilter")
        if auto is not None:
            totals = int(root.get("totalsRowCount", "0") or 0)
            auto.set("ref", f"{start}:{re.sub(r'[0-9]+$', str(last - totals), end)}")
        pkg.put(part, xml_bytes(root))
        return


def _regenerate(pkg: Package, styles: Styles, name: str, digest: str,
                fill: Callable[[Any], None], state: dict[str, Any]) -> list[str]:
    """Rebuild the engine sheet `name` with `fill` (an openpyxl sheet) and graft it in, unless
    it holds what xlcrm last wrote there and that is what `digest` says it would write."""
    if _unchanged(pkg, state, name, digest):
        return []
    dropped = graft(pkg, styles, name, build(name, fill))
    state["engine"][name] = {"digest": digest, "part": sheet_parts(pkg)[name]}
    return dropped


def _unchanged(pkg: Package, state: dict[str, Any], name: str, digest: str) -> bool:
    """The engine sheet holds what xlcrm last wrote there, and that is what it would write."""
    entry = state["engine"].get(name)
    if not entry or entry.get("digest") != digest:
        return False
    parts = sheet_parts(pkg)
    return name in parts and parts[name] == entry.get("part") \
        and pkg.crc(parts[name]) == entry.get("crc")


def _shared_refs(xml: bytes) -> int:
    return len(_SHARED_CELL.findall(xml))


def _count_shared(pkg: Package, change: int) -> None:
    """Keep the shared-strings part's `count` (references to it) true: cells that held a
    shared string and now hold something else no longer count. Its strings stay."""
    if not pkg.has(SHARED_STRINGS):
        return
    data = pkg.read(SHARED_STRINGS)
    head = data[:2048]
    found = _COUNT.search(head)
    if found is None:
        return
    count = max(int(found[2]) + change, 0)
    pkg.put(SHARED_STRINGS, head[:found.start(2)] + str(count).encode() + head[found.end(2):]
            + data[2048:])


def _drop_calc_chain(pkg: Package) -> list[str]:
    if not pkg.has(CALC_CHAIN):
        return []
    pkg.drop(CALC_CHAIN)
    for rel_id, target in pkg.related("xl/workbook.xml", "calcChain"):
        if target == CALC_CHAIN:
            pkg.drop_rel("xl/workbook.xml", rel_id)
    return [CALC_CHAIN]


def sheet_marks(report: Report) -> dict[str, dict[str, tuple[str, str]]]:
    """Sheet -> cell -> (worst severity, the note's text)."""
    by_sheet: dict[str, dict[str, list[Issue]]] = defaultdict(lambda: defaultdict(list))
    for issue in report.issues:
        if issue.cell:
            by_sheet[issue.sheet][issue.cell].append(issue)
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for sheet, cells in by_sheet.items():
        out[sheet] = {}
        for ref, issues in cells.items():
            worst = "error" if any(i.severity == "error" for i in issues) else "warning"
            text = "xlcrm:\n" + "\n".join(f"[{i.code}] {i.message}" for i in issues)
            out[sheet][ref] = (worst, text)
    return out


def _marks(pkg: Package, report: Report, data: WorkbookData, state: dict[str, Any],
           sheet_xml: Any, parts: dict[str, str]) -> None:
    marks = sheet_marks(report)
    for sheet in data.sheets.values():
        cells = marks.get(sheet.name, {})
        digest = hashlib.sha256(json.dumps(sorted(cells.items()), ensure_ascii=False)
                                .encode()).hexdigest()
        if state["marks"].get(sheet.name) == digest:
            continue
        xml = sheet_xml(sheet.name)
        root = xml.frame()
        _conditional_marks(root, cells, xml.styles)
        notesxml.set_notes(pkg, parts[sheet.name], root,
                           {ref: text for ref, (_, text) in cells.items()})
        xml.set_frame(root)
        state["marks"][sheet.name] = digest


def _conditional_marks(root: etree._Element, cells: dict[str, tuple[str, str]],
                       styles: Styles) -> None:
    """Replace xlcrm's conditional-format marks of one sheet."""
    priorities = [0]
    for formatting in list(root.findall(f"{NS}conditionalFormatting")):
        for rule in list(formatting.findall(f"{NS}cfRule")):
            formula = rule.find(f"{NS}formula")
            if formula is not None and formula.text == MARK_FORMULA:
                formatting.remove(rule)
            else:
                priorities.append(int(rule.get("priority", "0")))
        if not len(formatting.findall(f"{NS}cfRule")):
            root.remove(formatting)
    priority = max(priorities)
    for severity in ("error", "warning"):
        refs = sorted((ref for ref, (worst, _) in cells.items() if worst == severity),
                      key=_ref_key)
        if not refs:
            continue
        formatting = etree.Element(f"{NS}conditionalFormatting")
        formatting.set("sqref", " ".join(refs))
        rule = etree.SubElement(formatting, f"{NS}cfRule")
        rule.set("type", "expression")
        rule.set("dxfId", str(styles.dxf(*MARK_COLORS[severity])))
        priority += 1
        rule.set("priority", str(priority))
        etree.SubElement(rule, f"{NS}formula").text = MARK_FORMULA
        place(root, formatting)


def _ref_key(ref: str) -> tuple[int, int]:
    found = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    return (int(found[2]), len(found[1]) * 100 + ord(found[1][-1])) if found else (0, 0)

