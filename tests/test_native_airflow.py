"""Assets, OpenLineage and metrics through real Airflow: one `airflow dags test` of the asset example DAG pair.

The producer uploads to the sandbox with the OpenLineage provider's file transport on and StatsD
metrics pointed at a UDP listener of this test; then the tests read the metadata DB (asset events,
the consumer's queued run), the OpenLineage events and the StatsD packets.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.assets import coupon_series_uri
from capillary_provider.sandbox.dag_test import _airflow, airflow_env, dags_test
from capillary_provider.sandbox.testing import running_sandbox

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "example_dags"
PRODUCER = "capillary_coupon_series_producer"
CONSUMER = "capillary_coupon_series_campaign"
SERIES = 8118
ROWS = 500

pytestmark = pytest.mark.e2e


class StatsdListener:
    """A StatsD server on 127.0.0.1: every metric line received, in order."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(data.decode(errors="replace").splitlines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def values(self, name: str) -> list[tuple[float, str]]:
        """(value, type) of every packet for ``name`` (``airflow.`` prefix included)."""
        found = []
        for line in self.lines:
            metric, _, rest = line.partition(":")
            if metric == name:
                value, _, kind = rest.partition("|")
                found.append((float(value), kind.split("|")[0]))
        return found


@dataclass
class Run:
    process: subprocess.CompletedProcess[str]
    home: Path
    host: str
    lineage_file: Path
    statsd: StatsdListener
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, args).fetchall()

    def lineage_events(self) -> list[dict[str, Any]]:
        events = []
        for path in sorted(self.lineage_file.parent.glob(self.lineage_file.name + "*")):
            text = path.read_text()
            try:
                events.append(json.loads(text))
            except json.JSONDecodeError:
                events.extend(json.loads(line) for line in text.splitlines() if line.strip())
        return events


@pytest.fixture(scope="module")
def run(fresh_airflow_home: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = fresh_airflow_home("airflow_home")
    storage = tmp_path_factory.mktemp("coupon_storage")
    lineage_file = tmp_path_factory.mktemp("lineage") / "events.json"
    statsd = StatsdListener()
    with running_sandbox(step_seconds=0.2) as sandbox:
        host = sandbox.url.split("://", 1)[1]
        env = airflow_env(
            home,
            DAGS_FOLDER,
            sandbox,
            CAPILLARY_COUPON_HOST=host,
            CAPILLARY_EXAMPLE_SERIES_ID=str(SERIES),
            CAPILLARY_EXAMPLE_STORAGE=f"file://{storage}",
            AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
                {"type": "file", "log_file_path": str(lineage_file), "append": True}
            ),
            AIRFLOW__OPENLINEAGE__NAMESPACE="capillary-tests",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",  # the scheduler queues runs of active DAGs only
            AIRFLOW__METRICS__STATSD_ON="True",
            AIRFLOW__METRICS__STATSD_HOST="127.0.0.1",
            AIRFLOW__METRICS__STATSD_PORT=str(statsd.port),
        )
        # Both DAGs in the DB, so the producer's asset event queues a run of the consumer, as the scheduler would.
        subprocess.run([_airflow(), "dags", "reserialize"], env=env, check=True, capture_output=True, text=True)
        process = dags_test(PRODUCER, env)
        try:
            yield Run(process, home, host, lineage_file, statsd, jobs=sandbox.jobs(SERIES))
        finally:
            statsd.close()


def test_producer_dag_succeeds(run: Run) -> None:
    assert run.process.returncode == 0, run.process.stderr[-5000:]
    assert run.query("SELECT state FROM dag_run WHERE dag_id = ?", PRODUCER) == [("success",)]


def test_asset_event_carries_job_ids_counts_and_status(run: Run) -> None:
    uri = coupon_series_uri(run.host, SERIES)
    rows = run.query(
        "SELECT e.extra, e.source_task_id FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?", uri
    )
    assert len(rows) == 1, run.query("SELECT uri FROM asset")
    extra = json.loads(rows[0][0])
    [job] = run.jobs
    assert rows[0][1] == "upload_coupons"
    assert extra == {
        "coupon_series_id": str(SERIES),
        "upload_kind": "coupon",
        "status": "FINISHED",
        "job_ids": [job["jobId"]],
        "total_rows": ROWS,
        "accepted_rows": ROWS,
        "rejected_rows": 0,
    }


def test_consumer_dag_is_queued_by_the_asset_event(run: Run) -> None:
    """The scheduler starts a run for every DAG in asset_dag_run_queue: the consumer is there."""
    queued = run.query(
        "SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id WHERE a.uri = ?",
        coupon_series_uri(run.host, SERIES),
    )
    assert queued == [(CONSUMER,)]


def test_source_file_is_the_upload_tasks_inlet_in_lineage(run: Run) -> None:
    complete = [
        event
        for event in run.lineage_events()
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].endswith(".upload_coupons")
    ]
    assert complete, [event.get("eventType") for event in run.lineage_events()]
    [event] = complete
    [source] = event["inputs"]
    assert source["namespace"] == "file"
    assert source["name"].endswith("/coupons.csv")
    [series] = event["outputs"]
    assert (series["namespace"], series["name"]) == (f"capillary://{run.host}", f"coupon-series/{SERIES}")
    assert series["outputFacets"]["outputStatistics"]["rowCount"] == ROWS


def test_statsd_sees_the_upload_metrics(run: Run) -> None:
    def total(name: str) -> float:
        return sum(value for value, _ in run.statsd.values(f"airflow.{name}"))

    assert total("capillary.upload.rows_sent") == ROWS
    assert total("capillary.upload.rows_accepted") == ROWS
    assert run.statsd.values("airflow.capillary.upload.rows_rejected") == [(0.0, "c")]
    assert total("capillary.upload.bytes_sent") > ROWS * 10
    assert [kind for _, kind in run.statsd.values("airflow.capillary.upload.seconds")] == ["ms"]
    assert total("capillary.status.polls") >= 2  # the exactly-once lookup and at least one wait
