"""Control endpoints under ``/_sandbox/`` (no auth): inspect and steer the sandbox from tests."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse

from capillary_provider.sandbox.faults import FaultRule

if TYPE_CHECKING:
    from capillary_provider.sandbox.app import Sandbox


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


def control_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    @router.get("/jobs")
    async def jobs(series: int | None = None) -> list[dict[str, Any]]:
        now, step = time.time(), sandbox.state.step_seconds
        return [
            job.control_view(now, step) for job in sandbox.state.all_jobs() if series is None or job.series_id == series
        ]

    @router.get("/requests")
    async def requests_log(path_contains: str | None = None) -> list[dict[str, Any]]:
        entries = sandbox.state.request_log()
        return [e for e in entries if path_contains is None or path_contains in e["path"]]

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        sandbox.reset()
        return {"ok": True}

    @router.post("/step-seconds")
    async def step_seconds(request: Request) -> JSONResponse:
        payload = await _json_body(request)
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return JSONResponse({"ok": False, "error": 'body must be {"seconds": <number >= 0>}'}, 422)
        sandbox.state.set_step_seconds(float(seconds))
        return JSONResponse({"ok": True, "seconds": float(seconds)})

    @router.get("/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return sandbox.faults.snapshot()

    @router.post("/faults")
    async def add_fault(request: Request) -> JSONResponse:
        try:
            rule = FaultRule.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"ok": False, "errors": json.loads(exc.json(include_url=False))}, 422)
        sandbox.faults.add(rule)
        return JSONResponse({"ok": True, "rule": rule.model_dump(mode="json")})

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        sandbox.faults.clear()
        return {"ok": True}

    return router
