"""The production-shaped example DAGs, run with `airflow dags test`: the handoff through S3, and the fan-out.

One fresh AIRFLOW_HOME, one sandbox and one S3-compatible server (moto's server mode on 127.0.0.1) for
both DAGs. The generating tasks write to ``s3://`` through an ``aws`` connection; the uploads read from
there. Each DAG uses its own coupon series, so the sandbox's jobs tell the two runs apart.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from capillary_provider.assets import coupon_series_uri
from capillary_provider.sandbox.dag_test import airflow_env, dags_test
from capillary_provider.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.s3]

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "example_dags"
BUCKET = "example-dag-exports"
"""A bucket no other module writes: moto keeps its buckets per process, not per server, so every moto server of
a test process (this module's and tests/stores.py's) serves the same buckets, and this module counts the keys."""
STORAGE = f"s3://{BUCKET}/coupons"
AWS = {"conn_type": "aws", "login": "testing-key-id", "password": "testing-secret"}
OBJECT_STORAGE_DAG, OBJECT_STORAGE_SERIES, ROWS = "capillary_coupon_upload_object_storage", 7401, 321
FAN_OUT_DAG, FAN_OUT_SERIES, FILES, ROWS_PER_FILE = "capillary_coupon_upload_fan_out", 7402, 3, 50


@dataclass
class Runs:
    processes: dict[str, subprocess.CompletedProcess[str]]
    jobs: list[dict[str, Any]]
    s3_keys: list[str]
    home: Path
    coupon_host: str

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, args).fetchall()

    def jobs_of(self, series: int) -> list[dict[str, Any]]:
        return sorted((job for job in self.jobs if job["couponSeriesId"] == series), key=lambda job: job["jobId"])

    def output(self, dag_id: str) -> str:
        return self.processes[dag_id].stdout + self.processes[dag_id].stderr


@pytest.fixture(scope="module")
def runs(fresh_airflow_home: Callable[[str], Path]) -> Iterator[Runs]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=AWS["login"],
            aws_secret_access_key=AWS["password"],
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=BUCKET)
        aws = json.dumps(AWS | {"extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}})
        home = fresh_airflow_home("airflow_home")
        with running_sandbox(step_seconds=0.2) as sandbox:
            env = airflow_env(home, DAGS_FOLDER, sandbox, AIRFLOW_CONN_AWS_TEST=aws)
            common = {"storage": STORAGE, "source_conn_id": "aws_test"}
            processes = {
                OBJECT_STORAGE_DAG: dags_test(
                    OBJECT_STORAGE_DAG, env, conf=common | {"coupon_series_id": OBJECT_STORAGE_SERIES, "rows": ROWS}
                ),
                FAN_OUT_DAG: dags_test(
                    FAN_OUT_DAG,
                    env,
                    conf=common | {"coupon_series_id": FAN_OUT_SERIES, "files": FILES, "rows": ROWS_PER_FILE},
                ),
            }
            keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
            yield Runs(processes=processes, jobs=sandbox.jobs(), s3_keys=keys, home=home, coupon_host=sandbox.url)
    finally:
        server.stop()


@pytest.mark.parametrize("dag_id", [OBJECT_STORAGE_DAG, FAN_OUT_DAG])
def test_dags_test_exits_zero(runs: Runs, dag_id: str) -> None:
    assert runs.processes[dag_id].returncode == 0, runs.output(dag_id)[-6000:]


def test_generated_csvs_went_through_s3(runs: Runs) -> None:
    assert len([key for key in runs.s3_keys if key.endswith("/coupons.csv")]) == 1, runs.s3_keys
    assert len([key for key in runs.s3_keys if re.search(r"/coupons-\d{3}\.csv$", key)]) == FILES, runs.s3_keys
    assert all(key.startswith("coupons/") for key in runs.s3_keys)


def test_object_storage_upload_is_one_finished_job_with_every_row(runs: Runs) -> None:
    [job] = runs.jobs_of(OBJECT_STORAGE_SERIES)
    assert (job["uploadStatus"], job["actualRowCount"], job["totalUploadedCount"], job["errorCount"]) == (
        "FINISHED",
        ROWS,
        ROWS,
        0,
    )
    assert job["uploadedFileName"].startswith(f"{OBJECT_STORAGE_DAG}__upload_coupons__")
    assert f"Capillary jobs [{job['jobId']}] FINISHED; {ROWS} rows, {ROWS} accepted, 0 rejected" in runs.output(
        OBJECT_STORAGE_DAG
    )


def test_fan_out_uploads_each_file_as_its_own_mapped_task(runs: Runs) -> None:
    jobs = runs.jobs_of(FAN_OUT_SERIES)
    assert [(job["uploadStatus"], job["actualRowCount"], job["errorCount"]) for job in jobs] == [
        ("FINISHED", ROWS_PER_FILE, 0)
    ] * FILES
    map_indexes = sorted(int(re.search(r"_m(\d+)_", job["uploadedFileName"]).group(1)) for job in jobs)  # type: ignore[union-attr]
    assert map_indexes == list(range(FILES))
    total = FILES * ROWS_PER_FILE
    assert f"Capillary: {FILES} files, jobs " in runs.output(FAN_OUT_DAG)
    assert f"; {total} rows, {total} accepted, 0 rejected" in runs.output(FAN_OUT_DAG)


def test_fan_out_records_one_asset_event_per_map_index(runs: Runs) -> None:
    """Each mapped upload attaches the series' Asset to the alias with its own jobs and counts."""
    rows = runs.query(
        "SELECT e.source_map_index, e.source_task_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.uri = ? ORDER BY e.source_map_index",
        coupon_series_uri(runs.coupon_host, FAN_OUT_SERIES),
    )
    assert [(map_index, task_id) for map_index, task_id, _ in rows] == [
        (index, "upload_coupons") for index in range(FILES)
    ], runs.query("SELECT uri FROM asset")
    extras = [json.loads(extra) for _, _, extra in rows]
    assert sorted(job_id for extra in extras for job_id in extra["job_ids"]) == [
        job["jobId"] for job in runs.jobs_of(FAN_OUT_SERIES)
    ]
    assert [(len(e["job_ids"]), e["total_rows"], e["accepted_rows"], e["status"]) for e in extras] == [
        (1, ROWS_PER_FILE, ROWS_PER_FILE, "FINISHED")
    ] * FILES
