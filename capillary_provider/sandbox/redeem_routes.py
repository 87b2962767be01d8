"""Redeemed coupons: ``POST /coupon/api/v1/upload/redeemFile/{id}`` and its status endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import Response

from capillary_provider.sandbox.redeem import RedeemJob, parse_redeem_form
from capillary_provider.sandbox.uploads import receive_upload, series_status, start_job

if TYPE_CHECKING:
    from capillary_provider.sandbox.app import Sandbox


def redeem_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post("/coupon/api/v1/upload/redeemFile/{series}")
    async def redeem_file(request: Request, series: str) -> Response:
        upload = await receive_upload(sandbox, request, "redeem_upload", series)
        if isinstance(upload, Response):
            return upload
        fields = parse_redeem_form(upload.fields)
        if isinstance(fields, str):
            return upload.reject(fields)
        return await start_job(
            sandbox,
            upload,
            RedeemJob,
            identifier=fields.customer_identifier,
            identifier_column=None,
            coupon_identifier=fields.coupon_identifier,
            upload_headers=fields.headers,
            upload_headers_raw=fields.headers_raw,
            details=fields.details,
        )

    @router.get("/coupon/api/v1/upload/getUploadRedeemedCouponStatus/{series}")
    async def redeem_status(request: Request, series: str) -> Response:
        return await series_status(sandbox, request, "redeem_status", series, RedeemJob)

    return router
