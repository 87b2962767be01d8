"""Generate coupon codes, upload them to a Capillary coupon series, and report what Capillary accepted.

The generation task stands for whatever makes your codes (a warehouse query, a vendor export): it
writes a CSV to storage and hands its location to ``CouponUploadOperator`` through XCom. Run it
against the bundled sandbox with ``make demo``, or against Capillary with a ``capillary_default``
connection.
"""

from __future__ import annotations

import csv
import secrets
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from capillary_provider.operators.coupon_upload import CouponUploadOperator


@dag(
    dag_id="capillary_coupon_upload",
    schedule=None,
    catchup=False,
    tags=["capillary", "example"],
    params={
        "coupon_series_id": 1001,
        "rows": 2_500,
        "storage": "file:///tmp/capillary-example",
    },
)
def capillary_coupon_upload() -> None:
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

    upload = CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=generate_coupons(),
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        poll_interval=1,
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        """Read what the upload pushed to XCom and say what Capillary accepted."""
        ti = get_current_context()["ti"]
        job_ids = ti.xcom_pull(task_ids="upload_coupons", key="job_ids")
        status = ti.xcom_pull(task_ids="upload_coupons", key="status")
        print(
            f"Capillary jobs {job_ids}: {status}; {summary['total_rows']} rows, "
            f"{summary['accepted_rows']} accepted, {summary['rejected_rows']} rejected"
        )

    report(upload.output)


capillary_coupon_upload()
