"""The committed templates: match a fresh build, and are a real Excel app."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405  our own files
import zipfile
from pathlib import Path

import openpyxl
import pytest

from xlcrm import schema
from xlcrm.settings import default_settings
from xlcrm.template import build_template, save_template, template_path


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_committed_template_matches_a_fresh_build(lang: str, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.xlsx"
    save_template(build_template(lang), fresh)  # type: ignore[arg-type]
    committed = template_path(lang)  # type: ignore[arg-type]
    assert committed.is_file(), "run: python -m xlcrm.template"
    with zipfile.ZipFile(committed) as a, zipfile.ZipFile(fresh) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            assert content(name, a.read(name)) == content(name, b.read(name)), (
                f"{name} differs: run python -m xlcrm.template")


def content(name: str, data: bytes) -> str | bytes:
    """A part's content, independent of how the XML serializer spelled it (lxml or not)."""
    if name.endswith((".xml", ".rels", ".vml")):
        return ET.canonicalize(data.decode("utf-8"), rewrite_prefixes=True, strip_text=True)
    return data


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_template_is_a_real_excel_app(lang: str) -> None:
    book = openpyxl.load_workbook(template_path(lang))  # type: ignore[arg-type]
    labels = {s.key: s.label(lang) for s in schema.ALL_SHEETS}  # type: ignore[arg-type]
    assert book.sheetnames[:3] == [labels["customers"], labels["opportunities"],
                                   labels["interactions"]]
    assert set(labels.values()) == set(book.sheetnames)
    for sdef in schema.DATA_SHEETS:
        ws = book[sdef.label(lang)]  # type: ignore[arg-type]
        assert sdef.table in ws.tables
        headers = [c.value for c in ws[1]]
        assert headers == [f.label(lang) for f in sdef.fields]  # type: ignore[arg-type]
        assert ws.freeze_panes == "C2"
        for col, f in enumerate(sdef.fields, start=1):
            letter = openpyxl.utils.get_column_letter(col)
            if f.type == "date":
                assert ws[f"{letter}2"].number_format == "yyyy-mm-dd"
            if f.type == "money":
                assert ws[f"{letter}2"].number_format == "#,##0.00"
            if f.type == "percent":
                assert ws[f"{letter}2"].number_format == "0%"
    opps = book[schema.OPPORTUNITIES.label(lang)]  # type: ignore[arg-type]
    lists = {str(dv.sqref): dv.formula1 for dv in opps.data_validations.dataValidation}
    assert lists["H2:H1048576"] == "=lst_stage"
    assert lists["C2:C1048576"] == "=lst_customer_id"
    assert lists["M2:M1048576"] == "=lst_people"
    names = book.defined_names
    index = 1 if lang == "en" else 2
    assert names["lst_stage"].attr_text == f"Stages[{schema.SETTINGS_TABLES['Stages'][0][index]}]"
    assert names["lst_customer_id"].attr_text == (
        f"tblCustomers[{schema.CUSTOMERS.fields[0].label(lang)}]")  # type: ignore[arg-type]
    for sdef in schema.ENGINE_SHEETS:
        assert book[sdef.label(lang)].protection.sheet  # type: ignore[arg-type]
    settings_ws = book[schema.SETTINGS.label(lang)]  # type: ignore[arg-type]
    assert set(settings_ws.tables) == set(schema.SETTINGS_TABLES)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_template_settings_read_back_as_the_defaults(lang: str) -> None:
    from xlcrm.reader import read_workbook

    data = read_workbook(template_path(lang))  # type: ignore[arg-type]
    defaults = default_settings(lang)  # type: ignore[arg-type]
    assert data.lang == lang
    assert data.settings.stages == defaults.stages
    assert data.settings.people == defaults.people
    assert data.settings.lists == defaults.lists
    assert data.settings.options == defaults.options
    assert data.settings.custom_fields == []
