"""The sandbox FastAPI app: Capillary's token, upload and upload-status endpoints."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import PurePosixPath
from typing import Any

from fastapi import FastAPI, Request
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from capillary_provider.sandbox.config import SandboxConfig
from capillary_provider.sandbox.control import control_router
from capillary_provider.sandbox.faults import ExpireTokens, FaultBook, FaultRule, JobErrored
from capillary_provider.sandbox.middleware import SandboxMiddleware, log_entry
from capillary_provider.sandbox.multipart import FormError, receive_form
from capillary_provider.sandbox.processing import IDENTIFIER_TYPES, CsvWorker
from capillary_provider.sandbox.responses import (
    after_processing,
    before_body,
    cap_error,
    invalid_credentials,
    oauth_error,
    upload_envelope,
)
from capillary_provider.sandbox.state import Job, SandboxState, iso

__all__ = ["SandboxConfig", "create_app"]

TOKEN_HEADER = "x-cap-api-oauth-token"


class Sandbox:
    """The state shared by the routes of one app."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir = config.data_dir / "uploads"
        self.uploads_dir.mkdir(exist_ok=True)
        self.state = SandboxState(config.step_seconds, config.token_prefix, config.request_log_size)
        self.faults = FaultBook()
        for rule in config.faults:
            self.faults.add(FaultRule.model_validate(rule))
        self.worker = CsvWorker(config.data_dir, config.existing_codes)

    def auth_failure(self, request: Request) -> Response | None:
        outcome, expiry = self.state.check_token(request.headers.get(TOKEN_HEADER))
        if outcome == "ok":
            return None
        if outcome == "expired" and expiry is not None:
            return cap_error(498, f"Token expired at {iso(expiry)}")
        return cap_error(401, "Invalid token")

    def reset(self) -> None:
        self.state.reset()
        self.faults.clear()
        self.worker.clear_codes()


def _series_id(raw: str) -> int | None:
    return int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) and int(raw) > 0 else None


def _stored_name(uploaded: str, series_id: int) -> str:
    stem = PurePosixPath(uploaded.replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "upload"
    return f"{stem}_{int(time.time() * 1000)}_{series_id}.csv"


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build the sandbox app (state in memory, files under ``config.data_dir``)."""
    sandbox = Sandbox(config or SandboxConfig())
    app = FastAPI(title="Capillary sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json")
    app.state.sandbox = sandbox
    app.add_middleware(SandboxMiddleware, state=sandbox.state)
    app.include_router(control_router(sandbox))

    @app.post("/v3/oauth/token/generate")
    async def generate_token(request: Request) -> Response:
        action = sandbox.faults.take("token")
        log_entry(request.scope)["fault"] = None if action is None else action.type
        early = before_body("token", action)
        if early is not None:
            return early
        try:
            payload: Any = json.loads(await request.body())
        except ValueError:
            return oauth_error(400, 400, 'Request body must be JSON: {"key": ..., "secret": ...}')
        if not isinstance(payload, dict):
            return oauth_error(400, 400, "Request body must be a JSON object")
        key, secret = payload.get("key"), payload.get("secret")
        if not (
            isinstance(key, str)
            and isinstance(secret, str)
            and secrets.compare_digest(key.encode(), sandbox.config.key.encode())
            and secrets.compare_digest(secret.encode(), sandbox.config.secret.encode())
        ):
            return await after_processing("token", action, invalid_credentials())
        ttl = action.seconds if isinstance(action, ExpireTokens) else sandbox.config.token_ttl
        token = sandbox.state.issue_token(ttl)
        body = {"data": {"accessToken": token, "ttlSeconds": round(sandbox.config.token_ttl)}, "errors": None}
        return await after_processing("token", action, JSONResponse(body))

    @app.post("/coupon/api/v1/upload/file/{series}")
    async def upload_file(request: Request, series: str) -> Response:
        action = sandbox.faults.take("upload")
        entry = log_entry(request.scope)
        entry["fault"] = None if action is None else action.type
        early = before_body("upload", action) or sandbox.auth_failure(request)
        if early is not None:
            return early
        series_id = _series_id(series)
        if series_id is None:
            return cap_error(400, f"couponSeriesId must be a positive integer, got {series!r}")
        try:
            form = await receive_form(request.headers.get("content-type"), request.stream(), sandbox.uploads_dir)
        except FormError as exc:
            return cap_error(400, str(exc))
        except ClientDisconnect:
            return Response(status_code=499)
        entry["fileName"] = form.file_name
        problem = _form_problem(form.fields, form.file_name)
        if problem is not None or form.file_path is None or form.file_name is None:
            if form.file_path is not None:
                form.file_path.unlink(missing_ok=True)
            return cap_error(400, problem or "file is required")
        column = form.fields.get("customerIdentifierColumn", "").strip()
        job_id = sandbox.state.new_job_id()
        file_name = _stored_name(form.file_name, series_id)
        disk_path = sandbox.uploads_dir / f"{job_id}_{file_name}"
        form.file_path.rename(disk_path)
        job = Job(
            job_id=job_id,
            series_id=series_id,
            created=time.time(),
            file_name=file_name,
            uploaded_file_name=form.file_name,
            uploaded_file_url=f"sandbox/uploads/{disk_path.name}",
            disk_path=disk_path,
            identifier=form.fields["customerIdentifier"].strip(),
            identifier_column=int(column) if column else None,
            force_errored=isinstance(action, JobErrored),
        )
        sandbox.state.add_job(job)
        sandbox.worker.submit(job)
        entry["jobId"] = job_id
        view = job.view(job.created, sandbox.state.step_seconds, as_created=True)
        return await after_processing("upload", action, upload_envelope(series_id, file_name, [view]))

    @app.get("/coupon/api/v1/upload/getUploadStatus/{series}")
    async def upload_status(request: Request, series: str) -> Response:
        action = sandbox.faults.take("status")
        log_entry(request.scope)["fault"] = None if action is None else action.type
        early = before_body("status", action) or sandbox.auth_failure(request)
        if early is not None:
            return early
        series_id = _series_id(series)
        if series_id is None:
            return cap_error(400, f"couponSeriesId must be a positive integer, got {series!r}")
        jobs = sandbox.state.series_jobs(series_id)
        now, step = time.time(), sandbox.state.step_seconds
        latest = jobs[-1].file_name if jobs else None
        response = upload_envelope(series_id, latest, [job.view(now, step) for job in jobs])
        return await after_processing("status", action, response)

    return app


def _form_problem(fields: dict[str, str], file_name: str | None) -> str | None:
    if file_name is None:
        return "file is required"
    identifier = fields.get("customerIdentifier", "").strip()
    if not identifier:
        return "customerIdentifier is required"
    if identifier not in IDENTIFIER_TYPES:
        return f"customerIdentifier must be one of {', '.join(sorted(IDENTIFIER_TYPES))}, got {identifier!r}"
    column = fields.get("customerIdentifierColumn", "").strip()
    if column and not re.fullmatch(r"[0-9]{1,4}", column):
        return f"customerIdentifierColumn must be a zero-based column index, got {column!r}"
    return None
