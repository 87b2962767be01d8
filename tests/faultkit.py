"""Helpers shared by the exactly-once, fault-matrix, soak and on_kill tests.

Faults are injected into the sandbox over real HTTP; these helpers build operators and hooks with pauses
short enough for tests, run the deferrable path in one process (as ``test_deferrable`` does), and count
what the sandbox holds per batch file name.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import capillary_provider.operators._base as operator_module
from capillary_provider import polling
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests import conftest

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[attr-defined,no-redef,unused-ignore]

__all__ = ["TaskDeferred"]

SHORT_READ_TIMEOUT = 2.0
"""Read timeout of hooks in tests that make the sandbox answer late (the ``delay`` fault)."""
LATE_ANSWER_SECONDS = 5.0
"""How late the ``delay`` fault answers: well after :data:`SHORT_READ_TIMEOUT`."""


def fast_hook(conn_id: str = "capillary_default", **kwargs: Any) -> CapillaryHook:
    """A hook whose retries do not wait long and whose read timeout is short."""
    options: dict[str, Any] = {"timeout": (10.0, SHORT_READ_TIMEOUT), "retry_limit": 3, "retry_max_wait": 0.01}
    options.update(kwargs)
    return CapillaryHook(conn_id, **options)


def use_fast_trigger_hook(monkeypatch: Any) -> None:
    """Triggers' pollers build their hook with :func:`fast_hook` (one attempt per poll, as the real one's).

    The seam is :func:`capillary_provider.polling.new_hook`: every poller calls it when it starts.
    """

    async def new_hook(conn_id: str) -> CapillaryHook:
        return fast_hook(conn_id, retry_limit=1)

    monkeypatch.setattr(polling, "new_hook", new_hook)


class PollCounter:
    """Counts the hook's async status calls (the trigger's polls) from its creation on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.polls = 0
        original = CapillaryHook.aget_upload_jobs

        async def counting(hook: CapillaryHook, coupon_series_id: int | str, *args: Any) -> Any:
            self.polls += 1
            return await original(hook, coupon_series_id, *args)

        monkeypatch.setattr(CapillaryHook, "aget_upload_jobs", counting)


def make_operator(source: Path | str, series: int, **kwargs: Any) -> CouponUploadOperator:
    """:func:`tests.conftest.make_operator` with polls of 0.05 s and a :func:`fast_hook`."""
    operator = conftest.make_operator(source, series, **{"poll_interval": 0.05, **kwargs})
    operator.hook = fast_hook(operator.capillary_conn_id)
    return operator


def no_recheck_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator looks for the job of an uncertain upload at once instead of after a pause."""
    monkeypatch.setattr("capillary_provider.operators._exactly_once.UNCERTAIN_UPLOAD_RECHECK_SECONDS", 0.0)


def run_trigger_of(deferred: TaskDeferred) -> dict[str, Any]:
    """What the triggerer does: rebuild the trigger from its serialized kwargs, run it, store the event as JSON."""
    classpath, kwargs = deferred.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

    async def first_event() -> Any:
        return await anext(trigger.run())

    payload: dict[str, Any] = json.loads(json.dumps(asyncio.run(first_event()).payload))
    return payload


def run_operator(operator: CouponUploadOperator, context: dict[str, Any]) -> dict[str, Any]:
    """Execute; if the operator defers, run its trigger and resume it, as Airflow would."""
    try:
        result: dict[str, Any] = operator.execute(context)  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        event = run_trigger_of(deferred)
        result = getattr(operator, deferred.method_name)(context, event=event)
    return result


def jobs_per_file(sandbox: SandboxClient, series: int) -> Counter[str]:
    """How many jobs the sandbox holds for each uploaded file name of ``series``."""
    return Counter(job["uploadedFileName"] for job in sandbox.jobs(series))


def upload_calls(sandbox: SandboxClient, series: int) -> list[dict[str, Any]]:
    path = f"/coupon/api/v1/upload/file/{series}"
    return [entry for entry in sandbox.requests() if entry["path"] == path]


def batch_names(context: dict[str, Any], parts: int) -> list[str]:
    ti = context["ti"]
    return [
        operator_module.batch_file_name(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, p) for p in range(1, parts + 1)
    ]
