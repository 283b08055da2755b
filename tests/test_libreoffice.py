"""LibreOffice opens what we write: the templates and a `validate --write` result convert to PDF."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from pypdf import PdfReader

from tests.conftest import TODAY, edit_cells, soffice
from xlcrm.jobs import sync_workbook, validate_workbook
from xlcrm.template import template_path

pytestmark = [
    pytest.mark.libreoffice,
    pytest.mark.skipif(soffice() is None, reason="LibreOffice (soffice) is not installed; "
                                                 "apt-get install libreoffice-calc-nogui"),
]


def to_pdf(path: Path, out: Path) -> Path:
    profile = out / "lo-profile"
    result = subprocess.run(
        [str(soffice()), f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
         "--convert-to", "pdf", "--outdir", str(out), str(path)],
        capture_output=True, text=True, timeout=300)
    pdf = out / f"{path.stem}.pdf"
    assert result.returncode == 0 and pdf.is_file(), result.stderr
    return pdf


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_template_opens_and_converts(lang: str, tmp_path: Path) -> None:
    source = tmp_path / f"template_{lang}.xlsx"
    shutil.copyfile(template_path(lang), source)  # type: ignore[arg-type]
    pdf = to_pdf(source, tmp_path)
    assert len(PdfReader(pdf).pages) >= 1


def test_written_workbook_opens_and_shows_the_issues(clean_book: Callable[..., Path],
                                                     tmp_path: Path) -> None:
    path = clean_book()
    edit_cells(path, [("customers", "C-000002", "email", "bad@@example.com")])
    validate_workbook(path, write=True, today=TODAY)
    pdf = to_pdf(path, tmp_path)
    text = "".join(page.extract_text() or "" for page in PdfReader(pdf).pages)
    assert "invalid-email" in text and "bad@@example.com" in text


def test_dashboard_converts_with_its_charts(clean_book: Callable[..., Path],
                                           tmp_path: Path) -> None:
    path = clean_book(sample=20)
    sync_workbook(path, today=TODAY)
    book = openpyxl.load_workbook(path)
    for name in book.sheetnames:
        if name != "Dashboard":
            del book[name]  # only the dashboard, so the PDF is its pages
    only = tmp_path / "dashboard.xlsx"
    book.save(only)
    pdf = to_pdf(only, tmp_path)
    text = " ".join(" ".join(page.extract_text() or "" for page in PdfReader(pdf).pages)
                    .split())  # chart titles wrap
    assert "Sales dashboard" in text
    # each charted block's title is printed twice: above its table and in its chart
    for title in ("Pipeline by stage (open deals)", "Forecast by expected close month",
                  "Customers by tier", "Customers by lifecycle"):
        assert text.count(title) >= 2, title


def resave(path: Path, out: Path) -> Path:
    """The workbook as LibreOffice saves it (its own shared strings, styles, relationship ids
    and part names): opened and saved again as .xlsx."""
    out.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(soffice()), f"-env:UserInstallation=file://{out / 'lo-profile'}", "--headless",
         "--norestore", "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir",
         str(out / "saved"), str(path)], capture_output=True, text=True, timeout=300)
    saved = out / "saved" / path.name
    assert result.returncode == 0 and saved.is_file(), result.stderr
    return saved


def test_a_workbook_libreoffice_saved_is_patched_in_place(tmp_path: Path) -> None:
    """A team that keeps its workbook in LibreOffice: rows typed below the Tables, a mistake,
    a blank ID, saved by LibreOffice; sync fills the ID, grows the Table, marks the mistake and
    keeps what LibreOffice wrote, and Calc opens the result again."""
    from tests.test_day_one import typed
    from xlcrm.jobs import init_workbook

    path = init_workbook(tmp_path / "crm.xlsx", sample=10, mistakes=False, today=TODAY)
    typed(path, 0, [{"Name": "Neue Kunden GmbH", "Email": "bad@@neue.de", "City": "Berlin"}])
    saved = resave(path, tmp_path / "lo")
    with zipfile.ZipFile(saved) as archive:
        before = {n: archive.read(n) for n in archive.namelist()}
    assert "xl/sharedStrings.xml" in before  # LibreOffice's own way of storing text
    result = sync_workbook(saved, today=TODAY)
    assert result.written and [f.value for f in result.filled_ids] == ["C-000011"]
    assert [i.code for i in result.report.issues if i.severity == "error"] == ["invalid-email"]
    with zipfile.ZipFile(saved) as archive:
        after = {n: archive.read(n) for n in archive.namelist()}
        customers = next(n for n in after if n.endswith("sheet1.xml"))
    assert set(before) <= set(after) | {"xl/calcChain.xml"}
    strings = re.compile(rb"<si>.*?</si>", re.S)
    assert strings.findall(after["xl/sharedStrings.xml"]) == strings.findall(
        before["xl/sharedStrings.xml"])  # LibreOffice's strings stay, in their order ...
    count = re.search(rb'count="(\d+)"', after["xl/sharedStrings.xml"])
    references = sum(len(re.findall(rb'<c [^>]*t="s"', data)) for name, data in after.items()
                     if name.startswith("xl/worksheets/sheet"))
    assert count is not None and int(count[1]) == references  # ... and their count is true
    book = openpyxl.load_workbook(saved)
    ws = book.worksheets[0]
    assert ws.tables[next(iter(ws.tables))].ref.endswith("12")  # the typed row is inside
    assert ws["A12"].value == "C-000011" and ws["B12"].value == "Neue Kunden GmbH"
    assert b"xlcrm" in after[customers]  # the mark (conditional format) on the sheet
    again = resave(saved, tmp_path / "lo2")  # and Calc reads what xlcrm wrote
    values = openpyxl.load_workbook(again).worksheets[0]
    assert values["A12"].value == "C-000011"
