"""Bytes read from the store per source byte, for an S3 source (moto's server) and a .csv.gz on S3.

Runs ``CouponUploadOperator`` end to end (validate, upload every batch to the sandbox, wait) and counts
the bytes read through every file ``ObjectStoragePath`` opens: "read twice" is the operator with the
local spool switched off (what it did before ``ReadOnce``), "read once" is the operator as shipped.

    .venv/bin/python benchmarks/bench_storage_reads.py --rows 200000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from airflow.sdk import ObjectStoragePath
from moto.server import ThreadedMotoServer

from capillary_provider.coupon_file import sources
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import running_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import coupon_file

BUCKET = "bench"


class Ti:
    dag_id, task_id, run_id, map_index, try_number = "bench", "upload", "manual__1", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def run(uri: str, spool: bool) -> tuple[int, float]:
    read = 0
    original_open = ObjectStoragePath.open

    def counting_open(path: ObjectStoragePath, *args: Any, **kwargs: Any) -> Any:
        handle = original_open(path, *args, **kwargs)
        inner = handle.read

        def counted(*a: Any, **kw: Any) -> Any:
            nonlocal read
            data = inner(*a, **kw)
            read += len(data)
            return data

        handle.read = counted
        return handle

    original_init = sources.ReadOnce.__init__

    def init(self: sources.ReadOnce, path: Any, spool_dir: str | None = None, name: str | None = None) -> None:
        original_init(self, path, spool_dir, name)
        self.spooled = self.spooled and spool

    ObjectStoragePath.open = counting_open  # type: ignore[method-assign]
    sources.ReadOnce.__init__ = init  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        CouponUploadOperator(
            task_id="upload",
            coupon_series_id=9001,
            source=uri,
            source_conn_id="aws_bench",
            customer_identifier="MOBILE",
            customer_identifier_column=0,
            batch_size=100_000,
            poll_interval=0.2,
            deferrable=False,
            check_series=False,
        ).execute({"ti": Ti()})  # type: ignore[arg-type]
        return read, time.perf_counter() - started
    finally:
        ObjectStoragePath.open = original_open  # type: ignore[method-assign]
        sources.ReadOnce.__init__ = original_init  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    data = coupon_file(work, args.rows).read_bytes()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AIRFLOW_CONN_AWS_BENCH"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "k",
            "password": "s",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    objects = {"s3 csv": ("coupons.csv", data), "s3 csv.gz": ("coupons.csv.gz", gzip.compress(data))}
    for key, body in objects.values():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    try:
        with running_sandbox(step_seconds=0.05, data_dir=work / "sandbox") as sandbox:
            os.environ["AIRFLOW_CONN_CAPILLARY_DEFAULT"] = connection_json(sandbox)
            print(f"{args.rows:,} rows; bytes read from the store per stored byte")
            print(
                f"{'source':<12} {'stored bytes':>14} {'read twice':>11} {'read once':>10} "
                f"{'time twice':>11} {'time once':>10}"
            )
            for label, (key, body) in objects.items():
                uri = f"s3://{BUCKET}/{key}"
                sandbox.reset()
                twice, t_twice = run(uri, spool=False)
                sandbox.reset()
                once, t_once = run(uri, spool=True)
                print(
                    f"{label:<12} {len(body):>14,} {twice / len(body):>11.2f} {once / len(body):>10.2f} "
                    f"{t_twice:>10.1f}s {t_once:>9.1f}s"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
