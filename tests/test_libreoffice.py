"""LibreOffice opens what we write: the templates and a `validate --write` result convert to PDF."""

from __future__ import annotations

import shutil
import subprocess
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
