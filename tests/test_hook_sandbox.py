"""CapillaryHook against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk import ObjectStoragePath

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryAuthError,
    CapillaryConfigError,
)
from capillary_provider.hooks.capillary import UPLOAD_BLOCK_SIZE, CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import UploadStatus
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import RecordingFile, mobile_rows, wait_for

pytestmark = pytest.mark.integration

SERIES = 501
TOKEN_PATH = "/v3/oauth/token/generate"
UPLOAD_PATH = f"/coupon/api/v1/upload/file/{SERIES}"
STATUS_PATH = f"/coupon/api/v1/upload/getUploadStatus/{SERIES}"
WAIT_LIMIT = 60.0
"""Longest wait for the sandbox to move a job along; a bound against hangs, not a timing assertion."""


@pytest.fixture
def hook(capillary_conn: SandboxClient) -> CapillaryHook:
    return CapillaryHook(retry_limit=3, retry_max_wait=0.01)


def calls(sandbox: SandboxClient) -> list[tuple[str, str, int | None]]:
    return [(entry["method"], entry["path"], entry["status"]) for entry in sandbox.requests()]


def upload(hook: CapillaryHook, source: Any, name: str = "batch.csv") -> UploadJob:
    return hook.upload_coupon_file(
        SERIES, source, file_name=name, customer_identifier="MOBILE", customer_identifier_column=0
    )


def wait_terminal(hook: CapillaryHook, job_id: int) -> UploadJob:
    def terminal() -> UploadJob | None:
        job = hook.get_upload_job(SERIES, job_id)
        return job if job.is_terminal else None

    job: UploadJob = wait_for(terminal, f"job {job_id} never ended", timeout=WAIT_LIMIT, pause=0.1)
    return job


def stored_bytes(sandbox: SandboxClient, job_id: int) -> bytes:
    [job] = [job for job in sandbox.jobs() if job["jobId"] == job_id]
    return Path(job["storedPath"]).read_bytes()


# -- token and connection test ----------------------------------------------------------------------


def test_token_comes_from_the_sandbox(hook: CapillaryHook, capillary_conn: SandboxClient) -> None:
    token = hook.get_token()
    assert token.startswith("sbx-tok-")
    assert calls(capillary_conn) == [("POST", TOKEN_PATH, 200)]


def test_token_is_reused_across_calls(hook: CapillaryHook, capillary_conn: SandboxClient) -> None:
    hook.get_upload_jobs(SERIES)
    hook.get_upload_jobs(SERIES)
    assert [path for _, path, _ in calls(capillary_conn)] == [TOKEN_PATH, STATUS_PATH, STATUS_PATH]


def test_test_connection_succeeds_and_uploads_nothing(hook: CapillaryHook, capillary_conn: SandboxClient) -> None:
    ok, _ = hook.test_connection()
    assert ok is True
    assert calls(capillary_conn) == [("POST", TOKEN_PATH, 200)]


def test_wrong_secret_raises_auth_error_with_capillary_code(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "capillary", "host": sandbox.url, "login": sandbox.key, "password": "wrong-secret-xyz"}
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_BAD", json.dumps(conn))
    with pytest.raises(CapillaryAuthError) as info:
        CapillaryHook("capillary_bad").get_token()
    assert "capillary_bad" in str(info.value)
    assert "320001" in str(info.value)
    assert "wrong-secret-xyz" not in str(info.value)


def test_test_connection_reports_a_wrong_secret(sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "capillary", "host": sandbox.url, "login": sandbox.key, "password": "wrong-secret-xyz"}
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_BAD", json.dumps(conn))
    ok, message = CapillaryHook("capillary_bad").test_connection()
    assert ok is False
    assert "320001" in message


# -- upload sources ---------------------------------------------------------------------------------


def test_upload_from_a_path_stores_the_file_byte_for_byte(
    hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path
) -> None:
    job = upload(hook, coupons)
    assert job.status == UploadStatus.STARTED
    assert stored_bytes(capillary_conn, job.job_id) == coupons.read_bytes()


def test_upload_records_file_name_identifier_and_column(
    hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path
) -> None:
    job = upload(hook, coupons, name="named_part0001.csv")
    [view] = capillary_conn.jobs(SERIES)
    assert (view["jobId"], view["uploadedFileName"]) == (job.job_id, "named_part0001.csv")
    assert (view["customerIdentifier"], view["customerIdentifierColumn"]) == ("MOBILE", 0)


def test_upload_from_a_file_object(hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path) -> None:
    with coupons.open("rb") as handle:
        job = upload(hook, handle)
    assert stored_bytes(capillary_conn, job.job_id) == coupons.read_bytes()


def test_upload_from_an_in_memory_file_object(hook: CapillaryHook, capillary_conn: SandboxClient) -> None:
    data = b"mobile,code\n919800000001,MEM0001\n"
    job = upload(hook, io.BytesIO(data))
    assert stored_bytes(capillary_conn, job.job_id) == data


def test_upload_from_an_object_storage_path(hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path) -> None:
    job = upload(hook, ObjectStoragePath(f"file://{coupons}"))
    assert stored_bytes(capillary_conn, job.job_id) == coupons.read_bytes()


def test_upload_reads_the_file_in_blocks_over_real_http(hook: CapillaryHook, capillary_conn: SandboxClient) -> None:
    header = b"mobile,code\n"
    data = header + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(150_000))  # about 3.5 MB
    source = RecordingFile(data)
    job = upload(hook, source)
    assert stored_bytes(capillary_conn, job.job_id) == data
    assert len(source.read_sizes) >= len(data) // UPLOAD_BLOCK_SIZE
    assert all(size is not None and 0 <= size <= UPLOAD_BLOCK_SIZE for size in source.read_sizes)


# -- status -----------------------------------------------------------------------------------------


def test_uploaded_job_reaches_finished_with_all_rows_accepted(hook: CapillaryHook, coupons: Path) -> None:
    job = wait_terminal(hook, upload(hook, coupons).job_id)
    assert (job.status, job.actual_row_count, job.total_uploaded_count, job.error_count) == ("FINISHED", 25, 25, 0)


def test_rejected_rows_are_counted_with_an_error_file_key(hook: CapillaryHook, write_csv: Callable[..., Path]) -> None:
    rows = mobile_rows(10) + mobile_rows(3)  # the last three codes repeat
    job = wait_terminal(hook, upload(hook, write_csv(rows)).job_id)
    assert (job.status, job.actual_row_count, job.total_uploaded_count, job.error_count) == ("FINISHED", 13, 10, 3)
    assert job.error_file_url


def test_get_upload_jobs_lists_every_job_of_the_series(hook: CapillaryHook, write_csv: Callable[..., Path]) -> None:
    first = upload(hook, write_csv(mobile_rows(2), name="a.csv"), name="a.csv")
    second = upload(hook, write_csv(mobile_rows(2, start=2), name="b.csv"), name="b.csv")
    jobs = hook.get_upload_jobs(SERIES)
    assert sorted((job.job_id, job.uploaded_file_name) for job in jobs) == [
        (first.job_id, "a.csv"),
        (second.job_id, "b.csv"),
    ]


def test_job_ending_errored_is_reported_errored(
    hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path
) -> None:
    capillary_conn.add_fault("upload", "job_errored")
    job = wait_terminal(hook, upload(hook, coupons).job_id)
    assert job.status == UploadStatus.ERRORED


# -- re-authentication ------------------------------------------------------------------------------


def test_expired_token_498_is_renewed_and_the_call_retried(hook: CapillaryHook, capillary_conn: SandboxClient) -> None:
    capillary_conn.add_fault("token", "expire_tokens", seconds=0.2)
    token = hook.get_token()
    _wait_until_refused(capillary_conn, token)
    assert hook.get_upload_jobs(SERIES) == []
    hook_calls = [(path, status) for _, path, status in calls(capillary_conn) if path in (TOKEN_PATH, STATUS_PATH)]
    assert hook_calls == [(TOKEN_PATH, 200), (STATUS_PATH, 498), (TOKEN_PATH, 200), (STATUS_PATH, 200)]


def test_upload_with_expired_token_is_renewed_and_sent_once_more(
    hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path
) -> None:
    capillary_conn.add_fault("token", "expire_tokens", seconds=0.2)
    token = hook.get_token()
    _wait_until_refused(capillary_conn, token)
    job = upload(hook, coupons)
    assert [s for _, p, s in calls(capillary_conn) if p == UPLOAD_PATH] == [498, 200]
    assert [view["jobId"] for view in capillary_conn.jobs(SERIES)] == [job.job_id]
    assert stored_bytes(capillary_conn, job.job_id) == coupons.read_bytes()


def test_token_unknown_to_capillary_401_is_renewed_and_the_upload_sent_once_more(
    hook: CapillaryHook, capillary_conn: SandboxClient, coupons: Path
) -> None:
    hook.get_token()
    capillary_conn.reset()  # the sandbox forgets every token it issued: the cached one now gets 401
    job = upload(hook, coupons)
    assert calls(capillary_conn) == [("POST", UPLOAD_PATH, 401), ("POST", TOKEN_PATH, 200), ("POST", UPLOAD_PATH, 200)]
    assert [view["jobId"] for view in capillary_conn.jobs(SERIES)] == [job.job_id]


def _wait_until_refused(sandbox: SandboxClient, token: str) -> None:
    """Wait until the sandbox refuses ``token`` (it was issued with a short expiry)."""
    url = f"{sandbox.url}/coupon/api/v1/upload/getUploadStatus/1"
    wait_for(
        lambda: requests.get(url, headers={"X-CAP-API-OAUTH-TOKEN": token}, timeout=10).status_code == 498,
        "the short-lived token never expired",
        timeout=WAIT_LIMIT,
        pause=0.05,
    )


# -- error answers (retries are specified in test_hook.py and, over real HTTP, in test_fault_matrix.py) --


def test_status_success_false_raises_with_http_status_and_request_id(
    hook: CapillaryHook, capillary_conn: SandboxClient
) -> None:
    capillary_conn.add_fault("status", "success_false")
    with pytest.raises(CapillaryApiError) as info:
        hook.get_upload_jobs(SERIES)
    [entry] = [e for e in capillary_conn.requests() if e["path"] == STATUS_PATH]
    assert (info.value.http_status, info.value.request_id) == (200, entry["requestId"])
    assert "Injected failure" in str(info.value)


# -- configuration mistakes -------------------------------------------------------------------------


def test_a_bare_host_that_speaks_plain_http_fails_at_once_saying_to_write_http(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    bare = sandbox.url.removeprefix("http://")  # 127.0.0.1:PORT: a bare host means https
    conn = {"conn_type": "capillary", "host": bare, "login": sandbox.key, "password": sandbox.secret}
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", json.dumps(conn))
    with pytest.raises(CapillaryConfigError, match=rf"answered plain HTTP.*write the host as http://{re.escape(bare)}"):
        CapillaryHook().get_token()
    assert sleeps == []  # not retried: no retry can fix it
    assert issubclass(CapillaryConfigError, AirflowFailException)  # and Airflow does not retry it either
