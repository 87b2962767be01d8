"""CouponUploadOperator executed in-process against the sandbox over real HTTP (waiting in the worker)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from capillary_provider import polling
from capillary_provider.exceptions import CouponUploadFailed, CouponUploadTimeout
from capillary_provider.operators._exactly_once import BatchUploads
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows

pytestmark = pytest.mark.integration

SERIES = 9001
UPLOAD_PATH = f"/coupon/api/v1/upload/file/{SERIES}"
STATUS_PATH = f"/coupon/api/v1/upload/getUploadStatus/{SERIES}"
SUMMARY_KEYS = {
    "coupon_series_id",
    "failure",
    "status",
    "job_ids",
    "total_rows",
    "accepted_rows",
    "rejected_rows",
    "error_file_urls",
    "jobs",
}
JOB_KEYS = {
    "job_id",
    "status",
    "uploaded_file_name",
    "actual_row_count",
    "total_uploaded_count",
    "error_count",
    "error_file_url",
    "success_file_url",
    "created_on",
    "updated_on",
}


def upload_calls(sandbox: SandboxClient) -> list[dict[str, Any]]:
    return [entry for entry in sandbox.requests() if entry["path"] == UPLOAD_PATH]


@pytest.fixture
def with_duplicates(write_csv: Callable[..., Path]) -> Path:
    """13 rows of which the last 3 repeat earlier codes: Capillary rejects 3."""
    return write_csv(mobile_rows(10) + mobile_rows(3))


# -- happy path -------------------------------------------------------------------------------------


def test_file_is_uploaded_in_batches_of_batch_size_rows(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)
    jobs = sorted(capillary_conn.jobs(SERIES), key=lambda job: job["jobId"])
    assert [(job["uploadStatus"], job["actualRowCount"], job["totalUploadedCount"]) for job in jobs] == [
        ("FINISHED", 10, 10),
        ("FINISHED", 10, 10),
        ("FINISHED", 5, 5),
    ]


def test_every_batch_repeats_the_header_and_holds_its_own_rows(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)
    lines = coupons.read_bytes().splitlines(keepends=True)
    stored = [
        Path(job["storedPath"]).read_bytes() for job in sorted(capillary_conn.jobs(SERIES), key=lambda j: j["jobId"])
    ]
    assert stored == [
        b"".join([lines[0], *lines[1:11]]),
        b"".join([lines[0], *lines[11:21]]),
        b"".join([lines[0], *lines[21:26]]),
    ]


def test_summary_adds_up_the_counts_of_all_batches(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    summary = make_operator(coupons, SERIES, batch_size=10).execute(context)
    job_ids = sorted(job["jobId"] for job in capillary_conn.jobs(SERIES))
    assert {key: summary[key] for key in SUMMARY_KEYS - {"jobs"}} == {
        "coupon_series_id": str(SERIES),
        "status": "FINISHED",
        "job_ids": job_ids,
        "total_rows": 25,
        "accepted_rows": 25,
        "rejected_rows": 0,
        "error_file_urls": [],
        "failure": None,
    }


def test_summary_is_json_with_one_entry_per_job(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    summary = make_operator(coupons, SERIES, batch_size=10).execute(context)
    assert json.loads(json.dumps(summary)) == summary
    assert set(summary) == SUMMARY_KEYS
    assert [set(job) for job in summary["jobs"]] == [JOB_KEYS] * 3
    assert [job["job_id"] for job in summary["jobs"]] == summary["job_ids"]


def assert_xcom_names_the_jobs(sandbox: SandboxClient, context: dict[str, Any], status: str) -> list[int]:
    """XCom holds the first job id, every job id of the series (as the sandbox has them) and ``status``;
    the job ids."""
    job_ids = sorted(job["jobId"] for job in sandbox.jobs(SERIES))
    xcom = context["ti"].xcom
    assert {key: xcom[key] for key in ("job_id", "job_ids", "status")} == {
        "job_id": job_ids[0],
        "job_ids": job_ids,
        "status": status,
    }
    return job_ids


def test_xcom_holds_first_job_id_all_job_ids_and_final_status(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)
    job_ids = assert_xcom_names_the_jobs(capillary_conn, context, "FINISHED")
    assert context["ti"].xcom["summary"]["job_ids"] == job_ids


def test_batches_are_named_after_the_task_instance(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)
    names = sorted(job["uploadedFileName"] for job in capillary_conn.jobs(SERIES))
    assert [name.split("__")[:2] for name in names] == [["test_dag", "upload"]] * 3
    assert [name[-12:] for name in names] == ["part0001.csv", "part0002.csv", "part0003.csv"]


def test_no_token_reaches_xcom_or_the_summary(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    summary = make_operator(coupons, SERIES).execute(context)
    assert "sbx-tok-" not in json.dumps(summary)
    assert "sbx-tok-" not in json.dumps(context["ti"].xcom)


def test_second_run_of_the_same_task_instance_uploads_nothing_again(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    first = make_operator(coupons, SERIES, batch_size=10).execute(context)
    second = make_operator(coupons, SERIES, batch_size=10).execute(context)
    assert len(upload_calls(capillary_conn)) == 3
    assert second["job_ids"] == first["job_ids"]


def test_waiting_sleeps_poll_interval_between_status_calls(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait in the worker runs the trigger, whose poller sleeps between status calls (polling.py)."""
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)
        pauses.append(seconds)  # a pause cut short when the wait ends is not between two calls

    monkeypatch.setattr(polling, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": sleep}))
    make_operator(coupons, SERIES, poll_interval=0.25).execute(context)
    status_calls = [entry for entry in capillary_conn.requests() if entry["path"] == STATUS_PATH]
    assert pauses
    assert all(pause == 0.25 for pause in pauses)
    assert len(status_calls) == 1 + len(pauses) + 1  # the check before uploading, the first poll, one per wake-up


def test_a_wait_in_the_worker_leaves_no_poller_or_budget_behind(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    """The trigger runs on an event loop of its own; its pollers and budget end with it, not with the process."""
    before = len(polling._REGISTRIES)
    make_operator(coupons, SERIES).execute(context)
    gc.collect()
    assert len(polling._REGISTRIES) == before


# -- verdicts ---------------------------------------------------------------------------------------


def test_rejected_rows_fail_the_task_with_counts_and_error_file_key(
    capillary_conn: SandboxClient, with_duplicates: Path, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponUploadFailed) as info:
        make_operator(with_duplicates, SERIES).execute(context)
    [job] = capillary_conn.jobs(SERIES)
    assert "rejected 3 of 13 rows" in str(info.value)
    assert "max_error_rows=0" in str(info.value)
    assert job["errorFileUrl"]
    assert job["errorFileUrl"] in str(info.value)
    assert str(job["jobId"]) in str(info.value)


def test_rejected_rows_still_leave_the_final_status_in_xcom(
    capillary_conn: SandboxClient, with_duplicates: Path, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponUploadFailed):
        make_operator(with_duplicates, SERIES).execute(context)
    assert context["ti"].xcom["status"] == "FINISHED"


def test_rejected_rows_within_max_error_rows_pass(
    capillary_conn: SandboxClient, with_duplicates: Path, context: dict[str, Any]
) -> None:
    summary = make_operator(with_duplicates, SERIES, max_error_rows=3).execute(context)
    assert (summary["status"], summary["rejected_rows"], summary["accepted_rows"]) == ("FINISHED", 3, 10)
    assert len(summary["error_file_urls"]) == 1


def test_rejected_rows_above_max_error_rows_fail(
    capillary_conn: SandboxClient, with_duplicates: Path, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponUploadFailed, match="max_error_rows=2"):
        make_operator(with_duplicates, SERIES, max_error_rows=2).execute(context)


def test_rejected_rows_within_max_error_ratio_pass(
    capillary_conn: SandboxClient, with_duplicates: Path, context: dict[str, Any]
) -> None:
    summary = make_operator(with_duplicates, SERIES, max_error_rows=None, max_error_ratio=0.25).execute(context)
    assert summary["rejected_rows"] == 3


def test_rejected_rows_above_max_error_ratio_fail(
    capillary_conn: SandboxClient, with_duplicates: Path, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponUploadFailed, match="max_error_ratio"):
        make_operator(with_duplicates, SERIES, max_error_rows=None, max_error_ratio=0.2).execute(context)


def test_errored_job_fails_the_task(capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]) -> None:
    capillary_conn.add_fault("upload", "job_errored")
    with pytest.raises(CouponUploadFailed, match="ERRORED") as info:
        make_operator(coupons, SERIES).execute(context)
    [job] = capillary_conn.jobs(SERIES)
    assert str(job["jobId"]) in str(info.value)
    assert context["ti"].xcom["status"] == "ERRORED"


def test_errored_job_fails_even_with_no_error_limits(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.add_fault("upload", "job_errored")
    with pytest.raises(CouponUploadFailed, match="ERRORED"):
        make_operator(coupons, SERIES, max_error_rows=None).execute(context)


def test_jobs_not_finished_before_timeout_raise_coupon_upload_timeout(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    with pytest.raises(CouponUploadTimeout) as info:
        make_operator(coupons, SERIES, timeout=0.5).execute(context)
    [job] = capillary_conn.jobs(SERIES)
    assert str(job["jobId"]) in str(info.value)


def test_a_timeout_in_the_worker_leaves_the_summary_of_the_last_known_states_in_xcom(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    with pytest.raises(CouponUploadTimeout) as info:
        make_operator(coupons, SERIES, batch_size=10, timeout=0.5).execute(context)
    summary = context["ti"].xcom["summary"]
    assert summary["job_ids"] == sorted(job["jobId"] for job in capillary_conn.jobs(SERIES))
    assert [job["status"] for job in summary["jobs"]] == ["STARTED"] * 3
    assert summary["failure"] == str(info.value)


def test_a_timeout_before_capillary_lists_the_jobs_leaves_the_jobs_as_uploaded_in_the_summary(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_all = BatchUploads.run

    def upload_then_fail_every_status_call(self: BatchUploads, *args: Any, **kwargs: Any) -> Any:
        jobs = upload_all(self, *args, **kwargs)
        capillary_conn.add_fault("status", "status", status=503, times=None)
        return jobs

    monkeypatch.setattr(BatchUploads, "run", upload_then_fail_every_status_call)
    with pytest.raises(CouponUploadTimeout):
        make_operator(coupons, SERIES, batch_size=10, timeout=0.5, poll_interval=0.1).execute(context)
    summary = context["ti"].xcom["summary"]
    assert summary["job_ids"] == sorted(job["jobId"] for job in capillary_conn.jobs(SERIES))
    assert len(summary["jobs"]) == 3


def test_job_ids_are_in_xcom_before_waiting_ends(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    with pytest.raises(CouponUploadTimeout):
        make_operator(coupons, SERIES, batch_size=10, timeout=0.5).execute(context)
    assert_xcom_names_the_jobs(capillary_conn, context, "STARTED")


# -- modes ------------------------------------------------------------------------------------------


def test_without_waiting_the_task_returns_right_after_the_upload(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)
    summary = make_operator(coupons, SERIES, wait_for_completion=False).execute(context)
    [job] = capillary_conn.jobs(SERIES)
    assert (summary["status"], summary["job_ids"]) == ("STARTED", [job["jobId"]])
    xcom = context["ti"].xcom
    assert {key: xcom[key] for key in ("job_id", "job_ids", "status")} == {
        "job_id": job["jobId"],
        "job_ids": [job["jobId"]],
        "status": "STARTED",
    }
    assert "summary" not in xcom  # no verdict yet: the task did not wait


def test_without_waiting_no_status_call_follows_the_upload(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, wait_for_completion=False).execute(context)
    assert [entry["path"] for entry in capillary_conn.requests()][-1] == UPLOAD_PATH


def test_dry_run_uploads_nothing(capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]) -> None:
    make_operator(coupons, SERIES, batch_size=10, dry_run=True).execute(context)
    assert upload_calls(capillary_conn) == []
    assert capillary_conn.jobs() == []


def test_dry_run_reports_the_batches_it_would_upload(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    summary = make_operator(coupons, SERIES, batch_size=10, dry_run=True).execute(context)
    assert (summary["dry_run"], summary["total_rows"]) == (True, 25)
    assert [(batch["part"], batch["rows"]) for batch in summary["batches"]] == [(1, 10), (2, 10), (3, 5)]
    assert context["ti"].xcom == {}


# -- parameters -------------------------------------------------------------------------------------


def test_templated_fields() -> None:
    assert set(CouponUploadOperator.template_fields) == {
        "coupon_series_id",
        "source",
        "customer_identifier",
        "customer_identifier_column",
        "coupon_code_column",
        "capillary_conn_id",
        "source_conn_id",
        "pgp_conn_id",
        "rejected_rows_to",
        "archive_to",
        "spool_dir",
    }


def test_identifier_column_given_as_a_templated_string_is_sent_as_its_index(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv([(code, mobile) for mobile, code in mobile_rows(5)], header=("code", "mobile"))
    make_operator(source, SERIES, customer_identifier_column="1").execute(context)
    [job] = capillary_conn.jobs(SERIES)
    assert (job["customerIdentifierColumn"], job["totalUploadedCount"]) == (1, 5)
