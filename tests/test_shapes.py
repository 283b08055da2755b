"""Property-based: workbooks of random shape, typed as people type them, through every job.

Each example starts from an empty `xlcrm init` (English or Chinese), types rows below the
Tables (sometimes after a gap), with blanks, text-only columns, dates as text, numbers or
Excel serials, amounts in Chinese and Western forms, unknown stages, owners and currencies,
and Settings tables emptied. Every job must end in a result or an `InputError` (never another
exception), and the figures that are cheap to recompute (counts, open pipeline, won amount)
must equal an independent computation from the values the test typed.

Runs derandomized (a fixed seed) with 25 examples; `HYPOTHESIS_PROFILE=deep` runs 300.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlcrm import jobs, schema
from xlcrm.errors import InputError
from xlcrm.settings import default_settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("deep", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TODAY = dt.date(2026, 11, 25)
EPOCH = dt.date(1899, 12, 30)


@dataclass
class Amount:
    value: float | None  # what the person meant (None: not a number)
    typed: Any  # what they typed


@st.composite
def amounts(draw: st.DrawFn) -> Amount:
    value = draw(st.integers(0, 5_000_000)) / draw(st.sampled_from([1, 100]))
    form = draw(st.sampled_from(["number", "comma", "yen", "wan", "fullwidth", "text", "blank"]))
    if form == "number":
        return Amount(value, value)
    if form == "comma":
        return Amount(value, f"{value:,.2f}")
    if form == "yen":
        return Amount(round(value), f"¥{round(value):,}")
    if form == "wan":
        wan = draw(st.integers(1, 999)) / 10
        return Amount(wan * 10_000, f"{wan}万")
    if form == "fullwidth":
        number = str(int(value))
        return Amount(int(value), number.translate(str.maketrans("0123456789",
                                                                  "０１２３４５６７８９")))
    if form == "text":
        return Amount(None, draw(st.sampled_from(["tbd", "待定", "12 000,50", "1,5"])))
    return Amount(None, None)


@st.composite
def dates(draw: st.DrawFn) -> Any:
    day = draw(st.dates(dt.date(2020, 1, 1), dt.date(2028, 12, 31)))
    form = draw(st.sampled_from(["date", "iso", "slash", "dots", "cn", "compact", "serial",
                                 "junk", "blank"]))
    return {"date": day, "iso": day.isoformat(), "slash": f"{day:%Y/%m/%d}",
            "dots": f"{day.year}.{day.month}.{day.day}",
            "cn": f"{day.year}年{day.month}月{day.day}日", "compact": f"{day:%Y%m%d}",
            "serial": (day - EPOCH).days, "junk": draw(st.sampled_from(["soon", "下周", "13/13"])),
            "blank": None}[form]


TYPED = st.characters(blacklist_categories=("Cc", "Cs"))  # what a keyboard can type
TEXT = st.one_of(st.none(), st.text(TYPED, min_size=1, max_size=12),
                 st.sampled_from(["Acme Ltd", "上海小鹏贸易有限公司", "🚀 Rocket Co", "  ",
                                  "=1+1"]))


@st.composite
def workbooks(draw: st.DrawFn) -> dict[str, Any]:
    lang = draw(st.sampled_from(["en", "zh"]))
    base = default_settings(lang)
    stages = [s.name for s in base.stages]
    people = [p.name for p in base.people]
    n_customers = draw(st.integers(0, 6))
    ids = [f"C-{i}" for i in range(n_customers)]
    customers = [{
        "customer_id": draw(st.one_of(st.none(), st.just(ids[i]))),
        "name": draw(TEXT), "email": draw(st.sampled_from([None, "a@b.example", "bad@"])),
        "phone": draw(st.sampled_from([None, "13800138000", "+1 415 555 0134", "12"])),
        "created_at": draw(dates()),
    } for i in range(n_customers)]
    opportunities = [{
        "title": draw(TEXT),
        "customer_id": draw(st.one_of(st.none(), st.sampled_from(ids or ["C-x"]),
                                      st.just("C-404"))),
        "company": draw(st.one_of(st.none(), st.sampled_from(["Acme Ltd", "北京华讯"]))),
        "stage": draw(st.one_of(st.none(), st.sampled_from(stages), st.just("Maybe"))),
        "amount": draw(amounts()),
        "currency": draw(st.sampled_from([None, base.options.default_currency, "USD"])),
        "probability": draw(st.sampled_from([None, "60%", 0.6, 60, "abc", 150])),
        "expected_close": draw(dates()), "created_at": draw(dates()),
        "owner": draw(st.sampled_from([None, *people, "Nobody"])),
        "lost_reason": draw(st.sampled_from([None, "price"])),
    } for _ in range(draw(st.integers(0, 8)))]
    interactions = [{
        "date": draw(dates()), "customer_id": draw(st.one_of(st.none(),
                                                             st.sampled_from(ids or ["C-x"]))),
        "summary": draw(TEXT), "owner": draw(st.sampled_from([None, *people])),
    } for _ in range(draw(st.integers(0, 6)))]
    return {"lang": lang, "customers": customers, "opportunities": opportunities,
            "interactions": interactions, "gap": draw(st.integers(0, 3)),
            "emptied": draw(st.sets(st.sampled_from(["People", "Lists", "CustomFields",
                                                     "Options", "Stages"])))}


def build(path: Path, shape: dict[str, Any]) -> None:
    lang = shape["lang"]
    jobs.init_workbook(path, lang=lang, force=True)
    book = openpyxl.load_workbook(path)
    for number, key in enumerate(("customers", "opportunities", "interactions")):
        ws = book.worksheets[number]
        sdef = schema.SHEETS_BY_KEY[key]
        headers = {str(c.value): c.column for c in ws[1] if c.value}
        start = 2 + shape["gap"] * (number % 2)  # below the Table, sometimes after a gap
        for offset, record in enumerate(shape[key]):
            for field, value in record.items():
                if isinstance(value, Amount):
                    value = value.typed
                cell = ws.cell(row=start + offset, column=headers[sdef.field(field).label(lang)])
                cell.value = value
                if isinstance(value, str) and value.startswith("="):
                    cell.data_type = "s"
    settings_ws = book[schema.SETTINGS.label(lang)]
    for table in settings_ws.tables.values():
        if table.name in shape["emptied"]:
            low_col, low_row, high_col, high_row = openpyxl.utils.range_boundaries(table.ref)
            for row in range(low_row + 1, high_row + 1):
                for col in range(low_col, high_col + 1):
                    settings_ws.cell(row=row, column=col).value = None
    book.save(path)


def expected_figures(shape: dict[str, Any]) -> dict[str, float]:
    """Counts, open pipeline and won amount from what was typed, with pandas."""
    base = default_settings(shape["lang"])
    kinds = {s.name: s.kind for s in base.stages}
    opps = pd.DataFrame(shape["opportunities"], columns=["stage", "amount", "currency"])
    if opps.empty:
        return {"pipeline": 0.0, "won_amount": 0.0}
    opps["kind"] = opps["stage"].map(kinds)
    opps["value"] = opps["amount"].map(lambda a: a.value)
    same = opps["currency"].isna() | (opps["currency"] == base.options.default_currency)
    money = opps["value"].where(same)
    return {"pipeline": float(money[opps["kind"] == "open"].sum()),
            "won_amount": float(money[opps["kind"] == "won"].sum())}


def typed_rows(records: list[dict[str, Any]]) -> int:
    def blank(v: Any) -> bool:
        v = v.typed if isinstance(v, Amount) else v
        return v is None or (isinstance(v, str) and not v.strip())

    return sum(1 for r in records if not all(blank(v) for v in r.values()))


@given(shape=workbooks())
def test_every_job_survives_every_shape_and_counts_right(tmp_path: Path,
                                                         shape: dict[str, Any]) -> None:
    path = tmp_path / "shape.xlsx"
    build(path, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning would reach the user's terminal
        try:
            result = jobs.report_workbook(path, write=False, today=TODAY)
        except InputError:
            return  # a clear refusal (e.g. a Settings value xlcrm cannot use) is a result
        report, figures = result.report, result.analytics
        assert figures is not None
        assert report.counts == {key: typed_rows(shape[key])
                                 for key in ("customers", "opportunities", "interactions")}
        wanted = expected_figures(shape)
        assert math.isclose(figures.kpis["pipeline"], wanted["pipeline"], abs_tol=0.01)
        assert math.isclose(figures.kpis["won_amount"], wanted["won_amount"], abs_tol=0.01)
        for job in (lambda: jobs.validate_workbook(path, write=True, today=TODAY),
                    lambda: jobs.dedupe_workbook(path),
                    lambda: jobs.promote_workbook(path, today=TODAY),
                    lambda: jobs.sync_workbook(path, today=TODAY + dt.timedelta(days=40))):
            job()  # a refused write would raise
    again = jobs.sync_workbook(path, today=TODAY + dt.timedelta(days=40))
    assert not again.changes  # idempotent: a second run the same day changes nothing


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_empty_workbook_through_every_job(tmp_path: Path, lang: str) -> None:
    shape = {"lang": lang, "customers": [], "opportunities": [], "interactions": [], "gap": 0,
             "emptied": {"People", "Lists", "CustomFields"}}
    test_every_job_survives_every_shape_and_counts_right.hypothesis.inner_test(  # type: ignore[attr-defined]
        tmp_path, shape)
