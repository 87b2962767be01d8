"""The identifier types Capillary knows: one enum each, and what a valid value of each looks like."""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import StrEnum
from typing import TypeVar


class IdentifierType(StrEnum):
    """How a row names its customer (Capillary's ``customerIdentifier``)."""

    MOBILE = "MOBILE"
    EMAIL = "EMAIL"
    EXTERNAL_ID = "EXTERNAL_ID"
    USER_ID = "USER_ID"
    NOT_TAGGED = "NOT_TAGGED"
    """Codes only, tied to no customer (coupon uploads only)."""


class CouponIdentifier(StrEnum):
    """How a redemption row names its coupon (Capillary's ``couponIdentifier``)."""

    COUPON_CODE = "COUPON_CODE"
    COUPON_ID = "COUPON_ID"


E = TypeVar("E", bound=StrEnum)


def parse(kind: type[E], value: object, allowed: Collection[E] | None = None) -> E:
    """The member of ``kind`` named ``value``; :class:`ValueError` naming the allowed values otherwise."""
    choices = [member for member in kind if allowed is None or member in allowed]
    for member in choices:
        if member == value:
            return member
    raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")


ID_PATTERNS: dict[str, re.Pattern[str]] = {
    IdentifierType.MOBILE: re.compile(r"\+?[0-9]{8,15}"),
    IdentifierType.EMAIL: re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+"),
    IdentifierType.USER_ID: re.compile(r"[0-9]+"),
    IdentifierType.EXTERNAL_ID: re.compile(r"(?s).*\S.*"),
    CouponIdentifier.COUPON_ID: re.compile(r"[0-9]+"),
    CouponIdentifier.COUPON_CODE: re.compile(r"[^\r\n]*\S[^\r\n]*"),
}
"""The full-match pattern of a valid value of each identifier type (after unquoting)."""

ID_FIXES: dict[str, str] = {
    IdentifierType.MOBILE: "A mobile number is 8 to 15 digits with an optional leading '+'",
    IdentifierType.EMAIL: "An email address looks like name@example.com",
    IdentifierType.USER_ID: "A user id is made of digits only",
    IdentifierType.EXTERNAL_ID: "An external id must not be empty",
    CouponIdentifier.COUPON_ID: "A coupon id is made of digits only",
    CouponIdentifier.COUPON_CODE: "A coupon code is one non-empty line",
}
"""How to fix an invalid value of each identifier type, for error messages."""
