"""Control endpoints under ``/_sandbox/`` (no auth): inspect and steer the sandbox from tests."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse

from capillary_provider.sandbox.faults import FaultRule
from capillary_provider.sandbox.identifiers import IDENTIFIER_CHECKS
from capillary_provider.sandbox.series import SERIES_STATES

if TYPE_CHECKING:
    from capillary_provider.sandbox.app import Sandbox
    from capillary_provider.sandbox.codes import KnownCode


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
    async def jobs(
        series: int | None = None, kind: Literal["coupon", "redeemed", "all"] = "coupon"
    ) -> list[dict[str, Any]]:
        now, step = time.time(), sandbox.state.step_seconds
        return [
            job.control_view(now, step)
            for job in sandbox.state.all_jobs(kind)
            if series is None or job.series_id == series
        ]

    @router.get("/series")
    async def list_series() -> dict[str, Any]:
        return sandbox.series.snapshot()

    @router.post("/series/{series_id}")
    async def set_series(series_id: int, request: Request) -> JSONResponse:
        payload = await _json_body(request)
        state = payload.get("state") if isinstance(payload, dict) else None
        fields = payload.get("fields") if isinstance(payload, dict) else None
        if series_id <= 0 or state not in SERIES_STATES or not isinstance(fields, dict | None):
            message = f'body must be {{"state": one of {list(SERIES_STATES)}, "fields": {{...}} (optional)}}'
            return JSONResponse({"ok": False, "error": message}, 422)
        try:
            sandbox.series.set(series_id, state, fields)
        except ValueError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 422)
        entity = sandbox.series.entity(series_id, sandbox.worker.counters.of(series_id))
        return JSONResponse({"ok": True, "state": state, "series": entity})

    @router.get("/series/{series_id}/codes")
    async def series_codes(series_id: int) -> list[dict[str, Any]]:
        known: list[KnownCode] = await asyncio.wrap_future(
            sandbox.worker.run_task(lambda store: store.of_series(series_id))
        )
        return [code.as_json() for code in known]

    @router.post("/series/{series_id}/codes")
    async def seed_codes(series_id: int, request: Request) -> JSONResponse:
        payload = await _json_body(request)
        seeds = _seeds(payload)
        if isinstance(seeds, str):
            return JSONResponse({"ok": False, "error": seeds}, 422)
        known = await asyncio.wrap_future(sandbox.worker.seed(series_id, seeds, payload.get("customerIdentifier")))
        return JSONResponse({"ok": True, "codes": [code.as_json() for code in known]})

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


_SEEDS_FORM = (
    'body must be {"codes": ["CODE", {"code": "CODE", "customer": "VALUE"}, ...], '
    '"customerIdentifier": "MOBILE" | "EMAIL" | "EXTERNAL_ID" | "USER_ID" (needed when a code has a customer)}'
)


def _seeds(payload: Any) -> list[tuple[str, str | None]] | str:
    """``[(code, customer or None)]`` from a seed body, or what is wrong with it."""
    if not isinstance(payload, dict) or not isinstance(payload.get("codes"), list):
        return _SEEDS_FORM
    customer_type = payload.get("customerIdentifier")
    seeds: list[tuple[str, str | None]] = []
    for item in payload["codes"]:
        code, customer = (item, None) if isinstance(item, str) else (None, None)
        if isinstance(item, dict) and set(item) <= {"code", "customer"}:
            code, customer = item.get("code"), item.get("customer")
        if not isinstance(code, str) or not code.strip() or not isinstance(customer, str | None):
            return f"{_SEEDS_FORM}; got {item!r}"
        if customer is not None:
            check = IDENTIFIER_CHECKS.get(customer_type) if isinstance(customer_type, str) else None
            if check is None:
                return f"customerIdentifier must be one of {sorted(IDENTIFIER_CHECKS)} when codes have customers"
            if not check(customer.strip()):
                return f"customer {customer!r} is not a valid {customer_type}"
        seeds.append((code.strip(), None if customer is None else customer.strip()))
    return seeds
