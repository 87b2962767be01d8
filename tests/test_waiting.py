"""``waiting``: the pure step of every wait (JobWatch), the timeout message, the poll delay, the event codec."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import (
    CapillaryError,
    CapillaryTransientError,
    CouponUploadFailed,
    CouponUploadTimeout,
)
from capillary_provider.jobs import UploadJob
from capillary_provider.verdict import summarize
from capillary_provider.waiting import (
    EVENT_DONE,
    EVENT_ERROR,
    EVENT_TIMEOUT,
    JobChangeLog,
    JobWatch,
    decode_event,
    encode_event,
    is_transient_poll_error,
    next_poll_delay,
)
from tests.recording_log import RecordingLog


def job(job_id: int, status: str, **fields: Any) -> UploadJob:
    return UploadJob(job_id=job_id, status=status, **fields)


def test_assess_waits_for_jobs_not_listed_yet_and_for_jobs_in_progress() -> None:
    watch = JobWatch("7", [1, 2], logging.getLogger("test"))
    assert watch.missing == [1, 2]
    assert watch.assess([job(1, "FINISHED"), job(9, "STARTED")]) is None
    assert watch.missing == [2]
    assert watch.assess([job(1, "FINISHED"), job(2, "STARTED")]) is None
    assert watch.missing == []
    done = watch.assess([job(2, "FINISHED"), job(1, "ERRORED")])
    assert [(j.job_id, j.status) for j in done or []] == [(1, "ERRORED"), (2, "FINISHED")]


def test_last_known_keeps_the_latest_state_in_job_id_order() -> None:
    watch = JobWatch("7", ["2", "1"], logging.getLogger("test"))
    assert watch.job_ids == [2, 1]
    watch.assess([job(1, "STARTED")])
    watch.assess([job(1, "VALIDATED")])
    assert [(j.job_id, j.status) for j in watch.last_known] == [(1, "VALIDATED")]
    assert watch.coupon_series_id == "7"


def test_timeout_message_names_every_job_with_its_last_state() -> None:
    watch = JobWatch(7, [1, 2], logging.getLogger("test"))  # type: ignore[arg-type]
    watch.assess([job(1, "STARTED", actual_row_count=3, error_file_url="s3://e")])
    assert watch.timeout_message() == (
        "Capillary upload jobs 1, 2 of coupon series 7 were not finished before the timeout. Last known: "
        "job 1 STARTED: 3 rows, 0 accepted, 0 rejected, error file s3://e; job 2 not listed by Capillary yet. "
        "A retry of the task waits for the same jobs."
    )
    assert JobWatch(8, [5], logging.getLogger("test")).timeout_message() == (  # type: ignore[arg-type]
        "Capillary upload job 5 of coupon series 8 was not finished before the timeout. Last known: "
        "job 5 not listed by Capillary yet. A retry of the task waits for the same jobs."
    )


def test_poll_delay_is_the_interval_or_a_longer_retry_after() -> None:
    assert next_poll_delay(CapillaryTransientError("x"), 5.0) == 5.0
    assert next_poll_delay(CapillaryTransientError("x", retry_after=2.0), 5.0) == 5.0
    assert next_poll_delay(CapillaryTransientError("x", retry_after=9.0), 5.0) == 9.0
    assert next_poll_delay(CapillaryError("x"), 3.0) == 3.0


@pytest.mark.parametrize("exc", [AirflowFailException("no"), ValueError("bug"), KeyError("bug")])
def test_poll_delay_reraises_what_a_poll_cannot_fix(exc: BaseException) -> None:
    assert not is_transient_poll_error(exc)
    with pytest.raises(type(exc)):
        next_poll_delay(exc, 1.0)


def test_is_transient_poll_error_for_our_errors() -> None:
    assert is_transient_poll_error(CapillaryTransientError("x"))
    assert is_transient_poll_error(CapillaryError("x"))


def test_event_round_trip_of_done() -> None:
    jobs = [job(1, "FINISHED", uploaded_file_name="a.csv", actual_row_count=2)]
    event = encode_event(EVENT_DONE, jobs, "All done")
    assert event == {"status": EVENT_DONE, "message": "All done", "jobs": [jobs[0].to_dict()]}
    assert decode_event(event) == jobs


def test_decode_event_raises_for_timeout_error_and_garbage() -> None:
    with pytest.raises(CouponUploadTimeout, match=r"^late$"):
        decode_event({"status": EVENT_TIMEOUT, "message": "late"})
    with pytest.raises(CouponUploadFailed, match=r"^Waiting for Capillary failed: bad creds$"):
        decode_event({"status": EVENT_ERROR, "message": "bad creds"})
    for event in (None, {}, {"status": "weird"}, ["done"]):
        with pytest.raises(CapillaryError, match="Unexpected event"):
            decode_event(event)  # type: ignore[arg-type]
    with pytest.raises(CapillaryError, match="still in progress"):
        decode_event(encode_event(EVENT_DONE, [job(1, "STARTED")], "m"))
    with pytest.raises(CapillaryError, match="still in progress"):
        decode_event({"status": EVENT_DONE, "message": "m", "jobs": []})
    with pytest.raises(CapillaryError, match="cannot read"):
        decode_event({"status": EVENT_DONE, "message": "m", "jobs": [{"job_id": "x"}]})


# -- jobs: the summary and the change log the waits use ------------------------------------------------


def test_summarize_adds_up_the_jobs() -> None:
    jobs = [
        job(1, "FINISHED", actual_row_count=10, total_uploaded_count=9, error_count=1, error_file_url="e1"),
        job(2, "FINISHED", actual_row_count=5, total_uploaded_count=5),
    ]
    summary = summarize(7, jobs, failure="why")  # type: ignore[arg-type]
    assert summary == {
        "coupon_series_id": "7",
        "status": "FINISHED",
        "job_ids": [1, 2],
        "total_rows": 15,
        "accepted_rows": 14,
        "rejected_rows": 1,
        "error_file_urls": ["e1"],
        "jobs": [j.to_dict() for j in jobs],
        "failure": "why",
    }
    assert summarize("7", [])["status"] == ""
    assert summarize("7", jobs)["failure"] is None


def test_change_log_logs_each_job_once_per_change() -> None:
    log = RecordingLog()
    changes = JobChangeLog(log)
    changes.update([job(1, "STARTED"), job(2, "STARTED")])
    changes.update([job(1, "STARTED"), job(2, "STARTED")])
    changes.update([job(1, "STARTED", actual_row_count=3)])
    changes.update([job(1, "STARTED", actual_row_count=3, total_uploaded_count=1)])
    changes.update([job(1, "STARTED", actual_row_count=3, total_uploaded_count=1, error_count=1)])
    changes.update([job(2, "NEW_STATE")])
    changes.update([job(2, "NEW_STATE")])
    changes.update([job(3, "")])
    assert log.lines == [
        ("info", "Capillary upload job 1 STARTED: 0 rows, 0 accepted, 0 rejected"),
        ("info", "Capillary upload job 2 STARTED: 0 rows, 0 accepted, 0 rejected"),
        ("info", "Capillary upload job 1 STARTED: 3 rows, 0 accepted, 0 rejected"),
        ("info", "Capillary upload job 1 STARTED: 3 rows, 1 accepted, 0 rejected"),
        ("info", "Capillary upload job 1 STARTED: 3 rows, 1 accepted, 1 rejected"),
        (
            "warning",
            "Capillary reports an unknown status; treated as in progress: job 2 NEW_STATE: 0 rows, "
            "0 accepted, 0 rejected",
        ),
        ("info", "Capillary upload job 3 ?: 0 rows, 0 accepted, 0 rejected"),
    ]


def test_watch_logs_changes_through_its_log() -> None:
    log = RecordingLog()
    watch = JobWatch("7", [1], log)
    watch.assess([job(1, "STARTED")])
    watch.assess([job(1, "STARTED")])
    assert log.lines == [("info", "Capillary upload job 1 STARTED: 0 rows, 0 accepted, 0 rejected")]
