"""Capillary-shaped answers: the envelopes (OAuth ``data/errors``, coupon ``success/status``, v2 ``entity``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from capillary_provider.sandbox.faults import (
    DelayAction,
    DropAfterBody,
    DropBeforeBody,
    MalformedJson,
    StatusAction,
    SuccessFalse,
)
from capillary_provider.sandbox.server import DropConnection
from capillary_provider.sandbox.state import iso

if TYPE_CHECKING:
    from capillary_provider.sandbox.faults import Endpoint, FaultAction

INVALID_CREDENTIALS_CODE = 320001
_MESSAGES = {
    401: "Invalid token",
    403: "Access denied for the resource",
    429: "Too many requests",
    500: "Unable to post or retrieve details",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}

_TRUNCATED = {"token": b'{"data": {"accessTok', "series": b'{"entity": [{"id'}


def cap_error(status: int, message: str, http_status: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"success": False, "status": status, "message": message},
        status_code=status if http_status is None else http_status,
    )


def oauth_error(http_status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"code": code, "message": message}]}, status_code=http_status)


def invalid_credentials() -> JSONResponse:
    return oauth_error(401, INVALID_CREDENTIALS_CODE, "Invalid client key and secret")


def v2_error(status: int, message: str, http_status: int | None = None) -> JSONResponse:
    """The v2 API's failure form (``/v2/coupon/series``)."""
    return JSONResponse(
        {"entity": None, "errors": [{"code": status, "message": message}], "warnings": []},
        status_code=status if http_status is None else http_status,
    )


def upload_envelope(
    series_id: int, file_name: str | None, jobs: list[dict[str, Any]], jobs_key: str = "uploadJobStatuses"
) -> JSONResponse:
    """``jobs_key``: ``uploadJobStatuses`` (coupon uploads) or ``redeemUploadJobStatuses`` (redemptions)."""
    return JSONResponse(
        {
            "success": True,
            "status": 200,
            "result": {"orgId": 0, "couponSeriesId": series_id, "fileName": file_name, jobs_key: jobs},
        }
    )


def injected_status(endpoint: Endpoint, action: StatusAction) -> Response:
    status = action.status
    headers = {} if action.retry_after is None else {"Retry-After": f"{action.retry_after:g}"}
    if action.html is not None:
        return HTMLResponse(action.html, status_code=status, headers=headers)
    if action.body is not None:
        return JSONResponse(action.body, status_code=status, headers=headers)
    if endpoint == "token":
        if status == 401:
            response = invalid_credentials()
        else:
            response = oauth_error(status, status, _MESSAGES.get(status, f"Injected HTTP {status}"))
    elif status == 498:
        response = cap_error(498, f"Token expired at {iso(time.time())}")
    elif endpoint == "series":
        response = v2_error(status, _MESSAGES.get(status, f"Injected HTTP {status}"))
    else:
        response = cap_error(status, _MESSAGES.get(status, f"Injected HTTP {status}"))
    response.headers.update(headers)
    return response


def before_body(endpoint: Endpoint, action: FaultAction | None) -> Response | None:
    """Faults that act before the request is processed (its body is not read)."""
    if isinstance(action, DropBeforeBody):
        raise DropConnection("before_body")
    if isinstance(action, StatusAction) and not action.after_body:
        return injected_status(endpoint, action)
    return None


async def after_processing(endpoint: Endpoint, action: FaultAction | None, response: Response) -> Response:
    """Faults that act once the request has been processed normally."""
    if isinstance(action, DropAfterBody):
        raise DropConnection("after_body")
    if isinstance(action, DelayAction):
        await asyncio.sleep(action.seconds)
    elif isinstance(action, MalformedJson):
        body = _TRUNCATED.get(endpoint, b'{"success": tru')
        return Response(body, status_code=200, media_type="application/json")
    elif isinstance(action, SuccessFalse):
        if endpoint == "token":
            return oauth_error(200, 500, "Injected failure")
        if endpoint == "series":
            return v2_error(500, "Injected failure", http_status=200)
        return cap_error(500, "Injected failure", http_status=200)
    elif isinstance(action, StatusAction):
        return injected_status(endpoint, action)
    return response
