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
