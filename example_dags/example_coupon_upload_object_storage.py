"""The production shape: the generating task writes the CSV to object storage, the upload reads it from there.

On a distributed Airflow (Celery, Kubernetes) two tasks of a DAG run on different machines, so a
file the first one writes to its local disk is not there for the second. Write it to storage every
worker reaches instead (S3, GCS, an SFTP server, ...) and hand over its URI through XCom:
``CouponUploadOperator`` streams it back through the same ``ObjectStoragePath`` connection.

Params: ``storage`` (a folder URI, default ``s3://promo-exports/coupons``), ``source_conn_id`` (the
storage connection, default ``aws_default``), ``coupon_series_id``, ``rows``. The bucket must exist.
Needs ``airflow-provider-capillary[s3]`` for ``s3://``.
"""

from __future__ import annotations

import csv
import secrets
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, task

from capillary_provider.operators.coupon_upload import CouponUploadOperator


@dag(
    dag_id="capillary_coupon_upload_object_storage",
    schedule=None,
    catchup=False,
    tags=["capillary", "example", "object-storage"],
    params={
        "coupon_series_id": 1001,
        "rows": 2_500,
        "storage": "s3://promo-exports/coupons",
        "source_conn_id": "aws_default",
    },
)
def capillary_coupon_upload_object_storage() -> None:
    @task
    def generate_coupons(params: dict[str, Any], run_id: str) -> str:
        """Write ``rows`` fresh codes to ``{storage}/{run_id}/coupons.csv``; return its URI."""
        folder = ObjectStoragePath(params["storage"], conn_id=params["source_conn_id"])
        target = folder / run_id.replace(":", "_").replace("+", "_") / "coupons.csv"
        target.parent.mkdir(parents=True, exist_ok=True)  # a no-op on S3; needed for file://
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mobile", "coupon_code"])
            for number in range(int(params["rows"])):
                writer.writerow([f"91987{number:07d}", secrets.token_hex(6).upper()])
        return str(target)

    upload = CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=generate_coupons(),
        source_conn_id="{{ params.source_conn_id }}",
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        deferrable=True,  # wait in the triggerer: no worker slot held while Capillary processes
        poll_interval=1,  # seconds; 30 (the default) or more against the real Capillary
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        print(
            f"Capillary jobs {summary['job_ids']} {summary['status']}; {summary['total_rows']} rows, "
            f"{summary['accepted_rows']} accepted, {summary['rejected_rows']} rejected"
        )

    report(upload.output)


capillary_coupon_upload_object_storage()
