"""Secrets stay secret: the client secret and the tokens Capillary issues appear in no log, XCom, rendered
field, trigger row or exception.

The end-to-end part runs the example DAGs (in-worker and deferrable) with ``airflow dags test`` against a
sandbox that only accepts a distinctive secret and issues tokens with a distinctive prefix, then searches
everything Airflow kept.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from capillary_provider.exceptions import CapillaryApiError, CapillaryAuthError
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.sandbox.dag_test import airflow_env, dags_test
from capillary_provider.sandbox.testing import running_sandbox

SECRET = "s3cr3t-ZQX-9f41c2-do-not-leak"
TOKEN_PREFIX = "tokQJV7-"
DAGS_FOLDER = Path(__file__).resolve().parents[1] / "example_dags"
DAG_IDS = ("capillary_coupon_upload", "capillary_coupon_upload_deferrable")


@dataclass
class Evidence:
    runs: dict[str, subprocess.CompletedProcess[str]]
    home: Path
    token_calls: int

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def evidence(fresh_airflow_home: Callable[[str], Path]) -> Iterator[Evidence]:
    home = fresh_airflow_home("airflow_home_secrets")
    with running_sandbox(secret=SECRET, token_prefix=TOKEN_PREFIX, step_seconds=0.2) as sandbox:
        env = airflow_env(home, DAGS_FOLDER, sandbox)
        runs = {}
        for series, dag_id in enumerate(DAG_IDS, start=7301):
            conf = {"rows": 300, "coupon_series_id": series, "storage": (home / "coupons").as_uri()}
            runs[dag_id] = dags_test(dag_id, env, conf=conf)
        token_calls = sum(1 for e in sandbox.requests() if e["path"].endswith("/token/generate") and e["status"] == 200)
        yield Evidence(runs, home, token_calls)


def leaks(text: str) -> list[str]:
    return [needle for needle in (SECRET, TOKEN_PREFIX) if needle in text]


@pytest.mark.e2e
def test_the_dags_ran_with_the_distinctive_secret_and_tokens(evidence: Evidence) -> None:
    for dag_id, run in evidence.runs.items():
        assert run.returncode == 0, f"{dag_id}: {run.stderr[-3000:]}"
    assert evidence.token_calls >= len(DAG_IDS)  # tokens were issued (and so could have leaked)
    assert evidence.query("SELECT COUNT(*) FROM xcom")[0][0] > 0


@pytest.mark.e2e
def test_no_secret_or_token_in_the_output_of_airflow_dags_test(evidence: Evidence) -> None:
    for dag_id, run in evidence.runs.items():
        assert leaks(run.stdout + run.stderr) == [], dag_id


@pytest.mark.e2e
def test_no_secret_or_token_in_any_file_under_airflow_home(evidence: Evidence) -> None:
    """Task logs (``airflow dags test`` also prints them, see above), configuration, anything written."""
    files = [path for path in evidence.home.rglob("*") if path.is_file() and "-wal" not in path.name]
    assert len(files) > 1
    found = {str(path): leaks(path.read_bytes().decode("latin-1")) for path in files}
    assert {path: needles for path, needles in found.items() if needles} == {}


@pytest.mark.e2e
def test_no_secret_or_token_in_xcom(evidence: Evidence) -> None:
    rows = evidence.query("SELECT task_id, key, value FROM xcom")
    assert [row[:2] for row in rows if leaks(str(row[2]))] == []


@pytest.mark.e2e
def test_no_secret_or_token_in_rendered_template_fields(evidence: Evidence) -> None:
    rows = evidence.query("SELECT task_id, rendered_fields FROM rendered_task_instance_fields")
    assert rows, "no rendered fields were stored"
    assert [row[0] for row in rows if leaks(str(row[1]))] == []


@pytest.mark.e2e
def test_no_secret_or_token_in_trigger_rows_or_next_kwargs(evidence: Evidence) -> None:
    triggers = evidence.query("SELECT classpath, kwargs FROM trigger")
    next_kwargs = evidence.query("SELECT task_id, next_kwargs FROM task_instance")
    assert [row for row in triggers + next_kwargs if leaks(str(row))] == []


@pytest.mark.e2e
def test_no_secret_or_token_anywhere_in_the_metadata_database_file(evidence: Evidence) -> None:
    raw = (evidence.home / "airflow.db").read_bytes().decode("latin-1")
    assert leaks(raw) == []


# -- exceptions -------------------------------------------------------------------------------------------

HOST = "https://capillary.test"
TOKEN = TOKEN_PREFIX + "abcdef0123456789"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> CapillaryHook:
    conn = f'{{"conn_type": "capillary", "host": "{HOST}", "login": "key", "password": "{SECRET}"}}'
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", conn)
    return CapillaryHook(retry_limit=1)


def test_refused_credentials_error_does_not_carry_the_secret(hook: CapillaryHook) -> None:
    with requests_mock.Mocker() as mock:
        mock.post(
            f"{HOST}/v3/oauth/token/generate",
            status_code=401,
            json={"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]},
        )
        with pytest.raises(CapillaryAuthError) as info:
            hook.get_token()
    assert leaks(str(info.value)) == []


def test_token_endpoint_echoing_the_request_does_not_put_the_secret_in_the_error(hook: CapillaryHook) -> None:
    with requests_mock.Mocker() as mock:
        echo = f'<html>Bad gateway for {{"key": "key", "secret": "{SECRET}"}}</html>'
        mock.post(f"{HOST}/v3/oauth/token/generate", status_code=502, text=echo)
        with pytest.raises(CapillaryApiError) as info:
            hook.get_token()
    assert leaks(str(info.value)) == []


@pytest.mark.parametrize("status", [200, 401, 500], ids=["200", "401", "500"])
def test_status_answer_echoing_the_token_does_not_put_it_in_the_error(hook: CapillaryHook, status: int) -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{HOST}/v3/oauth/token/generate", json={"data": {"accessToken": TOKEN, "ttlSeconds": 3600}})
        echo = f"<html>proxy error; request headers: X-CAP-API-OAUTH-TOKEN: {TOKEN}</html>"
        mock.get(f"{HOST}/coupon/api/v1/upload/getUploadStatus/1", status_code=status, text=echo)
        with pytest.raises(CapillaryApiError) as info:
            hook.get_upload_jobs(1)
    assert leaks(str(info.value)) == []


def test_upload_answer_echoing_the_token_does_not_put_it_in_the_error(hook: CapillaryHook, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes(b"mobile,code\n919800000001,C1\n")
    with requests_mock.Mocker() as mock:
        mock.post(f"{HOST}/v3/oauth/token/generate", json={"data": {"accessToken": TOKEN, "ttlSeconds": 3600}})
        mock.post(
            f"{HOST}/coupon/api/v1/upload/file/1",
            status_code=200,
            json={"success": False, "message": f"token {TOKEN} rejected"},
        )
        with pytest.raises(CapillaryApiError) as info:
            hook.upload_coupon_file(
                1, source, file_name="c.csv", customer_identifier="MOBILE", customer_identifier_column=0
            )
    assert leaks(str(info.value)) == []
