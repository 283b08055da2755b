"""Normalisation of values, written once and used by validation, dedupe and promotion.

Cell values arrive as calamine gives them: str, float, int, bool, date or datetime.
Parsing functions return None for "not that kind of value"; callers decide what that means.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.cn import uscc

EXCEL_EPOCH = dt.date(1899, 12, 30)
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                 "%Y/%m/%d %H:%M", "%Y%m%d", "%d.%m.%Y")
_CN_DATE = re.compile(r"^\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?\s*$")
_NUMBER_JUNK = re.compile(r"[,，\s¥￥$€£]|^(CNY|RMB|USD|EUR|HKD)|元$", re.IGNORECASE)


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and value != value)


def text(value: Any) -> str:
    """A cell value as the text a user sees (12.0 → "12")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def record_id(value: Any) -> str:
    """The form IDs are compared in: width-folded, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", text(value)).strip().casefold()


def parse_date(value: Any) -> dt.date | None:
    """A date from a date cell, an Excel serial number or common typed forms."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if 1 <= value < 2958466:  # Excel's valid serial range
            return EXCEL_EPOCH + dt.timedelta(days=int(value))
        return None
    if isinstance(value, str):
        raw = unicodedata.normalize("NFKC", value).strip()
        match = _CN_DATE.match(raw)
        if match:
            raw = "-".join(match.groups())
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(raw, fmt).date()
            except ValueError:
                continue
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            return None
    return None


def parse_number(value: Any) -> float | None:
    """A number from a numeric cell or typed text such as "1,200", "¥1200" or "1200元"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value == value else None
    if isinstance(value, str):
        raw = _NUMBER_JUNK.sub("", unicodedata.normalize("NFKC", value).strip())
        try:
            return float(raw)
        except ValueError:
            return None
    return None


def parse_fraction(value: Any) -> float | None:
    """A probability as a fraction: 0.2, "20%" and 20 all give 0.2 (above 1 means percent)."""
    if isinstance(value, str) and value.strip().endswith(("%", "％")):
        number = parse_number(value.strip()[:-1])
        return None if number is None else number / 100
    number = parse_number(value)
    if number is None:
        return None
    return number / 100 if number > 1 else number


@lru_cache(maxsize=200_000)
def phone_e164(value: str, region: str = "CN") -> str | None:
    """The E.164 form of a valid phone number, or None."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Plain ASCII addresses that email-validator always accepts; anything else goes to it.
_PLAIN_EMAIL = re.compile(
    r"(?=.{6,254}$)(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$")
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


@lru_cache(maxsize=200_000)
def email_key(value: str) -> str | None:
    """The normalised form of a syntactically valid e-mail address (offline check), or None."""
    folded = value.strip().casefold()
    if _PLAIN_EMAIL.match(folded) and folded.rsplit(".", 1)[1] not in _SPECIAL_TLDS:
        return folded
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return str(result.normalized).casefold()


def tax_id_key(value: Any) -> str | None:
    """The compact form of a valid unified social credit code (统一社会信用代码), or None."""
    return _tax_id_key(text(value))


@lru_cache(maxsize=200_000)
def _tax_id_key(raw: str) -> str | None:
    return uscc.compact(raw) if raw and uscc.is_valid(raw) else None


# Legal forms: the first cut written here; the duplicates issue replaces it with cleanco/opencc.
_LEGAL_ZH = ("股份有限公司", "有限责任公司", "有限公司", "集团", "公司")
_LEGAL_EN = re.compile(
    r"\b(co|company|corp|corporation|inc|incorporated|ltd|limited|llc|gmbh|pty|plc|group)\b\.?",
    re.IGNORECASE)
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def company_key(value: Any) -> str:
    """A company name folded for exact comparison (legal forms, case, punctuation removed)."""
    return _company_key(text(value))


@lru_cache(maxsize=200_000)
def _company_key(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw).casefold()
    name = re.sub(r"[(（][^)）]*[)）]", "", name)
    for suffix in _LEGAL_ZH:
        name = name.replace(suffix, "")
    name = _LEGAL_EN.sub(" ", name)
    return _PUNCT.sub("", name)
