"""Wait for Capillary without holding a worker slot: a deferrable operator, or an upload and a deferrable sensor.

Capillary processes an upload for minutes to hours on big files. Both DAGs below wait in the
triggerer, which polls Capillary's status endpoint (one call per series per poll, whatever the number
of jobs) and resumes the task when every job is terminal. The verdict is the same as for a wait in the
worker: a job that ended ERRORED, or more rejected rows than ``max_error_rows`` / ``max_error_ratio``
allow, fails the task without retries; a timeout fails it with the job ids and their last states.

* ``capillary_coupon_upload_deferrable``: ``CouponUploadOperator(deferrable=True)`` uploads, then defers
  until Capillary is done.
* ``capillary_coupon_upload_sensor``: the upload task ends as soon as Capillary has the file
  (``wait_for_completion=False``) and pushes the job ids to XCom; a ``CouponUploadSensor`` in
  deferrable mode waits for them. Use this shape when the wait needs its own timeout, retries or
  ``soft_fail``, or when the jobs were started elsewhere.

Run them against the bundled sandbox with
``python -m capillary_provider.sandbox.dag_test capillary_coupon_upload_deferrable --dags-folder example_dags``
(or ``capillary_coupon_upload_sensor``).
"""

from __future__ import annotations

import csv
import secrets
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, task

from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sensors.coupon_upload import CouponUploadSensor

PARAMS = {"coupon_series_id": 1001, "rows": 2_500, "storage": "file:///tmp/capillary-example"}


@task
def generate_coupons(params: dict[str, Any], run_id: str) -> str:
    """Write ``rows`` fresh codes for made-up customers, one per mobile number, to storage."""
    folder = ObjectStoragePath(params["storage"]) / run_id.replace(":", "_").replace("+", "_")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "coupons.csv"
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mobile", "coupon_code"])
        for number in range(int(params["rows"])):
            writer.writerow([f"91987{number:07d}", secrets.token_hex(6).upper()])
    return str(target)


@task
def report(summary: dict[str, Any]) -> None:
    """Say what Capillary accepted (the summary is the waiting task's XCom return value)."""
    print(
        f"Capillary jobs {summary['job_ids']} {summary['status']}; {summary['total_rows']} rows, "
        f"{summary['accepted_rows']} accepted, {summary['rejected_rows']} rejected"
    )


@dag(
    dag_id="capillary_coupon_upload_deferrable",
    schedule=None,
    catchup=False,
    tags=["capillary", "example", "deferrable"],
    params=PARAMS,
)
def capillary_coupon_upload_deferrable() -> None:
    upload = CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=generate_coupons(),
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        deferrable=True,  # or set [operators] default_deferrable = True
        poll_interval=1,  # seconds; 30 (the default) or more against the real Capillary
    )
    report(upload.output)


@dag(
    dag_id="capillary_coupon_upload_sensor",
    schedule=None,
    catchup=False,
    tags=["capillary", "example", "deferrable"],
    params=PARAMS,
)
def capillary_coupon_upload_sensor() -> None:
    upload = CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=generate_coupons(),
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        wait_for_completion=False,
    )
    wait = CouponUploadSensor(
        task_id="wait_for_capillary",
        coupon_series_id="{{ params.coupon_series_id }}",
        job_ids="{{ ti.xcom_pull(task_ids='upload_coupons', key='job_ids') }}",
        deferrable=True,
        poke_interval=1,
        timeout=6 * 3600,
    )
    upload >> wait
    report(wait.output)


capillary_coupon_upload_deferrable()
capillary_coupon_upload_sensor()
