"""The one verdict: FailurePolicy over finished jobs, overall_status, and trigger events (decode_event)."""

from __future__ import annotations

from typing import Any

import pytest

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import CapillaryError, CouponUploadFailed, CouponUploadTimeout
from capillary_provider.jobs import UploadJob
from capillary_provider.verdict import FailurePolicy, overall_status
from capillary_provider.waiting import decode_event


def job(
    job_id: int = 1, status: str = "FINISHED", rows: int = 100, rejected: int = 0, error_file: str | None = None
) -> UploadJob:
    return UploadJob(
        job_id=job_id,
        status=status,
        actual_row_count=rows,
        total_uploaded_count=rows - rejected,
        error_count=rejected,
        error_file_url=error_file,
    )


# -- FailurePolicy: every status and threshold combination --------------------------------------------

PASS, FAIL = "pass", "fail"


@pytest.mark.parametrize(
    ("status", "rejected", "max_error_rows", "max_error_ratio", "verdict"),
    [
        # FINISHED, no rejected rows: passes under every policy
        ("FINISHED", 0, 0, None, PASS),
        ("FINISHED", 0, None, None, PASS),
        ("FINISHED", 0, None, 0.0, PASS),
        ("FINISHED", 0, 0, 0.0, PASS),
        # FINISHED with rejected rows: the default (max_error_rows=0) fails
        ("FINISHED", 1, 0, None, FAIL),
        # max_error_rows only
        ("FINISHED", 5, 5, None, PASS),
        ("FINISHED", 6, 5, None, FAIL),
        # max_error_ratio only (100 rows)
        ("FINISHED", 5, None, 0.05, PASS),
        ("FINISHED", 6, None, 0.05, FAIL),
        # both thresholds: each one can fail the task alone
        ("FINISHED", 5, 5, 0.05, PASS),
        ("FINISHED", 6, 10, 0.05, FAIL),
        ("FINISHED", 6, 5, 0.10, FAIL),
        # no threshold at all: any number of rejected rows passes
        ("FINISHED", 100, None, None, PASS),
        # ERRORED fails whatever the thresholds
        ("ERRORED", 0, 0, None, FAIL),
        ("ERRORED", 0, None, None, FAIL),
        ("ERRORED", 0, 1000, 1.0, FAIL),
    ],
)
def test_failure_policy_verdict_table(
    status: str, rejected: int, max_error_rows: int | None, max_error_ratio: float | None, verdict: str
) -> None:
    policy = FailurePolicy(max_error_rows=max_error_rows, max_error_ratio=max_error_ratio)
    jobs = [job(status=status, rows=100, rejected=rejected)]

    if verdict == PASS:
        policy.check(jobs)
    else:
        with pytest.raises(CouponUploadFailed):
            policy.check(jobs)


def test_policy_failures_are_not_retried() -> None:
    with pytest.raises(AirflowFailException):
        FailurePolicy().check([job(rejected=1)])


def test_policy_adds_rejected_rows_over_all_jobs() -> None:
    policy = FailurePolicy(max_error_rows=5)
    jobs = [job(1, rejected=3), job(2, rejected=3)]

    with pytest.raises(CouponUploadFailed, match="rejected 6 of 200 rows"):
        policy.check(jobs)


def test_policy_ratio_is_taken_over_all_rows_of_all_jobs() -> None:
    policy = FailurePolicy(max_error_rows=None, max_error_ratio=0.05)

    policy.check([job(1, rows=100, rejected=10), job(2, rows=100, rejected=0)])  # 10 of 200 = 5 %


def test_policy_one_errored_job_fails_even_when_the_others_finished() -> None:
    retry_hint = r"A retry of this task attaches to the same job and fails again.*new DAG run"
    with pytest.raises(CouponUploadFailed, match=r"upload job 2 ERRORED\. .*" + retry_hint):
        FailurePolicy(max_error_rows=None).check([job(1), job(2, status="ERRORED", rows=0)])


def test_policy_message_names_each_job_its_counts_and_error_file() -> None:
    with pytest.raises(CouponUploadFailed) as failure:
        FailurePolicy().check([job(7, rejected=2, error_file="errors/7_errors.csv"), job(8)])

    message = str(failure.value)
    assert "job 7 FINISHED: 100 rows, 98 accepted, 2 rejected, error file errors/7_errors.csv" in message
    assert "job 8 FINISHED: 100 rows, 100 accepted, 0 rejected" in message


@pytest.mark.parametrize("kwargs", [{"max_error_rows": -1}, {"max_error_ratio": -0.1}, {"max_error_ratio": 1.5}])
def test_policy_rejects_impossible_thresholds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="max_error"):
        FailurePolicy(**kwargs)


def test_policy_ratio_of_jobs_without_rows_passes() -> None:
    FailurePolicy(max_error_rows=None, max_error_ratio=0.0).check([job(rows=0)])


# -- overall_status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["FINISHED"], "FINISHED"),
        (["FINISHED", "FINISHED"], "FINISHED"),
        (["FINISHED", "ERRORED"], "ERRORED"),
        (["STARTED", "ERRORED"], "ERRORED"),
        (["FINISHED", "COMMITED", "VALIDATED"], "VALIDATED"),
        (["COMMITED", "STARTED"], "STARTED"),
        (["FINISHED", "QUEUED_SOMEWHERE"], "QUEUED_SOMEWHERE"),
        ([], ""),
    ],
)
def test_overall_status_reports_errored_first_then_the_least_advanced(statuses: list[str], expected: str) -> None:
    assert overall_status([job(n, status=s) for n, s in enumerate(statuses)]) == expected


def test_unknown_status_is_in_progress_never_success() -> None:
    assert not job(status="SOMETHING_NEW").is_terminal


# -- decode_event ------------------------------------------------------------------------------------


def done_event(*jobs: UploadJob) -> dict[str, Any]:
    return {"status": "done", "message": "All upload jobs are terminal", "jobs": [j.to_dict() for j in jobs]}


def test_jobs_from_event_returns_the_jobs_of_a_done_event() -> None:
    jobs = [job(1), job(2, rejected=3, error_file="errors/2.csv")]

    assert decode_event(done_event(*jobs)) == jobs


@pytest.mark.parametrize(
    "event",
    [None, {}, {"status": None}, {"status": "success"}, {"message": "no status"}, "done"],
    ids=["none", "empty", "null-status", "unknown-status", "missing-status", "not-a-dict"],
)
def test_jobs_from_event_fails_loudly_on_a_missing_or_unknown_status(event: Any) -> None:
    with pytest.raises(CapillaryError, match="Unexpected event"):
        decode_event(event)


def test_jobs_from_event_timeout_raises_a_retryable_timeout_with_the_trigger_message() -> None:
    event = {"status": "timeout", "message": "jobs 1 not finished. Last known: job 1 STARTED", "jobs": []}

    with pytest.raises(CouponUploadTimeout, match="Last known: job 1 STARTED") as failure:
        decode_event(event)
    assert not isinstance(failure.value, AirflowFailException)


def test_jobs_from_event_error_fails_without_retry() -> None:
    with pytest.raises(CouponUploadFailed, match="HTTP 403"):
        decode_event({"status": "error", "message": "forbidden (HTTP 403)", "jobs": []})


def test_jobs_from_event_refuses_done_with_a_job_in_progress() -> None:
    with pytest.raises(CapillaryError, match="still in progress"):
        decode_event(done_event(job(1), job(2, status="COMMITED")))


def test_jobs_from_event_refuses_done_without_jobs() -> None:
    with pytest.raises(CapillaryError, match="still in progress"):
        decode_event(done_event())


def test_jobs_from_event_refuses_jobs_it_cannot_read() -> None:
    with pytest.raises(CapillaryError, match="cannot read"):
        decode_event({"status": "done", "jobs": [{"job_id": 1, "status": "FINISHED", "surprise": 1}]})
