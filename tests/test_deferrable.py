"""CouponUploadOperator(deferrable=True) in one process: execute -> defer -> trigger -> execute_complete.

The trigger is rebuilt from its ``serialize()`` output before it runs, as the triggerer does, and its
event goes through JSON, as it does through the metadata database.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CouponUploadFailed, CouponUploadTimeout
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from tests.conftest import FakeTaskInstance, make_operator, mobile_rows
from tests.faultkit import PollCounter, run_trigger_of

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[attr-defined,no-redef,unused-ignore]

pytestmark = pytest.mark.integration

SERIES = 8001
STATUS_PATH = f"/coupon/api/v1/upload/getUploadStatus/{SERIES}"

deferrable_operator = partial(make_operator, series=SERIES, poll_interval=0.05, deferrable=True)
"""A deferrable operator on this module's series."""


def seed_codes(sandbox: SandboxClient, write_csv: Callable[..., Path], rows: list[tuple[str, str]]) -> None:
    """Put ``rows``' codes into the series first, so Capillary rejects them when the task uploads them again."""
    path = write_csv(rows, name="seed.csv")
    job = CapillaryHook().upload_coupon_file(SERIES, path, file_name="seed.csv", customer_identifier="MOBILE")
    sandbox.wait_for_job(job.job_id)


def defer(operator: CouponUploadOperator, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)  # type: ignore[arg-type]
    return deferred.value


def resume(operator: CouponUploadOperator, deferred: TaskDeferred, context: dict[str, Any]) -> dict[str, Any]:
    event = run_trigger_of(deferred)
    result: dict[str, Any] = getattr(operator, deferred.method_name)(context, event=event)
    return result


def run_to_the_end(operator: CouponUploadOperator, context: dict[str, Any]) -> dict[str, Any]:
    """Execute the operator; if it defers, run its trigger and resume it."""
    if operator.deferrable:
        return resume(operator, defer(operator, context), context)
    result: dict[str, Any] = operator.execute(context)  # type: ignore[arg-type]
    return result


def test_defer_run_trigger_resume_succeeds_with_the_summary(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    operator = deferrable_operator(write_csv(mobile_rows(20)))

    deferred = defer(operator, context)
    summary = resume(operator, deferred, context)

    assert deferred.method_name == "execute_complete"
    assert (summary["status"], summary["total_rows"], summary["accepted_rows"]) == ("FINISHED", 20, 20)
    assert context["ti"].xcom["status"] == "FINISHED"
    assert context["ti"].xcom["job_ids"] == summary["job_ids"]


def test_defer_hands_the_trigger_the_jobs_and_an_absolute_deadline(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    operator = deferrable_operator(write_csv(mobile_rows(20)), batch_size=8, poll_interval=7, timeout=3600)

    deferred = defer(operator, context)

    trigger = deferred.trigger
    assert isinstance(trigger, CouponUploadTrigger)
    assert trigger.job_ids == context["ti"].xcom["job_ids"]
    assert len(trigger.job_ids) == 3
    assert (trigger.coupon_series_id, trigger.poll_interval) == (str(SERIES), 7.0)
    assert trigger.end_time > 1_700_000_000  # epoch seconds, not a duration or a monotonic clock


def test_deferred_wait_makes_one_status_call_per_poll_for_all_batches(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = deferrable_operator(write_csv(mobile_rows(20)), batch_size=5)
    deferred = defer(operator, context)
    counter = PollCounter(monkeypatch)
    status_calls_before = len(capillary_conn.requests(STATUS_PATH))

    resume(operator, deferred, context)

    assert len(context["ti"].xcom["job_ids"]) == 4
    assert len(capillary_conn.requests(STATUS_PATH)) - status_calls_before == counter.polls


def test_already_terminal_jobs_finish_inline_without_deferring(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(0)  # jobs are FINISHED as soon as they exist
    operator = deferrable_operator(write_csv(mobile_rows(20)))

    summary = operator.execute(context)  # type: ignore[arg-type]

    assert summary["status"] == "FINISHED"
    assert context["ti"].xcom["status"] == "FINISHED"


def test_finishing_inline_applies_the_failure_policy(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(0)
    seed_codes(capillary_conn, write_csv, mobile_rows(1, start=10))
    operator = deferrable_operator(write_csv(mobile_rows(11)))

    with pytest.raises(CouponUploadFailed, match="rejected 1 of 11 rows"):
        operator.execute(context)  # type: ignore[arg-type]


def test_resume_fails_without_retry_when_a_job_errored(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.add_fault("upload", "job_errored")
    operator = deferrable_operator(write_csv(mobile_rows(20)))
    deferred = defer(operator, context)

    with pytest.raises(CouponUploadFailed, match="ERRORED"):
        resume(operator, deferred, context)
    assert context["ti"].xcom["status"] == "ERRORED"


def test_resume_fails_when_rejected_rows_exceed_the_ratio(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    seed_codes(capillary_conn, write_csv, mobile_rows(2, start=8))
    operator = deferrable_operator(write_csv(mobile_rows(10)), max_error_rows=None, max_error_ratio=0.1)
    deferred = defer(operator, context)

    with pytest.raises(CouponUploadFailed, match=r"rejected 2 of 10 rows \(20.00%\)"):
        resume(operator, deferred, context)


def test_resume_after_timeout_names_the_jobs_and_their_last_states(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    operator = deferrable_operator(write_csv(mobile_rows(20)), timeout=0.3)
    deferred = defer(operator, context)
    job_id = context["ti"].xcom["job_id"]

    with pytest.raises(CouponUploadTimeout, match=rf"Last known: job {job_id} STARTED"):
        resume(operator, deferred, context)


@pytest.mark.parametrize(
    ("already_in_series", "fault", "policy", "expected"),
    [
        (0, None, {}, "FINISHED"),
        (1, None, {}, CouponUploadFailed),
        (1, None, {"max_error_rows": 1}, "FINISHED"),
        (0, "job_errored", {"max_error_rows": None}, CouponUploadFailed),
    ],
    ids=["clean", "rejected-over-threshold", "rejected-within-threshold", "errored"],
)
def test_deferred_and_in_worker_waits_reach_the_same_verdict(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    already_in_series: int,
    fault: str | None,
    policy: dict[str, Any],
    expected: str | type[Exception],
) -> None:
    source = write_csv(mobile_rows(10))
    outcomes: list[str | type[Exception]] = []
    for deferrable in (False, True):
        capillary_conn.reset()
        if already_in_series:
            seed_codes(capillary_conn, write_csv, mobile_rows(already_in_series))
        if fault:
            capillary_conn.add_fault("upload", fault)
        context: dict[str, Any] = {"ti": FakeTaskInstance()}
        operator = deferrable_operator(source, deferrable=deferrable, **policy)
        try:
            outcomes.append(run_to_the_end(operator, context)["status"])
        except CouponUploadFailed as exc:
            outcomes.append(type(exc))

    assert outcomes == [expected, expected]
