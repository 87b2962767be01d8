"""The trigger's pace: about one status call per ``poll_interval`` for the whole series, whatever the jobs.

Counted where it matters: the status requests the sandbox received, over the elapsed time measured around
the wait. A hook-side counter would agree with the sandbox whether the trigger polls once per series or once
per job, so none is used. The bounds are generous (a loaded machine polls less often, never more).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.triggers.coupon_upload import EVENT_DONE, CouponUploadTrigger
from tests.conftest import mobile_rows

pytestmark = pytest.mark.integration

SERIES = 6470
STATUS_PATH = "getUploadStatus"
JOBS = 6
POLL_INTERVAL = 0.25


def run_trigger(job_ids: list[int]) -> tuple[list[dict[str, Any]], float]:
    trigger = CouponUploadTrigger("capillary_default", str(SERIES), job_ids, POLL_INTERVAL, time.time() + 60)

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    started = time.monotonic()
    events = asyncio.run(collect())
    return events, time.monotonic() - started


def test_trigger_polls_about_once_per_interval_for_the_whole_series(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    hook = CapillaryHook()
    job_ids = [
        hook.upload_coupon_file(
            SERIES,
            write_csv(mobile_rows(3, start=n * 10), name=f"p{n}.csv"),
            file_name=f"p{n}.csv",
            customer_identifier="MOBILE",
        ).job_id
        for n in range(JOBS)
    ]
    capillary_conn.set_step_seconds(0.5)  # the jobs take a couple of seconds: many intervals
    before = len(capillary_conn.requests(STATUS_PATH))
    events, elapsed = run_trigger(job_ids)
    calls = len(capillary_conn.requests(STATUS_PATH)) - before
    assert events[-1]["status"] == EVENT_DONE
    intervals = elapsed / POLL_INTERVAL
    assert intervals >= 4, f"the jobs finished too quickly ({elapsed:.2f} s) to measure the pace"
    # One call per interval, plus the first one at once; a call per job would be about JOBS times as many.
    assert calls <= intervals + 2, f"{calls} status calls in {elapsed:.2f} s ({intervals:.1f} intervals)"
    # It keeps polling through the whole wait: not just once at the start and once at the end.
    assert calls >= intervals / 3, f"{calls} status calls in {elapsed:.2f} s ({intervals:.1f} intervals)"
