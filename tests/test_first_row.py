"""No guessing about the first row, and the coupon column contract: the messages, word for word (no HTTP)."""

from __future__ import annotations

import logging

import pytest

from capillary_provider.coupon_file.first_row import check_first_row, data_like_column
from capillary_provider.coupon_file.rows import DATE_KEY, CouponRows, RedeemedRows
from capillary_provider.exceptions import CouponFileError
from capillary_provider.identifiers import CouponIdentifier, IdentifierType

LOOKS_LIKE_DATA = (
    "f.csv: row 1 looks like data, not a header row: column {column} (0-based) holds a customer identifier or a "
    "date. If the file has no header row, set has_header=False; if row 1 is the header, set has_header=True."
)
WARNING = (
    "f.csv: row 1 looks like data (column {column}, 0-based, holds a customer identifier or a date) but is "
    "taken as the header row, since has_header=True: it is not uploaded."
)
MOBILE = CouponRows(IdentifierType.MOBILE, 0)


@pytest.mark.parametrize(
    ("identifier", "line", "column"),
    [
        (IdentifierType.MOBILE, b"919800000001,CODE1\n", 0),
        (IdentifierType.EMAIL, b"CODE1,jane@example.com\r\n", 1),
        (IdentifierType.USER_ID, b'"12345",CODE1\n', 0),
    ],
    ids=["mobile", "email", "quoted-user-id"],
)
def test_a_first_row_whose_identifier_cell_is_valid_fails_by_default_naming_the_column_not_the_value(
    identifier: IdentifierType, line: bytes, column: int
) -> None:
    with pytest.raises(CouponFileError) as raised:
        check_first_row("f.csv", line, CouponRows(identifier, column), None, logging.getLogger("t"))
    assert str(raised.value) == LOOKS_LIKE_DATA.format(column=column)
    for value in ("9198", "jane", "12345"):
        assert value not in str(raised.value)


def test_an_explicit_has_header_true_keeps_a_data_like_first_row_and_warns_naming_the_column(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        check_first_row("f.csv", b"919800000001,CODE1\n", MOBILE, True, logging.getLogger("t"))
    assert [r.getMessage() for r in caplog.records] == [WARNING.format(column=0)]


def test_has_header_false_never_checks_the_generated_header(caplog: pytest.LogCaptureFixture) -> None:
    check_first_row("f.csv", b"919800000001,CODE1\n", MOBILE, False, logging.getLogger("t"))
    assert caplog.records == []


@pytest.mark.parametrize(
    "rules",
    [MOBILE, CouponRows(IdentifierType.EXTERNAL_ID, 0), CouponRows(IdentifierType.NOT_TAGGED, None)],
    ids=["a-header", "external-ids-look-like-anything", "not-tagged"],
)
def test_a_header_cell_or_an_identifier_type_any_text_is_valid_for_is_not_data(rules: CouponRows) -> None:
    line = b"mobile,code\n" if rules is MOBILE else b"919800000001,CODE1\n"
    check_first_row("f.csv", line, rules, None, logging.getLogger("t"))


def test_a_redeemed_first_row_is_data_when_its_customer_key_or_its_date_column_holds_a_value() -> None:
    rules = RedeemedRows(IdentifierType.EXTERNAL_ID, CouponIdentifier.COUPON_CODE, None)
    rules.headers = {"externalId": 0, "couponCode": 1, DATE_KEY: 2, "redeemedAt": 3}
    assert data_like_column(rules, ["ext-1", "CODE1", "1764547200000", "till"]) == 2
    assert data_like_column(rules, ["external id", "coupon code", "redeemed date", "till"]) is None
    rules.headers = {"mobile": 3, "couponCode": 1, DATE_KEY: 2, "redeemedAt": 0}
    assert data_like_column(rules, ["till", "CODE1", "date", "+919800000001"]) == 3


COLUMNS = (
    "f.csv: has 3 columns ({cells}) but Capillary takes {takes}. "
    "Set coupon_code_column=N (0-based) to upload only those columns."
)


def test_a_coupon_file_with_more_columns_than_capillary_takes_fails_listing_the_header() -> None:
    with pytest.raises(CouponFileError) as raised:
        MOBILE.bind("f.csv", ["mobile", "coupon_code", "store"], "")
    takes = "a MOBILE column and a coupon code column"
    assert str(raised.value) == COLUMNS.format(cells="header: mobile, coupon_code, store", takes=takes)


def test_a_not_tagged_file_takes_one_column() -> None:
    with pytest.raises(CouponFileError) as raised:
        CouponRows(IdentifierType.NOT_TAGGED, None).bind("f.csv", ["code", "store", "region"], "")
    assert str(raised.value) == COLUMNS.format(cells="header: code, store, region", takes="a coupon code column only")


def test_a_wide_data_row_taken_as_header_is_not_listed_but_named_as_data() -> None:
    with pytest.raises(CouponFileError) as raised:
        MOBILE.bind("f.csv", ["919800000001", "CODE1", "store 7"], "")
    cells = "row 1 looks like data: if the file has no header row, also set has_header=False"
    assert str(raised.value) == COLUMNS.format(cells=cells, takes="a MOBILE column and a coupon code column")
