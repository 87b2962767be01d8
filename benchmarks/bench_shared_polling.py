"""500 deferred waits over 20 coupon series in one event loop: status calls, CPU per wait, event-loop blocks.

Run: ``python benchmarks/bench_shared_polling.py [--waits 500] [--series 20] [--poll-interval 1] [--seconds 30]``.

A sandbox runs in its own process (its CPU is not counted). Each wait is a ``CouponUploadTrigger`` for
one upload job of its own; the sandbox keeps every job in progress (a job moves one state a minute), so
every wait polls until its deadline, ``--seconds`` after the start. The same waits run three times,
each in a fresh event loop, next to a watchdog coroutine that sleeps 10 ms and records how late it wakes:

- before: ``CAPILLARY_SHARED_POLLING=0``, every wait polls on its own (one status call per wait per
  interval, as before shared polling);
- shared: waits on one series share a call, no budget (``max_calls_per_minute`` far above the need);
- shared + budget: the default connection, ``max_calls_per_minute`` 60.

Figures: status calls counted as they are made (the hook's ``aget_upload_jobs``, one HTTP call each: the
sandbox's request log keeps only the last 10,000), per minute of waiting; this process's CPU
time (all threads) divided by the waits; the watchdog's longest lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
from typing import Any

from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.polling import SHARING_ENV
from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import SandboxClient, running_sandbox
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger

FIRST_SERIES = 60_000
WATCHDOG_TICK = 0.01
STATUS_CALLS = [0]


def count_status_calls() -> None:
    """Count every status call the waits make (the pollers call ``aget_upload_jobs`` once per HTTP call)."""
    original = CapillaryHook.aget_upload_jobs

    async def counting(self: CapillaryHook, *args: Any, **kwargs: Any) -> Any:
        STATUS_CALLS[0] += 1
        return await original(self, *args, **kwargs)

    CapillaryHook.aget_upload_jobs = counting  # type: ignore[method-assign]


def upload_jobs(sandbox: SandboxClient, waits: int, series: int) -> list[tuple[int, int]]:
    """One small upload per wait, spread over the series: (series, job id) of each."""
    os.environ["AIRFLOW_CONN_CAPILLARY_DEFAULT"] = connection_json(sandbox)
    hook = CapillaryHook()
    jobs = []
    for n in range(waits):
        series_id = FIRST_SERIES + n % series
        body = f"mobile,code\n9198{n:08d},B{n:09d}\n".encode()
        job = hook.upload_coupon_file(
            series_id, io.BytesIO(body), file_name=f"wait{n}.csv", customer_identifier="MOBILE"
        )
        jobs.append((series_id, job.job_id))
    return jobs


async def watchdog(stop: asyncio.Event, lateness: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(WATCHDOG_TICK)
        lateness.append(loop.time() - started - WATCHDOG_TICK)


async def run_waits(jobs: list[tuple[int, int]], poll_interval: float, seconds: float) -> tuple[float, float]:
    """Run every wait to its deadline; (longest event-loop block, elapsed seconds)."""
    stop, lateness = asyncio.Event(), list[float]()
    dog = asyncio.create_task(watchdog(stop, lateness))
    end = time.time() + seconds
    started = time.monotonic()

    async def one(series_id: int, job_id: int) -> None:
        trigger = CouponUploadTrigger("capillary_default", str(series_id), [job_id], poll_interval, end)
        async for _event in trigger.run():
            pass

    await asyncio.gather(*(one(series_id, job_id) for series_id, job_id in jobs))
    elapsed = time.monotonic() - started
    stop.set()
    await dog
    return max(lateness, default=0.0), elapsed


def measure(
    sandbox: SandboxClient, jobs: list[tuple[int, int]], args: argparse.Namespace, *, shared: bool, budget: int | None
) -> dict[str, Any]:
    os.environ[SHARING_ENV] = "1" if shared else "0"
    extra = {} if budget is None else {"max_calls_per_minute": budget}
    os.environ["AIRFLOW_CONN_CAPILLARY_DEFAULT"] = connection_json(sandbox, **extra)
    calls_before = STATUS_CALLS[0]
    cpu_before = sum(os.times()[:2])
    block, elapsed = asyncio.run(run_waits(jobs, args.poll_interval, args.seconds))
    cpu = sum(os.times()[:2]) - cpu_before
    calls = STATUS_CALLS[0] - calls_before
    return {
        "calls": calls,
        "calls_per_minute": calls / elapsed * 60,
        "cpu_ms_per_wait": cpu / len(jobs) * 1000,
        "block_ms": block * 1000,
        "elapsed": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits", type=int, default=500)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long every wait polls (its deadline)")
    args = parser.parse_args()

    count_status_calls()
    with running_sandbox(step_seconds=60.0) as sandbox:
        jobs = upload_jobs(sandbox, args.waits, args.series)
        results = {
            "before (own calls)": measure(sandbox, jobs, args, shared=False, budget=None),
            "shared, no budget": measure(sandbox, jobs, args, shared=True, budget=1_000_000),
            "shared + budget 60/min": measure(sandbox, jobs, args, shared=True, budget=None),
        }
    print(
        f"\n{args.waits} waits over {args.series} series, poll interval {args.poll_interval:g} s, "
        f"{args.seconds:g} s of waiting each run, one event loop\n"
    )
    names = list(results)
    print(f"{'':<28}" + "".join(f"{name:>24}" for name in names))
    rows = [
        ("status calls", "calls", "{:.0f}"),
        ("status calls per minute", "calls_per_minute", "{:.0f}"),
        ("CPU per wait (ms)", "cpu_ms_per_wait", "{:.1f}"),
        ("longest loop block (ms)", "block_ms", "{:.0f}"),
        ("elapsed (s)", "elapsed", "{:.1f}"),
    ]
    for label, key, form in rows:
        print(f"{label:<28}" + "".join(f"{form.format(results[name][key]):>24}" for name in names))


if __name__ == "__main__":
    main()
