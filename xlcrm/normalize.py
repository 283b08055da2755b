"""Normalisation of values, written once and used by validation, dedupe and promotion.

Cell values arrive as calamine gives them: str, float, int, bool, date or datetime.
Parsing functions return None for "not that kind of value"; callers decide what that means.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
from email_validator import EmailNotValidError, validate_email

EXCEL_EPOCH = dt.date(1899, 12, 30)
_YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?"
                  r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_XXY = re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4})"
                  r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2})?)?$")
DATE_FORMS = ("2026-11-03, 2026/11/3, 2026.11.3, 2026年11月3日, 20261103, "  # (en, zh)
              "03/11/2026 (day first) or 11/03/2026 (month first, per Settings date_order)",
              "2026-11-03、2026/11/3、2026.11.3、2026年11月3日、20261103、"
              "03/11/2026（日在前）或 11/03/2026（月在前，按设置中的 date_order）")
NUMBER_FORMS = ("1200, 1,200.50, ¥12,000, 1.2万, 3.5亿, (1,200), 60%",
                "1200、1,200.50、¥12,000、1.2万、3.5亿、(1,200)、60%")


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and value != value) or value is pd.NaT


def text(value: Any) -> str:
    """A cell value as the text a user sees (12.0 → "12")."""
    if type(value) is str:  # the common case first
        return value.strip()
    if value is None or value is pd.NaT:
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
    if type(value) is str and value.isascii():  # NFKC leaves ASCII as it is
        return value.strip().lower()
    return unicodedata.normalize("NFKC", text(value)).strip().casefold()


def dayfirst(date_order: str, lang: str) -> bool:
    """Whether 03/11/2026 is the 3rd of November: Settings `date_order` (DMY or MDY), else
    the workbook's language (Chinese: day first, as in Hong Kong and most of the world;
    English: month first, as US Excel types it)."""
    order = date_order.strip().upper()
    if order in ("DMY", "MDY"):
        return order == "DMY"
    return lang == "zh"


def _make_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_date(value: Any, dayfirst: bool = False) -> dt.date | None:
    """A date from a date cell, an Excel serial number or a typed form (see DATE_FORMS).

    Day-first or month-first only matters for dd/mm/yyyy forms; where one reading is
    impossible (26/11/2026) the other is taken."""
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
    if not isinstance(value, str):
        return None
    raw = unicodedata.normalize("NFKC", value).strip()
    match = _YMD.match(raw) or _COMPACT.match(raw)
    if match:
        return _make_date(int(match[1]), int(match[2]), int(match[3]))
    match = _XXY.match(raw)
    if match:
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        day, month = (first, second) if dayfirst else (second, first)
        return _make_date(year, month, day) or _make_date(year, day, month)
    if re.fullmatch(r"\d{5}(\.\d+)?", raw):  # a serial typed as text
        return parse_date(float(raw))
    try:
        return dt.datetime.fromisoformat(raw).date()
    except ValueError:
        return None


def parse_date_dayfirst(value: Any) -> dt.date | None:
    """`parse_date` reading dd/mm/yyyy."""
    return parse_date(value, dayfirst=True)


def date_parser(day_first: bool) -> Callable[[Any], dt.date | None]:
    return parse_date_dayfirst if day_first else parse_date


_CURRENCY = re.compile(r"^(?:CNY|RMB|USD|EUR|HKD|GBP|JPY|US\$|HK\$|[¥$€£])\s*|"
                       r"\s*(?:CNY|RMB|USD|EUR|HKD|GBP|JPY|元|人民币|美元|[¥$€£])$", re.IGNORECASE)
_GROUPED = re.compile(r"^\d{1,3}(?:([, ])\d{3})+(?:\.\d+)?$")
_PLAIN = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$", re.IGNORECASE)
_SCALE = {"万": 1e4, "亿": 1e8, "千": 1e3, "百万": 1e6, "千万": 1e7, "万亿": 1e12}
_SCALED = re.compile(r"^(.*?)\s*(万亿|千万|百万|万|亿|千)$")


def parse_number(value: Any) -> float | None:
    """A number from a numeric cell or typed text (see NUMBER_FORMS): "1,200.50", "¥12,000",
    "1.2万", "3.5亿", "(1,200)" (negative), full-width digits. Ambiguous text ("12 000,50",
    "1.200,5", "1,5": is the comma a decimal point?) is no number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value == value else None
    if not isinstance(value, str):
        return None
    raw = unicodedata.normalize("NFKC", value).strip()
    if not raw:
        return None
    sign = 1.0
    if raw.startswith("(") and raw.endswith(")"):
        raw, sign = raw[1:-1].strip(), -1.0
    if raw.startswith("-"):
        raw, sign = raw[1:].strip(), -sign
    elif raw.startswith("+"):
        raw = raw[1:].strip()
    raw = _CURRENCY.sub("", _CURRENCY.sub("", raw))
    if raw.startswith("-") and sign == 1.0:  # ¥-1,200
        raw, sign = raw[1:].strip(), -1.0
    scale = 1.0
    match = _SCALED.match(raw)
    if match:
        raw, scale = match[1].strip(), _SCALE[match[2]]
    grouped = _GROUPED.match(raw)
    if grouped:
        raw = raw.replace(grouped[1], "")
    elif not _PLAIN.match(raw):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return sign * number * scale if number == number and abs(number) != float("inf") else None


def parse_fraction(value: Any) -> float | None:
    """A probability as a fraction: 0.2, "20%" and 20 all give 0.2 (above 1 means percent)."""
    if isinstance(value, str):
        raw = unicodedata.normalize("NFKC", value).strip()
        if raw.endswith("%"):
            number = parse_number(raw[:-1])
            return None if number is None else number / 100
    number = parse_number(value)
    if number is None:
        return None
    return number / 100 if number > 1 else number


# ---------------------------------------------------------------------------------------------
# Whole columns: each distinct value parsed once, by the parsers above

def map_unique(column: pd.Series, func: Callable[[Any], Any], default: Any = None) -> pd.Series:
    """Apply `func` once per distinct value of `column` (None/NaN map to `default`)."""
    codes, uniques = pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=True)
    results = np.empty(len(uniques) + 1, dtype=object)
    results[:-1] = [func(value) for value in uniques]
    results[-1] = default  # code -1 (missing) indexes the last slot
    return pd.Series(results[codes], index=column.index, dtype=object)


def date_column(series: pd.Series, day_first: bool = False) -> pd.Series:
    """A column as datetime64[ns] dates (NaT where blank or not a date), whatever it holds."""
    return as_datetimes(map_unique(series, date_parser(day_first)))


def latest(a: pd.Series, b: pd.Series) -> pd.Series:
    """Row by row, the later of two datetime64 columns (NaT only where both are)."""
    return a.where(b.isna() | (a >= b), b)


def as_datetimes(values: pd.Series) -> pd.Series:
    """Dates, timestamps, None or NaN (any dtype, even empty) as datetime64[ns], normalised to
    midnight; anything else is NaT."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[ns]").dt.normalize()
    raw = values.to_numpy(dtype=object)
    keep = np.array([isinstance(v, dt.date | pd.Timestamp) for v in raw], dtype=bool)
    out = np.full(len(raw), np.datetime64("NaT"), dtype="datetime64[ns]")
    if keep.any():
        out[keep] = pd.to_datetime(pd.Series(raw[keep], dtype=object)).to_numpy(
            dtype="datetime64[ns]")
    return pd.Series(out, index=values.index, dtype="datetime64[ns]").dt.normalize()


def number_column(series: pd.Series) -> pd.Series:
    """A column as float64 (NaN where blank or not a number), whatever it holds."""
    parsed = map_unique(series, parse_number)
    return pd.Series(parsed.to_numpy(dtype=object), index=series.index).astype("float64")


def fraction_column(series: pd.Series) -> pd.Series:
    """A probability column as float64 fractions (60, 0.6 and "60%" are all 0.6)."""
    parsed = map_unique(series, parse_fraction)
    return pd.Series(parsed.to_numpy(dtype=object), index=series.index).astype("float64")


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


_NOT_DIGIT = re.compile(r"\D")


def phone_key(value: Any, region: str = "CN") -> str | None:
    """A phone number as a comparison key: its national significant number (NSN), so that
    `+1 415 555 0134` and `415-555-0134`, `+49 30 1234567` and `030 1234567`, `0086 138…` and
    `138…` agree whatever the Settings region. The country code is taken off where the number
    gives one (`+`, `00`; phonenumbers' table tells where it ends), the trunk 0 and an
    extension (`ext 12`, `转 12`) too. Short or empty numbers give None: no evidence either
    way, never a conflict. Not a validity check: validation does that."""
    raw = text(value)
    return _phone_nsn(raw, region) if raw else None


_TLD_REGION = {"uk": "GB"}  # the country-code domains whose region code differs


def email_region(value: Any) -> str | None:
    """The country an e-mail address's domain names (`.de` → DE, `.co.uk` → GB, `.com.cn` →
    CN), if it is a country-code domain phonenumbers knows; None for .com, .org, …"""
    address = text(value)
    if "@" not in address:
        return None
    tld = address.rsplit(".", 1)[-1].casefold()
    if len(tld) != 2:
        return None
    region = _TLD_REGION.get(tld, tld.upper())
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


_EXTENSION = re.compile(r"\s*(?:ext\.?|x|转|分机|#)\s*\d+\s*$", re.IGNORECASE)
_COUNTRY_CODES = frozenset(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _phone_nsn(raw: str, region: str = "CN") -> str | None:
    raw = _EXTENSION.sub("", unicodedata.normalize("NFKC", raw))
    digits = _NOT_DIGIT.sub("", raw)
    if raw.lstrip().startswith("+") or digits.startswith("00"):
        digits = digits.lstrip("0")
        code = next((digits[:n] for n in (1, 2, 3) if digits[:n] in _COUNTRY_CODES), "")
        digits = digits[len(code):]
    elif region.upper() == "CN" and digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]  # 86 typed without its +
    digits = digits.lstrip("0")  # the trunk prefix
    return digits if 6 <= len(digits) <= 12 else None


# Plain ASCII addresses that email-validator always accepts; anything else goes to it.
_PLAIN_EMAIL = re.compile(
    r"(?=.{6,254}$)(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$")
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _plain_email(folded: str) -> bool:
    return bool(_PLAIN_EMAIL.match(folded)) and folded.rsplit(".", 1)[1] not in _SPECIAL_TLDS


@lru_cache(maxsize=200_000)
def email_key(value: str) -> str | None:
    """The normalised form of a syntactically valid e-mail address (offline check), or None."""
    return _email_key(value)


def _email_key(value: str) -> str | None:
    folded = value.strip().casefold()
    if _plain_email(folded):
        return folded
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return str(result.normalized).casefold()


def tax_id_key(value: Any) -> str | None:
    """The compact form of a valid unified social credit code (统一社会信用代码), or None."""
    return _tax_id_key(text(value))


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_SHAPE = re.compile(rf"^\d{{8}}[{_USCC_ALPHABET}]{{10}}$")
_USCC_JUNK = re.compile(r"[\s\-]")
_USCC_TABLE = np.zeros(128, dtype=np.int64)
for _i, _ch in enumerate(_USCC_ALPHABET):
    _USCC_TABLE[ord(_ch)] = _i


@lru_cache(maxsize=200_000)
def _tax_id_key(raw: str) -> str | None:
    """python-stdnum's cn.uscc rules (18 characters, 8 digits, its alphabet, the check
    character) without its per-character clean-up, which is slow at a million rows; a test
    compares the two."""
    number = _USCC_JUNK.sub("", raw).upper()
    if not number.isascii() or not _USCC_SHAPE.match(number):
        return None
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(number, _USCC_WEIGHTS, strict=False))
    return number if _USCC_ALPHABET[(31 - total) % 31] == number[-1] else None


def phone_keys(values: list[Any], region: str = "CN") -> list[str | None]:
    """`phone_key` of many values, uncached (a million distinct numbers would only churn a
    cache)."""
    return [None if is_blank(v) else _phone_nsn(v if isinstance(v, str) else text(v), region)
            for v in values]


def email_keys(values: list[Any]) -> list[str | None]:
    """`email_key` of many values, uncached (a million distinct addresses would only churn
    a cache)."""
    return [_email_key(value if isinstance(value, str) else text(value)) for value in values]


def tax_id_keys(values: list[Any]) -> list[str | None]:
    """`tax_id_key` of many values: the shape by regular expression, the check character
    for all of them at once with numpy."""
    shaped = [_USCC_JUNK.sub("", v if isinstance(v, str) else text(v)).upper() for v in values]
    positions = [i for i, v in enumerate(shaped) if v.isascii() and _USCC_SHAPE.match(v)]
    out: list[str | None] = [None] * len(values)
    if not positions:
        return out
    codes = np.frombuffer("".join(shaped[i] for i in positions).encode("ascii"),
                          dtype=np.uint8).reshape(-1, 18)
    value = _USCC_TABLE[codes]
    total = (value[:, :17] * np.array(_USCC_WEIGHTS)).sum(axis=1)
    valid = value[:, 17] == (31 - total) % 31
    for i, ok in zip(positions, valid.tolist(), strict=True):
        if ok:
            out[i] = shaped[i]
    return out


# Company names. cleanco strips legal forms in many languages; it does not know Chinese ones
# or Chinese region prefixes, so those two lists are ours. OpenCC folds traditional characters.
_LEGAL_ZH = ("股份有限公司", "有限责任公司", "有限公司", "集团公司", "集团", "公司", "股份")
_REGIONS = (
    "内蒙古", "黑龙江", "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "江苏",
    "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州",
    "云南", "陕西", "甘肃", "青海", "台湾", "广西", "西藏", "宁夏", "新疆", "香港", "澳门", "广州",
    "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "宁波", "无锡", "厦门", "青岛", "大连",
    "沈阳", "长沙", "郑州", "济南", "合肥", "福州", "东莞", "佛山", "珠海", "昆明", "常州", "南通",
    "温州", "绍兴", "嘉兴", "台州", "泉州", "烟台", "潍坊", "石家庄", "哈尔滨", "长春", "太原",
    "南昌", "南宁", "贵阳", "兰州", "海口", "乌鲁木齐", "呼和浩特", "银川", "西宁", "拉萨")
_STOCK_STATUS = re.compile(  # *ST阳光, ST阳光(退) (the brackets are gone by then), S*ST, SST
    r"^\s*(?:s?\*?s?st)\s*(?=[\u3400-\u9fff])|(?<=[\u3400-\u9fff])\s*退\s*$")
_REGION_STARTS = tuple(sorted({region[0] for region in _REGIONS}))
_REGION_PREFIX = re.compile(rf"^(?:{'|'.join(_REGIONS)})(?:省|市|自治区|特别行政区)?")
_PARENS = re.compile(r"[(（\[【][^)）\]】]*[)）\]】]")
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_WORDS = re.compile(r"[^\W_]+")


def company_key(value: Any) -> str:
    """A company name folded for exact comparison: `name_words` without the spaces."""
    return name_words(value).replace(" ", "")


def name_words(value: Any) -> str:
    """A company name folded to its distinguishing words: width, traditional characters,
    case, parenthesised parts, legal forms (English and Chinese), a leading region, and
    punctuation removed ("（上海）华訊科技股份有限公司" → "华讯科技")."""
    return _name_words(text(value))


def name_words_many(values: list[Any]) -> list[str]:
    """`name_words` of many values at once: one OpenCC call for all the Chinese ones (a call
    costs more than the conversion), the rest per value. For a million names."""
    texts = [v.strip() if type(v) is str else text(v) for v in values]
    wide = [i for i, t in enumerate(texts) if not t.isascii()]  # ASCII is NFKC already
    chinese = []
    for i in wide:
        texts[i] = t = unicodedata.normalize("NFKC", texts[i])
        if _CJK.search(t):
            chinese.append(i)
    if chinese:  # a newline is whitespace to the folding, so it can separate the names
        joined = "\n".join(texts[i].replace("\n", " ") for i in chinese)
        simplified = str(_converter().convert(joined)).split("\n")
        if len(simplified) != len(chinese):  # cannot happen with OpenCC's tables; be safe
            simplified = [_t2s(texts[i]) for i in chinese]
        for i, t in zip(chinese, simplified, strict=True):
            texts[i] = t
    is_chinese = [False] * len(texts)
    for i in chinese:  # still Chinese after conversion (OpenCC keeps the script)
        is_chinese[i] = _is_chinese(texts[i])
    return list(map(_fold, texts, is_chinese))


@lru_cache(maxsize=200_000)
def _name_words(raw: str) -> str:
    name = _t2s(unicodedata.normalize("NFKC", raw))
    return _fold(name, _is_chinese(name))


def _fold(name: str, chinese: bool) -> str:
    """The folding after width and script: case, brackets, legal forms, region, punctuation.
    (Plain string tests guard each regular expression: this runs a million times.)"""
    name = name.casefold()
    if "(" in name or "（" in name or "[" in name or "【" in name:
        name = _PARENS.sub(" ", name)
    for _ in range(3):  # "Acme Holdings Co., Ltd." carries more than one legal form
        stripped = cleanco_basename(name)
        if ("k" in stripped or "kaisha" in stripped) and _LEGAL_JA.search(stripped):
            stripped = _LEGAL_JA.sub("", stripped)  # Japanese forms cleanco lacks
        if stripped == name:
            break
        name = stripped
    if chinese:  # stock-status markers, the Chinese legal forms and regions
        if "st" in name or name.endswith("退"):
            name = _STOCK_STATUS.sub("", name)
        if name.endswith(_LEGAL_ZH):
            for suffix in _LEGAL_ZH:
                if name.endswith(suffix) and len(name) > len(suffix) + 1:
                    name = name[: -len(suffix)]
        if name.lstrip().startswith(_REGION_STARTS):
            rest = _REGION_PREFIX.sub("", name.strip())
            if len(rest.strip()) >= 2:
                name = rest
    if name.replace(" ", "").isalnum():  # no punctuation (isalnum is \w without "_")
        return " ".join(name.split())
    return " ".join(_WORDS.findall(name))


_LEGAL_JA = re.compile(r"[\s,]+(k\.\s?k\.?|kk|kabushiki\s+kaisha|godo\s+kaisha|g\.k\.|y\.k\.)\s*$")


def has_chinese(value: str) -> bool:
    """Whether text holds Chinese characters."""
    return _is_chinese(value)


def _is_chinese(value: str) -> bool:
    return not value.isascii() and _CJK.search(value) is not None


def _last_word(name: str) -> str:
    parts = name.rsplit(None, 1)
    if parts and parts[-1].isalnum():  # the usual case: a name ending in a word
        return parts[-1]
    end = len(name)
    while end and not name[end - 1].isalnum():
        end -= 1
    parts = name[:end].rsplit(None, 1)
    last = parts[-1] if parts else ""
    return last if last.isalnum() else _PUNCT.split(last)[-1]


def cleanco_basename(name: str) -> str:
    """cleanco's `basename` (legal forms removed from the end), case-folded. cleanco's own
    function tries each of its 321 terms in turn, 150 µs a name; this is the same loop over
    the same terms, trying only the terms that end with the name's current last word."""
    if _last_word(name) not in _legal_last_words():
        return name
    from cleanco.clean import normalized, strip_punct, strip_tail

    parts = strip_tail(name).split()
    joined = " ".join(parts)  # cleanco's accent removal changes no ASCII but its case
    folded = list(map(strip_punct, (joined.casefold() if joined.isascii()
                                    else normalized(joined)).split()))
    if len(folded) != len(parts):  # cannot happen: leave it to cleanco
        return _cleanco(name)
    terms, by_last = _cleanco_terms()
    start = 0
    while folded:
        found = next((i for i in by_last.get(folded[-1], ()) if i >= start
                      and folded[-terms[i][0]:] == terms[i][1]), None)
        if found is None:
            break
        del folded[-terms[found][0]:]
        del parts[-terms[found][0]:]
        start = found + 1
    return str(strip_tail(" ".join(parts))).casefold()


def _cleanco(name: str) -> str:
    from cleanco import basename

    return str(basename(name)).casefold()


@lru_cache(maxsize=1)
def _cleanco_terms() -> tuple[list[tuple[int, list[str]]], dict[str, list[int]]]:
    """cleanco's terms in its order, and the positions of those ending with each word."""
    from cleanco import prepare_default_terms

    terms = prepare_default_terms()
    by_last: dict[str, list[int]] = {}
    for position, (_, parts) in enumerate(terms):
        by_last.setdefault(parts[-1], []).append(position)
    return terms, by_last


@lru_cache(maxsize=1)
def _legal_last_words() -> frozenset[str]:
    from cleanco import prepare_default_terms

    return frozenset(_PUNCT.sub("", parts[-1]) for _, parts in prepare_default_terms() if parts)


@lru_cache(maxsize=1)
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def _t2s(value: str) -> str:
    if not _is_chinese(value):
        return value
    return str(_converter().convert(value))
