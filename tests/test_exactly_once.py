"""Exactly once per batch: retries, a worker killed with SIGKILL, lost answers and a triggerer restart.

Every batch is named after the task instance (dag, task, run, map index) and its part number; before
uploading, the operator looks for a job of the series carrying that name and attaches to it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryApiError
from capillary_provider.operators.coupon_upload import batch_file_name
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from tests.conftest import mobile_rows, wait_for
from tests.faultkit import (
    TaskDeferred,
    batch_names,
    jobs_per_file,
    make_operator,
    no_recheck_pause,
    run_operator,
    upload_calls,
)

SERIES = 6200
BOUND = 60.0
"""Longest wait for a subprocess or the sandbox; a bound against hangs, not a timing assertion."""


def assert_one_job_per_batch(sandbox: SandboxClient, context: dict[str, Any], batches: int = 3) -> None:
    assert jobs_per_file(sandbox, SERIES) == dict.fromkeys(batch_names(context, batches), 1)


# -- names ----------------------------------------------------------------------------------------------


def test_batch_name_is_the_same_for_every_try_of_a_task_instance() -> None:
    assert batch_file_name("d", "t", "manual__2026-01-01", 3, 2) == batch_file_name(
        "d", "t", "manual__2026-01-01", 3, 2
    )


@pytest.mark.parametrize(
    "other",
    [
        ("d2", "t", "r", -1, 1),
        ("d", "t2", "r", -1, 1),
        ("d", "t", "r2", -1, 1),
        ("d", "t", "r", 0, 1),
        ("d", "t", "r", -1, 2),
    ],
    ids=["dag", "task", "run", "map-index", "part"],
)
def test_batch_name_differs_when_any_part_of_its_identity_differs(other: tuple[str, str, str, int, int]) -> None:
    assert batch_file_name(*other) != batch_file_name("d", "t", "r", -1, 1)


def test_batch_names_stay_distinct_when_long_ids_are_cut_short() -> None:
    long_run = "scheduled__2026-01-01T00:00:00+00:00" + "x" * 60
    assert batch_file_name("d", "t", long_run + "a", -1, 1) != batch_file_name("d", "t", long_run + "b", -1, 1)


# -- task retry -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_retry_after_a_failure_on_batch_two_uploads_only_the_missing_batches(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=0)  # batch 1 goes through
    capillary_conn.add_fault("upload", "status", status=401, times=2)  # batch 2: token refused twice
    with pytest.raises(CapillaryApiError):
        make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False).execute(context)  # type: ignore[arg-type]
    assert list(jobs_per_file(capillary_conn, SERIES)) == batch_names(context, 1)
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)
    assert [entry["fileName"] for entry in upload_calls(capillary_conn, SERIES) if entry["status"] == 200] == (
        batch_names(context, 3)
    )


@pytest.mark.integration
def test_retry_after_success_uploads_nothing(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    calls = len(upload_calls(capillary_conn, SERIES))
    summary = make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert len(upload_calls(capillary_conn, SERIES)) == calls
    assert summary["job_ids"] == sorted(job["jobId"] for job in capillary_conn.jobs(SERIES))


@pytest.mark.integration
def test_another_run_of_the_same_task_uploads_its_own_batches(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    make_operator(write_csv(mobile_rows(5)), SERIES).execute(context)  # type: ignore[arg-type]
    context["ti"].run_id = "manual__2"
    make_operator(write_csv(mobile_rows(5, start=100), name="next.csv"), SERIES).execute(context)  # type: ignore[arg-type]
    assert len(capillary_conn.jobs(SERIES)) == 2


# -- answers lost after Capillary stored the body ---------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "action",
    [
        {"type": "drop_after_body"},
        {"type": "status", "status": 502, "after_body": True},
        {"type": "malformed_json"},
        {"type": "success_false"},
    ],
    ids=["dropped-after-body", "502-after-body", "malformed-answer", "success-false"],
)
def test_lost_answer_to_a_stored_batch_is_found_by_name_not_uploaded_again(
    action: dict[str, Any],
    capillary_conn: SandboxClient,
    coupons: Path,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", action)  # batch 2
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)
    assert len(upload_calls(capillary_conn, SERIES)) == 3


@pytest.mark.integration
def test_upload_refused_before_the_body_was_read_is_sent_again(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "drop_before_body")
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)
    assert len(upload_calls(capillary_conn, SERIES)) == 4


@pytest.mark.integration
def test_recheck_pause_is_taken_from_the_module_constant(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("capillary_provider.operators._exactly_once.UNCERTAIN_UPLOAD_RECHECK_SECONDS", 0.125)
    monkeypatch.setattr("capillary_provider.operators._exactly_once.time.sleep", pauses.append)
    capillary_conn.add_fault("upload", "drop_after_body")
    make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False).execute(context)  # type: ignore[arg-type]
    assert pauses == [0.125]


# -- worker killed with SIGKILL ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from capillary_provider.coupon_file import BatchReader
    from tests.conftest import FakeTaskInstance
    from tests.faultkit import make_operator

    source, series, stall_part, marker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    read = BatchReader.read

    def stalling_read(self, size=-1):
        # Part ``stall_part`` sends a few bytes, says so, then hangs: the worker dies mid-body.
        if self._batch.part == stall_part:
            if self.tell() > 0:
                marker.write_text("mid-body")
                import time
                time.sleep(3600)
            return read(self, 8)
        return read(self, size)

    if stall_part:
        BatchReader.read = stalling_read
    operator = make_operator(source, series, batch_size=10, wait_for_completion=False)
    operator.execute({"ti": FakeTaskInstance()})
    """
)


def start_worker(source: Path, stall_part: int, marker: Path) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-c", CHILD, str(source), str(SERIES), str(stall_part), str(marker)]
    return subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(BOUND)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.integration
def test_worker_killed_while_waiting_for_the_answer_to_batch_two_then_rerun_ends_with_one_job_per_batch(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], tmp_path: Path
) -> None:
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", "delay", seconds=60)  # batch 2 is stored, its answer held back
    worker = start_worker(coupons, 0, tmp_path / "marker")
    try:
        wait_for(lambda: len(capillary_conn.jobs(SERIES)) == 2, "batch 2 never reached the sandbox", timeout=BOUND)
    finally:
        kill(worker)
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]  # the retry
    assert_one_job_per_batch(capillary_conn, context)


@pytest.mark.integration
def test_worker_killed_mid_body_of_batch_two_then_rerun_ends_with_one_job_per_batch(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    worker = start_worker(coupons, 2, marker)
    try:
        wait_for(marker.exists, "the worker never started batch 2", timeout=BOUND)
    finally:
        kill(worker)
    assert list(jobs_per_file(capillary_conn, SERIES)) == batch_names(context, 1)  # the cut body stored nothing
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)


# -- triggerer restart ------------------------------------------------------------------------------------


def rebuild(deferred: TaskDeferred) -> CouponUploadTrigger:
    """A trigger from its serialized kwargs, through JSON, as a (restarted) triggerer builds it."""
    classpath, kwargs = deferred.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger: CouponUploadTrigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    return trigger


@pytest.mark.integration
def test_triggerer_restart_mid_wait_ends_with_one_event_and_no_new_upload(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)  # the jobs stay in progress: the first trigger cannot finish
    operator = make_operator(coupons, SERIES, batch_size=10, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)  # type: ignore[arg-type]
    uploads = len(upload_calls(capillary_conn, SERIES))
    status_path = f"/coupon/api/v1/upload/getUploadStatus/{SERIES}"

    async def first_trigger_then_restart() -> list[Any]:
        first = asyncio.ensure_future(anext(rebuild(deferred.value).run()))
        polls = len(capillary_conn.requests(status_path))
        while len(capillary_conn.requests(status_path)) == polls:  # the first trigger has polled at least once
            await asyncio.sleep(0.02)
        first.cancel()  # the triggerer stops
        with pytest.raises(asyncio.CancelledError):
            await first
        capillary_conn.set_step_seconds(0.05)
        events = []
        async for event in rebuild(deferred.value).run():  # a new triggerer picks the trigger up
            events.append(event.payload)
        return events

    events = asyncio.run(asyncio.wait_for(first_trigger_then_restart(), BOUND))
    assert [event["status"] for event in events] == ["done"]
    summary = operator.execute_complete(context, event=json.loads(json.dumps(events[0])))  # type: ignore[arg-type]
    assert summary["status"] == "FINISHED"
    assert len(upload_calls(capillary_conn, SERIES)) == uploads
    assert_one_job_per_batch(capillary_conn, context)


@pytest.mark.integration
def test_task_retry_after_a_deferred_wait_attaches_to_the_same_jobs(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    first = run_operator(make_operator(coupons, SERIES, batch_size=10, deferrable=True), context)
    second = run_operator(make_operator(coupons, SERIES, batch_size=10, deferrable=True), context)
    assert second["job_ids"] == first["job_ids"]
    assert_one_job_per_batch(capillary_conn, context)
