"""200 deferred waits in one event loop: CPU per poll and the longest event-loop block of CouponUploadTrigger.

Run: ``python benchmarks/bench_trigger.py [--triggers 200] [--poll-interval 2] [--step-seconds 3]``.

A sandbox is started in its own process (its CPU is not counted). Each trigger waits for one upload job
of its own coupon series; the sandbox moves a job one state every ``--step-seconds`` (three steps to
FINISHED), so every trigger polls several times. All the triggers run concurrently in one asyncio loop,
as in Airflow's triggerer, next to a watchdog coroutine that sleeps 10 ms and records how late it wakes
up: that lateness is how long something blocked the loop (Airflow's triggerer warns above 0.2 s).

Figures: polls are counted in the sandbox's request log; CPU is this process's CPU time (all threads)
during the waits, divided by the polls. For contrast the same waits run once more with a naive trigger
that calls the hook's blocking ``get_upload_jobs`` straight from ``async def run()`` (what not to do),
unless ``--no-baseline``, and once with triggers that only sleep (the machine's own noise: other
processes, the sandbox on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.triggers.base import TriggerEvent

from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import select_jobs
from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import SandboxClient, running_sandbox
from capillary_provider.triggers.coupon_upload import EVENT_DONE, CouponUploadTrigger

FIRST_SERIES = 50_000
WATCHDOG_TICK = 0.01
AIRFLOW_BLOCK_WARNING = 0.2


class IdleTrigger(CouponUploadTrigger):
    """No trigger work at all, for reference: what the machine alone does to the watchdog (other processes, GC)."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.end_time - time.time())
        yield TriggerEvent({"status": EVENT_DONE, "jobs": []})  # type: ignore[no-untyped-call]


class BlockingTrigger(CouponUploadTrigger):
    """The anti-pattern, for contrast only: sync HTTP inside ``async def run()`` blocks the whole loop."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CapillaryHook(self.capillary_conn_id, retry_limit=1)
        while True:
            jobs, missing = select_jobs(hook.get_upload_jobs(self.coupon_series_id), self.job_ids)
            if not missing and all(job.is_terminal for job in jobs):
                yield TriggerEvent({"status": EVENT_DONE, "jobs": [job.to_dict() for job in jobs]})  # type: ignore[no-untyped-call]
                return
            await asyncio.sleep(self.poll_interval)


@dataclass
class Result:
    name: str
    triggers: int
    done: int
    polls: int
    tokens: int
    wall: float
    cpu: float
    max_block: float
    p99_block: float
    blocks_over_warning: int

    @property
    def cpu_per_poll_ms(self) -> float:
        return 1000 * self.cpu / self.polls if self.polls else float("nan")


@contextmanager
def logs_to_file(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (where the task logs go) to a file, as a triggerer writes its logs.

    The logs are formatted and written as usual (their cost is counted), but a slow terminal or pipe
    reading the benchmark's output cannot block the event loop.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def upload_jobs(sandbox: SandboxClient, count: int, directory: Path) -> list[tuple[int, int]]:
    """One small upload per series; return (series, job id) pairs."""
    hook = CapillaryHook()
    pairs = []
    for n in range(count):
        path = directory / f"bench_{n}.csv"
        path.write_text(f"mobile,code\n91{9_000_000_000 + n},B{n:011d}\n")
        series = FIRST_SERIES + n
        job = hook.upload_coupon_file(series, path, file_name=path.name, customer_identifier="MOBILE")
        pairs.append((series, job.job_id))
    hook.session.close()
    return pairs


async def run_waits(
    trigger_class: type[CouponUploadTrigger], pairs: list[tuple[int, int]], poll: float, idle_seconds: float = 0.0
) -> tuple[list[dict[str, Any]], list[float]]:
    lateness: list[float] = []
    stop = asyncio.Event()

    async def watchdog() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(WATCHDOG_TICK)
            lateness.append(max(0.0, time.perf_counter() - before - WATCHDOG_TICK))

    async def wait(series: int, job_id: int) -> dict[str, Any]:
        deadline = time.time() + (idle_seconds if trigger_class is IdleTrigger else 600)
        trigger = trigger_class("capillary_default", str(series), [job_id], poll, deadline)
        events = [event.payload async for event in trigger.run()]
        return events[0]

    dog = asyncio.create_task(watchdog())
    await asyncio.sleep(0.05)
    payloads = await asyncio.gather(*(wait(series, job_id) for series, job_id in pairs))
    stop.set()
    await dog
    return payloads, lateness


def measure(
    name: str,
    trigger_class: type[CouponUploadTrigger],
    sandbox: SandboxClient,
    args: argparse.Namespace,
    tmp: Path,
    idle_seconds: float = 0.0,
) -> Result:
    sandbox.reset()
    sandbox.set_step_seconds(3600)  # no job moves while the others are uploaded ...
    pairs = upload_jobs(sandbox, args.triggers, tmp)
    sandbox.set_step_seconds(args.step_seconds)  # ... then they all start their three steps now
    polls_before = len(sandbox.requests("getUploadStatus"))
    tokens_before = len(sandbox.requests("token"))
    with logs_to_file(tmp / f"{trigger_class.__name__}.log"):
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        payloads, lateness = asyncio.run(run_waits(trigger_class, pairs, args.poll_interval, idle_seconds))
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    polls = len(sandbox.requests("getUploadStatus")) - polls_before
    tokens = len(sandbox.requests("token")) - tokens_before
    lateness.sort()
    return Result(
        name=name,
        triggers=len(pairs),
        done=sum(1 for payload in payloads if payload["status"] == EVENT_DONE),
        polls=polls,
        tokens=tokens,
        wall=wall,
        cpu=cpu,
        max_block=lateness[-1] if lateness else 0.0,
        p99_block=lateness[int(0.99 * (len(lateness) - 1))] if lateness else 0.0,
        blocks_over_warning=sum(1 for value in lateness if value > AIRFLOW_BLOCK_WARNING),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds between two polls of a trigger")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="sandbox: seconds per job state (3 steps)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the blocking trigger used for contrast")
    args = parser.parse_args()

    results = []
    with running_sandbox(step_seconds=args.step_seconds) as sandbox, tempfile.TemporaryDirectory() as tmp:
        os.environ["AIRFLOW_CONN_CAPILLARY_DEFAULT"] = connection_json(sandbox)
        results.append(measure("CouponUploadTrigger", CouponUploadTrigger, sandbox, args, Path(tmp)))
        idle = results[0].wall
        results.append(measure("idle loop (reference)", IdleTrigger, sandbox, args, Path(tmp), idle_seconds=idle))
        if not args.no_baseline:
            results.append(measure("blocking (sync HTTP in run)", BlockingTrigger, sandbox, args, Path(tmp)))

    print(
        f"\n{args.triggers} concurrent waits in one event loop, poll every {args.poll_interval:g} s, "
        f"jobs finish after 3 x {args.step_seconds:g} s; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    header = (
        f"{'trigger':<28} {'done':>9} {'polls':>6} {'tokens':>6} {'wall s':>7} {'CPU s':>6} {'CPU/poll ms':>11} "
        f"{'max block ms':>12} {'p99 block ms':>12} {'blocks>0.2s':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<28} {f'{r.done}/{r.triggers}':>9} {r.polls:>6} {r.tokens:>6} {r.wall:>7.1f} {r.cpu:>6.2f} "
            f"{r.cpu_per_poll_ms:>11.2f} {1000 * r.max_block:>12.1f} {1000 * r.p99_block:>12.1f} "
            f"{r.blocks_over_warning:>11}"
        )
    if len(results) == 3 and results[0].max_block > 0:
        ratio = results[2].max_block / results[0].max_block
        print(f"\nlongest loop block, blocking / CouponUploadTrigger: {ratio:.0f}x")
    print(f"load average at the end: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")
    print(json.dumps({r.name: {**r.__dict__, "cpu_per_poll_ms": r.cpu_per_poll_ms} for r in results}))
    return 0 if all(r.done == r.triggers for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
