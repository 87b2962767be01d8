"""The sandbox's redeemed-coupon upload and status endpoints, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from capillary_provider.sandbox.testing import SandboxClient, SandboxStartError, running_sandbox
from tests.conftest import holds_throughout, wait_for
from tests.sandbox.endpoints import auth, post_form, status, statuses_seen, upload

pytestmark = pytest.mark.integration

SERIES = 7
PREEXISTING = "PREEXIST9"
MILLIS = "1735689600000"  # 2025-01-01T00:00:00Z
REDEEM_JOB_KEYS = {
    "jobId", "uploadRedeemedCouponStatus", "createdOn", "updatedOn", "errorFileUrl", "successFileUrl",
    "uploadedFileUrl", "totalUploadedCount", "actualRowCount", "errorCount", "uploadTableName", "uploadedFileName",
}  # fmt: skip
MOBILE_HEADERS = {"redeemedDateInMillis": 0, "redeemedAt": 1, "mobile": 2, "couponCode": 3, "billId": 4}
HEADER_ROW = "redeemed date in millis,redeemed at,mobile,coupon code,bill id\n"


@pytest.fixture(scope="module")
def existing_codes() -> str:
    """The sandbox's ``--existing-codes`` file: one code, known in every series."""
    return f"{PREEXISTING}\n"


def redeem(
    sbx: SandboxClient,
    token: str | None,
    content: str | bytes,
    series: int | str = SERIES,
    customer: str | None = "MOBILE",
    coupon: str | None = "COUPON_CODE",
    headers: dict[str, Any] | str | None = None,
    details: str | None = None,
    name: str = "redeemed.csv",
) -> requests.Response:
    data: dict[str, str] = {}
    if customer is not None:
        data["customerIdentifier"] = customer
    if coupon is not None:
        data["couponIdentifier"] = coupon
    upload_headers = MOBILE_HEADERS if headers is None else headers
    if upload_headers != "":
        data["uploadHeaders"] = upload_headers if isinstance(upload_headers, str) else json.dumps(upload_headers)
    if details is not None:
        data["Details"] = details
    return post_form(sbx, token, f"/coupon/api/v1/upload/redeemFile/{series}", data, (name, content))


def redeem_status(sbx: SandboxClient, token: str | None, series: int | str = SERIES) -> requests.Response:
    return requests.get(
        f"{sbx.url}/coupon/api/v1/upload/getUploadRedeemedCouponStatus/{series}",
        headers=auth(token),
        timeout=10,
    )


def upload_coupons(sbx: SandboxClient, token: str, rows: str, series: int = SERIES, identifier: str = "MOBILE") -> None:
    """Upload coupons (``customer,code`` rows, or codes for NOT_TAGGED) and wait until they are known."""
    response = upload(sbx, token, rows, series, identifier, column="0", name="coupons.csv")
    assert response.status_code == 200, response.text
    job = sbx.wait_for_job(response.json()["result"]["uploadJobStatuses"][0]["jobId"])
    assert job["errorCount"] == 0, job


def job_of(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()["result"]["redeemUploadJobStatuses"][0]
    return job


def completed(sbx: SandboxClient, token: str, content: str, **kwargs: Any) -> dict[str, Any]:
    """Redeem, wait for the job to end, return its public (Capillary) view."""
    job_id = job_of(redeem(sbx, token, content, **kwargs))["jobId"]
    sbx.wait_for_job(job_id)
    jobs = redeem_status(sbx, token, kwargs.get("series", SERIES)).json()["result"]["redeemUploadJobStatuses"]
    return next(job for job in jobs if job["jobId"] == job_id)


def error_lines(sbx: SandboxClient, job: dict[str, Any]) -> list[str]:
    assert sbx.data_dir is not None
    assert job["errorFileUrl"] == f"sandbox/errors/{job['jobId']}_errors.csv"
    return (sbx.data_dir / "errors" / f"{job['jobId']}_errors.csv").read_text(encoding="utf-8").splitlines()


# --- happy path -----------------------------------------------------------------------------------


def test_redeem_answers_a_queued_job_in_the_upload_envelope(sbx: SandboxClient, token: str) -> None:
    response = redeem(sbx, token, HEADER_ROW, series=42, name="store 12.csv")
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["status"]) == (True, 200)
    result = body["result"]
    assert set(result) == {"orgId", "couponSeriesId", "fileName", "redeemUploadJobStatuses"}
    assert result["couponSeriesId"] == 42
    assert result["fileName"].startswith("store_12_")
    assert result["fileName"].endswith("_42.csv")
    [job] = result["redeemUploadJobStatuses"]
    assert set(job) == REDEEM_JOB_KEYS
    assert job["uploadRedeemedCouponStatus"] == "QUEUED"
    assert job["uploadedFileName"] == "store 12.csv"
    assert (job["errorFileUrl"], job["successFileUrl"], job["uploadTableName"]) == (None, None, None)
    assert job["createdOn"].isdigit()


def test_redemptions_of_uploaded_codes_complete_without_errors(sbx: SandboxClient, token: str) -> None:
    upload_coupons(sbx, token, "mobile,code\n919876543210,RC1\n919876543211,RC2\n")
    csv_text = HEADER_ROW + f"{MILLIS},till-1,919876543210,RC1,B1\n{MILLIS},till-1,+919876543211,RC2,\n"
    job = completed(sbx, token, csv_text)
    assert job["uploadRedeemedCouponStatus"] == "COMPLETED"
    assert (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"]) == (2, 0, 2)
    assert job["errorFileUrl"] is None
    assert job["successFileUrl"] == f"sandbox/success/{job['jobId']}_success.csv"


def test_job_moves_queued_then_completed(sbx: SandboxClient, token: str) -> None:
    sbx.set_step_seconds(0.4)
    job_id = job_of(redeem(sbx, token, HEADER_ROW + f"{MILLIS},t,919876543210,NOPE,\n"))["jobId"]
    seen = statuses_seen(
        lambda: redeem_status(sbx, token).json()["result"]["redeemUploadJobStatuses"],
        job_id,
        "uploadRedeemedCouponStatus",
        "COMPLETED",
    )
    assert seen == ["QUEUED", "COMPLETED"]


def test_counts_stay_zero_while_queued(sbx: SandboxClient, token: str) -> None:
    sbx.set_step_seconds(60)
    redeem(sbx, token, HEADER_ROW + f"{MILLIS},t,919876543210,NOPE,\n")

    def queued_with_zero_counts() -> bool:
        [job] = redeem_status(sbx, token).json()["result"]["redeemUploadJobStatuses"]
        counts = (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"])
        return bool(job["uploadRedeemedCouponStatus"] == "QUEUED" and counts == (0, 0, 0))

    holds_throughout(queued_with_zero_counts, 0.3, "the counts moved while the job was queued")


def test_header_row_is_not_counted(sbx: SandboxClient, token: str) -> None:
    sbx.seed_codes(SERIES, ["H1"])
    job = completed(sbx, token, HEADER_ROW + f"{MILLIS},t,919876543210,H1,\n")
    assert (job["actualRowCount"], job["errorCount"]) == (1, 0)


def test_redeem_by_user_id_and_coupon_id(sbx: SandboxClient, token: str) -> None:
    upload_coupons(sbx, token, "user,code\n1001,UID1\n1002,UID2\n", identifier="USER_ID")
    ids = {c["code"]: c["couponId"] for c in sbx.series_codes(SERIES)}
    headers = {"userId": 0, "couponId": 1, "redeemedDateInMillis": 2, "redeemedAt": 3}
    rows = (
        f"user id,coupon id,date,till\n1001,{ids['UID1']},{MILLIS},t1\n"
        f"1002,{ids['UID1']},{MILLIS},t1\n1002,999999,{MILLIS},t1\n"
    )
    job = completed(sbx, token, rows, customer="USER_ID", coupon="COUPON_ID", headers=headers)
    assert (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"]) == (3, 2, 1)
    assert error_lines(sbx, job)[1:] == [
        f"1002,{ids['UID1']},{MILLIS},t1,coupon '{ids['UID1']}' was issued to another customer",
        f"1002,999999,{MILLIS},t1,coupon id '999999' does not exist in the series",
    ]


def test_existing_codes_are_redeemable_in_every_series(sbx: SandboxClient, token: str) -> None:
    for series in (31, 32):
        job = completed(sbx, token, HEADER_ROW + f"{MILLIS},t,919876543210,{PREEXISTING},\n", series=series)
        assert job["errorCount"] == 0


# --- row errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (f"{MILLIS},t,919876543210,UNKNOWN1,", "coupon code 'UNKNOWN1' does not exist in the series"),
        (f"{MILLIS},t,919800000000,SEEDED1,", "coupon 'SEEDED1' was issued to another customer"),
        ("1735689600,t,919876543210,SEEDED1,", "redeemedDateInMillis is not epoch milliseconds: '1735689600'"),
        ("2025-01-01,t,919876543210,SEEDED1,", "redeemedDateInMillis is not a number: '2025-01-01'"),
        (",t,919876543210,SEEDED1,", "redeemedDateInMillis is not a number: ''"),
        (f"{MILLIS},t,919876543210,,", "couponCode is empty"),
        (f"{MILLIS},t,12ab,SEEDED1,", "invalid customer identifier '12ab'"),
        (f"{MILLIS},,919876543210,SEEDED1,", "redeemedAt is empty"),
        (f"{MILLIS},t,919876543210", "row has no column 3 (couponCode)"),
    ],
    ids=[
        "unknown-code", "other-customer", "date-in-seconds", "date-not-digits", "date-empty", "empty-code",
        "bad-mobile", "empty-till", "short-row",
    ],
)  # fmt: skip
def test_each_row_error_is_counted_and_written_to_the_error_file(
    sbx: SandboxClient, token: str, row: str, error: str
) -> None:
    sbx.seed_codes(SERIES, [("SEEDED1", "919876543210")], customer_identifier="MOBILE")
    good = f"{MILLIS},t,919876543210,SEEDED1,B9"
    job = completed(sbx, token, f"{HEADER_ROW}{good}\n{row}\n")
    assert job["uploadRedeemedCouponStatus"] == "COMPLETED"
    assert (job["actualRowCount"], job["errorCount"], job["totalUploadedCount"]) == (2, 1, 1)
    assert error_lines(sbx, job) == [HEADER_ROW.strip() + ",error", f"{row},{error}"]


def test_codes_of_another_series_are_unknown(sbx: SandboxClient, token: str) -> None:
    upload_coupons(sbx, token, "mobile,code\n919876543210,OTHER1\n", series=8)
    job = completed(sbx, token, HEADER_ROW + f"{MILLIS},t,919876543210,OTHER1,\n")
    assert job["errorCount"] == 1


def test_customer_is_not_checked_when_the_code_was_issued_by_another_identifier(sbx: SandboxClient, token: str) -> None:
    sbx.seed_codes(SERIES, [("EM1", "a@example.com")], customer_identifier="EMAIL")
    sbx.seed_codes(SERIES, ["UNTAGGED1"])
    job = completed(sbx, token, HEADER_ROW + f"{MILLIS},t,919876543210,EM1,\n{MILLIS},t,919876543210,UNTAGGED1,\n")
    assert job["errorCount"] == 0


def test_email_customers_compare_case_insensitively(sbx: SandboxClient, token: str) -> None:
    sbx.seed_codes(SERIES, [("EM2", "Ann@Example.com")], customer_identifier="EMAIL")
    headers = {"email": 0, "couponCode": 1, "redeemedDateInMillis": 2, "redeemedAt": 3}
    job = completed(
        sbx, token, f"email,code,date,till\nann@example.com,EM2,{MILLIS},t\n", customer="EMAIL", headers=headers
    )
    assert job["errorCount"] == 0


@pytest.mark.parametrize("content", [b"date\n\xff\xfe\n", b""], ids=["not-utf8", "no-header"])
def test_unparseable_redeem_file_ends_errored(sbx: SandboxClient, token: str, content: bytes) -> None:
    job = sbx.wait_for_job(job_of(redeem(sbx, token, content))["jobId"])
    assert job["uploadRedeemedCouponStatus"] == "ERRORED"
    assert job["parseError"]


# --- bad requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"customer": "NOT_TAGGED"}, "customerIdentifier must be one of EMAIL, EXTERNAL_ID, MOBILE, USER_ID"),
        ({"customer": None}, "customerIdentifier is required"),
        ({"coupon": "CODE"}, "couponIdentifier must be one of COUPON_CODE, COUPON_ID"),
        ({"coupon": None}, "couponIdentifier is required"),
        ({"headers": ""}, "uploadHeaders is required"),
        ({"headers": "{mobile: 2"}, "uploadHeaders is not JSON"),
        ({"headers": "[0, 1]"}, "must be a JSON object"),
        ({"headers": {**MOBILE_HEADERS, "mobile number": 5}}, "unknown keys ['mobile number']"),
        ({"headers": {**MOBILE_HEADERS, "mobile": "2"}}, "'mobile' must be a zero-based column index"),
        ({"headers": {**MOBILE_HEADERS, "mobile": -1}}, "'mobile' must be a zero-based column index"),
        ({"headers": {**MOBILE_HEADERS, "billId": 3}}, "maps two keys to the same column"),
        ({"customer": "USER_ID"}, "lacks required keys ['userId']"),
        ({"coupon": "COUPON_ID"}, "lacks required keys ['couponId']"),
        ({"headers": {"mobile": 0, "couponCode": 1, "redeemedAt": 2}}, "lacks required keys ['redeemedDateInMillis']"),
        ({"headers": {"mobile": 0, "couponCode": 1, "redeemedDateInMillis": 2}}, "lacks required keys ['redeemedAt']"),
    ],
)
def test_bad_fields_answer_400_incorrect_or_invalid_input_and_create_no_job(
    sbx: SandboxClient, token: str, fields: dict[str, Any], expected: str
) -> None:
    response = redeem(sbx, token, HEADER_ROW, **fields)
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["success"], body["status"]) == (False, 400)
    assert body["message"].startswith("Incorrect or invalid input: ")
    assert expected in body["message"]
    assert sbx.redeemed_jobs() == []
    assert sbx.data_dir is not None
    assert not [p for p in (sbx.data_dir / "uploads").iterdir() if p.name.startswith(".incoming-")]


@pytest.mark.parametrize("series", ["0", "-1", "abc"])
def test_series_id_must_be_a_positive_integer(sbx: SandboxClient, token: str, series: str) -> None:
    response = redeem(sbx, token, HEADER_ROW, series=series)
    assert response.status_code == 400
    assert "couponSeriesId" in response.json()["message"]
    assert redeem_status(sbx, token, series).status_code == 400


def test_redeem_without_file_is_400(sbx: SandboxClient, token: str) -> None:
    fields = {"customerIdentifier": "MOBILE"}
    response = post_form(sbx, token, f"/coupon/api/v1/upload/redeemFile/{SERIES}", fields, file=None)
    assert response.status_code == 400
    assert response.json()["message"] == "file is required"


def test_token_is_checked_on_both_endpoints(sbx: SandboxClient) -> None:
    assert redeem(sbx, None, HEADER_ROW).status_code == 401
    assert redeem(sbx, "sbx-tok-made-up", HEADER_ROW).json()["message"] == "Invalid token"
    assert redeem_status(sbx, None).status_code == 401
    sbx.add_fault("token", "expire_tokens", seconds=0.1)
    short = sbx.token()
    wait_for(lambda: redeem_status(sbx, short).status_code == 498, "the token never expired")
    assert redeem(sbx, short, HEADER_ROW).status_code == 498
    assert redeem_status(sbx, short).status_code == 498
    assert sbx.redeemed_jobs() == []


# --- status, control ------------------------------------------------------------------------------


def test_status_lists_every_redeemed_job_of_the_series_apart_from_coupon_uploads(
    sbx: SandboxClient, token: str
) -> None:
    upload_coupons(sbx, token, "mobile,code\n919876543210,SEP1\n")
    ids = [job_of(redeem(sbx, token, HEADER_ROW, name=f"r{i}.csv"))["jobId"] for i in range(3)]
    redeem(sbx, token, HEADER_ROW, series=SERIES + 1)
    result = redeem_status(sbx, token).json()["result"]
    assert [job["jobId"] for job in result["redeemUploadJobStatuses"]] == ids
    assert all(set(job) == REDEEM_JOB_KEYS for job in result["redeemUploadJobStatuses"])
    assert result["fileName"].startswith("r2_")
    coupon_status = status(sbx, token, SERIES).json()["result"]["uploadJobStatuses"]
    assert len(coupon_status) == 1
    assert coupon_status[0]["jobId"] not in ids
    assert [job["jobId"] for job in sbx.jobs(SERIES)] == [coupon_status[0]["jobId"]]
    assert [job["jobId"] for job in sbx.redeemed_jobs(SERIES)] == ids
    assert len(sbx.jobs(kind="all")) == 5


def test_status_of_a_series_without_redemptions_is_an_empty_list(sbx: SandboxClient, token: str) -> None:
    assert redeem_status(sbx, token, 999).json() == {
        "success": True,
        "status": 200,
        "result": {"orgId": 0, "couponSeriesId": 999, "fileName": None, "redeemUploadJobStatuses": []},
    }


def test_control_view_records_what_was_sent(sbx: SandboxClient, token: str) -> None:
    raw = json.dumps(MOBILE_HEADERS)
    job_id = job_of(redeem(sbx, token, HEADER_ROW, headers=raw, details="partner store 12"))["jobId"]
    job_of(redeem(sbx, token, HEADER_ROW))
    first, second = sbx.redeemed_jobs(SERIES)
    assert first["jobId"] == job_id
    assert first["kind"] == "redeemed"
    assert first["uploadHeaders"] == MOBILE_HEADERS
    assert first["uploadHeadersRaw"] == raw
    assert (first["customerIdentifier"], first["couponIdentifier"]) == ("MOBILE", "COUPON_CODE")
    assert first["details"] == "partner store 12"
    assert second["details"] is None
    assert first["storedPath"].endswith(".csv")


def test_request_log_records_the_redeem_file_and_job(sbx: SandboxClient, token: str) -> None:
    job_id = job_of(redeem(sbx, token, HEADER_ROW, name="log.csv"))["jobId"]
    [entry] = sbx.requests(path_contains="redeemFile")
    assert (entry["fileName"], entry["jobId"], entry["status"]) == ("log.csv", job_id, 200)


def test_seed_codes_returns_coupon_ids_and_series_codes_lists_uploads_and_seeds(sbx: SandboxClient, token: str) -> None:
    upload_coupons(sbx, token, "mobile,code\n919876543210,UP1\n")
    seeded = sbx.seed_codes(SERIES, ["S1", ("S2", "919800000001")], customer_identifier="MOBILE")
    assert [(c["code"], c["customerIdentifier"], c["customer"]) for c in seeded] == [
        ("S1", None, None),
        ("S2", "MOBILE", "919800000001"),
    ]
    listed = sbx.series_codes(SERIES)
    assert [c["code"] for c in listed] == ["UP1", "S1", "S2"]
    assert listed[0]["customer"] == "919876543210"
    assert len({c["couponId"] for c in listed}) == 3
    assert sbx.series_codes(SERIES + 1) == []


def test_seeding_an_uploaded_code_keeps_its_id_and_changes_its_customer(sbx: SandboxClient, token: str) -> None:
    upload_coupons(sbx, token, "mobile,code\n919876543210,UP2\n")
    [before] = sbx.series_codes(SERIES)
    [after] = sbx.seed_codes(SERIES, [("UP2", "919800000002")], customer_identifier="MOBILE")
    assert after["couponId"] == before["couponId"]
    assert after["customer"] == "919800000002"


@pytest.mark.parametrize(
    "body",
    [
        {"codes": "A1"},
        {"codes": [""]},
        {"codes": [{"code": "A1", "customer": "919800000000"}]},
        {"codes": [{"code": "A1", "customer": "not-a-mobile"}], "customerIdentifier": "MOBILE"},
        {"codes": [{"code": "A1", "extra": 1}]},
    ],
)
def test_bad_seed_bodies_are_422(sbx: SandboxClient, body: dict[str, Any]) -> None:
    response = requests.post(f"{sbx.url}/_sandbox/series/{SERIES}/codes", json=body, timeout=5)
    assert response.status_code == 422
    assert sbx.series_codes(SERIES) == []


def test_reset_forgets_redeemed_jobs_and_known_codes(sbx: SandboxClient, token: str) -> None:
    sbx.seed_codes(SERIES, ["GONE1"])
    redeem(sbx, token, HEADER_ROW)
    sbx.reset()
    assert sbx.redeemed_jobs() == []
    assert sbx.series_codes(SERIES) == []
    job = completed(sbx, sbx.token(), HEADER_ROW + f"{MILLIS},t,919876543210,GONE1,\n")
    assert job["errorCount"] == 1


# --- faults ---------------------------------------------------------------------------------------


def test_redeem_upload_status_fault_creates_no_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("redeem_upload", "status", status=503, retry_after=1)
    response = redeem(sbx, token, HEADER_ROW)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["success"] is False
    assert sbx.redeemed_jobs() == []
    assert sbx.requests(path_contains="redeemFile")[0]["fault"] == "status"


def test_redeem_upload_status_fault_after_body_creates_the_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("redeem_upload", "status", status=500, after_body=True)
    assert redeem(sbx, token, HEADER_ROW).status_code == 500
    assert len(sbx.redeemed_jobs()) == 1


def test_drop_after_body_on_redeem_upload_creates_the_job(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("redeem_upload", "drop_after_body")
    with pytest.raises(requests.exceptions.ConnectionError):
        redeem(sbx, token, HEADER_ROW, name="ghost.csv")
    [job] = sbx.redeemed_jobs()
    assert job["uploadedFileName"] == "ghost.csv"
    assert sbx.wait_for_job(job["jobId"])["uploadRedeemedCouponStatus"] == "COMPLETED"


def test_job_errored_fault_ends_the_redeemed_job_errored(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("redeem_upload", "job_errored")
    first = job_of(redeem(sbx, token, HEADER_ROW))["jobId"]
    second = job_of(redeem(sbx, token, HEADER_ROW))["jobId"]
    assert sbx.wait_for_job(first)["uploadRedeemedCouponStatus"] == "ERRORED"
    assert sbx.wait_for_job(second)["uploadRedeemedCouponStatus"] == "COMPLETED"


@pytest.mark.parametrize("action", ["malformed_json", "success_false"])
def test_redeem_status_faults(sbx: SandboxClient, token: str, action: str) -> None:
    sbx.add_fault("redeem_status", action)
    response = redeem_status(sbx, token)
    assert response.status_code == 200
    if action == "success_false":
        assert response.json() == {"success": False, "status": 500, "message": "Injected failure"}
    else:
        with pytest.raises(ValueError, match=r"Expecting|Unterminated|Invalid"):
            response.json()
    assert redeem_status(sbx, token).json()["success"] is True


def test_faults_of_coupon_endpoints_do_not_touch_redeem_endpoints(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("upload", "status", times=None, status=503)
    sbx.add_fault("status", "status", times=None, status=503)
    assert redeem(sbx, token, HEADER_ROW).status_code == 200
    assert redeem_status(sbx, token).status_code == 200
    sbx.clear_faults()
    sbx.add_fault("redeem_status", "status", times=None, status=429)
    coupon_status = status(sbx, token, SERIES)
    assert coupon_status.status_code == 200
    assert redeem_status(sbx, token).status_code == 429


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "redeem_status", "action": {"type": "job_errored"}},
        {"endpoint": "redeem_status", "action": {"type": "status", "status": 500, "after_body": True}},
        {"endpoint": "redeem", "action": {"type": "malformed_json"}},
    ],
)
def test_invalid_redeem_fault_rules_are_422(sbx: SandboxClient, rule: dict[str, Any]) -> None:
    assert requests.post(f"{sbx.url}/_sandbox/faults", json=rule, timeout=5).status_code == 422


def test_data_dir_holds_the_stored_redeem_file(sbx: SandboxClient, token: str) -> None:
    job_id = job_of(redeem(sbx, token, HEADER_ROW + "x\n"))["jobId"]
    [job] = sbx.redeemed_jobs()
    assert job["jobId"] == job_id
    assert Path(job["storedPath"]).read_text(encoding="utf-8") == HEADER_ROW + "x\n"


def test_cli_series_codes_are_known_from_the_start_and_after_reset(tmp_path: Path, step_seconds: float) -> None:
    codes = tmp_path / "series9.txt"
    codes.write_text("CLI1\n\nCLI2\n", encoding="utf-8")
    with running_sandbox(step_seconds=step_seconds, series_codes={9: codes}) as other:
        token = other.token()
        rows = HEADER_ROW + f"{MILLIS},t,919876543210,CLI1,\n{MILLIS},t,919876543210,CLI2,\n"
        assert completed(other, token, rows, series=9)["errorCount"] == 0
        assert completed(other, token, rows, series=10)["errorCount"] == 2
        other.reset()
        assert [c["code"] for c in other.series_codes(9)] == ["CLI1", "CLI2"]
        assert completed(other, other.token(), rows, series=9)["errorCount"] == 0


def test_invalid_cli_series_codes_fail_start_up(tmp_path: Path) -> None:
    with (
        pytest.raises(SandboxStartError, match="invalid --series-codes"),
        running_sandbox(series_codes={9: tmp_path / "missing.txt"}),
    ):
        pass
