"""The error of a coupon file: the one basic piece every other module of :mod:`capillary_provider.coupon_file`
may use, so none of them imports a sibling for it."""

from __future__ import annotations

from capillary_provider.exceptions import CouponFileError


def fail(name: str, problem: str) -> CouponFileError:
    """The error for a problem of file ``name``: the message starts with the file."""
    return CouponFileError(f"{name}: {problem}")
