"""Redeemed coupons: ``POST /coupon/api/v1/upload/redeemFile/{id}`` and its status endpoint."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import Response

from capillary_provider.sandbox.faults import JobErrored
from capillary_provider.sandbox.redeem import RedeemJob, parse_redeem_form
from capillary_provider.sandbox.responses import after_processing, upload_envelope
from capillary_provider.sandbox.uploads import bad_series, keep_file, read_form, reject, series_id_of

if TYPE_CHECKING:
    from capillary_provider.sandbox.app import Sandbox

JOBS_KEY = "redeemUploadJobStatuses"


def redeem_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.post("/coupon/api/v1/upload/redeemFile/{series}")
    async def redeem_file(request: Request, series: str) -> Response:
        action, entry, early = sandbox.begin(request, "redeem_upload")
        if early is not None:
            return early
        series_id = series_id_of(series)
        if series_id is None:
            return bad_series(series)
        form = await read_form(request, sandbox.uploads_dir, entry)
        if isinstance(form, Response):
            return form
        if form.file_path is None or form.file_name is None:
            return reject(form, "file is required")
        fields = parse_redeem_form(form.fields)
        if isinstance(fields, str):
            return reject(form, fields)
        job_id = sandbox.state.new_job_id()
        file_name, disk_path = keep_file(form.file_path, form.file_name, sandbox.uploads_dir, job_id, series_id)
        job = RedeemJob(
            job_id=job_id,
            series_id=series_id,
            created=time.time(),
            file_name=file_name,
            uploaded_file_name=form.file_name,
            uploaded_file_url=f"sandbox/uploads/{disk_path.name}",
            disk_path=disk_path,
            identifier=fields.customer_identifier,
            identifier_column=None,
            force_errored=isinstance(action, JobErrored),
            coupon_identifier=fields.coupon_identifier,
            upload_headers=fields.headers,
            upload_headers_raw=fields.headers_raw,
            details=fields.details,
        )
        sandbox.state.add_job(job)
        sandbox.worker.submit(job)
        entry["jobId"] = job_id
        view = job.view(job.created, sandbox.state.step_seconds, as_created=True)
        response = upload_envelope(series_id, file_name, [view], JOBS_KEY)
        return await after_processing("redeem_upload", action, response)

    @router.get("/coupon/api/v1/upload/getUploadRedeemedCouponStatus/{series}")
    async def redeem_status(request: Request, series: str) -> Response:
        action, _, early = sandbox.begin(request, "redeem_status")
        if early is not None:
            return early
        series_id = series_id_of(series)
        if series_id is None:
            return bad_series(series)
        jobs = sandbox.state.series_jobs(series_id, "redeemed")
        now, step = time.time(), sandbox.state.step_seconds
        latest = jobs[-1].file_name if jobs else None
        response = upload_envelope(series_id, latest, [job.view(now, step) for job in jobs], JOBS_KEY)
        return await after_processing("redeem_status", action, response)

    return router
