"""Coupon series read: ``GET /v2/coupon/series?ids=1,2``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from capillary_provider.sandbox.responses import after_processing, v2_error
from capillary_provider.sandbox.uploads import series_id_of

if TYPE_CHECKING:
    from capillary_provider.sandbox.app import Sandbox


def series_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.get("/v2/coupon/series")
    async def read_series(request: Request) -> Response:
        action, _, early = sandbox.begin(request, "series")
        if early is not None:
            return early
        raw = ",".join(request.query_params.getlist("ids"))
        parts = [part.strip() for part in re.split(r",", raw) if part.strip()]
        if not parts:
            return v2_error(400, "ids is required: one or more comma-separated coupon series ids")
        ids: list[int] = []
        for part in parts:
            series_id = series_id_of(part)
            if series_id is None:
                return v2_error(400, f"invalid coupon series id {part!r}")
            if series_id not in ids:
                ids.append(series_id)
        forbidden = [sid for sid in ids if sandbox.series.state(sid) == "forbidden"]
        if forbidden:
            return v2_error(403, "Access denied for the resource: no read access to coupon group resource")
        entities = [sandbox.series.entity(sid, sandbox.worker.counters.of(sid)) for sid in ids]
        body = {"entity": [entity for entity in entities if entity is not None], "warnings": []}
        return await after_processing("series", action, JSONResponse(body))

    return router
