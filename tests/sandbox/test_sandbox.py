"""The Capillary sandbox, over real HTTP on 127.0.0.1 (one behaviour per test)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from capillary_provider.sandbox.testing import SandboxClient, SandboxStartError, running_sandbox
from tests.conftest import holds_throughout, wait_for
from tests.sandbox.endpoints import post_form, status, statuses_seen, upload

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TOKEN_URL = "/v3/oauth/token/generate"
JOB_KEYS = {
    "jobId", "uploadStatus", "createdOn", "updatedOn", "errorFileUrl", "successFileUrl", "uploadedFileUrl",
    "totalUploadedCount", "actualRowCount", "errorCount", "uploadTableName", "uploadedFileName",
    "audienceGroupId", "audienceGroupVersionId",
}  # fmt: skip
PREEXISTING = "PREEXIST1"


@pytest.fixture(scope="module")
def existing_codes() -> str:
    """The sandbox's ``--existing-codes`` file: one code and a blank line, which it skips."""
    return f"{PREEXISTING}\n\n"


def job_of(response: requests.Response) -> dict[str, Any]:
    job: dict[str, Any] = response.json()["result"]["uploadJobStatuses"][0]
    return job


def finished(sbx: SandboxClient, token: str, content: str, **kwargs: Any) -> dict[str, Any]:
    """Upload, wait for the job to end, return its public (Capillary) view."""
    response = upload(sbx, token, content, **kwargs)
    assert response.status_code == 200, response.text
    job_id = job_of(response)["jobId"]
    sbx.wait_for_job(job_id)
    series = kwargs.get("series", 7)
    return next(j for j in status(sbx, token, series).json()["result"]["uploadJobStatuses"] if j["jobId"] == job_id)


def post_token(sbx: SandboxClient, key: str | None = None, secret: str | None = None) -> requests.Response:
    body = {"key": key or sbx.key, "secret": secret or sbx.secret}
    return requests.post(f"{sbx.url}{TOKEN_URL}", json=body, timeout=10)


# --- basics, auth ---------------------------------------------------------------------------------


def test_health_answers_ok(sbx: SandboxClient) -> None:
    assert requests.get(f"{sbx.url}/_sandbox/health", timeout=5).json() == {"ok": True}


def test_token_is_issued_for_valid_credentials_in_oauth_envelope(sbx: SandboxClient) -> None:
    response = post_token(sbx)
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] is None
    assert body["data"]["ttlSeconds"] == 3600
    assert body["data"]["accessToken"].startswith("sbx-tok-")
    assert post_token(sbx).json()["data"]["accessToken"] != body["data"]["accessToken"]


def test_bad_credentials_get_401_with_code_320001(sbx: SandboxClient) -> None:
    response = post_token(sbx, secret="wrong")
    assert response.status_code == 401
    assert response.json() == {
        "data": None,
        "errors": [{"code": 320001, "message": "Invalid client key and secret"}],
    }


def test_token_prefix_is_configurable() -> None:
    with running_sandbox(token_prefix="custom-") as other:
        assert other.token().startswith("custom-")


def test_missing_token_is_401_invalid_token(sbx: SandboxClient) -> None:
    response = status(sbx, None)
    assert response.status_code == 401
    assert response.json() == {"success": False, "status": 401, "message": "Invalid token"}


def test_unknown_token_is_401_invalid_token(sbx: SandboxClient) -> None:
    response = upload(sbx, "sbx-tok-made-up", "code\nA1\n")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token"
    assert sbx.jobs() == []


def test_token_header_name_is_case_insensitive(sbx: SandboxClient, token: str) -> None:
    for header in ("X-CAP-API-OAUTH-TOKEN", "x-cap-api-oauth-token", "X-Cap-Api-Oauth-Token"):
        response = requests.get(f"{sbx.url}/coupon/api/v1/upload/getUploadStatus/7", headers={header: token}, timeout=5)
        assert response.status_code == 200


def test_expired_token_is_498_with_expiry_time(sbx: SandboxClient) -> None:
    sbx.add_fault("token", "expire_tokens", seconds=0.2)
    short = sbx.token()
    assert status(sbx, short).status_code == 200
    wait_for(lambda: status(sbx, short).status_code == 498, "the token never expired")
    response = status(sbx, short)
    assert response.status_code == 498
    body = response.json()
    assert body["success"] is False
    assert body["status"] == 498
    assert body["message"].startswith("Token expired at 20")


def test_every_response_carries_a_request_id(sbx: SandboxClient, token: str) -> None:
    responses = [
        post_token(sbx),
        post_token(sbx, secret="bad"),
        status(sbx, token),
        status(sbx, None),
        upload(sbx, token, "code\nA1\n"),
        requests.get(f"{sbx.url}/_sandbox/health", timeout=5),
    ]
    ids = [r.headers.get("X-Cap-Requestid") for r in responses]
    assert all(ids)
    assert len(set(ids)) == len(ids)


# --- upload ---------------------------------------------------------------------------------------


def test_upload_answers_a_started_job_in_the_capillary_envelope(sbx: SandboxClient, token: str) -> None:
    response = upload(sbx, token, "code\nA1\n", series=42, name="spring sale.csv")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["status"] == 200
    result = body["result"]
    assert result["orgId"] == 0
    assert result["couponSeriesId"] == 42
    stem, millis, series = result["fileName"].removesuffix(".csv").rsplit("_", 2)
    assert (stem, series) == ("spring_sale", "42")
    assert millis.isdigit()
    [job] = result["uploadJobStatuses"]
    assert set(job) == JOB_KEYS
    assert job["uploadStatus"] == "STARTED"
    assert job["uploadedFileName"] == "spring sale.csv"
    assert job["createdOn"].isdigit()
    assert job["updatedOn"].isdigit()
    assert job["errorFileUrl"] is None
    assert job["successFileUrl"] is None
    assert job["uploadTableName"] is None
    assert job["audienceGroupId"] is None


def test_job_ids_increase(sbx: SandboxClient, token: str) -> None:
    ids = [job_of(upload(sbx, token, f"code\nA{i}\n"))["jobId"] for i in range(3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("series", ["0", "-3", "abc", "1.5"])
def test_upload_rejects_a_series_id_that_is_not_a_positive_integer(sbx: SandboxClient, token: str, series: str) -> None:
    response = upload(sbx, token, "code\nA1\n", series=series)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["status"] == 400
    assert "couponSeriesId" in body["message"]


@pytest.mark.parametrize(
    ("identifier", "column", "expected"),
    [
        (None, None, "customerIdentifier"),
        ("PHONE", None, "customerIdentifier"),
        ("MOBILE", "first", "customerIdentifierColumn"),
    ],
)
def test_upload_with_missing_or_invalid_fields_is_400(
    sbx: SandboxClient, token: str, identifier: str | None, column: str | None, expected: str
) -> None:
    response = upload(sbx, token, "m,code\n91987654321,A1\n", identifier=identifier, column=column)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert expected in response.json()["message"]
    assert sbx.jobs() == []


def test_upload_without_file_part_is_400(sbx: SandboxClient, token: str) -> None:
    response = post_form(sbx, token, "/coupon/api/v1/upload/file/7", {"customerIdentifier": "NOT_TAGGED"}, file=None)
    assert response.status_code == 400
    assert response.json()["message"] == "file is required"


def _raw_upload_head(sbx: SandboxClient, token: str, content_length: int) -> socket.socket:
    host, port = sbx.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        (
            f"POST /coupon/api/v1/upload/file/7 HTTP/1.1\r\nHost: {host}\r\n"
            f"X-CAP-API-OAUTH-TOKEN: {token}\r\n"
            "Content-Type: multipart/form-data; boundary=XyZ\r\n"
            f"Content-Length: {content_length}\r\n\r\n"
        ).encode()
    )
    return sock


def test_token_is_checked_before_the_body_is_read(sbx: SandboxClient) -> None:
    sock = _raw_upload_head(sbx, "sbx-tok-bogus", 10_000_000)  # promises 10 MB, sends none of it
    answer = b""
    try:
        while b"Invalid token" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"Invalid token" in answer


def test_no_job_is_created_until_the_whole_body_has_arrived(sbx: SandboxClient, token: str) -> None:
    sock = _raw_upload_head(sbx, token, 10_000)
    sock.sendall(
        b'--XyZ\r\nContent-Disposition: form-data; name="customerIdentifier"\r\n\r\nNOT_TAGGED\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="partial.csv"\r\n\r\ncode\nA1\n'
    )
    holds_throughout(lambda: sbx.jobs() == [], 0.3, "a job was created from a partial body")
    sock.close()
    holds_throughout(lambda: sbx.jobs() == [], 0.3, "a job was created from a cut body")


def test_job_moves_started_validated_commited_finished(sbx: SandboxClient, token: str) -> None:
    sbx.set_step_seconds(0.4)
    job_id = job_of(upload(sbx, token, "code\nA1\n"))["jobId"]
    seen = statuses_seen(
        lambda: status(sbx, token).json()["result"]["uploadJobStatuses"], job_id, "uploadStatus", "FINISHED"
    )
    assert seen == ["STARTED", "VALIDATED", "COMMITED", "FINISHED"]


def test_counts_stay_zero_until_finished(sbx: SandboxClient, token: str) -> None:
    sbx.set_step_seconds(60)
    job_id = job_of(upload(sbx, token, "code\nA1\nA2\n"))["jobId"]

    def started_with_zero_counts() -> bool:
        [job] = status(sbx, token).json()["result"]["uploadJobStatuses"]
        counts = (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"])
        return bool(job["jobId"] == job_id and job["uploadStatus"] == "STARTED" and counts == (0, 0, 0))

    holds_throughout(started_with_zero_counts, 0.3, "the counts moved before the job finished")


def test_finished_job_counts_rows_errors_and_accepted(sbx: SandboxClient, token: str) -> None:
    csv_text = (
        "mobile,code\n"
        "919876543210,GOOD1\n"
        "919876543211,\n"  # empty code
        "919876543212,THIS_CODE_IS_TOO_LONG_21\n"  # over 20 characters
        "919876543213,GOOD1\n"  # duplicate in the same file
        "12ab,GOOD2\n"  # not a mobile number
        f"919876543214,{PREEXISTING}\n"  # in --existing-codes
        "+4915112345678,GOOD3\n"
    )
    job = finished(sbx, token, csv_text, identifier="MOBILE", column="0")
    assert job["uploadStatus"] == "FINISHED"
    assert (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"]) == (7, 5, 2)


def test_error_and_success_files_are_storage_keys_of_files_in_data_dir(sbx: SandboxClient, token: str) -> None:
    job = finished(sbx, token, "code\nOK1\n\nOK1\n")
    assert job["errorFileUrl"] == f"sandbox/errors/{job['jobId']}_errors.csv"
    assert job["successFileUrl"] == f"sandbox/success/{job['jobId']}_success.csv"
    assert sbx.data_dir is not None
    errors = (sbx.data_dir / "errors" / f"{job['jobId']}_errors.csv").read_text(encoding="utf-8")
    assert errors.splitlines() == ["code,error", "OK1,coupon code already exists in the series"]
    clean = finished(sbx, token, "code\nOK2\n")
    assert clean["errorFileUrl"] is None
    assert clean["successFileUrl"] is not None


def test_codes_of_earlier_jobs_in_the_same_series_are_duplicates(sbx: SandboxClient, token: str) -> None:
    first = finished(sbx, token, "code\nDUP1\nNEW1\n", series=11)
    again = finished(sbx, token, "code\nDUP1\nNEW2\n", series=11)
    other_series = finished(sbx, token, "code\nDUP1\n", series=12)
    assert (first["errorCount"], again["errorCount"], other_series["errorCount"]) == (0, 1, 0)


def test_existing_codes_file_counts_in_every_series(sbx: SandboxClient, token: str) -> None:
    for series in (21, 22):
        job = finished(sbx, token, f"code\n{PREEXISTING}\nFRESH{series}\n", series=series)
        assert (job["actualRowCount"], job["errorCount"]) == (2, 1)


@pytest.mark.parametrize(
    ("identifier", "good", "bad"),
    [
        ("MOBILE", "+12345678", "1234567"),
        ("EMAIL", "a.b@example.com", "a.b@example"),
        ("USER_ID", "123456", "12x"),
        ("EXTERNAL_ID", "ext-9", ""),
    ],
)
def test_identifier_is_validated_by_type(sbx: SandboxClient, token: str, identifier: str, good: str, bad: str) -> None:
    job = finished(sbx, token, f"id,code\n{good},C1\n{bad},C2\n", identifier=identifier, column="0")
    assert (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"]) == (2, 1, 1)


def test_identifier_column_selects_which_column_holds_the_identifier(sbx: SandboxClient, token: str) -> None:
    job = finished(sbx, token, "code,user\nUC1,100\nUC2,abc\n", identifier="USER_ID", column="1")
    assert (job["actualRowCount"], job["errorCount"]) == (2, 1)


def test_not_tagged_takes_codes_from_the_first_column(sbx: SandboxClient, token: str) -> None:
    job = finished(sbx, token, "code\nNT1\nNT2\nNT3\n", identifier="NOT_TAGGED")
    assert (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"]) == (3, 0, 3)


@pytest.mark.parametrize("content", [b"code\n\xff\xfe\xfa\n", b""], ids=["not-utf8", "no-header"])
def test_unparseable_file_ends_errored(sbx: SandboxClient, token: str, content: bytes) -> None:
    response = upload(sbx, token, content)
    job = sbx.wait_for_job(job_of(response)["jobId"])
    assert job["uploadStatus"] == "ERRORED"
    assert job["parseError"]


# --- status ---------------------------------------------------------------------------------------


def test_status_lists_all_jobs_of_the_series_oldest_first(sbx: SandboxClient, token: str) -> None:
    ids = [job_of(upload(sbx, token, f"code\nS{i}\n", series=5, name=f"f{i}.csv"))["jobId"] for i in range(3)]
    upload(sbx, token, "code\nX\n", series=6)
    result = status(sbx, token, 5).json()["result"]
    assert [j["jobId"] for j in result["uploadJobStatuses"]] == ids
    assert all(set(j) == JOB_KEYS for j in result["uploadJobStatuses"])
    assert result["fileName"].startswith("f2_")
    assert result["couponSeriesId"] == 5


def test_status_of_an_unknown_series_is_an_empty_list(sbx: SandboxClient, token: str) -> None:
    response = status(sbx, token, 999)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "status": 200,
        "result": {"orgId": 0, "couponSeriesId": 999, "fileName": None, "uploadJobStatuses": []},
    }


# --- control endpoints ----------------------------------------------------------------------------


def test_control_jobs_can_be_filtered_by_series(sbx: SandboxClient, token: str) -> None:
    upload(sbx, token, "code\nA\n", series=31)
    upload(sbx, token, "code\nB\n", series=32)
    assert [j["couponSeriesId"] for j in sbx.jobs()] == [31, 32]
    assert [j["couponSeriesId"] for j in sbx.jobs(series_id=32)] == [32]


def test_request_log_records_calls_but_no_secrets(sbx: SandboxClient, token: str) -> None:
    upload(sbx, token, "code\nA\n", name="log-me.csv")
    status(sbx, None)
    log = sbx.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", TOKEN_URL, 200),
        ("POST", "/coupon/api/v1/upload/file/7", 200),
        ("GET", "/coupon/api/v1/upload/getUploadStatus/7", 401),
    ]
    assert log[1]["fileName"] == "log-me.csv"
    assert log[0]["time"]
    assert token not in json.dumps(log)
    assert sbx.secret not in json.dumps(log)
    assert [e["path"] for e in sbx.requests(path_contains="getUploadStatus")] == [log[2]["path"]]


def test_reset_forgets_jobs_tokens_faults_and_log(sbx: SandboxClient, token: str) -> None:
    upload(sbx, token, "code\nA\n")
    sbx.add_fault("status", "status", status=500)
    sbx.reset()
    assert sbx.jobs() == []
    assert sbx.requests() == []
    assert sbx.faults() == []
    assert status(sbx, token).status_code == 401


def test_reset_forgets_accepted_codes(sbx: SandboxClient, token: str) -> None:
    finished(sbx, token, "code\nRESET1\n")
    sbx.reset()
    assert finished(sbx, sbx.token(), "code\nRESET1\n")["errorCount"] == 0


def test_step_seconds_control_changes_the_pace(sbx: SandboxClient, token: str) -> None:
    sbx.set_step_seconds(3600)
    job_id = job_of(upload(sbx, token, "code\nP1\n"))["jobId"]
    holds_throughout(lambda: sbx.jobs()[0]["uploadStatus"] == "STARTED", 0.2, "the job moved within an hour's step")
    sbx.set_step_seconds(0.01)
    assert sbx.wait_for_job(job_id, timeout=5)["uploadStatus"] == "FINISHED"


# --- faults ---------------------------------------------------------------------------------------


def test_faults_are_off_by_default(sbx: SandboxClient) -> None:
    assert sbx.faults() == []


def test_status_fault_answers_that_status_without_creating_a_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "status", status=503)
    response = upload(sbx, token, "code\nA\n")
    assert response.status_code == 503
    assert response.json()["success"] is False
    assert response.json()["status"] == 503
    assert sbx.jobs() == []


def test_429_fault_sends_retry_after(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("status", "status", status=429, retry_after=2)
    response = status(sbx, token)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


def test_token_endpoint_status_fault_uses_the_errors_form(sbx: SandboxClient) -> None:
    sbx.add_fault("token", {"type": "status", "status": 500})
    response = post_token(sbx)
    assert response.status_code == 500
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["code"] == 500


def test_status_fault_body_replaces_the_default_body(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("status", "status", status=502, body={"html": "bad gateway"})
    assert status(sbx, token).json() == {"html": "bad gateway"}


def test_status_fault_after_body_creates_the_job_then_fails(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "status", status=500, after_body=True)
    assert upload(sbx, token, "code\nA\n").status_code == 500
    assert len(sbx.jobs()) == 1


def test_drop_before_body_closes_the_connection_and_creates_no_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "drop_before_body")
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(sbx, token, "code\nA\n")
    assert sbx.jobs() == []
    assert sbx.requests()[-1]["dropped"] == "before_body"
    assert upload(sbx, token, "code\nA\n").status_code == 200  # the rule is spent


def test_drop_after_body_closes_the_connection_but_creates_the_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "drop_after_body")
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(sbx, token, "code\nA\n", name="ghost.csv")
    [job] = sbx.jobs()
    assert job["uploadedFileName"] == "ghost.csv"
    assert sbx.wait_for_job(job["jobId"])["uploadStatus"] == "FINISHED"


def test_drop_on_token_endpoint_is_a_connection_error(sbx: SandboxClient) -> None:
    sbx.add_fault("token", "drop_before_body")
    with pytest.raises(requests.exceptions.ConnectionError):
        post_token(sbx)


def test_delay_fault_makes_the_client_time_out_but_creates_the_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "delay", seconds=1.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        upload(sbx, token, "code\nA\n", timeout=0.5)
    assert len(sbx.jobs()) == 1


def test_malformed_json_fault_answers_200_with_invalid_json(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("status", "malformed_json")
    response = status(sbx, token)
    assert response.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Invalid"):
        response.json()


def test_success_false_fault_answers_http_200_with_success_false(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "success_false")
    response = upload(sbx, token, "code\nA\n")
    assert response.status_code == 200
    assert response.json() == {"success": False, "status": 500, "message": "Injected failure"}


def test_expire_tokens_fault_applies_to_the_next_n_token_calls(sbx: SandboxClient) -> None:
    sbx.add_fault("token", "expire_tokens", times=2, seconds=0.2)
    tokens = [sbx.token() for _ in range(3)]
    wait_for(lambda: status(sbx, tokens[1]).status_code == 498, "the second token never expired")
    assert [status(sbx, t).status_code for t in tokens] == [498, 498, 200]


def test_job_errored_fault_ends_the_job_errored(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "job_errored")
    first = job_of(upload(sbx, token, "code\nE1\n"))["jobId"]
    second = job_of(upload(sbx, token, "code\nE2\n"))["jobId"]
    assert sbx.wait_for_job(first)["uploadStatus"] == "ERRORED"
    assert sbx.wait_for_job(second)["uploadStatus"] == "FINISHED"


def test_fault_rule_is_spent_after_times_calls_and_rules_apply_in_order(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("status", "status", times=2, status=503)
    sbx.add_fault("status", "status", status=500)
    assert [status(sbx, token).status_code for _ in range(4)] == [503, 503, 500, 200]


def test_clear_faults_removes_all_rules(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("status", "status", times=None, status=500)
    sbx.clear_faults()
    assert status(sbx, token).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "status", "action": {"type": "job_errored"}},
        {"endpoint": "token", "action": {"type": "explode"}},
        {"endpoint": "nowhere", "action": {"type": "malformed_json"}},
        {"endpoint": "upload", "times": 0, "action": {"type": "malformed_json"}},
    ],
)
def test_invalid_fault_rule_is_rejected_with_422(sbx: SandboxClient, rule: dict[str, Any]) -> None:
    response = requests.post(f"{sbx.url}/_sandbox/faults", json=rule, timeout=5)
    assert response.status_code == 422
    assert sbx.faults() == []


def test_cli_fault_option_preloads_rules() -> None:
    rule = {"endpoint": "token", "times": 1, "action": {"type": "status", "status": 503}}
    with running_sandbox(faults=[rule]) as other:
        assert post_token(other).status_code == 503
        assert post_token(other).status_code == 200


# --- process, CLI, memory -------------------------------------------------------------------------


def test_cli_prints_listening_line_and_writes_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / "sandbox.url"
    process = subprocess.Popen(
        [sys.executable, "-m", "capillary_provider.sandbox", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("Capillary sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert port_file.read_text(encoding="utf-8") == url
        assert requests.get(f"{url}/_sandbox/health", timeout=5).json() == {"ok": True}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_running_sandbox_reports_stderr_when_start_fails() -> None:
    with (
        pytest.raises(SandboxStartError, match="invalid --fault"),
        running_sandbox(faults=[{"endpoint": "bogus", "action": {}}]),
    ):
        pass


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_large_upload_is_streamed_to_disk_with_flat_memory(sbx: SandboxClient, token: str) -> None:
    assert sbx.pid is not None
    size = 300 * 1024 * 1024
    chunk = b"\xff" * (1024 * 1024)  # not UTF-8: the background parse gives up at once
    boundary = "sandboxboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="customerIdentifier"\r\n\r\nNOT_TAGGED\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\ncode\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(size // len(chunk)):
            yield chunk
        yield tail

    before = _peak_rss_kib(sbx.pid)
    response = requests.post(
        f"{sbx.url}/coupon/api/v1/upload/file/7",
        headers={"X-CAP-API-OAUTH-TOKEN": token, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        data=body(),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    [job] = sbx.jobs()
    assert Path(job["storedPath"]).stat().st_size == len(b"code\n") + size
    assert _peak_rss_kib(sbx.pid) - before < 64 * 1024


def test_upload_answers_started_even_when_jobs_finish_at_once(sbx: SandboxClient, token: str) -> None:
    sbx.set_step_seconds(0)
    for i in range(5):
        response = upload(sbx, token, f"code\nZ{i}\n")
        assert job_of(response)["uploadStatus"] == "STARTED"
        assert sbx.wait_for_job(job_of(response)["jobId"], timeout=5)["uploadStatus"] == "FINISHED"
