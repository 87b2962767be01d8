"""Redeemed coupons: ``POST /coupon/api/v1/upload/redeemFile/{id}`` and its status endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from capillary_provider.sandbox.redeem import RedeemJob, parse_redeem_form
from capillary_provider.sandbox.uploads import kind_router

if TYPE_CHECKING:
    from capillary_provider.sandbox.app import Sandbox


def redeem_router(sandbox: Sandbox) -> APIRouter:
    """``redeemFile`` and ``getUploadRedeemedCouponStatus``: the coupon upload flow with the redemption form."""
    paths = ("/coupon/api/v1/upload/redeemFile", "/coupon/api/v1/upload/getUploadRedeemedCouponStatus")
    return kind_router(sandbox, RedeemJob, paths, ("redeem_upload", "redeem_status"), _redeem_job_fields)


def _redeem_job_fields(fields: dict[str, str]) -> dict[str, Any] | str:
    """What a redeemed-coupon upload job has of the form, or the message of the 400 answer."""
    form = parse_redeem_form(fields)
    if isinstance(form, str):
        return form
    return {
        "identifier": form.customer_identifier,
        "identifier_column": None,
        "coupon_identifier": form.coupon_identifier,
        "upload_headers": form.headers,
        "upload_headers_raw": form.headers_raw,
        "details": form.details,
    }
