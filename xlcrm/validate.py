"""Validation: pure functions from the read frames and Settings to a Report of Issues.

Checks work column-wise: each distinct value is parsed once, then mapped back onto the
column, so a sheet of 300k rows costs about as much as its distinct values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from openpyxl.utils import get_column_letter

from . import normalize as nz
from . import progress, schema
from .dedupe import ID_FIELDS, find_duplicates, record_label
from .issues import WARNINGS, Code, Issue, Report, Severity, make_message
from .messages import reasons_text, t
from .promote import ambiguous_customers
from .reader import ROW, SheetData, WorkbookData
from .schema import Field, FieldType, Lang, normalize_value
from .settings import Settings


@dataclass
class _Sheet:
    """One sheet under validation, with parsed columns cached."""

    data: SheetData
    sdef: schema.SheetDef
    lang: Lang
    day_first: bool = False
    parsed: dict[str, pd.Series] = field(default_factory=dict)
    factors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        return self.data.frame

    def label(self, key: str) -> str:
        try:
            return self.sdef.field(key).label(self.lang)
        except KeyError:
            return key

    def mapped(self, key: str, func: Callable[[Any], Any], default: Any = None) -> pd.Series:
        """`func` of each distinct value of a column (`nz.map_unique`, with the column's
        distinct values found once for all the checks that read it)."""
        if key not in self.factors:
            self.factors[key] = pd.factorize(self.frame[key].to_numpy(dtype=object),
                                             use_na_sentinel=True)
        codes, uniques = self.factors[key]
        results = np.empty(len(uniques) + 1, dtype=object)
        results[:-1] = [func(value) for value in uniques]
        results[-1] = default  # code -1 (missing) indexes the last slot
        return pd.Series(results[codes], index=self.frame.index, dtype=object)

    def blank(self, key: str) -> pd.Series:
        if f"blank:{key}" not in self.parsed:
            self.parsed[f"blank:{key}"] = self.mapped(key, nz.is_blank, True).astype(bool)
        return self.parsed[f"blank:{key}"]

    def values(self, key: str, parse: Callable[[Any], Any]) -> pd.Series:
        """The column parsed with `parse` (None where blank or unparsable)."""
        cache_key = f"{parse.__name__}:{key}"
        if cache_key not in self.parsed:
            self.parsed[cache_key] = self.mapped(key, parse)
        return self.parsed[cache_key]

    def issues(self, code: Code, mask: pd.Series, key: str, **params: Any) -> list[Issue]:
        """Issues for every row where `mask` holds. Params that are Series vary by row."""
        if not mask.any():
            return []
        rows = self.frame.loc[mask]
        column = self.data.columns.get(key)
        letter = get_column_letter(column) if column else None
        id_field = self.sdef.id_field
        ids = rows[id_field] if id_field else pd.Series(None, index=rows.index)
        severity: Severity = "warning" if code in WARNINGS else "error"
        varying = {k: v for k, v in params.items() if isinstance(v, pd.Series)}
        fixed = {k: v for k, v in params.items() if not isinstance(v, pd.Series)}
        out = []
        for index, excel_row, value, rid in zip(rows.index, rows[ROW], rows[key], ids,
                                                strict=True):
            extra = {k: v.at[index] for k, v in varying.items()}
            message = make_message(code, self.lang, field=self.label(key), value=value,
                                   **fixed, **extra)
            out.append(Issue(code=code, sheet=self.data.name, row=int(excel_row),
                             cell=f"{letter}{int(excel_row)}" if letter else None, field=key,
                             record_id=None if nz.is_blank(rid) else nz.text(rid),
                             value=None if nz.is_blank(value) else value, message=message,
                             severity=severity))
        return out


def duplicate_warnings(data: WorkbookData, found: dict[str, list[Any]]) -> list[Issue]:
    """The `possible-duplicate` warnings of clusters found elsewhere (see `validate`)."""
    return check_duplicates(_sheets(data), data.settings, found)


NO_DUPLICATES: dict[str, list[Any]] = {key: [] for key in ID_FIELDS}


def _sheets(data: WorkbookData) -> dict[str, _Sheet]:
    return {key: _Sheet(sd, schema.SHEETS_BY_KEY[key], data.lang, data.settings.day_first)
            for key, sd in data.sheets.items()}


def field_issues(data: WorkbookData, sheets: dict[str, _Sheet] | None = None) -> list[Issue]:
    """The checks of each field on its own (required, types, choices, owners, IDs, custom
    fields): the part of `validate` that needs nothing from the other sheets."""
    issues: list[Issue] = []
    for sheet in (sheets or _sheets(data)).values():
        issues += check_fields(sheet, data.settings)
        issues += check_custom_fields(sheet, data)
    return issues


def validate(data: WorkbookData, today: dt.date | None = None,
             extra: Iterable[Issue] = (),
             duplicates: dict[str, list[Any]] | None = None,
             fields: list[Issue] | None = None) -> Report:
    """Check every sheet of a read workbook.

    Args:
        data: the workbook as read by `read_workbook`.
        today: the date warnings are computed against (default: today).
        extra: issues found by other steps to include.
        duplicates: the duplicate clusters by sheet key, when the caller found them already,
            or `NO_DUPLICATES` when the caller adds their warnings later
            (`duplicate_warnings`: sync finds them once, in a second process, for the
            warnings and the Duplicates sheet).
        fields: the `field_issues`, when the caller finds them elsewhere (sync: in that
            second process, and puts them first, where they are here).
    """
    progress.step("validate")
    today = today or dt.date.today()
    settings = data.settings
    sheets = _sheets(data)
    report = Report(workbook=data.path.name, lang=data.lang, counts=data.counts(),
                    sheet_order=[s.name for s in data.sheets.values()])
    report.extend(field_issues(data, sheets) if fields is None else fields)
    report.extend(check_keys(sheets))
    report.extend(check_opportunity_rules(sheets, settings, today))
    report.extend(check_duplicates(sheets, settings, duplicates))
    report.extend(ambiguous_customers(data))
    report.extend(extra)
    return report


# ---------------------------------------------------------------------------------------------
# Field checks: required, types, choices, owners, IDs

def check_fields(sheet: _Sheet, settings: Settings) -> list[Issue]:
    issues: list[Issue] = []
    for f in sheet.sdef.fields:
        if f.key not in sheet.data.columns:
            continue
        blank = sheet.blank(f.key)
        if f.required:
            issues += sheet.issues(Code.MISSING_REQUIRED, blank, f.key)
        issues += _check_type(sheet, f.key, f.type, ~blank, settings, f)
    return issues


def _check_type(sheet: _Sheet, key: str, kind: FieldType | str, present: pd.Series,
                settings: Settings, f: Field | None = None,
                choices: list[str] | None = None) -> list[Issue]:
    region = settings.options.phone_region
    if kind == "id":
        return _check_ids(sheet, key, present)
    if kind in ("date",):
        bad = present & sheet.values(key, nz.date_parser(settings.day_first)).isna()
        return sheet.issues(Code.INVALID_DATE, bad, key,
                            forms=schema.label(nz.DATE_FORMS, sheet.lang))
    if kind in ("money", "number", "rating"):
        numbers = sheet.values(key, nz.parse_number)
        bad = present & numbers.isna()
        issues = sheet.issues(Code.INVALID_NUMBER, bad, key,
                              forms=schema.label(nz.NUMBER_FORMS, sheet.lang))
        ok = present & ~bad
        if kind == "money":
            issues += sheet.issues(Code.NEGATIVE_AMOUNT, ok & (numbers.where(ok, 0) < 0), key)
        if kind == "rating":
            wrong = ok & ~numbers.where(ok, 1).isin([1.0, 2.0, 3.0, 4.0, 5.0])
            issues += sheet.issues(Code.INVALID_NUMBER, wrong, key, forms="1, 2, 3, 4, 5")
        return issues
    if kind == "percent":
        numbers = sheet.values(key, nz.parse_fraction)
        bad = present & numbers.isna()
        ok = present & ~bad
        values = numbers.where(ok, 0).astype(float)
        return (sheet.issues(Code.INVALID_NUMBER, bad, key,
                             forms=schema.label(nz.NUMBER_FORMS, sheet.lang))
                + sheet.issues(Code.PROBABILITY_RANGE, ok & ((values < 0) | (values > 1)), key))
    if kind == "email":
        bad = present & sheet.values(key, lambda v: nz.email_key(nz.text(v))).isna()
        return sheet.issues(Code.INVALID_EMAIL, bad, key)
    if kind == "phone":
        bad = present & sheet.mapped(key, lambda v: nz.phone_e164(nz.text(v), region)).isna()
        if bad.any():  # a foreign number typed without its country code: read it in the
            bad &= ~_valid_in_own_country(sheet, key, bad)  # record's own country
        return sheet.issues(Code.INVALID_PHONE, bad, key)
    if kind == "tax_id":
        bad = present & sheet.values(key, nz.tax_id_key).isna()
        return sheet.issues(Code.INVALID_TAX_ID, bad, key)
    if kind == "person":
        active = settings.active_people()
        if not settings.people:
            return []  # an empty People table means owners are not checked
        bad = present & ~sheet.mapped(key, lambda v: normalize_value(v) in active,
                                      False).astype(bool)
        return sheet.issues(Code.UNKNOWN_OWNER, bad, key)
    if kind == "choice":
        allowed = choices if choices is not None else (
            settings.choices(f.choices) if f and f.choices else [])
        if not allowed:
            return []
        folded = {normalize_value(a) for a in allowed}
        bad = present & ~sheet.mapped(key, lambda v: normalize_value(nz.text(v)) in folded,
                                      False).astype(bool)
        return sheet.issues(Code.INVALID_CHOICE, bad, key, allowed=" / ".join(allowed[:12]))
    return []


EMAIL_OF = {"phone": "email", "contact_phone": "contact_email"}


def _valid_in_own_country(sheet: _Sheet, key: str, rows: pd.Series) -> pd.Series:
    """For the `rows` whose phone is not valid in the Settings region: valid in the country
    the record's e-mail names (its country-code domain: kontakt@northwind.de → DE)?"""
    email = EMAIL_OF.get(key)
    out = pd.Series(False, index=rows.index)
    if email is None or email not in sheet.frame.columns:
        return out
    for index in rows.index[rows.astype(bool)]:
        region = nz.email_region(sheet.frame.at[index, email])
        if region and nz.phone_e164(nz.text(sheet.frame.at[index, key]), region):
            out.at[index] = True
    return out


def _check_ids(sheet: _Sheet, key: str, present: pd.Series) -> list[Issue]:
    ids = sheet.values(key, nz.record_id)
    dup = present & ids.duplicated(keep=False) & ids.notna()
    if not dup.any():
        return []
    rows = sheet.frame[ROW]
    first_rows = rows[dup].groupby(ids[dup]).agg(list)
    other = pd.Series(
        [next(r for r in first_rows[i] if r != row) for i, row in zip(ids[dup], rows[dup],
                                                                      strict=True)],
        index=rows[dup].index)
    return sheet.issues(Code.DUPLICATE_ID, dup, key, other=other)


def check_custom_fields(sheet: _Sheet, data: WorkbookData) -> list[Issue]:
    """Columns declared under Settings → Custom Fields are checked like built-in ones."""
    issues: list[Issue] = []
    settings = data.settings
    for key, cf in data.custom_columns(sheet.sdef.key):
        blank = sheet.blank(key)
        if cf.required:
            issues += sheet.issues(Code.MISSING_REQUIRED, blank, key)
        issues += _check_type(sheet, key, cf.type, ~blank, settings, None,
                              cf.choices if cf.type == "choice" else None)
    return issues


# ---------------------------------------------------------------------------------------------
# Keys between sheets

def check_keys(sheets: dict[str, _Sheet]) -> list[Issue]:
    customers, opps, inter = sheets["customers"], sheets["opportunities"], sheets["interactions"]
    customer_ids = set(customers.values("customer_id", nz.record_id).dropna())
    issues: list[Issue] = []

    opp_customer = opps.values("customer_id", nz.record_id)
    has_customer = ~opps.blank("customer_id")
    issues += opps.issues(Code.UNKNOWN_CUSTOMER, has_customer & ~opp_customer.isin(customer_ids),
                          "customer_id")
    no_company = opps.blank("company")
    issues += opps.issues(Code.MISSING_REQUIRED, ~has_customer & no_company, "customer_id")

    int_customer = inter.values("customer_id", nz.record_id)
    int_has_customer = ~inter.blank("customer_id")
    issues += inter.issues(Code.UNKNOWN_CUSTOMER,
                           int_has_customer & ~int_customer.isin(customer_ids), "customer_id")

    opp_ids = opps.values("opportunity_id", nz.record_id)
    owner_of = dict(zip(opp_ids, opp_customer, strict=True))
    int_opp = inter.values("opportunity_id", nz.record_id)
    has_opp = ~inter.blank("opportunity_id")
    known = int_opp.isin(set(opp_ids.dropna()))
    issues += inter.issues(Code.UNKNOWN_OPPORTUNITY, has_opp & ~known, "opportunity_id")
    their_customer = int_opp.map(owner_of)
    mismatch = (has_opp & known & int_has_customer & their_customer.notna()
                & (their_customer != int_customer))
    raw_owner = dict(zip(opp_ids, opps.frame["customer_id"], strict=True))
    issues += inter.issues(Code.CUSTOMER_MISMATCH, mismatch, "opportunity_id",
                           other=int_opp.map(raw_owner))
    return issues


# ---------------------------------------------------------------------------------------------
# Opportunity rules: lost reason, close date, stalled, follow-up

def check_opportunity_rules(sheets: dict[str, _Sheet], settings: Settings,
                            today: dt.date) -> list[Issue]:
    opps, inter = sheets["opportunities"], sheets["interactions"]
    if opps.frame.empty:
        return []
    stages = opps.values("stage", settings.stage)
    kind = stages.map(lambda s: s.kind if s is not None else None)
    is_open, is_lost = kind.eq("open"), kind.eq("lost")
    issues = opps.issues(Code.LOST_WITHOUT_REASON, is_lost & opps.blank("lost_reason"),
                         "lost_reason")

    close = _dates(opps, "expected_close")
    issues += opps.issues(Code.CLOSE_DATE_PAST, is_open & (close < pd.Timestamp(today)),
                          "expected_close")

    since = _dates(opps, "stage_changed_at").fillna(_dates(opps, "created_at"))
    days_in = (pd.Timestamp(today) - since).dt.days
    limit = stages.map(lambda s: s.max_days if s is not None and s.max_days else None)
    limit = pd.to_numeric(limit, errors="coerce")
    stalled = is_open & limit.notna() & days_in.notna() & (days_in > limit)
    issues += opps.issues(Code.STALLED, stalled, "stage", days=days_in.astype("Int64"),
                          stage=opps.frame["stage"], limit=limit.astype("Int64"))

    horizon = pd.Timestamp(today - dt.timedelta(days=settings.options.no_follow_up_days))
    last = _last_touch(opps, inter)
    created = _dates(opps, "created_at")
    touched = nz.latest(last, created)
    quiet = is_open & opps.blank("next_follow_up") & (touched.isna() | (touched < horizon))
    issues += opps.issues(Code.NO_FOLLOW_UP, quiet, "next_follow_up",
                          days=settings.options.no_follow_up_days)
    return issues


def _dates(sheet: _Sheet, key: str) -> pd.Series:
    return nz.as_datetimes(sheet.values(key, nz.date_parser(sheet.day_first)))


def _last_touch(opps: _Sheet, inter: _Sheet) -> pd.Series:
    """Per opportunity: the latest interaction on the deal itself or on its customer."""
    if inter.frame.empty:
        return pd.Series(pd.NaT, index=opps.frame.index, dtype="datetime64[ns]")
    dates = _dates(inter, "date")
    by_opp = dates.groupby(inter.values("opportunity_id", nz.record_id)).max().to_dict()
    by_customer = dates.groupby(inter.values("customer_id", nz.record_id)).max().to_dict()
    on_deal = nz.as_datetimes(opps.values("opportunity_id", nz.record_id).map(by_opp))
    on_customer = nz.as_datetimes(opps.values("customer_id", nz.record_id).map(by_customer))
    return nz.latest(on_deal, on_customer)


# ---------------------------------------------------------------------------------------------
# Possible duplicates (warnings)

MAX_NAMED = 3  # records a possible-duplicate warning names; the Duplicates sheet has all


def check_duplicates(sheets: dict[str, _Sheet], settings: Settings,
                     found: dict[str, list[Any]] | None = None) -> list[Issue]:
    """A `possible-duplicate` warning on each member of each cluster, in every data sheet
    (`found`: the clusters by sheet key, when the caller has them already)."""
    issues: list[Issue] = []
    options = settings.options
    for key, marked in (("customers", "name"), ("opportunities", "title"),
                        ("interactions", "summary")):
        sheet = sheets[key]
        frame = sheet.frame
        matches = found[key] if found is not None else find_duplicates(
            frame, key, options.phone_region, options.duplicate_threshold,
            settings.closed_stages())
        if not matches:
            continue
        id_field = ID_FIELDS[key]
        mask = pd.Series(False, index=frame.index)
        other = pd.Series("", index=frame.index, dtype=object)
        reasons = pd.Series("", index=frame.index, dtype=object)
        for match in matches:
            for index in match.indices:
                mask.at[index] = True
                others = [record_label(frame, i, id_field, sheet.lang)
                          for i in match.indices if i != index]
                if len(others) > MAX_NAMED:
                    others = [*others[:MAX_NAMED], t("and_more", sheet.lang,
                                                     n=len(others) - MAX_NAMED)]
                other.at[index] = ", ".join(others)
                reasons.at[index] = reasons_text(match.reasons, sheet.lang)
        issues += sheet.issues(Code.POSSIBLE_DUPLICATE, mask, marked, other=other,
                               reasons=reasons)
    return issues
