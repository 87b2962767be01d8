"""Waits on one series share their status calls; a per-connection budget and Retry-After pace every wait.

Triggers run in one event loop against the sandbox, as in a triggerer; the sandbox's request log
counts the status calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.utils.net import get_hostname

from capillary_provider import polling
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from capillary_provider.waiting import EVENT_DONE, EVENT_TIMEOUT
from tests.conftest import mobile_rows

pytestmark = pytest.mark.integration

SERIES = 9301
STATUS_PATH = "getUploadStatus"


def _conn(sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", connection_json(sandbox, **extra))


def _trigger(series: int, job_ids: list[int], poll_interval: float, wait: float) -> CouponUploadTrigger:
    return CouponUploadTrigger("capillary_default", str(series), job_ids, poll_interval, time.time() + wait)


async def _run(trigger: CouponUploadTrigger) -> dict[str, Any]:
    [event] = [event.payload async for event in trigger.run()]
    return event


def _upload(write_csv: Callable[..., Path], n: int) -> int:
    path = write_csv(mobile_rows(3, start=n * 10), name=f"part{n}.csv")
    return (
        CapillaryHook().upload_coupon_file(SERIES, path, file_name=f"part{n}.csv", customer_identifier="MOBILE").job_id
    )


def _status_calls(sandbox: SandboxClient, series: int | None = None) -> list[dict[str, Any]]:
    calls = sandbox.requests(STATUS_PATH)
    return [call for call in calls if series is None or str(series) in json.dumps(call)]


def test_twenty_waits_on_one_series_share_one_status_call_per_interval(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch, write_csv: Callable[..., Path]
) -> None:
    _conn(sandbox, monkeypatch, max_calls_per_minute=6000)  # the budget is not what is tested here
    sandbox.set_step_seconds(1.0)  # about 3 s from upload to FINISHED: several intervals of 0.5 s
    job_ids = [_upload(write_csv, n) for n in range(20)]
    before = len(_status_calls(sandbox))
    interval = 0.5

    async def main() -> tuple[list[dict[str, Any]], float]:
        started = time.monotonic()
        events = await asyncio.gather(*(_run(_trigger(SERIES, [job_id], interval, 60)) for job_id in job_ids))
        return events, time.monotonic() - started

    events, elapsed = asyncio.run(main())

    assert [(e["status"], [job["job_id"] for job in e["jobs"]]) for e in events] == [
        (EVENT_DONE, [job_id]) for job_id in job_ids
    ]
    calls = len(_status_calls(sandbox)) - before
    intervals = elapsed / interval
    print(f"{calls} status calls in {elapsed:.1f} s = {calls / intervals:.2f} per {interval} s interval")
    assert calls <= 1.5 * max(intervals, 1), (calls, elapsed)
    assert calls >= 2


def test_cancelling_one_wait_leaves_the_others_and_the_poller_stops_after_the_last(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch, write_csv: Callable[..., Path]
) -> None:
    _conn(sandbox, monkeypatch, max_calls_per_minute=6000)
    sandbox.set_step_seconds(0.5)
    job_ids = [_upload(write_csv, n) for n in range(3)]

    async def main() -> tuple[list[Any], list[int], set[str]]:
        tasks = [asyncio.create_task(_run(_trigger(SERIES, [job_id], 0.2, 60))) for job_id in job_ids]
        await asyncio.sleep(0.5)
        [poller] = list(polling.registry().pollers.values())
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the cancelled poller task unwind
        leftover = {task.get_name() for task in asyncio.all_tasks() if task is not asyncio.current_task()}
        return results, [len(poller.subscriptions), len(list(polling.registry().pollers.values()))], leftover

    results, counts, leftover = asyncio.run(main())

    assert isinstance(results[0], asyncio.CancelledError)
    assert [r["status"] for r in results[1:]] == [EVENT_DONE, EVENT_DONE]
    assert counts == [0, 0]
    assert leftover == set()


def test_the_last_wait_leaving_cuts_the_call_in_flight_instead_of_waiting_for_its_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wait cancelled mid-call (a trigger cancelled, Ctrl-C in a wait in the worker) ends at once: the
    event loop's end waits for the call's thread, which would otherwise sit out the 30 s read timeout."""
    accepted: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts the call, never answers
        threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
        host = f"http://127.0.0.1:{server.getsockname()[1]}"
        extra = {"timeout": [5, 30]}
        conn = {"conn_type": "capillary", "host": host, "login": "key", "password": "secret", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", json.dumps(conn))

        async def main() -> None:
            wait = asyncio.create_task(_run(_trigger(SERIES, [1], 0.1, 60)))
            while not accepted:
                await asyncio.sleep(0.01)
            wait.cancel()

        started = time.monotonic()
        asyncio.run(main())
        elapsed = time.monotonic() - started
    assert elapsed < 10, f"the loop ended {elapsed:.1f} s after the cancel: the call in flight was waited for"


def test_the_connection_budget_paces_every_wait_of_the_process(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _conn(sandbox, monkeypatch, max_calls_per_minute=60)  # 1 a second after a burst of 10
    wait = 4.0

    async def main() -> list[dict[str, Any]]:
        # Five series, jobs Capillary never lists: each wait polls every 0.1 s until its deadline.
        return await asyncio.gather(*(_run(_trigger(SERIES + n, [999_000 + n], 0.1, wait)) for n in range(5)))

    events = asyncio.run(main())

    assert {event["status"] for event in events} == {EVENT_TIMEOUT}
    assert len(_status_calls(sandbox)) <= polling.BURST + wait * 1 + 1  # unpaced: about 5 x 40 = 200


def test_the_budget_log_line_names_the_process_it_belongs_to(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Capillary's limit is per API key; the budget is per process: the log must say which process.
    _conn(sandbox, monkeypatch, max_calls_per_minute=30)

    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(_run(_trigger(SERIES + n, [999_000 + n], 0.1, 0.5)) for n in range(2)))

    with caplog.at_level(logging.INFO, logger=polling.__name__):
        asyncio.run(main())

    (line,) = [record.getMessage() for record in caplog.records if record.name == polling.__name__]
    assert line == (
        f"Status-call budget of connection 'capillary_default' for this process only (host {get_hostname()}, "
        f"pid {os.getpid()}): 30 calls a minute, bursts of up to 10; other processes on the same API key "
        "keep budgets of their own"
    )


def test_retry_after_from_one_call_pauses_every_wait_on_the_connection(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _conn(sandbox, monkeypatch, max_calls_per_minute=6000)
    sandbox.add_fault("status", "status", status=429, retry_after=2, times=1)

    async def main() -> float:
        started = time.monotonic()
        await asyncio.gather(*(_run(_trigger(SERIES + n, [999_000 + n], 0.1, 3.0)) for n in range(3)))
        return time.monotonic() - started

    asyncio.run(main())

    calls = _status_calls(sandbox)
    # The first round: 3 calls, one of them answered 429 with Retry-After 2; then 2 s without a call on
    # the connection, then about 10 calls a second for the last second: far fewer than 3 x 30 unpaused.
    assert len(calls) <= 3 + 3 * 12, len(calls)
    assert sum(1 for call in calls if call.get("status") == 429) == 1
    times = [datetime.fromisoformat(call["time"]).timestamp() for call in calls]
    throttled_at = times[[call.get("status") for call in calls].index(429)]
    later = [t for t in times if t > throttled_at + 0.05]
    assert later
    assert min(later) - throttled_at >= 1.9, [round(t - throttled_at, 2) for t in times]
