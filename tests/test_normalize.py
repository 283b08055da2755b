"""Normalisation: the fast paths agree with the libraries they stand in front of."""

from __future__ import annotations

import datetime as dt

import pytest
from email_validator import EmailNotValidError, validate_email

from xlcrm import normalize as nz

ADDRESSES = [
    "info@acme.com", "Li.Na@Huaxin-Tech.cn", "a+b@sub.example.org", "x@y.co",
    "bad@@x.com", "no-at.example.com", "a..b@x.com", ".a@x.com", "a.@x.com", "a@-x.com",
    "a@x-.com", "a@x", "a@x.c", "a@localhost", "a@host.local", "a@x.test", "张三@例子.公司",
    "user@xn--fiqs8s.cn", "a@" + "x" * 64 + ".com", "l" * 65 + "@x.com", "a b@x.com",
    "\"quoted\"@x.com", "a@x.123", "o'brien@x.ie", "sales@163.com",
]


def library_says(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_fast_path_agrees_with_email_validator(address: str) -> None:
    assert (nz.email_key(address) is not None) == library_says(address)


def test_dates_numbers_and_fractions() -> None:
    assert nz.parse_date("2026年1月5日") == dt.date(2026, 1, 5)
    assert nz.parse_date("2026/01/05") == dt.date(2026, 1, 5)
    assert nz.parse_date(46027.0) == dt.date(2026, 1, 5)
    assert nz.parse_date("next week") is None
    assert nz.parse_number("¥1,200") == 1200 and nz.parse_number("1200元") == 1200
    assert nz.parse_number("lots") is None
    assert nz.parse_fraction("35%") == pytest.approx(0.35)
    assert nz.parse_fraction(35) == pytest.approx(0.35) and nz.parse_fraction(0.35) == 0.35


def test_company_key_folds_legal_forms_and_width() -> None:
    assert nz.company_key("ACME Corp.") == nz.company_key("Acme Corporation")
    assert nz.company_key("华信科技股份有限公司") == nz.company_key("华信科技有限公司")
    assert nz.company_key("Stripe Inc") != nz.company_key("Strix Inc")


def test_tax_id_key_agrees_with_python_stdnum() -> None:
    import random

    from stdnum.cn import uscc

    from xlcrm.normalize import _USCC_ALPHABET, tax_id_key

    rng = random.Random(3)
    for _ in range(2000):
        body = "".join(rng.choice("0123456789") for _ in range(8)) + "".join(
            rng.choice(_USCC_ALPHABET) for _ in range(9))
        for number in (body + uscc.calc_check_digit(body), body + rng.choice(_USCC_ALPHABET),
                       " " + body.lower() + "-" + uscc.calc_check_digit(body), body[:-3]):
            expected = uscc.compact(number) if uscc.is_valid(number) else None
            assert tax_id_key(number) == expected, number


# The many-value forms that the duplicate matcher uses on a million customers must give what
# the one-value forms (used by validation and promotion) give.
NAMES = [
    "Acme Co., Ltd.", "ACME (HK) LIMITED .", "華訊科技股份有限公司", "（上海）华讯科技有限公司",
    "深圳市小鹏汽车有限公司", "北京市华讯集团有限公司", "  ", "", None, 12.0, "x_y corp_",
    "Émile & Fils S.A.", "ООО Ромашка", "Big Red  Dog Holdings Co Ltd Inc.",
    "a b c d e f Co Ltd Inc LLC", "x  y z w Co., Ltd. -", "a\tb\u3000c", "Ｇｌｏｂｅｘ　Ｌｔｄ",
    "上海市", "Stripe, Inc.", "喜茶 HEYTEA (深圳) 餐饮管理有限公司", "line\nbreak 有限公司",
]


def test_name_words_many_agrees_with_name_words() -> None:
    assert nz.name_words_many(NAMES) == [nz._name_words.__wrapped__(nz.text(v)) for v in NAMES]


def test_cleanco_basename_agrees_with_cleanco() -> None:
    import random

    from cleanco import basename, prepare_default_terms

    terms = [" ".join(parts) for _, parts in prepare_default_terms()]
    rng = random.Random(5)
    for _ in range(3000):
        name = (f"{rng.choice(['acme', 'big red', 'x.y', 'müller'])} {rng.choice(terms)} "
                f"{rng.choice(terms)}{rng.choice(['', ' .', ',', ' -'])}").casefold()
        if nz._last_word(name) in nz._legal_last_words():
            assert nz.cleanco_basename(name) == str(basename(name)).casefold(), name


PHONES = ["13800138000", 13800138000.0, "+86 138 0013 8000", "0086-21-62345678",
          "021-6234 5678", "86 13800138000", "123", None, float("nan"), "", "+1 415 555 0100"]
TAX_IDS = ["91310115MA1H7GLU5L", " 91310115-ma1h7glu5l ", "９１３１０１１５ＭＡ１Ｈ７ＧＬＵ５Ｌ",
           "91310115MA1H7GLU5M", "123", None, 91310115.0, ""]


@pytest.mark.parametrize("region", ["CN", "US"])
def test_phone_keys_agree_with_phone_key(region: str) -> None:
    expected = [None if nz.is_blank(v) else nz.phone_key(v, region) for v in PHONES]
    assert nz.phone_keys(PHONES, region) == expected
    assert expected[0] == expected[2] or region != "CN"


def test_email_and_tax_id_keys_agree_with_the_one_value_forms() -> None:
    emails = [*ADDRESSES, None, "", " Info@Acme.com "]
    assert nz.email_keys(emails) == [None if nz.is_blank(v) else nz.email_key(nz.text(v))
                                     for v in emails]
    assert nz.tax_id_keys(TAX_IDS) == [nz.tax_id_key(v) for v in TAX_IDS]
    assert nz.tax_id_keys(TAX_IDS)[:2] == ["91310115MA1H7GLU5L"] * 2
