"""What Excel itself wrote survives every xlcrm write, part for part.

Each workbook of shared/data/excel-made (saved by real Excel: images, charts, chart sheets,
text boxes, buttons, cell checkboxes, in-cell and header images, notes, Tables with an x14
extension, validation, conditional formats, hyperlinks, VBA...) is grafted into an xlcrm
workbook (its sheets added, its drawing and notes also attached to the Customers sheet), then
the workbook goes through sync, a merge and its undo, a merge and a restore, and a promotion.
After every command each part the workbook had is still there, and every part xlcrm does not
own is byte for byte as it was. At the end LibreOffice opens the result and saves it again,
and openpyxl and calamine read it back to the values xlcrm read.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import python_calamine

from tests.conftest import TODAY, append_rows, soffice
from tests.excel_parts import excel_made, graft_excel
from xlcrm.graft import sheet_parts
from xlcrm.jobs import init_workbook
from xlcrm.package import Package, rels_name
from xlcrm.reader import ROW, read_workbook
from xlcrm.session import FileSession

DATA_SHEETS = ("Customers", "Opportunities", "Interactions")
ENGINE_SHEETS = ("Issues", "Duplicates", "ChangeLog", "Dashboard")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workbook with sample data, its mistakes, and two customers that are one."""
    path = tmp_path_factory.mktemp("base") / "crm.xlsx"
    init_workbook(path, sample=12, today=TODAY)
    data = read_workbook(path)
    sheet = data.sheets["customers"]
    book = openpyxl.load_workbook(path)
    append_rows(sheet.name, sheet.table, sheet.columns, [
        {"customer_id": "C-000901", "name": "Zeta Robotics Ltd", "phone": "13912345678",
         "created_at": TODAY.replace(year=2020)},
        {"customer_id": "C-000902", "name": "Zeta Robotics Ltd.", "phone": "139 1234 5678",
         "city": "Suzhou", "created_at": TODAY}])(book)
    book.save(path)
    return path


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def owned(path: Path) -> set[str]:
    """The parts xlcrm may change: the data sheets with their Tables and notes (not their
    drawings: a logo on Customers is the user's), the engine sheets with everything under
    them, styles, shared strings' count, the package's lists, the calculation chain."""
    out = {"xl/styles.xml", "xl/sharedStrings.xml", "[Content_Types].xml", "xl/calcChain.xml",
           "xl/_rels/workbook.xml.rels"}
    with Package(path) as pkg:
        found = sheet_parts(pkg)
        for name in DATA_SHEETS:
            out |= {found[name], rels_name(found[name])}
            out |= {t for kind in ("table", "comments", "vmlDrawing")
                    for _, t in pkg.related(found[name], kind)}
        for name in ENGINE_SHEETS:
            stack = [found[name]] if name in found else []
            while stack:
                part = stack.pop()
                if part not in out:
                    out |= {part, rels_name(part)}
                    stack += [t for _, t in pkg.related(part)]
    return out


def check_kept(before: dict[str, bytes], after_path: Path, mine: set[str], step: str) -> None:
    after = parts(after_path)
    lost = sorted(set(before) - set(after) - {"xl/calcChain.xml"})
    assert not lost, f"{step}: parts lost: {lost}"
    changed = sorted(n for n in before if n in after and n not in mine
                     and before[n] != after[n])
    assert not changed, f"{step}: parts changed that xlcrm does not own: {changed}"


def user_notes(path: Path) -> list[tuple[str, str]]:
    ws = openpyxl.load_workbook(path)["Customers"]
    return sorted((c.coordinate, c.comment.author or "") for row in ws.iter_rows() for c in row
                  if c.comment is not None and c.comment.author != "xlcrm")


def vml_shapes(path: Path, part_filter: Callable[[str], bool]) -> list[bytes]:
    """The shapes of the VML drawings that are not xlcrm's notes (buttons, people's notes)."""
    shapes = []
    for name, data in parts(path).items():
        if name.endswith(".vml") and part_filter(name):
            for shape in re.findall(rb"<v:shape\b.*?</v:shape>", data, re.S):
                if b"<x:Row>" not in shape or b"ObjectType=\"Note\"" not in shape:
                    shapes.append(re.sub(rb'id="_x0000_s\d+"', b"", shape))
    return shapes


@pytest.mark.parametrize("excel", excel_made(), ids=lambda p: p.name)
def test_excel_made_parts_survive_every_write(excel: Path, base: Path, tmp_path: Path,
                                             cli: Callable[..., Any]) -> None:
    path = tmp_path / ("crm.xlsm" if excel.suffix == ".xlsm" else "crm.xlsx")
    graft_excel(base, excel, path)
    before = parts(path)
    mine = owned(path)
    notes_before = user_notes(path)
    shapes_before = vml_shapes(path, lambda name: True)
    data_before = read_workbook(path)
    assert data_before.counts()["customers"] == 14

    result = cli("sync", path)  # the sample's mistakes: Issues, marks and notes to write
    assert result.exit_code == 1, result.output  # errors found, workbook written
    check_kept(before, path, mine | owned(path), "sync")
    issues = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_name(
        "Issues").to_python()
    assert "invalid-email" in {r[1] for r in issues[1:]}
    assert user_notes(path) == notes_before  # a person's notes kept beside xlcrm's
    assert sorted(vml_shapes(path, lambda name: True)) == sorted(shapes_before)

    clusters = json.loads(cli("dedupe", path, "--format", "json").output)["clusters"]
    number = next(n for n, c in enumerate(clusters, 1) if "C-000901" in c["record_ids"])
    kept = parts(path)
    merged = cli("dedupe", path, "--merge", "--cluster", str(number))
    assert merged.exit_code == 0, merged.output
    check_kept(kept, path, mine | owned(path), "merge")
    merge_id = merged.output.split("--undo ")[1].split()[0]
    assert cli("dedupe", path, "--undo", merge_id).exit_code == 0
    check_kept(kept, path, mine | owned(path), "undo")

    assert cli("dedupe", path, "--merge", "--cluster", str(number)).exit_code == 0
    kept = parts(path)
    restored = cli("restore", path, "C-000902")
    assert restored.exit_code == 0, restored.output
    check_kept(kept, path, mine | owned(path), "restore")
    assert "C-000902" in set(read_workbook(path).sheets["customers"].frame["customer_id"])

    with FileSession(path) as session:  # a person marks an open deal Won
        data = session.read()
        opps = data.sheets["opportunities"]
        row = opps.frame.loc[~opps.frame["stage"].isin(["Won", "Lost"])].iloc[0]
        session.set_cells(opps.name, [(int(row[ROW]), opps.columns["stage"], "Won")])
        session.save()
    kept = parts(path)
    promoted = cli("promote", path)
    assert promoted.exit_code == 0, promoted.output
    check_kept(kept, path, mine | owned(path), "promote")

    final = parts(path)
    for name in set(before) - mine - owned(path):
        assert final[name] == before[name], name
    _read_back(path, tmp_path)


def _read_back(path: Path, tmp_path: Path) -> None:
    """openpyxl opens it; calamine reads our values; LibreOffice opens and re-saves it."""
    data = read_workbook(path)
    book = openpyxl.load_workbook(path, keep_vba=path.suffix == ".xlsm")
    customers = data.sheets["customers"]
    ws = book[customers.name]
    ids = [ws.cell(row=int(r), column=customers.columns["customer_id"]).value
           for r in customers.frame[ROW]]
    assert ids == list(customers.frame["customer_id"])
    rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_name(
        customers.name).to_python()
    assert [r[0] for r in rows[1:] if r[0]] == list(customers.frame["customer_id"])
    office = soffice()
    if office is None:
        return
    out = tmp_path / "lo"
    out.mkdir()
    copy = out / f"in{path.suffix}"
    shutil.copyfile(path, copy)
    result = subprocess.run(
        [office, f"-env:UserInstallation=file://{out / 'profile'}", "--headless", "--norestore",
         "--convert-to", "xlsx", "--outdir", str(out / "x"), str(copy)],
        capture_output=True, text=True, timeout=300)
    converted = out / "x" / "in.xlsx"
    assert result.returncode == 0 and converted.is_file(), result.stderr
    again = python_calamine.CalamineWorkbook.from_path(str(converted)).get_sheet_by_name(
        customers.name).to_python()
    assert [r[0] for r in again[1:] if r[0]] == list(customers.frame["customer_id"])
