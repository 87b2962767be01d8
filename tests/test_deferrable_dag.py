"""End to end: ``airflow dags test`` of the deferrable example DAGs against the sandbox (triggers run inline).

example_dags/example_coupon_upload_deferrable.py holds two DAGs: the deferrable operator, and an upload
with ``wait_for_completion=False`` followed by a deferrable sensor. Each is run once with the real
Airflow CLI in a temporary AIRFLOW_HOME. The sandbox holds each job in progress until the trigger has
polled it several times, then lets it finish: each wait polls several times however slow the machine is,
and no run waits longer than that.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capillary_provider.sandbox.dag_test import airflow_env, dags_test
from capillary_provider.sandbox.testing import SandboxClient

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAGS_FOLDER = Path(__file__).resolve().parent.parent / "example_dags"
OPERATOR_DAG, SENSOR_DAG = "capillary_coupon_upload_deferrable", "capillary_coupon_upload_sensor"
ROWS = 300
HELD = 3600.0
"""Sandbox seconds per job state while a job is held: it stays in progress until :class:`ReleaseAfterPolls`."""
WAITING_POLLS = 3
"""Status calls the trigger makes at least, besides the look-up before the upload and the check before deferring."""


class ReleaseAfterPolls(threading.Thread):
    """Lets the sandbox finish the series' jobs at once (step 0) when its status endpoint has been called
    ``calls`` times: the trigger's polls, not a clock, decide when the job ends."""

    def __init__(self, sandbox: SandboxClient, series: int, calls: int) -> None:
        super().__init__(daemon=True)
        self.sandbox, self.path, self.calls = sandbox, f"/getUploadStatus/{series}", calls
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            if len(self.sandbox.requests(self.path)) >= self.calls:
                self.sandbox.set_step_seconds(0)
                return


class DagRun:
    """What one ``airflow dags test`` left behind: its output, and the sandbox's jobs and status calls."""

    def __init__(self, process: subprocess.CompletedProcess[str], sandbox: SandboxClient, series: int) -> None:
        self.returncode = process.returncode
        self.output = process.stdout + process.stderr
        self.jobs = sandbox.jobs(series)
        self.status_calls = len(sandbox.requests(f"/getUploadStatus/{series}"))


@pytest.fixture(scope="module")
def dag_runs(sandbox_server: SandboxClient, fresh_airflow_home: Callable[[str], Path]) -> Iterator[dict[str, DagRun]]:
    """Run each DAG once for all the tests of this module (one copy of the migrated DB, one run per DAG)."""
    home = fresh_airflow_home("airflow-home")
    env = airflow_env(home, DAGS_FOLDER, sandbox_server)
    runs = {}
    for series, dag_id in enumerate((OPERATOR_DAG, SENSOR_DAG), start=3101):
        sandbox_server.reset()
        sandbox_server.set_step_seconds(HELD)
        release = ReleaseAfterPolls(sandbox_server, series, 2 + WAITING_POLLS)
        release.start()
        conf = {"coupon_series_id": series, "rows": ROWS, "storage": (home / "coupons").as_uri()}
        try:
            runs[dag_id] = DagRun(dags_test(dag_id, env, conf=conf), sandbox_server, series)
        finally:
            release.stop.set()
            release.join()
    yield runs
    sandbox_server.reset()


@pytest.mark.parametrize("dag_id", [OPERATOR_DAG, SENSOR_DAG])
def test_dag_run_succeeds(dag_runs: dict[str, DagRun], dag_id: str) -> None:
    run = dag_runs[dag_id]

    assert run.returncode == 0, run.output[-6000:]


@pytest.mark.parametrize("dag_id", [OPERATOR_DAG, SENSOR_DAG])
def test_capillary_finished_the_uploaded_rows(dag_runs: dict[str, DagRun], dag_id: str) -> None:
    jobs = dag_runs[dag_id].jobs

    assert [(job["uploadStatus"], job["actualRowCount"], job["errorCount"]) for job in jobs] == [("FINISHED", ROWS, 0)]


@pytest.mark.parametrize("dag_id", [OPERATOR_DAG, SENSOR_DAG])
def test_the_trigger_polled_several_times(dag_runs: dict[str, DagRun], dag_id: str) -> None:
    # one look-up for an earlier upload of the same batch, one check before deferring, then the trigger's polls
    assert dag_runs[dag_id].status_calls >= 2 + WAITING_POLLS


@pytest.mark.parametrize("dag_id", [OPERATOR_DAG, SENSOR_DAG])
def test_the_resumed_task_returned_the_summary(dag_runs: dict[str, DagRun], dag_id: str) -> None:
    job_id = dag_runs[dag_id].jobs[0]["jobId"]

    assert f"Capillary jobs [{job_id}] FINISHED; {ROWS} rows, {ROWS} accepted, 0 rejected" in dag_runs[dag_id].output


@pytest.mark.parametrize("dag_id", [OPERATOR_DAG, SENSOR_DAG])
def test_the_trigger_logged_each_state_change_once(dag_runs: dict[str, DagRun], dag_id: str) -> None:
    job_id = dag_runs[dag_id].jobs[0]["jobId"]
    marker = f"Capillary upload job {job_id} "
    trigger_lines = [
        line[line.index(marker) :]
        for line in dag_runs[dag_id].output.splitlines()
        if marker in line and "CouponUploadTrigger" in line
    ]

    assert f"{marker}FINISHED: {ROWS} rows, {ROWS} accepted, 0 rejected" in "\n".join(trigger_lines)
    assert len(trigger_lines) == len(set(trigger_lines))
