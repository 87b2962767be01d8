"""The example DAG: it imports cleanly, and `airflow dags test` uploads through real Airflow to a fresh sandbox."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.sandbox.dag_test import airflow_env, dags_test
from capillary_provider.sandbox.testing import running_sandbox

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "example_dags"
DAG_ID = "capillary_coupon_upload"
ROWS = 1_234
SERIES = 7007


@dataclass
class DagRunResult:
    process: subprocess.CompletedProcess[str]
    airflow_home: Path
    jobs: list[dict[str, Any]]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.airflow_home / "airflow.db") as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def dag_run(
    fresh_airflow_home: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagRunResult]:
    """One `airflow dags test` of the example DAG against its own sandbox, in a fresh AIRFLOW_HOME."""
    home = fresh_airflow_home("airflow_home")
    storage = tmp_path_factory.mktemp("coupon_storage")
    with running_sandbox(step_seconds=0.2) as sandbox:
        env = airflow_env(home, DAGS_FOLDER, sandbox)
        conf = {"rows": ROWS, "coupon_series_id": SERIES, "storage": f"file://{storage}"}
        process = dags_test(DAG_ID, env, conf=conf)
        yield DagRunResult(process=process, airflow_home=home, jobs=sandbox.jobs())


@pytest.mark.e2e
def test_dags_test_exits_zero(dag_run: DagRunResult) -> None:
    assert dag_run.process.returncode == 0, dag_run.process.stderr[-5000:]


@pytest.mark.e2e
def test_dag_run_succeeded(dag_run: DagRunResult) -> None:
    assert dag_run.query(f"SELECT state FROM dag_run WHERE dag_id = '{DAG_ID}'") == [("success",)]


@pytest.mark.e2e
def test_every_task_succeeded(dag_run: DagRunResult) -> None:
    states = dict(dag_run.query(f"SELECT task_id, state FROM task_instance WHERE dag_id = '{DAG_ID}'"))
    assert states == {"generate_coupons": "success", "upload_coupons": "success", "report": "success"}


@pytest.mark.e2e
def test_sandbox_holds_one_finished_job_with_every_generated_row(dag_run: DagRunResult) -> None:
    assert [
        (
            job["couponSeriesId"],
            job["uploadStatus"],
            job["actualRowCount"],
            job["totalUploadedCount"],
            job["errorCount"],
        )
        for job in dag_run.jobs
    ] == [(SERIES, "FINISHED", ROWS, ROWS, 0)]


@pytest.mark.e2e
def test_uploaded_batch_is_named_after_the_dag_and_task(dag_run: DagRunResult) -> None:
    [job] = dag_run.jobs
    assert re.fullmatch(rf"{DAG_ID}__upload_coupons__manual__.+_part0001\.csv", job["uploadedFileName"])


@pytest.mark.e2e
def test_report_task_prints_the_jobs_and_counts_from_xcom(dag_run: DagRunResult) -> None:
    [job] = dag_run.jobs
    expected = f"Capillary jobs [{job['jobId']}]: FINISHED; {ROWS} rows, {ROWS} accepted, 0 rejected"
    assert expected in dag_run.process.stdout + dag_run.process.stderr


@pytest.mark.e2e
def test_upload_task_pushed_job_ids_and_status_to_xcom(dag_run: DagRunResult) -> None:
    [job] = dag_run.jobs
    rows = dag_run.query(
        f"SELECT key, value FROM xcom WHERE dag_id = '{DAG_ID}' AND task_id = 'upload_coupons' "
        "AND key IN ('job_id', 'job_ids', 'status')"
    )
    values = {key: _json(value) for key, value in rows}
    assert values == {"job_id": job["jobId"], "job_ids": [job["jobId"]], "status": "FINISHED"}


def _json(value: Any) -> Any:
    """An XCom value as SQLite returns it: JSON text, or a number SQLite already converted."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _example_dag_bag(monkeypatch: pytest.MonkeyPatch) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]

    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")  # Airflow 3.1 would add its own examples
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_example_dags_import_without_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _example_dag_bag(monkeypatch).import_errors == {}


def test_every_example_dag_file_defines_a_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = _example_dag_bag(monkeypatch)
    assert DAG_ID in bag.dag_ids
    assert {Path(dag.fileloc).name for dag in bag.dags.values()} == {path.name for path in DAGS_FOLDER.glob("*.py")}
