"""Fan out: one mapped upload task per file, with ``CouponUploadOperator.partial(...).expand(source=...)``.

When codes arrive as many files (one per region, per vendor, per shard of a warehouse export), map the
upload over them: each file becomes its own task instance, with its own retries, its own jobs and its
own verdict, and a retry of one file never touches the others (batch names include the map index).
``max_active_tis_per_dag`` bounds how many of them upload at once; across DAGs, use a pool (see
docs/production.md).

Params: ``storage`` and ``source_conn_id`` as in ``example_coupon_upload_object_storage``, ``files``
(how many files to generate), ``rows`` (per file), ``coupon_series_id``.
"""

from __future__ import annotations

import csv
import secrets
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, task

from capillary_provider.operators.coupon_upload import CouponUploadOperator


@dag(
    dag_id="capillary_coupon_upload_fan_out",
    schedule=None,
    catchup=False,
    tags=["capillary", "example", "object-storage", "mapped"],
    params={
        "coupon_series_id": 1001,
        "files": 3,
        "rows": 1_000,
        "storage": "s3://promo-exports/coupons",
        "source_conn_id": "aws_default",
    },
)
def capillary_coupon_upload_fan_out() -> None:
    @task
    def generate_coupon_files(params: dict[str, Any], run_id: str) -> list[str]:
        """Write ``files`` CSVs of ``rows`` fresh codes each under ``{storage}/{run_id}/``; return their URIs."""
        folder = ObjectStoragePath(params["storage"], conn_id=params["source_conn_id"])
        folder = folder / run_id.replace(":", "_").replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)  # a no-op on S3; needed for file://
        sources = []
        for index in range(int(params["files"])):
            target = folder / f"coupons-{index:03d}.csv"
            with target.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["mobile", "coupon_code"])
                for number in range(int(params["rows"])):
                    writer.writerow([f"9198{index:02d}{number:06d}", secrets.token_hex(6).upper()])
            sources.append(str(target))
        return sources

    uploads = CouponUploadOperator.partial(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source_conn_id="{{ params.source_conn_id }}",
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        poll_interval=1,  # seconds; 30 (the default) or more against the real Capillary
        max_active_tis_per_dag=4,  # at most 4 files uploading at once
    ).expand(source=generate_coupon_files())

    @task
    def report(summaries: list[dict[str, Any]]) -> None:
        """One line for all files: the mapped task's return values, one summary per file."""
        summaries = list(summaries)
        job_ids = [job_id for summary in summaries for job_id in summary["job_ids"]]
        print(
            f"Capillary: {len(summaries)} files, jobs {job_ids}; "
            f"{sum(s['total_rows'] for s in summaries)} rows, {sum(s['accepted_rows'] for s in summaries)} accepted, "
            f"{sum(s['rejected_rows'] for s in summaries)} rejected"
        )

    report(uploads.output)


capillary_coupon_upload_fan_out()
