"""The record of an upload run (capillary_provider/run.py): it goes through XCom as JSON and comes back the
same, and a run resumed after a deferral (a new operator object, reading the record back) ends with the
summary a run waiting in the worker gives for the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import REDEEMED_COUPON
from capillary_provider.run import RunFile, UploadRun
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeTaskInstance, make_operator, mobile_rows
from tests.faultkit import run_trigger_of

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[attr-defined,no-redef,unused-ignore]

SERIES = 8401


def test_a_record_comes_back_from_json_as_it_was_with_its_kind() -> None:
    job = UploadJob.from_api(
        {"jobId": 7, "uploadRedeemedCouponStatus": "COMPLETED", "uploadedFileName": "b1.csv", "errorCount": 2},
        REDEEMED_COUPON,
    )
    run = UploadRun(
        "1001",
        REDEEMED_COUPON.name,
        (RunFile("s3://b/a.csv", ("b1.csv",), 3, "s3://b/rejected/a.csv"), RunFile("s3://b/c.csv", ("b2.csv",))),
        (job,),
    )
    back = UploadRun.from_dict(json.loads(json.dumps(run.to_dict())))
    assert back == run
    assert back.jobs[0].upload_kind is REDEEMED_COUPON


def exports(folder: Path) -> str:
    """Two files in ``folder`` (the second with one invalid row); the pattern that matches them."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(["a.csv", "b.csv"]):
        rows = [",".join(row) for row in mobile_rows(4, start=4 * number)]
        (folder / name).write_text("mobile,code\n" + "\n".join(rows + (["12,C-short-mobile"] if number else [])) + "\n")
    return str(folder / "*.csv")


OWN = ("created_on", "updated_on", "success_file_url")


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its jobs numbered in order, without what each job has of its own (its times, its
    success file, named after its id): what two uploads of the same files share."""
    number = {job_id: f"job {n}" for n, job_id in enumerate(summary["job_ids"], start=1)}
    jobs = [
        {**{k: v for k, v in job.items() if k not in OWN}, "job_id": number[job["job_id"]]} for job in summary["jobs"]
    ]
    files = [{**file, "job_ids": [number[job_id] for job_id in file["job_ids"]]} for file in summary["files"]]
    return {**summary, "job_ids": list(number.values()), "jobs": jobs, "files": files}


@pytest.mark.integration
def test_a_deferred_run_ends_with_the_summary_of_a_run_that_waited_in_the_worker(
    capillary_conn: SandboxClient, tmp_path: Path
) -> None:
    pattern = exports(tmp_path / "daily")
    options: dict[str, Any] = {"poll_interval": 0.05, "invalid_rows": "skip", "rejected_rows_to": str(tmp_path / "out")}
    worker_context: dict[str, Any] = {"ti": FakeTaskInstance()}
    in_worker = make_operator(pattern, SERIES, **options).execute(worker_context)

    capillary_conn.reset()
    context: dict[str, Any] = {"ti": FakeTaskInstance()}
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(pattern, SERIES, deferrable=True, **options).execute(context)
    resumed = make_operator(pattern, SERIES, deferrable=True, **options)  # a new object, as in Airflow
    after_deferral = getattr(resumed, deferred.value.method_name)(context, event=run_trigger_of(deferred.value))

    assert in_worker["skipped_rows"] == 1
    assert len(in_worker["files"]) == 2
    assert comparable(after_deferral) == comparable(in_worker)
    assert context["ti"].xcom["summary"] == after_deferral
