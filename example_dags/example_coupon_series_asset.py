"""A DAG pair joined by an Asset: an upload to a coupon series, and a campaign DAG scheduled on that series.

``capillary_coupon_series_producer`` uploads codes to the series; when Capillary has accepted them the
upload task records an asset event for ``capillary://{coupon host}/coupon-series/{id}``, with the job
ids, the row counts and the status in its ``extra``. ``capillary_coupon_series_campaign`` is scheduled
on that Asset and reads the event. The coupon host is the ``coupon_host`` extra of the connection (or
its API host): give it here through ``CAPILLARY_COUPON_HOST``, since a DAG file must not read a
connection while it is parsed.
"""

from __future__ import annotations

import csv
import os
import secrets
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from capillary_provider.assets import coupon_series_asset
from capillary_provider.operators.coupon_upload import CouponUploadOperator

COUPON_HOST = os.environ.get("CAPILLARY_COUPON_HOST", "eu.api.capillarytech.com")
SERIES_ID = int(os.environ.get("CAPILLARY_EXAMPLE_SERIES_ID", "1001"))
STORAGE = os.environ.get("CAPILLARY_EXAMPLE_STORAGE", "file:///tmp/capillary-example")

COUPON_SERIES = coupon_series_asset(COUPON_HOST, SERIES_ID)


@dag(dag_id="capillary_coupon_series_producer", schedule=None, catchup=False, tags=["capillary", "example"])
def capillary_coupon_series_producer() -> None:
    @task
    def generate_coupons(run_id: str) -> str:
        """Write 500 fresh codes, one per made-up mobile number."""
        folder = ObjectStoragePath(STORAGE) / run_id.replace(":", "_").replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "coupons.csv"
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mobile", "coupon_code"])
            for number in range(500):
                writer.writerow([f"91987{number:07d}", secrets.token_hex(6).upper()])
        return str(target)

    CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id=SERIES_ID,
        source=generate_coupons(),
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        poll_interval=1,
        # Optional: declaring the series' Asset makes the producer-consumer link visible in the UI before the
        # first run; without it the operator's asset alias resolves to the same Asset at run time.
        outlets=[COUPON_SERIES],
    )


@dag(dag_id="capillary_coupon_series_campaign", schedule=[COUPON_SERIES], catchup=False, tags=["capillary", "example"])
def capillary_coupon_series_campaign() -> None:
    @task
    def send_campaign() -> None:
        """Stands for the campaign send: read what the upload recorded in the asset event."""
        events: Any = get_current_context()["triggering_asset_events"]
        for event in events[COUPON_SERIES]:
            extra = event.extra
            print(
                f"Coupons are in: series {extra['coupon_series_id']}, jobs {extra['job_ids']}, {extra['status']}, "
                f"{extra['accepted_rows']} of {extra['total_rows']} rows accepted"
            )

    send_campaign()


capillary_coupon_series_producer()
capillary_coupon_series_campaign()
