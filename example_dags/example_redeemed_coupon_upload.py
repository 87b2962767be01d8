"""Load the coupons redeemed at partner POS systems back into Capillary, once their export has landed.

The first two tasks stand for what happened earlier (codes issued to customers, then a POS export of
the ones redeemed at the till); in production the export lands in your storage and the DAG starts at
``load_redemptions``. The export has the docs-style header (``redeemed date in millis``, ``redeemed
at``, ``mobile``, ``coupon code``, ...), from which the operator builds Capillary's ``uploadHeaders``.
Run it against the bundled sandbox with
``python -m capillary_provider.sandbox.dag_test capillary_redeemed_coupon_upload --dags-folder example_dags``.
"""

from __future__ import annotations

import csv
import secrets
import time
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, task

from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator


@dag(
    dag_id="capillary_redeemed_coupon_upload",
    schedule=None,
    catchup=False,
    tags=["capillary", "example"],
    params={"coupon_series_id": 1001, "rows": 1_000, "redeemed": 250, "storage": "file:///tmp/capillary-example"},
)
def capillary_redeemed_coupon_upload() -> None:
    @task
    def issue_coupons(params: dict[str, Any], run_id: str) -> str:
        """Codes issued to customers earlier (one per mobile number)."""
        folder = ObjectStoragePath(params["storage"]) / run_id.replace(":", "_").replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "issued.csv"
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mobile", "coupon_code"])
            for number in range(int(params["rows"])):
                writer.writerow([f"91987{number:07d}", secrets.token_hex(6).upper()])
        return str(target)

    issued = issue_coupons()
    upload = CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=issued,
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        poll_interval=1,
    )

    @task
    def pos_export(issued: str, params: dict[str, Any]) -> str:
        """The POS system's export of the coupons redeemed at its tills, in the docs' column labels."""
        source = ObjectStoragePath(issued)
        target = source.parent / "redemptions.csv"
        now = int(time.time() * 1000)
        with source.open("r", newline="") as handle, target.open("w", newline="") as out:
            rows = csv.reader(handle)
            next(rows)
            writer = csv.writer(out)
            writer.writerow(["redeemed date in millis", "redeemed at", "mobile", "coupon code", "bill number"])
            for number, (mobile, code) in enumerate(rows):
                if number >= int(params["redeemed"]):
                    break
                writer.writerow([now - number * 60_000, f"till-{number % 7}", mobile, code, f"B-{number:06d}"])
        return str(target)

    export = pos_export(issued)
    upload >> export
    RedeemedCouponUploadOperator(
        task_id="load_redemptions",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=export,
        customer_identifier="MOBILE",
        coupon_identifier="COUPON_CODE",
        details="POS redemptions export",
        poll_interval=1,
    )


capillary_redeemed_coupon_upload()
