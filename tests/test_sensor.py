"""CouponUploadSensor against the sandbox: poke, reschedule and deferrable modes reach the same verdict."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from capillary_provider._compat import AirflowFailException, AirflowSensorTimeout
from capillary_provider.exceptions import CapillaryConfigError, CouponUploadFailed
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.sensors.coupon_upload import CouponUploadSensor, _job_ids
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from tests.conftest import FakeTaskInstance, mobile_rows

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException, TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        AirflowRescheduleException,
        AirflowSkipException,
        TaskDeferred,
    )

SERIES = 6001


class RescheduledTaskInstance(FakeTaskInstance):
    """A task instance in its first try of reschedule mode."""

    def get_first_reschedule_date(self, context: Any) -> datetime | None:
        return None


def make_sensor(job_ids: Any, **kwargs: Any) -> CouponUploadSensor:
    options: dict[str, Any] = {
        "task_id": "wait",
        "coupon_series_id": SERIES,
        "job_ids": job_ids,
        "poke_interval": 0.05,
        "timeout": 60,
        "deferrable": False,
    }
    options.update(kwargs)
    return CouponUploadSensor(**options)


def upload(write_csv: Callable[..., Path], rows: list[tuple[str, str]], name: str = "batch.csv") -> int:
    path = write_csv(rows, name=name)
    return CapillaryHook().upload_coupon_file(SERIES, path, file_name=name, customer_identifier="MOBILE").job_id


def finished_job(sandbox: SandboxClient, write_csv: Callable[..., Path], rows: list[tuple[str, str]]) -> int:
    job_id = upload(write_csv, rows)
    sandbox.wait_for_job(job_id)
    return job_id


def run_deferred(sensor: CouponUploadSensor, context: dict[str, Any]) -> Any:
    """Execute; on deferral rebuild the trigger from its serialised form, run it, resume like Airflow does."""
    try:
        return sensor.execute(context)  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        module, _, name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

        async def first_event() -> Any:
            return await anext(trigger.run())

        event = json.loads(json.dumps(asyncio.run(first_event()).payload))
        return sensor.resume_execution(deferred.method_name, {"event": event}, context)  # type: ignore[arg-type]


# -- poke mode ------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_poke_mode_waits_for_the_jobs_and_returns_the_summary(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(0.5)  # FINISHED about 1.5 s after the upload: several pokes
    job_id = upload(write_csv, mobile_rows(10))

    summary = make_sensor([job_id]).execute(context)  # type: ignore[arg-type]

    assert (summary["status"], summary["job_ids"], summary["accepted_rows"]) == ("FINISHED", [job_id], 10)
    assert len(capillary_conn.requests("getUploadStatus")) >= 2


@pytest.mark.integration
def test_poke_mode_fails_without_retry_when_a_job_errored(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.add_fault("upload", "job_errored")
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(CouponUploadFailed, match=f"upload job {job_id} ERRORED"):
        make_sensor([job_id]).execute(context)  # type: ignore[arg-type]


@pytest.mark.integration
def test_poke_mode_fails_when_rejected_rows_exceed_max_error_rows(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    finished_job(capillary_conn, write_csv, mobile_rows(3))
    job_id = upload(write_csv, mobile_rows(10), name="again.csv")  # 3 codes are in the series already

    with pytest.raises(CouponUploadFailed, match="rejected 3 of 10 rows, more than max_error_rows=2"):
        make_sensor([job_id], max_error_rows=2).execute(context)  # type: ignore[arg-type]


@pytest.mark.integration
def test_poke_mode_passes_rejected_rows_within_max_error_ratio(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    finished_job(capillary_conn, write_csv, mobile_rows(1))
    job_id = upload(write_csv, mobile_rows(10), name="again.csv")

    summary = make_sensor([job_id], max_error_rows=None, max_error_ratio=0.1).execute(context)  # type: ignore[arg-type]

    assert summary["rejected_rows"] == 1


@pytest.mark.integration
def test_poke_mode_timeout_names_the_jobs_and_their_last_states(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(AirflowSensorTimeout, match=f"Last known: job {job_id} STARTED") as failure:
        make_sensor([job_id, 424242], timeout=0.2).execute(context)  # type: ignore[arg-type]
    assert "job 424242 not listed by Capillary yet" in str(failure.value)


@pytest.mark.integration
def test_poke_waits_for_a_job_the_series_does_not_list_yet(
    capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    assert make_sensor([424242]).poke(context) is False  # type: ignore[arg-type]


# -- reschedule mode -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_reschedule_mode_gives_back_the_slot_while_jobs_run(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(AirflowRescheduleException):
        make_sensor([job_id], mode="reschedule").execute({"ti": RescheduledTaskInstance()})  # type: ignore[arg-type]


@pytest.mark.integration
def test_reschedule_mode_returns_the_summary_once_jobs_finished(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    job_id = finished_job(capillary_conn, write_csv, mobile_rows(10))

    summary = make_sensor([job_id], mode="reschedule").execute({"ti": RescheduledTaskInstance()})  # type: ignore[arg-type]

    assert summary["status"] == "FINISHED"


# -- deferrable mode -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_deferrable_mode_defers_with_the_jobs_and_poke_interval(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(TaskDeferred) as deferred:
        make_sensor(f"[{job_id}]", poke_interval=5, deferrable=True).execute(context)  # type: ignore[arg-type]

    trigger = deferred.value.trigger
    assert isinstance(trigger, CouponUploadTrigger)
    assert (trigger.job_ids, trigger.coupon_series_id, trigger.poll_interval) == ([job_id], str(SERIES), 5.0)


@pytest.mark.integration
def test_deferrable_mode_resumes_with_the_summary(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    job_id = upload(write_csv, mobile_rows(10))

    summary = run_deferred(make_sensor([job_id], deferrable=True), context)

    assert (summary["status"], summary["accepted_rows"]) == ("FINISHED", 10)


@pytest.mark.integration
def test_deferrable_mode_finishes_inline_when_jobs_are_already_terminal(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    job_id = finished_job(capillary_conn, write_csv, mobile_rows(10))

    summary = make_sensor([job_id], deferrable=True).execute(context)  # type: ignore[arg-type]

    assert summary["status"] == "FINISHED"


@pytest.mark.integration
def test_deferrable_mode_fails_without_retry_when_a_job_errored(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.add_fault("upload", "job_errored")
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(AirflowFailException, match="ERRORED"):
        run_deferred(make_sensor([job_id], deferrable=True), context)


@pytest.mark.integration
def test_deferrable_mode_timeout_is_a_sensor_timeout_naming_the_jobs(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(AirflowSensorTimeout, match=f"Last known: job {job_id} STARTED"):
        run_deferred(make_sensor([job_id], deferrable=True, timeout=0.3), context)


@pytest.mark.integration
def test_deferrable_mode_timeout_with_soft_fail_skips(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = upload(write_csv, mobile_rows(10))

    with pytest.raises(AirflowSkipException):
        run_deferred(make_sensor([job_id], deferrable=True, timeout=0.3, soft_fail=True), context)


# -- parameters ------------------------------------------------------------------------------------------


def test_series_and_job_ids_are_templated() -> None:
    assert {"coupon_series_id", "job_ids"} <= set(CouponUploadSensor.template_fields)


@pytest.mark.parametrize(
    ("job_ids", "expected"),
    [([5, 6], [5, 6]), (5, [5]), ("[5, 6]", [5, 6]), ("5", [5]), (["5", "6"], [5, 6])],
    ids=["list", "int", "rendered-list", "rendered-int", "list-of-text"],
)
def test_job_ids_accept_lists_ids_and_rendered_templates(job_ids: Any, expected: list[int]) -> None:
    assert _job_ids(job_ids) == expected


@pytest.mark.parametrize("job_ids", ["[]", "", "[5, x]", None], ids=["empty-list", "empty", "not-a-number", "none"])
def test_job_ids_that_are_not_ids_fail_before_any_call(job_ids: Any, context: dict[str, Any]) -> None:
    with pytest.raises(CapillaryConfigError, match="job_ids"):
        make_sensor(job_ids).poke(context)  # type: ignore[arg-type]
