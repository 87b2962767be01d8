"""CapillaryHook unit tests with requests_mock: token cache, re-auth, error envelopes, retries, multipart."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest
import requests
import requests_mock as rm
from airflow.sdk import ObjectStoragePath
from requests_toolbelt.multipart.decoder import MultipartDecoder
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import MaxRetryError, NewConnectionError

import capillary_provider.hooks._answers as answers_module
import capillary_provider.hooks._base as base_module
import capillary_provider.hooks._form as form_module
import capillary_provider.hooks._transport as transport_module
import capillary_provider.hooks._upload_body as upload_body_module
from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryAuthError,
    CapillaryConfigError,
    CapillaryError,
    CapillaryPermanentApiError,
    CapillaryTransientError,
    CapillaryUploadOutcomeUnknown,
    CouponUploadAborted,
)
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import UploadStatus
from tests.conftest import FakeClock, RecordingFile
from tests.recording_log import RecordingLog

API = "https://api.example.com"
COUPONS = "https://coupons.example.com"
TOKEN_URL = f"{API}/v3/oauth/token/generate"
SERIES = 4242
UPLOAD_URL = f"{COUPONS}/coupon/api/v1/upload/file/{SERIES}"
STATUS_URL = f"{COUPONS}/coupon/api/v1/upload/getUploadStatus/{SERIES}"
KEY = "client-key-1"
SECRET = "very-secret-client-secret"
TIMEOUT = (3.0, 7.0)
CSV = b"mobile,code\n919800000001,ABC123\n919800000002,ABC124\n"


# -- helpers ----------------------------------------------------------------------------------------


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    *,
    host: str = "api.example.com",
    coupon_host: str | None = "coupons.example.com",
    login: str = KEY,
    password: str = SECRET,
    conn_id: str = "capillary_default",
) -> None:
    extra = {"coupon_host": coupon_host} if coupon_host else {}
    conn = {"conn_type": "capillary", "host": host, "login": login, "password": password, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def token_body(token: str, ttl: float = 3600) -> dict[str, Any]:
    return {"data": {"accessToken": token, "ttlSeconds": ttl}, "errors": None}


def job_item(job_id: int = 11, status: str = "STARTED", **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "jobId": job_id,
        "uploadStatus": status,
        "createdOn": "1700000000000",
        "updatedOn": "1700000001000",
        "errorFileUrl": None,
        "successFileUrl": None,
        "uploadedFileUrl": f"uploads/{job_id}.csv",
        "totalUploadedCount": 0,
        "actualRowCount": 0,
        "errorCount": 0,
        "uploadTableName": None,
        "uploadedFileName": f"file_{job_id}.csv",
        "audienceGroupId": None,
        "audienceGroupVersionId": None,
    }
    item.update(fields)
    return item


def envelope(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": True,
        "status": 200,
        "result": {
            "orgId": 1,
            "couponSeriesId": SERIES,
            "fileName": "stored.csv",
            "uploadJobStatuses": list(items),
        },
    }


def failure(message: str, status: int = 500) -> dict[str, Any]:
    return {"success": False, "status": status, "message": message}


def capture_bodies(
    bodies: list[bytes], chunk: int = 4096, answer: dict[str, Any] | None = None
) -> Callable[[Any, Any], dict[str, Any]]:
    """A requests_mock json callback that reads the streamed body (in chunks, like a socket) and answers a job."""

    def callback(request: Any, context: Any) -> dict[str, Any]:
        stream = request.body
        parts = []
        while block := stream.read(chunk):
            parts.append(block)
        bodies.append(b"".join(parts))
        return answer or envelope(job_item(11, "STARTED", uploadedFileName="batch.csv"))

    return callback


def refused_once(bodies: list[bytes], status: int, message: str) -> Callable[[Any, Any], dict[str, Any]]:
    """A requests_mock json callback: the first upload is answered ``status`` (its body kept), later ones succeed."""

    def callback(request: Any, context: Any) -> dict[str, Any]:
        if not bodies:
            bodies.append(request.body.read())
            context.status_code = status
            return failure(message, status)
        return capture_bodies(bodies)(request, context)

    return callback


def multipart_fields(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None]]:
    """Field name -> (content, file name) of a multipart body."""
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in MultipartDecoder(body, content_type).parts:
        disposition = part.headers[b"Content-Disposition"].decode()
        params = dict(
            item.strip().split("=", 1) for item in disposition.split(";")[1:] if "=" in item
        )  # name="file"; filename="x.csv"
        name = params["name"].strip('"')
        filename = params["filename"].strip('"') if "filename" in params else None
        fields[name] = (part.content, filename)
    return fields


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch)


@pytest.fixture
def hook(conn: None) -> CapillaryHook:
    return CapillaryHook(timeout=TIMEOUT, retry_limit=3, retry_max_wait=0.01)


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    recorded: list[str] = []
    monkeypatch.setattr(base_module, "mask_secret", recorded.append)
    return recorded


@pytest.fixture
def m() -> Iterator[rm.Mocker]:
    with rm.Mocker() as mocker:
        yield mocker


def upload(hook: CapillaryHook, source: Any, column: int | None = 0, identifier: str = "MOBILE") -> UploadJob:
    return hook.upload_coupon_file(
        SERIES,
        source,
        file_name="batch.csv",
        customer_identifier=identifier,
        customer_identifier_column=column,
    )


# -- token ------------------------------------------------------------------------------------------


def test_token_is_requested_with_client_key_and_secret_as_json(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    assert hook.get_token() == "tok-1"
    assert m.last_request.json() == {"key": KEY, "secret": SECRET}


def test_token_request_sends_no_token_header(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    hook.get_token()
    assert "X-CAP-API-OAUTH-TOKEN" not in m.last_request.headers


def test_token_is_passed_to_mask_secret_when_it_arrives(hook: CapillaryHook, m: rm.Mocker, masked: list[str]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-secret-jwt"))
    hook.get_token()
    assert masked == ["tok-secret-jwt"]


def test_a_rotated_secret_read_afresh_is_masked_and_sent(
    hook: CapillaryHook, m: rm.Mocker, masked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    token = m.post(TOKEN_URL, [{"status_code": 401, "json": refused}, {"json": token_body("tok-new")}])
    assert hook.connection.password == SECRET
    set_connection(monkeypatch, password="the-rotated-secret")
    assert hook.get_token() == "tok-new"
    assert [call.json()["secret"] for call in token.request_history] == [SECRET, "the-rotated-secret"]
    assert masked == ["the-rotated-secret", "tok-new"]


def test_a_token_request_refused_with_a_page_that_is_not_json_blames_the_credentials_once(
    hook: CapillaryHook, m: rm.Mocker
) -> None:
    token = m.post(TOKEN_URL, status_code=401, text="<html>401 Authorization Required</html>")
    with pytest.raises(CapillaryAuthError, match=r"refused the client key and secret .* not JSON \(HTTP 401\)"):
        hook.get_token()
    assert token.call_count == 1


def test_token_is_cached_between_calls(hook: CapillaryHook, m: rm.Mocker, clock: FakeClock) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    first = hook.get_token()
    clock.now += 60
    second = hook.get_token()
    assert (first, second, token.call_count) == ("tok-1", "tok-1", 1)


def test_hooks_of_one_process_share_a_token_for_the_same_credentials(hook: CapillaryHook, m: rm.Mocker) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    tokens = [hook.get_token(), CapillaryHook().get_token()]
    assert (tokens, token.call_count) == (["tok-1", "tok-1"], 1)


def test_a_changed_client_secret_gets_its_own_token(
    hook: CapillaryHook, m: rm.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    hook.get_token()
    set_connection(monkeypatch, password="a-rotated-client-secret")
    assert CapillaryHook().get_token() == "tok-2"


def test_a_refused_token_is_dropped_for_every_hook_of_the_process(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    other = CapillaryHook()
    other.get_token()
    hook.get_token()
    hook.invalidate_token()
    assert other.get_token() == "tok-2"


def test_token_is_kept_until_shortly_before_ttl_expires(hook: CapillaryHook, m: rm.Mocker, clock: FakeClock) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1", ttl=3600)}, {"json": token_body("tok-2")}])
    hook.get_token()
    clock.now += 3600 - transport_module.TOKEN_REFRESH_LEAD_SECONDS - 1
    assert hook.get_token() == "tok-1"
    assert token.call_count == 1


def test_token_is_renewed_a_lead_time_before_ttl_expires(hook: CapillaryHook, m: rm.Mocker, clock: FakeClock) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1", ttl=3600)}, {"json": token_body("tok-2")}])
    hook.get_token()
    clock.now += 3600 - transport_module.TOKEN_REFRESH_LEAD_SECONDS + 1
    assert hook.get_token() == "tok-2"
    assert token.call_count == 2


def test_short_lived_token_is_renewed_before_it_expires(hook: CapillaryHook, m: rm.Mocker, clock: FakeClock) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1", ttl=60)}, {"json": token_body("tok-2")}])
    hook.get_token()
    clock.now += 59
    assert hook.get_token() == "tok-2"
    assert token.call_count == 2


def test_bad_credentials_raise_auth_error_naming_connection_and_capillary_code(
    hook: CapillaryHook, m: rm.Mocker
) -> None:
    body = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    m.post(TOKEN_URL, status_code=401, json=body)
    with pytest.raises(CapillaryAuthError) as info:
        hook.get_token()
    assert "capillary_default" in str(info.value)
    assert "320001" in str(info.value)
    assert "Invalid client key and secret" in str(info.value)


def test_bad_credentials_answered_with_http_200_raise_auth_error(hook: CapillaryHook, m: rm.Mocker) -> None:
    body = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    m.post(TOKEN_URL, status_code=200, json=body)
    with pytest.raises(CapillaryAuthError, match="320001"):
        hook.get_token()


def test_bad_credentials_error_never_contains_the_secret(hook: CapillaryHook, m: rm.Mocker) -> None:
    body = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    m.post(TOKEN_URL, status_code=401, json=body)
    with pytest.raises(CapillaryAuthError) as info:
        hook.get_token()
    rendered = " ".join([str(info.value), repr(info.value), *map(str, info.value.args)])
    assert SECRET not in rendered


def test_bad_credentials_are_not_retried(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    body = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    token = m.post(TOKEN_URL, status_code=401, json=body)
    with pytest.raises(CapillaryAuthError):
        hook.get_token()
    assert token.call_count == 1


def test_auth_error_names_a_non_default_connection_id(monkeypatch: pytest.MonkeyPatch, m: rm.Mocker) -> None:
    set_connection(monkeypatch, conn_id="capillary_eu")
    body = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    m.post(TOKEN_URL, status_code=401, json=body)
    with pytest.raises(CapillaryAuthError, match="capillary_eu"):
        CapillaryHook("capillary_eu").get_token()


def test_connection_without_password_raises_auth_error_before_any_request(
    monkeypatch: pytest.MonkeyPatch, m: rm.Mocker
) -> None:
    set_connection(monkeypatch, password="")
    with pytest.raises(CapillaryAuthError, match="client secret"):
        CapillaryHook().get_token()
    assert m.call_count == 0


def test_token_request_is_retried_on_503(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    token = m.post(TOKEN_URL, [{"status_code": 503, "text": "busy"}, {"json": token_body("tok-1")}])
    assert hook.get_token() == "tok-1"
    assert token.call_count == 2


def test_token_request_is_retried_on_connection_error(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    token = m.post(TOKEN_URL, [{"exc": requests.ConnectionError("refused")}, {"json": token_body("tok-1")}])
    assert hook.get_token() == "tok-1"
    assert token.call_count == 2


def test_token_request_uses_the_configured_timeouts(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    hook.get_token()
    assert m.last_request.timeout == TIMEOUT


# -- hosts ------------------------------------------------------------------------------------------


def test_bare_hosts_mean_https(hook: CapillaryHook) -> None:
    assert (hook.api_url, hook.coupon_url) == (API, COUPONS)


def test_full_url_host_is_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host="http://127.0.0.1:8765/", coupon_host=None)
    hook = CapillaryHook()
    assert (hook.api_url, hook.coupon_url) == ("http://127.0.0.1:8765", "http://127.0.0.1:8765")


def test_coupon_host_defaults_to_api_host(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, coupon_host=None)
    assert CapillaryHook().coupon_url == API


def test_upload_goes_to_coupon_host_and_token_comes_from_api_host(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path
) -> None:
    token = m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    upload(hook, path)
    assert (token.call_count, posted.call_count) == (1, 1)


def test_connection_without_host_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host="", coupon_host=None)
    with pytest.raises(CapillaryError, match="no API host"):
        _ = CapillaryHook().api_url


# -- status -----------------------------------------------------------------------------------------


def test_get_upload_jobs_parses_every_job(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    finished = job_item(
        12,
        "FINISHED",
        actualRowCount="2",
        totalUploadedCount="0",
        errorCount="2",
        errorFileUrl="errors/12.csv",
        uploadedFileName="b.csv",
    )
    m.get(STATUS_URL, json=envelope(job_item(11, "STARTED"), finished))
    jobs = hook.get_upload_jobs(SERIES)
    assert jobs == [
        UploadJob(
            job_id=11,
            status="STARTED",
            uploaded_file_name="file_11.csv",
            created_on=1700000000000,
            updated_on=1700000001000,
        ),
        UploadJob(
            job_id=12,
            status="FINISHED",
            uploaded_file_name="b.csv",
            actual_row_count=2,
            total_uploaded_count=0,
            error_count=2,
            error_file_url="errors/12.csv",
            created_on=1700000000000,
            updated_on=1700000001000,
        ),
    ]


def test_get_upload_jobs_sends_the_token_header(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json=envelope())
    hook.get_upload_jobs(SERIES)
    assert m.last_request.headers["X-CAP-API-OAUTH-TOKEN"] == "tok-1"


def test_get_upload_jobs_of_series_without_jobs_is_empty(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json={"success": True, "status": 200, "result": {"uploadJobStatuses": None}})
    assert hook.get_upload_jobs(SERIES) == []


def test_unknown_status_is_kept_and_treated_as_in_progress(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json=envelope(job_item(11, "QUEUED_FOR_SPLIT")))
    [job] = hook.get_upload_jobs(SERIES)
    assert job.status == "QUEUED_FOR_SPLIT"
    assert not job.is_terminal


def test_get_upload_job_picks_the_job_by_id(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json=envelope(job_item(11, "STARTED"), job_item(12, "FINISHED")))
    job = hook.get_upload_job(SERIES, 12)
    assert (job.job_id, job.status) == (12, UploadStatus.FINISHED)


def test_get_upload_job_of_unknown_id_raises(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json=envelope(job_item(11, "STARTED")))
    with pytest.raises(CapillaryError, match="no upload job 99"):
        hook.get_upload_job(SERIES, 99)


def test_every_call_uses_the_configured_timeouts(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json=envelope())
    m.post(UPLOAD_URL, json=capture_bodies([]))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    hook.get_upload_jobs(SERIES)
    upload(hook, path)
    assert [request.timeout for request in m.request_history] == [TIMEOUT, TIMEOUT, TIMEOUT]


# -- re-authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 498])
def test_status_call_gets_a_new_token_and_retries_once_on(status: int, hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    get = m.get(STATUS_URL, [{"status_code": status, "json": failure("Token expired", status)}, {"json": envelope()}])
    assert hook.get_upload_jobs(SERIES) == []
    assert [r.headers["X-CAP-API-OAUTH-TOKEN"] for r in get.request_history] == ["tok-1", "tok-2"]


def test_token_refused_twice_raises_after_one_reauth(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    get = m.get(STATUS_URL, status_code=401, json=failure("Invalid token", 401))
    with pytest.raises(CapillaryApiError) as info:
        hook.get_upload_jobs(SERIES)
    assert info.value.http_status == 401
    assert (token.call_count, get.call_count) == (2, 2)


def test_renewed_token_is_cached_for_later_calls(hook: CapillaryHook, m: rm.Mocker) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    get = m.get(STATUS_URL, [{"status_code": 498, "json": failure("Token expired", 498)}, {"json": envelope()}])
    hook.get_upload_jobs(SERIES)
    hook.get_upload_jobs(SERIES)
    assert token.call_count == 2
    assert get.last_request.headers["X-CAP-API-OAUTH-TOKEN"] == "tok-2"


def test_upload_gets_a_new_token_and_resends_the_whole_file_on_401(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path
) -> None:
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=refused_once(bodies, 401, "Invalid token"))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    job = upload(hook, path)
    assert job.job_id == 11
    assert [r.headers["X-CAP-API-OAUTH-TOKEN"] for r in posted.request_history] == ["tok-1", "tok-2"]
    assert bodies[0].count(CSV) == 1
    assert bodies[1].count(CSV) == 1


# -- error envelopes --------------------------------------------------------------------------------


def test_success_false_with_http_200_raises_with_status_message_and_request_id(
    hook: CapillaryHook, m: rm.Mocker
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json=failure("Series is archived", 500), headers={"X-Cap-Requestid": "req-123"})
    with pytest.raises(CapillaryApiError) as info:
        hook.get_upload_jobs(SERIES)
    assert info.value.http_status == 200
    assert info.value.request_id == "req-123"
    assert "Series is archived" in str(info.value)
    assert "req-123" in str(info.value)


def test_success_false_with_http_200_is_not_retried(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, json=failure("Series is archived", 500))
    with pytest.raises(CapillaryApiError):
        hook.get_upload_jobs(SERIES)
    assert get.call_count == 1


def test_success_false_with_http_400_raises_permanent_error(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(
        STATUS_URL, status_code=400, json=failure("incorrect or invalid input", 400), headers={"X-Cap-Requestid": "r4"}
    )
    with pytest.raises(CapillaryPermanentApiError) as info:
        hook.get_upload_jobs(SERIES)
    assert (info.value.http_status, info.value.request_id) == (400, "r4")
    assert "incorrect or invalid input" in str(info.value)


def test_forbidden_is_a_permanent_error_and_not_retried(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, status_code=403, json=failure("Access denied", 403))
    with pytest.raises(CapillaryPermanentApiError, match="Access denied"):
        hook.get_upload_jobs(SERIES)
    assert get.call_count == 1


def test_upload_success_false_raises_with_capillary_message(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.post(
        UPLOAD_URL, status_code=400, json=failure("Invalid customer identifier", 400), headers={"X-Cap-Requestid": "u1"}
    )
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    with pytest.raises(CapillaryApiError) as info:
        upload(hook, path)
    assert (info.value.http_status, info.value.request_id) == (400, "u1")
    assert "Invalid customer identifier" in str(info.value)


def test_upload_answer_without_job_raises(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.post(UPLOAD_URL, json=envelope())
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    with pytest.raises(CapillaryApiError, match="no upload job"):
        upload(hook, path)


# -- retries of safe calls --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_status_call_is_retried_on(status: int, hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, [{"status_code": status, "json": failure("busy", status)}, {"json": envelope()}])
    assert hook.get_upload_jobs(SERIES) == []
    assert get.call_count == 2


def test_status_call_is_retried_on_connection_error(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, [{"exc": requests.ConnectionError("reset")}, {"json": envelope()}])
    assert hook.get_upload_jobs(SERIES) == []
    assert get.call_count == 2


def test_status_call_is_retried_on_read_timeout(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, [{"exc": requests.ReadTimeout("slow")}, {"json": envelope()}])
    assert hook.get_upload_jobs(SERIES) == []
    assert get.call_count == 2


def test_status_call_is_retried_on_a_body_that_is_not_json(
    hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, [{"status_code": 502, "text": "<html>Bad gateway</html>"}, {"json": envelope()}])
    assert hook.get_upload_jobs(SERIES) == []
    assert get.call_count == 2


def test_status_call_gives_up_after_retry_limit(hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    get = m.get(STATUS_URL, status_code=503, json=failure("down", 503), headers={"X-Cap-Requestid": "r503"})
    with pytest.raises(CapillaryApiError) as info:
        hook.get_upload_jobs(SERIES)
    assert get.call_count == hook.retry_limit
    assert (info.value.http_status, info.value.request_id) == (503, "r503")


def test_retry_after_is_honoured(conn: None, m: rm.Mocker, sleeps: list[float]) -> None:
    hook = CapillaryHook(retry_limit=3, retry_max_wait=30)
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(
        STATUS_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": failure("slow down", 429)},
            {"json": envelope()},
        ],
    )
    hook.get_upload_jobs(SERIES)
    assert sleeps == [7.0]


def test_retry_after_is_capped_by_retry_max_wait(conn: None, m: rm.Mocker, sleeps: list[float]) -> None:
    hook = CapillaryHook(retry_limit=3, retry_max_wait=5)
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(
        STATUS_URL,
        [{"status_code": 429, "headers": {"Retry-After": "3600"}, "json": failure("slow", 429)}, {"json": envelope()}],
    )
    hook.get_upload_jobs(SERIES)
    assert sleeps == [5.0]


def test_backoff_waits_grow_and_stay_below_retry_max_wait(conn: None, m: rm.Mocker, sleeps: list[float]) -> None:
    hook = CapillaryHook(retry_limit=4, retry_max_wait=60)
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, status_code=503, json=failure("down", 503))
    with pytest.raises(CapillaryApiError):
        hook.get_upload_jobs(SERIES)
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[2] <= 60


# -- upload retries: never blindly once the body may have been sent ---------------------------------


def test_an_upload_of_unknown_outcome_keeps_capillarys_http_status_and_request_id(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.post(UPLOAD_URL, status_code=503, json=failure("unable to post", 503), headers={"X-Cap-Requestid": "u503"})
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    with pytest.raises(CapillaryUploadOutcomeUnknown) as info:
        upload(hook, path)
    assert (info.value.http_status, info.value.request_id, info.value.file_name) == (503, "u503", "batch.csv")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"exc": requests.ConnectionError("Connection aborted.")}, id="broken"),
        pytest.param({"exc": requests.ReadTimeout("no answer")}, id="read-timeout"),
        pytest.param({"status_code": 200, "text": '{"success": true, "resu'}, id="unreadable"),
        pytest.param({"status_code": 503, "json": {"success": False, "message": "unable to post"}}, id="5xx"),
    ],
)
def test_upload_is_not_retried_once_the_body_may_have_been_stored(
    hook: CapillaryHook,
    m: rm.Mocker,
    tmp_path: Path,
    sleeps: list[float],
    answer: dict[str, Any],
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    posted = m.post(UPLOAD_URL, **answer)
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    with pytest.raises(CapillaryUploadOutcomeUnknown, match="may or may not have been stored"):
        upload(hook, path)
    assert posted.call_count == 1


def test_upload_is_retried_with_the_whole_file_after_429(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=refused_once(bodies, 429, "Too many requests"))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    assert upload(hook, path).job_id == 11
    assert posted.call_count == 2
    assert bodies[1].count(CSV) == 1


def test_upload_is_retried_when_no_connection_could_be_made(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    # What requests raises when the TCP connection cannot be made: nothing of the body was sent.
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    refused = requests.ConnectionError(MaxRetryError(None, UPLOAD_URL, reason=reason))  # type: ignore[arg-type]
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, [{"exc": refused}, {"json": capture_bodies(bodies)}])
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    assert upload(hook, path).job_id == 11
    assert posted.call_count == 2


def test_upload_is_retried_after_a_connect_timeout(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    posted = m.post(UPLOAD_URL, [{"exc": requests.ConnectTimeout("connect")}, {"json": capture_bodies([])}])
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    assert upload(hook, path).job_id == 11
    assert posted.call_count == 2


# -- multipart upload -------------------------------------------------------------------------------


def test_upload_sends_file_and_identifier_fields_as_multipart(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    upload(hook, path, column=1, identifier="EMAIL")
    fields = multipart_fields(bodies[0], posted.last_request.headers["Content-Type"])
    assert fields == {
        "customerIdentifier": (b"EMAIL", None),
        "customerIdentifierColumn": (b"1", None),
        "file": (CSV, "batch.csv"),
    }


def test_upload_sends_column_zero_as_the_string_0(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    upload(hook, path, column=0)
    fields = multipart_fields(bodies[0], posted.last_request.headers["Content-Type"])
    assert fields["customerIdentifierColumn"] == (b"0", None)


def test_upload_without_column_sends_no_column_field(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    path = tmp_path / "c.csv"
    path.write_bytes(b"code\nABC123\n")
    upload(hook, path, column=None, identifier="NOT_TAGGED")
    fields = multipart_fields(bodies[0], posted.last_request.headers["Content-Type"])
    assert set(fields) == {"customerIdentifier", "file"}
    assert fields["customerIdentifier"] == (b"NOT_TAGGED", None)


def test_upload_sends_the_token_header_and_multipart_content_type(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    posted = m.post(UPLOAD_URL, json=capture_bodies([]))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    upload(hook, path)
    headers = posted.last_request.headers
    assert headers["X-CAP-API-OAUTH-TOKEN"] == "tok-1"
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")


def test_upload_declares_content_length_of_the_whole_body(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV * 100)
    upload(hook, path)
    headers = posted.last_request.headers
    assert "Transfer-Encoding" not in headers
    assert int(headers["Content-Length"]) == len(bodies[0])


def test_upload_returns_the_started_job(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.post(UPLOAD_URL, json=capture_bodies([]))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    job = upload(hook, path)
    assert (job.job_id, job.status, job.uploaded_file_name) == (11, UploadStatus.STARTED, "batch.csv")


def test_upload_of_a_file_object_sends_it_from_its_current_position(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    handle = io.BytesIO(b"SKIPPED" + CSV)
    handle.seek(len(b"SKIPPED"))
    upload(hook, handle)
    fields = multipart_fields(bodies[0], posted.last_request.headers["Content-Type"])
    assert fields["file"] == (CSV, "batch.csv")
    assert int(posted.last_request.headers["Content-Length"]) == len(bodies[0])


def test_upload_of_an_object_storage_path_sends_the_file(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(UPLOAD_URL, json=capture_bodies(bodies))
    (tmp_path / "c.csv").write_bytes(CSV)
    upload(hook, ObjectStoragePath(f"file://{tmp_path}/c.csv"))
    fields = multipart_fields(bodies[0], posted.last_request.headers["Content-Type"])
    assert fields["file"] == (CSV, "batch.csv")
    assert int(posted.last_request.headers["Content-Length"]) == len(bodies[0])


def test_upload_reads_the_file_in_blocks_never_whole(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    m.post(UPLOAD_URL, json=capture_bodies(bodies, chunk=4096))
    data = CSV * 5000  # about 250 KB
    source = RecordingFile(data)
    upload(hook, source)
    assert bodies[0].count(data) == 1
    assert len(source.read_sizes) > 10
    assert all(size is not None and 0 <= size <= 4096 for size in source.read_sizes)


def test_upload_closes_a_file_it_opened_from_a_path(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[IO[bytes]] = []
    real_open = open

    def recording_open(*args: Any, **kwargs: Any) -> Any:
        handle = real_open(*args, **kwargs)
        opened.append(handle)
        return handle

    monkeypatch.setattr("builtins.open", recording_open)
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.post(UPLOAD_URL, json=capture_bodies([]))
    path = tmp_path / "c.csv"
    path.write_bytes(CSV)
    upload(hook, path)
    csv_handles = [h for h in opened if getattr(h, "name", None) == str(path)]
    assert len(csv_handles) == 1
    assert csv_handles[0].closed


def test_upload_with_unknown_identifier_type_sends_nothing(hook: CapillaryHook, m: rm.Mocker) -> None:
    with pytest.raises(CapillaryError, match="customer_identifier must be one of"):
        upload(hook, io.BytesIO(CSV), identifier="PHONE")
    assert m.call_count == 0


# -- connection test --------------------------------------------------------------------------------


def test_test_connection_succeeds_with_a_token_and_uploads_nothing(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    ok, message = hook.test_connection()
    assert ok is True
    assert "capillary_default" in message
    assert [request.url for request in m.request_history] == [TOKEN_URL]


def test_test_connection_reports_refused_credentials_without_the_secret(hook: CapillaryHook, m: rm.Mocker) -> None:
    body = {"data": None, "errors": [{"code": 320001, "message": "Invalid client key and secret"}]}
    m.post(TOKEN_URL, status_code=401, json=body)
    ok, message = hook.test_connection()
    assert ok is False
    assert "320001" in message
    assert SECRET not in message


def test_test_connection_asks_for_a_fresh_token_even_when_one_is_cached(hook: CapillaryHook, m: rm.Mocker) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    hook.get_token()
    hook.test_connection()
    assert token.call_count == 2


# -- redeemed coupons -------------------------------------------------------------------------------

REDEEM_URL = f"{COUPONS}/coupon/api/v1/upload/redeemFile/{SERIES}"
REDEEM_STATUS_URL = f"{COUPONS}/coupon/api/v1/upload/getUploadRedeemedCouponStatus/{SERIES}"
REDEEM_CSV = b"redeemedDateInMillis,redeemedAt,mobile,couponCode\n1764547200000,till-1,919800000001,ABC123\n"


def redeem_envelope(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": True,
        "status": 200,
        "result": {"fileName": "stored.csv", "redeemUploadJobStatuses": list(items)},
    }


def redeem_item(job_id: int = 21, status: str = "QUEUED") -> dict[str, Any]:
    return {"jobId": job_id, "uploadRedeemedCouponStatus": status, "uploadedFileName": f"file_{job_id}.csv"}


def test_redeemed_upload_sends_the_kind_fields_and_reads_the_redeemed_job_list(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    bodies: list[bytes] = []
    posted = m.post(REDEEM_URL, json=capture_bodies(bodies, answer=redeem_envelope(redeem_item(21))))
    path = tmp_path / "r.csv"
    path.write_bytes(REDEEM_CSV)
    job = hook.upload_redeemed_coupon_file(
        SERIES,
        path,
        file_name="r.csv",
        customer_identifier="MOBILE",
        coupon_identifier="COUPON_CODE",
        upload_headers={"redeemedDateInMillis": 0, "redeemedAt": 1, "mobile": 2, "couponCode": 3},
        details="POS export",
    )
    assert (job.job_id, job.status, job.kind) == (21, "QUEUED", "redeemed_coupon")
    fields = multipart_fields(bodies[0], posted.last_request.headers["Content-Type"])
    assert fields["customerIdentifier"][0] == b"MOBILE"
    assert fields["couponIdentifier"][0] == b"COUPON_CODE"
    assert json.loads(fields["uploadHeaders"][0]) == {
        "redeemedDateInMillis": 0,
        "redeemedAt": 1,
        "mobile": 2,
        "couponCode": 3,
    }
    assert fields["Details"][0] == b"POS export"
    assert fields["file"] == (REDEEM_CSV, "r.csv")


def test_redeemed_upload_refuses_not_tagged_before_sending(hook: CapillaryHook, m: rm.Mocker, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(REDEEM_CSV)
    with pytest.raises(
        CapillaryConfigError, match="customer_identifier must be one of MOBILE, EMAIL, EXTERNAL_ID, USER_ID"
    ):
        hook.upload_redeemed_coupon_file(
            SERIES,
            path,
            file_name="r.csv",
            customer_identifier="NOT_TAGGED",
            coupon_identifier="COUPON_CODE",
            upload_headers={},
        )
    assert m.call_count == 0


def test_redeemed_upload_refuses_an_unknown_coupon_identifier_before_sending(
    hook: CapillaryHook, m: rm.Mocker, tmp_path: Path
) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(REDEEM_CSV)
    with pytest.raises(CapillaryConfigError) as info:
        hook.upload_redeemed_coupon_file(
            SERIES,
            path,
            file_name="r.csv",
            customer_identifier="MOBILE",
            coupon_identifier="CODE",
            upload_headers={},
        )
    assert str(info.value) == "coupon_identifier must be one of COUPON_CODE, COUPON_ID, not 'CODE'"
    assert m.call_count == 0


def test_redeemed_status_reads_the_redeemed_status_field(hook: CapillaryHook, m: rm.Mocker) -> None:
    from capillary_provider.kinds import REDEEMED_COUPON

    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(REDEEM_STATUS_URL, json=redeem_envelope(redeem_item(21, "COMPLETED"), redeem_item(22, "PROCESSING")))
    first, second = hook.get_upload_jobs(SERIES, REDEEMED_COUPON)
    assert (first.status, first.is_terminal) == ("COMPLETED", True)
    assert (second.status, second.is_terminal) == ("PROCESSING", False)  # unknown: in progress, never success


# -- series -----------------------------------------------------------------------------------------

SERIES_URL = f"{API}/v2/coupon/series"


def test_series_read_returns_the_series_asked_for_from_the_api_host(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    read = m.get(SERIES_URL, json={"entity": [{"id": SERIES, "validTillDate": "2030-09-30T00:00:00+05:30"}]})
    assert hook.get_coupon_series(SERIES) == {"id": SERIES, "validTillDate": "2030-09-30T00:00:00+05:30"}
    assert read.last_request.qs == {"ids": [str(SERIES)]}
    assert read.last_request.headers["X-CAP-API-OAUTH-TOKEN"] == "tok-1"


def test_series_read_returns_none_for_a_series_capillary_does_not_list(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(SERIES_URL, json={"entity": [], "warnings": []})
    assert hook.get_coupon_series(SERIES) is None


def test_series_read_403_is_a_permanent_error(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(SERIES_URL, status_code=403, json={"message": "access denied"})
    with pytest.raises(CapillaryPermanentApiError, match="access denied"):
        hook.get_coupon_series(SERIES)


# -- connection settings ----------------------------------------------------------------------------


def _extra_connection(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = {"conn_type": "capillary", "host": "api.example.com", "login": KEY, "password": SECRET, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", json.dumps(conn))


def test_connection_extras_set_verify_proxies_and_timeout_of_every_call(
    monkeypatch: pytest.MonkeyPatch, m: rm.Mocker, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    _extra_connection(monkeypatch, verify=str(bundle), proxies={"https": "http://proxy.example:3128"}, timeout=[4, 9])
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(f"{API}/coupon/api/v1/upload/getUploadStatus/{SERIES}", json=envelope())
    hook = CapillaryHook()
    hook.get_upload_jobs(SERIES)
    for request in m.request_history:
        assert request.verify == str(bundle)
        assert request.proxies == {"https": "http://proxy.example:3128"}
        assert request.timeout == (4.0, 9.0)


def test_connection_extra_verify_false_turns_certificate_checks_off(
    monkeypatch: pytest.MonkeyPatch, m: rm.Mocker
) -> None:
    _extra_connection(monkeypatch, verify="false")
    m.post(TOKEN_URL, json=token_body("tok-1"))
    CapillaryHook().get_token()
    assert m.last_request.verify is False


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"timeout": "soon"}, "'timeout' must be seconds or \\[connect, read\\]"),
        ({"proxies": ["http://proxy:3128"]}, "'proxies' must map a scheme to a proxy URL"),
        ({"verify": 3}, "'verify' must be true, false or the path of a CA bundle"),
    ],
)
def test_a_wrong_connection_extra_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, m: rm.Mocker, extra: dict[str, Any], words: str
) -> None:
    _extra_connection(monkeypatch, **extra)
    with pytest.raises(CapillaryConfigError, match=words):
        CapillaryHook().get_token()
    assert m.call_count == 0


def test_connection_form_strings_set_the_proxy_and_timeouts(monkeypatch: pytest.MonkeyPatch, m: rm.Mocker) -> None:
    _extra_connection(monkeypatch, proxies="http://proxy.example:3128", timeout="5, 60", verify="", coupon_host="")
    m.post(TOKEN_URL, json=token_body("tok-1"))
    CapillaryHook().get_token()
    assert m.last_request.proxies == {"http": "http://proxy.example:3128", "https": "http://proxy.example:3128"}
    assert m.last_request.timeout == (5.0, 60.0)


# -- transport: the upload body, the adapter, errors and retries, one function at a time ------------------


def progress_reader(
    data: bytes = b"0123456789", length: int | None = None, aborted: threading.Event | None = None
) -> tuple[upload_body_module.ProgressReader, list[tuple[int, int, float]]]:
    reports: list[tuple[int, int, float]] = []
    reader = upload_body_module.ProgressReader(
        io.BytesIO(data), len(data) if length is None else length, lambda *report: reports.append(report), aborted
    )
    return reader, reports


def test_progress_reader_length_is_the_bytes_still_to_send() -> None:
    reader, _ = progress_reader()
    reader.read(4)
    assert len(reader) == 6


def test_progress_is_reported_once_per_interval_with_bytes_sent_and_elapsed_time(clock: FakeClock) -> None:
    reader, reports = progress_reader()
    for now in (1000.0, 1009.9, 1010.0, 1019.9, 1020.0):
        clock.now = now
        reader.read(2)
    assert reports == [(6, 10, 10.0), (10, 10, 20.0)]


def test_an_aborted_upload_stops_at_its_next_read() -> None:
    aborted = threading.Event()
    reader, _ = progress_reader(aborted=aborted)
    reader.read(3)
    aborted.set()
    with pytest.raises(CouponUploadAborted, match=r"^Upload aborted after 3 of 10 bytes: the task was killed$"):
        reader.read(3)


def test_a_file_shorter_than_announced_fails_instead_of_being_read_forever() -> None:
    reader, _ = progress_reader(b"01234", length=10)
    reader.read(5)
    assert reader.read(0) == b""
    with pytest.raises(CapillaryError, match=r"^The file ended after 5 of the 10 bytes announced$"):
        reader.read(5)


def test_reading_past_the_end_of_a_complete_body_is_not_an_error() -> None:
    reader, _ = progress_reader()
    reader.read(10)
    assert reader.read(5) == b""


def test_adapter_connections_send_bodies_in_upload_blocks() -> None:
    adapter = transport_module.LargeBlockAdapter()
    for url in ("http://example.com", "https://example.com"):
        conn = adapter.poolmanager.connection_from_url(url)._get_conn()
        assert conn.blocksize == transport_module.UPLOAD_BLOCK_SIZE


def connected(adapter: Any, url: str, sock: socket.socket | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A connection of the adapter's pool for ``url``, connected as urllib3 would, but to ``sock``."""
    pool = adapter.poolmanager.connection_from_url(url)
    base = HTTPSConnection if url.startswith("https") else HTTPConnection
    monkeypatch.setattr(base, "connect", lambda conn: setattr(conn, "sock", sock))
    conn = pool.ConnectionCls(pool.host, pool.port, **pool.conn_kw)
    conn.connect()
    return conn


def test_adapter_remembers_each_connection_from_connect_until_close(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = transport_module.LargeBlockAdapter()
    for url in ("http://example.com", "https://example.com"):
        ours, theirs = socket.socketpair()
        conn = connected(adapter, url, ours, monkeypatch)
        assert conn in adapter._opened
        conn.close()
        assert conn not in adapter._opened
        theirs.close()


def test_shutdown_in_flight_cuts_both_directions_of_every_open_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = transport_module.LargeBlockAdapter()
    ours, theirs = socket.socketpair()
    closed, _ = socket.socketpair()
    closed.close()
    # cut, idle and gone; kept alive as a pool keeps its connections (the adapter holds them weakly)
    _held = [connected(adapter, "http://example.com", sock, monkeypatch) for sock in (ours, None, closed)]
    try:
        for end in (ours, theirs):
            end.settimeout(5)
        adapter.shutdown_in_flight()
        assert (theirs.recv(1), ours.recv(1)) == (b"", b"")
    finally:
        ours.close()
        theirs.close()


def raising_session(exc: Exception) -> Any:
    def request(*args: Any, **kwargs: Any) -> requests.Response:
        raise exc

    return SimpleNamespace(request=request)


WRONG_VERSION = requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)")


def test_https_to_a_plain_http_server_named_by_a_bare_host_is_a_configuration_error() -> None:
    with pytest.raises(CapillaryConfigError) as info:
        transport_module.send(raising_session(WRONG_VERSION), "GET", "https://sandbox:8080/v3/x", bare_host=True)
    assert str(info.value) == (
        "sandbox:8080 answered plain HTTP to an https request. A bare host name means https: write the host as "
        "http://sandbox:8080 in the connection if it really serves plain HTTP (a local sandbox), or check the port."
    )


@pytest.mark.parametrize(
    ("exc", "bare_host"),
    [(WRONG_VERSION, False), (requests.exceptions.SSLError("certificate verify failed"), True)],
    ids=["full-url", "other-ssl-error"],
)
def test_other_tls_failures_are_transient_and_name_the_call(exc: Exception, bare_host: bool) -> None:
    with pytest.raises(CapillaryTransientError) as info:
        transport_module.send(raising_session(exc), "GET", "https://sandbox:8080/v3/x", bare_host=bare_host)
    assert info.value.api_message == f"GET https://sandbox:8080/v3/x failed: SSLError: {exc}"


def test_a_request_error_is_transient_names_the_call_and_may_have_reached_the_server() -> None:
    with pytest.raises(CapillaryTransientError) as info:
        transport_module.send(raising_session(requests.ConnectionError("reset")), "POST", "https://h/u", bare_host=True)
    assert (info.value.api_message, info.value.reached_server) == (
        "POST https://h/u failed: ConnectionError: reset",
        True,
    )


def test_a_connection_error_without_details_may_have_reached_the_server() -> None:
    with pytest.raises(CapillaryTransientError) as info:
        transport_module.send(raising_session(requests.ConnectionError()), "POST", "https://h/u", bare_host=True)
    assert info.value.reached_server is True


def answer(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return response


def test_only_a_429_answer_is_counted_as_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    monkeypatch.setattr(transport_module.metrics, "count", lambda name, *args: counted.append(name))
    transport_module.transient_answer("busy", answer(503))
    assert counted == []
    error = transport_module.transient_answer("slow down", answer(429, {"Retry-After": "3"}))
    assert counted == [transport_module.metrics.THROTTLED]
    assert (error.api_message, error.http_status, error.retry_after) == ("slow down", 429, 3.0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("-3", 0.0), ("2.5", 2.5), ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, None)],
)
def test_retry_after_is_seconds_never_below_zero_and_none_for_a_date(header: str | None, seconds: float | None) -> None:
    assert transport_module.retry_after(answer(429, {"Retry-After": header} if header else {})) == seconds


def test_base_url_drops_spaces_and_trailing_slashes() -> None:
    assert transport_module.base_url(" api.example.com/ ") == "https://api.example.com"
    assert transport_module.base_url("http://SANDBOX//") == "http://SANDBOX"


def always_down() -> None:
    raise CapillaryTransientError("down", status_code=503)


def test_backoff_starts_between_one_and_two_seconds_and_is_capped_by_max_wait(sleeps: list[float]) -> None:
    with pytest.raises(CapillaryTransientError):
        transport_module.retrying(
            always_down, when=transport_module.is_transient, attempts=5, max_wait=3, log=RecordingLog()
        )
    assert 1 <= sleeps[0] < 2 <= sleeps[1] <= 3
    assert sleeps[2:] == [3.0, 3.0]


def test_each_retry_is_logged_with_the_error_the_attempt_and_the_pause(sleeps: list[float]) -> None:
    error = CapillaryTransientError("slow down", status_code=429, retry_after=0.5)
    calls = iter([error])

    def once_throttled() -> str:
        for exc in calls:
            raise exc
        return "ok"

    log = RecordingLog()
    assert (
        transport_module.retrying(once_throttled, when=transport_module.is_transient, attempts=2, max_wait=9, log=log)
        == "ok"
    )
    assert log.lines == [
        ("warning", f"Capillary call failed (CapillaryTransientError: {error}); attempt 1 of 2, retrying in 0.5 s")
    ]


class SizedReader(io.BytesIO):
    """A file object that knows its length (as a BatchReader does)."""

    def __len__(self) -> int:
        return len(self.getvalue())


@pytest.mark.parametrize("reader", [SizedReader, io.BytesIO], ids=["sized", "seekable"])
def test_remaining_length_counts_from_the_current_position_and_keeps_it(reader: type[io.BytesIO]) -> None:
    handle = reader(b"0123456789")
    handle.read(3)
    assert (upload_body_module.remaining_length(handle), handle.tell()) == (7, 3)


# -- the base hook: defaults, token errors, re-auth, redaction, answers ------------------------------------


def test_hook_defaults_to_five_attempts_and_a_one_minute_longest_pause(conn: None) -> None:
    hook = CapillaryHook()
    assert (hook.retry_limit, hook.retry_max_wait) == (5, 60.0)


def test_a_different_client_key_gets_its_own_token(
    hook: CapillaryHook, m: rm.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    hook.get_token()
    set_connection(monkeypatch, login="another-client-key")
    assert CapillaryHook().get_token() == "tok-2"


def test_a_fresh_hook_invalidating_drops_the_process_token(hook: CapillaryHook, m: rm.Mocker) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    hook.get_token()
    other = CapillaryHook()
    other.invalidate_token()
    assert (other.get_token(), token.call_count) == ("tok-2", 2)


def test_a_hook_refused_an_old_token_keeps_the_one_another_hook_renewed(hook: CapillaryHook, m: rm.Mocker) -> None:
    token = m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    other = CapillaryHook()
    hook.get_token(), other.get_token()
    hook.invalidate_token()
    hook.get_token()  # tok-2
    other.invalidate_token()  # other was refused tok-1: tok-2 stays
    assert (other.get_token(), token.call_count) == ("tok-2", 2)


def test_a_token_without_ttl_is_taken_as_five_minutes(hook: CapillaryHook, m: rm.Mocker, clock: FakeClock) -> None:
    token = m.post(TOKEN_URL, [{"json": {"data": {"accessToken": "tok-1"}}}, {"json": token_body("tok-2")}])
    hook.get_token()
    clock.now += 239.9  # 300 s less a lead of 300 / 5
    assert hook.get_token() == "tok-1"
    clock.now += 0.1
    assert (hook.get_token(), token.call_count) == ("tok-2", 2)


def test_connection_without_password_names_both_credentials_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, password="")
    with pytest.raises(CapillaryAuthError) as info:
        CapillaryHook().get_token()
    assert str(info.value) == (
        "Connection 'capillary_default' needs the client key (login) and client secret (password) of a "
        "Capillary API client."
    )


def test_no_token_after_every_attempt_names_the_endpoint_attempts_and_last_answer(
    hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]
) -> None:
    page = "<html>" + "x" * 300
    m.post(TOKEN_URL, status_code=503, text=page)
    with pytest.raises(CapillaryApiError) as info:
        hook.get_token()
    assert not isinstance(info.value, CapillaryTransientError)  # already retried: callers must not retry it
    assert info.value.http_status == 503
    assert info.value.api_message == (
        f"No token from {TOKEN_URL} after 3 attempts: Capillary token request failed: the answer is not JSON: "
        f"{page[:200]!r} (HTTP 503)"
    )


@pytest.mark.parametrize("errors", [None, [], ["oops"]], ids=["none", "empty", "not-objects"])
def test_a_token_answer_without_token_or_readable_errors_is_an_api_error(
    hook: CapillaryHook, m: rm.Mocker, errors: Any
) -> None:
    m.post(TOKEN_URL, json={"data": None, "errors": errors}, headers={"X-Cap-Requestid": "r-tok"})
    with pytest.raises(CapillaryApiError) as info:
        hook.get_token()
    assert type(info.value) is CapillaryApiError
    assert (info.value.api_message, info.value.http_status, info.value.request_id) == (
        "Capillary answered the token request without a token: None no token in the answer",
        200,
        "r-tok",
    )


def test_a_401_to_the_token_request_is_refused_credentials(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, status_code=401, json={"errors": [{"code": 1, "message": "unauthorized"}]})
    with pytest.raises(CapillaryAuthError, match=r": 1 unauthorized \(HTTP 401\)\. Check"):
        hook.get_token()


def test_a_404_to_the_token_request_is_a_permanent_error_with_capillary_code(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, status_code=404, json={"errors": [{"code": 123, "message": "no such path"}]})
    with pytest.raises(CapillaryPermanentApiError) as info:
        hook.get_token()
    assert not isinstance(info.value, CapillaryAuthError)
    assert (info.value.api_message, info.value.http_status) == ("token request failed: 123 no such path", 404)


def test_a_secret_echoed_in_an_error_is_replaced_by_stars(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, status_code=401, json={"errors": [{"code": 320001, "message": f"bad secret {SECRET}"}]})
    with pytest.raises(CapillaryAuthError, match=r": 320001 bad secret \*\*\* \(HTTP 401\)"):
        hook.get_token()


def test_a_reauth_is_logged_with_the_status_capillary_answered(hook: CapillaryHook, m: rm.Mocker) -> None:
    hook._log = RecordingLog()  # type: ignore[assignment]
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    m.get(STATUS_URL, [{"status_code": 498, "json": failure("expired", 498)}, {"json": envelope()}])
    hook.get_upload_jobs(SERIES)
    assert ("info", "Capillary answered 498: renewing the token and retrying once") in hook._log.lines  # type: ignore[attr-defined]


def test_a_token_refused_twice_names_the_call_and_the_request_id(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, [{"json": token_body("tok-1")}, {"json": token_body("tok-2")}])
    m.get(STATUS_URL, status_code=401, json=failure("Invalid token", 401), headers={"X-Cap-Requestid": "r401"})
    with pytest.raises(answers_module.ReauthRequired) as info:
        hook.get_upload_jobs(SERIES)
    assert (info.value.api_message, info.value.request_id) == (
        f"Capillary status request for coupon series {SERIES} failed: Invalid token; a freshly generated token "
        "was refused too",
        "r401",
    )


def test_a_status_call_that_keeps_failing_ends_with_capillary_message(
    hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, status_code=503, json=failure("down for maintenance", 503))
    with pytest.raises(CapillaryTransientError) as info:
        hook.get_upload_jobs(SERIES)
    assert info.value.api_message == f"Capillary status request for coupon series {SERIES} failed: down for maintenance"


def test_a_successful_answer_without_result_lists_no_jobs(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, json={"success": True, "result": None})
    assert hook.get_upload_jobs(SERIES) == []


def test_a_bare_coupon_host_speaking_plain_http_is_a_configuration_error(hook: CapillaryHook, m: rm.Mocker) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, exc=WRONG_VERSION)
    with pytest.raises(CapillaryConfigError, match=r"^coupons\.example\.com answered plain HTTP"):
        hook.get_upload_jobs(SERIES)


def test_hosts_given_as_https_urls_make_a_tls_failure_transient(
    monkeypatch: pytest.MonkeyPatch, m: rm.Mocker, sleeps: list[float]
) -> None:
    set_connection(monkeypatch, host=API, coupon_host=COUPONS)
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, exc=WRONG_VERSION)
    with pytest.raises(CapillaryTransientError):
        CapillaryHook(retry_limit=2).get_upload_jobs(SERIES)


def test_abort_cuts_the_sessions_open_connections_and_stops_further_uploads(
    hook: CapillaryHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = hook.session.get_adapter("https://coupons.example.com")
    ours, theirs = socket.socketpair()
    _held = connected(adapter, "https://coupons.example.com", ours, monkeypatch)  # as its pool would hold it
    try:
        theirs.settimeout(5)
        hook.abort()
        assert (hook.aborted, theirs.recv(1)) == (True, b"")
        assert adapter.poolmanager.pools.keys() == set()  # the session was closed
    finally:
        ours.close()
        theirs.close()


def test_abort_before_any_call_opens_no_session(hook: CapillaryHook) -> None:
    hook.abort()
    assert hook.aborted
    assert hook._session is None


def test_the_async_connection_read_is_the_one_later_calls_use(
    hook: CapillaryHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the triggerer's event loop the connection is read once, asynchronously; no sync read follows."""
    read = asyncio.run(hook.aconnection())

    def no_sync_read(conn_id: str) -> Any:
        raise AssertionError("the connection was read again, synchronously")

    monkeypatch.setattr(hook, "get_connection", no_sync_read)
    assert hook.connection is read
    assert read.host


@pytest.mark.parametrize(
    ("sent", "total", "elapsed", "line"),
    [
        (3 * 2**20, 6 * 2**20, 2.0, "Upload progress: 3.0 MiB of 6.0 MiB (50.0%) at 1.5 MiB/s"),
        (512, 0, 0.0, "Upload progress: 512 B of 0 B (100.0%) at 0 B/s"),
    ],
)
def test_upload_progress_is_logged_as_sizes_percent_and_rate(sent: int, total: int, elapsed: float, line: str) -> None:
    log = RecordingLog()
    upload_body_module.log_progress(log, sent, total, elapsed)
    assert log.lines == [("info", line)]


def test_connection_type_info_is_the_capillary_entry_of_the_provider_info() -> None:
    from capillary_provider.get_provider_info import get_provider_info

    entries = [e for e in get_provider_info()["connection-types"] if e["connection-type"] == "capillary"]
    assert [form_module.connection_type_info()] == entries


def test_connection_type_info_without_a_capillary_entry_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "capillary_provider.get_provider_info.get_provider_info",
        lambda: {"connection-types": [{"connection-type": "x"}]},
    )
    with pytest.raises(LookupError, match=r"^get_provider_info declares no 'capillary' connection type$"):
        form_module.connection_type_info()


def test_a_status_answer_that_is_never_json_quotes_it_and_names_the_call(
    hook: CapillaryHook, m: rm.Mocker, sleeps: list[float]
) -> None:
    m.post(TOKEN_URL, json=token_body("tok-1"))
    m.get(STATUS_URL, status_code=502, text="<html>Bad gateway</html>")
    with pytest.raises(CapillaryTransientError) as info:
        hook.get_upload_jobs(SERIES)
    assert info.value.api_message == (
        f"Capillary status request for coupon series {SERIES} failed: "
        "the answer is not JSON: '<html>Bad gateway</html>'"
    )
