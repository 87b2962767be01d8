"""DAGs of the deployment test: generate coupons into S3, upload them from S3 on another worker.

The generating task and the upload run on different Celery workers (or may), so the CSV goes
through object storage (``s3://``, moto's server here), never a local path. Every run gets its own
coupon series (``coupon_series_id`` in the run conf), so the test can count the jobs of each run.
"""

from __future__ import annotations

import csv
import os
import secrets
from datetime import timedelta
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from capillary_provider.assets import coupon_series_asset
from capillary_provider.operators.coupon_upload import CouponUploadOperator

HAPPY_SERIES = 9101
"""The series of the happy-path run: its asset event starts ``deployment_campaign``."""
BUCKET = "deployment-handoff"
AWS_CONN_ID = "aws_handoff"


@task
def generate_coupons(params: dict[str, Any], run_id: str) -> str:
    """Write ``rows`` fresh codes, one per made-up mobile number, to ``s3://BUCKET/<run>/coupons.csv``."""
    uri = f"s3://{BUCKET}/{run_id.replace(':', '_').replace('+', '_')}/coupons.csv"
    target = ObjectStoragePath(uri, conn_id=AWS_CONN_ID)
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mobile", "coupon_code"])
        for number in range(int(params["rows"])):
            writer.writerow([f"91987{number:07d}", secrets.token_hex(8).upper()])
    return uri


@dag(dag_id="deployment_deferrable", schedule=None, catchup=False, params={"coupon_series_id": 1, "rows": 350})
def deployment_deferrable() -> None:
    """Upload in small batches, then wait in the triggerer. No retries: a triggerer restart must not need one."""
    CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=generate_coupons(),
        source_conn_id=AWS_CONN_ID,
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        batch_size=100,
        deferrable=True,
        poll_interval=1,
        timeout=600,
        retries=0,
    )


@dag(dag_id="deployment_worker_crash", schedule=None, catchup=False, params={"coupon_series_id": 2, "rows": 250_000})
def deployment_worker_crash() -> None:
    """Upload big batches through the slow ``capillary_throttled`` connection; a crashed try is retried."""
    CouponUploadOperator(
        task_id="upload_coupons",
        coupon_series_id="{{ params.coupon_series_id }}",
        source=generate_coupons(),
        source_conn_id=AWS_CONN_ID,
        capillary_conn_id="capillary_throttled",
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        batch_size=100_000,
        deferrable=False,
        poll_interval=1,
        timeout=600,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )


HAPPY_SERIES_ASSET = coupon_series_asset(os.environ.get("CAPILLARY_COUPON_HOST", "unset"), HAPPY_SERIES)


@dag(dag_id="deployment_campaign", schedule=[HAPPY_SERIES_ASSET], catchup=False)
def deployment_campaign() -> None:
    """Scheduled on the happy path's coupon series: runs once the scheduler sees its asset event."""

    @task
    def send_campaign() -> None:
        # Indexed by the Asset: the event came through the operator's asset alias, so iterating the
        # mapping also yields the AssetAlias ``capillary-coupon-series`` (no ``uri``) with the same event.
        [event] = get_current_context()["triggering_asset_events"][HAPPY_SERIES_ASSET]
        print(
            f"campaign for {HAPPY_SERIES_ASSET.uri}: jobs {event.extra['job_ids']}, {event.extra['accepted_rows']} rows"
        )

    send_campaign()


deployment_deferrable()
deployment_worker_crash()
deployment_campaign()
