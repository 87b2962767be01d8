"""The sandbox FastAPI app: Capillary's token endpoint, and the coupon upload and status endpoints (their
flow in uploads.py, shared with redeemed coupons; other endpoints: *_routes.py)."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from capillary_provider.sandbox.config import SandboxConfig
from capillary_provider.sandbox.control import control_router
from capillary_provider.sandbox.faults import Endpoint, ExpireTokens, FaultAction, FaultBook, FaultRule
from capillary_provider.sandbox.middleware import SandboxMiddleware, log_entry
from capillary_provider.sandbox.processing import IDENTIFIER_TYPES, CsvWorker
from capillary_provider.sandbox.redeem_routes import redeem_router
from capillary_provider.sandbox.responses import (
    after_processing,
    before_body,
    cap_error,
    invalid_credentials,
    oauth_error,
)
from capillary_provider.sandbox.series import SeriesBook
from capillary_provider.sandbox.series_routes import series_router
from capillary_provider.sandbox.state import Job, SandboxState, iso
from capillary_provider.sandbox.uploads import kind_router

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
        self.series = SeriesBook(config.series_states)
        self._seed_configured_codes()

    def _seed_configured_codes(self) -> None:
        for series_id, codes in self.config.series_codes.items():
            self.worker.seed(series_id, [(code, None) for code in sorted(codes)], None)

    def begin(self, request: Request, endpoint: Endpoint) -> tuple[FaultAction | None, dict[str, Any], Response | None]:
        """How every authenticated route starts: take the endpoint's armed fault, log the request with it,
        and the early answer (a fault before the body, or a token refused) if there is one."""
        action = self.faults.take(endpoint)
        entry = log_entry(request.scope)
        entry["fault"] = None if action is None else action.type
        return action, entry, before_body(endpoint, action) or self.auth_failure(request)

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
        self._seed_configured_codes()
        self.series.reset()


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build the sandbox app (state in memory, files under ``config.data_dir``)."""
    sandbox = Sandbox(config or SandboxConfig())
    app = FastAPI(title="Capillary sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json")
    app.state.sandbox = sandbox
    app.add_middleware(SandboxMiddleware, state=sandbox.state)
    app.include_router(control_router(sandbox))
    paths = ("/coupon/api/v1/upload/file", "/coupon/api/v1/upload/getUploadStatus")
    app.include_router(kind_router(sandbox, Job, paths, ("upload", "status"), _coupon_job_fields))
    app.include_router(redeem_router(sandbox))
    app.include_router(series_router(sandbox))

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

    return app


def _coupon_job_fields(fields: dict[str, str]) -> dict[str, Any] | str:
    """What a coupon upload job has of the form, or the message of the 400 answer."""
    identifier = fields.get("customerIdentifier", "").strip()
    if not identifier:
        return "customerIdentifier is required"
    if identifier not in IDENTIFIER_TYPES:
        return f"customerIdentifier must be one of {', '.join(sorted(IDENTIFIER_TYPES))}, got {identifier!r}"
    column = fields.get("customerIdentifierColumn", "").strip()
    if column and not re.fullmatch(r"[0-9]{1,4}", column):
        return f"customerIdentifierColumn must be a zero-based column index, got {column!r}"
    return {"identifier": identifier, "identifier_column": int(column) if column else None}
