"""The redemption example DAG through real Airflow (`airflow dags test`) against a fresh sandbox."""

from __future__ import annotations

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
DAG_ID = "capillary_redeemed_coupon_upload"
SERIES = 7010
ROWS, REDEEMED = 300, 120

pytestmark = pytest.mark.e2e


@dataclass
class Run:
    process: subprocess.CompletedProcess[str]
    home: Path
    coupon_jobs: list[dict[str, Any]]
    redeemed_jobs: list[dict[str, Any]]

    def states(self) -> dict[str, str]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(f"SELECT task_id, state FROM task_instance WHERE dag_id = '{DAG_ID}'").fetchall()
        return dict(rows)


@pytest.fixture(scope="module")
def run(fresh_airflow_home: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = fresh_airflow_home("airflow_home")
    storage = tmp_path_factory.mktemp("storage")
    with running_sandbox(step_seconds=0.2) as sandbox:
        env = airflow_env(home, DAGS_FOLDER, sandbox)
        conf = {"coupon_series_id": SERIES, "rows": ROWS, "redeemed": REDEEMED, "storage": f"file://{storage}"}
        process = dags_test(DAG_ID, env, conf=conf)
        yield Run(process, home, sandbox.jobs(SERIES), sandbox.redeemed_jobs(SERIES))


def test_every_task_of_the_redemption_dag_succeeds(run: Run) -> None:
    assert run.process.returncode == 0, run.process.stderr[-5000:]
    assert run.states() == dict.fromkeys(
        ("issue_coupons", "upload_coupons", "pos_export", "load_redemptions"), "success"
    )


def test_the_redemptions_went_up_with_the_header_map_and_were_all_accepted(run: Run) -> None:
    [job] = run.redeemed_jobs
    assert job["uploadHeaders"] == {
        "redeemedDateInMillis": 0,
        "redeemedAt": 1,
        "mobile": 2,
        "couponCode": 3,
        "billNumber": 4,
    }
    assert (job["couponIdentifier"], job["customerIdentifier"], job["details"]) == (
        "COUPON_CODE",
        "MOBILE",
        "POS redemptions export",
    )
    assert (job["uploadRedeemedCouponStatus"], job["actualRowCount"], job["errorCount"]) == ("COMPLETED", REDEEMED, 0)
    assert [job["actualRowCount"] for job in run.coupon_jobs] == [ROWS]
