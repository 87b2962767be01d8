"""Bytes read from the store per source byte, for a .csv and a .csv.gz on S3 (moto's server), on Azure Blob
Storage (``abfs://``, against Azurite: ``make azurite`` installs it) and on Google Cloud Storage (``gs://``, against
fake-gcs-server: the ``test-gcs`` extra, which ``make test`` installs on its GCS_PAIR only; ``--stores s3 abfs``
leaves it out elsewhere).

Runs ``CouponUploadOperator`` end to end (validate, upload every batch to the sandbox, wait) and counts
the bytes read through every file ``ObjectStoragePath`` opens: "read twice" is the operator with the
local spool switched off (what it did before ``ReadOnce``), "read once" is the operator as shipped.

    .venv/bin/python benchmarks/bench_storage_reads.py --rows 200000 [--stores s3 abfs gs]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import coupon_file

from tests.emulators import azurite, fake_gcs_server

BUCKET = "bench"


class Ti:
    """Just enough of a task instance: ids, and XCom kept in a dict (the operator reads its own back)."""

    dag_id, task_id, run_id, map_index, try_number = "bench", "upload", "manual__1", -1, 1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **kwargs: Any) -> Any:
        return self.xcom.get(key)


def run(uri: str, conn_id: str, spool: bool) -> tuple[int, float]:
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

    def init(self: sources.ReadOnce, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.spooled = self.spooled and spool

    ObjectStoragePath.open = counting_open  # type: ignore[method-assign]
    sources.ReadOnce.__init__ = init  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        CouponUploadOperator(
            task_id="upload",
            coupon_series_id=9001,
            source=uri,
            source_conn_id=conn_id,
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


Objects = dict[str, tuple[str, str, int]]
"""label -> (uri, connection id, stored bytes)"""


@contextmanager
def s3_objects(data: bytes) -> Iterator[Objects]:
    """The file as ``.csv`` and ``.csv.gz`` in a bucket of moto's S3 server, through connection ``aws_bench``."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    os.environ["AIRFLOW_CONN_AWS_BENCH"] = json.dumps(
        {"conn_type": "aws", "login": "k", "password": "s", "extra": extra}
    )
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield upload_both("s3", "aws_bench", data)
    finally:
        server.stop()


@contextmanager
def azure_objects(data: bytes, work: Path) -> Iterator[Objects]:
    """The file as ``.csv`` and ``.csv.gz`` in a container of Azurite, through connection ``azure_bench``."""
    folder = work / "azurite"
    folder.mkdir()
    logging.getLogger("azure").setLevel(logging.WARNING)  # its HTTP log prints every request's headers at INFO
    with azurite(BUCKET, folder) as connection:
        os.environ["AIRFLOW_CONN_AZURE_BENCH"] = connection
        yield upload_both("abfs", "azure_bench", data)


@contextmanager
def gcs_objects(data: bytes, work: Path) -> Iterator[Objects]:
    """The file as ``.csv`` and ``.csv.gz`` in a bucket of fake-gcs-server, through connection ``gcs_bench``."""
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # before gcsfs is imported: see tests/stores.py
    folder = work / "fake-gcs-server"
    folder.mkdir()
    with fake_gcs_server(BUCKET, folder) as connection:
        os.environ["AIRFLOW_CONN_GCS_BENCH"] = connection
        yield upload_both("gs", "gcs_bench", data)


STORES = {"s3": lambda data, work: s3_objects(data), "abfs": azure_objects, "gs": gcs_objects}


def upload_both(scheme: str, conn_id: str, data: bytes) -> Objects:
    objects: Objects = {}
    for suffix, body in (("csv", data), ("csv.gz", gzip.compress(data))):
        uri = f"{scheme}://{BUCKET}/coupons.{suffix}"
        ObjectStoragePath(uri, conn_id=conn_id).write_bytes(body)
        objects[f"{scheme} {suffix}"] = (uri, conn_id, len(body))
    return objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--stores", nargs="+", choices=list(STORES), default=list(STORES))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    data = coupon_file(work, args.rows).read_bytes()
    with ExitStack() as stores:
        objects: Objects = {}
        for store in args.stores:
            objects.update(stores.enter_context(STORES[store](data, work)))
        sandbox = stores.enter_context(running_sandbox(step_seconds=0.05, data_dir=work / "sandbox"))
        os.environ["AIRFLOW_CONN_CAPILLARY_DEFAULT"] = connection_json(sandbox)
        print(f"{args.rows:,} rows; bytes read from the store per stored byte")
        print(
            f"{'source':<12} {'stored bytes':>14} {'read twice':>11} {'read once':>10} "
            f"{'time twice':>11} {'time once':>10}"
        )
        for label, (uri, conn_id, stored) in objects.items():
            sandbox.reset()
            twice, t_twice = run(uri, conn_id, spool=False)
            sandbox.reset()
            once, t_once = run(uri, conn_id, spool=True)
            print(
                f"{label:<12} {stored:>14,} {twice / stored:>11.2f} {once / stored:>10.2f} "
                f"{t_twice:>10.1f}s {t_once:>9.1f}s"
            )


if __name__ == "__main__":
    main()
