"""RedeemedCouponUploadOperator against the sandbox over real HTTP: the coupon flow, for redemptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryConfigError, CouponFileError, CouponUploadFailed
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.sensors.coupon_upload import CouponUploadSensor
from tests.conftest import FakeTaskInstance
from tests.faultkit import run_operator, use_fast_trigger_hook

SERIES = 8101
MILLIS = "1764547200000"
DOCS_HEADER = ("redeemed date in millis", "redeemed at", "mobile", "coupon code", "bill id", "bill number", "details")

pytestmark = pytest.mark.integration


def make_redeem_operator(source: Path | str, **kwargs: Any) -> RedeemedCouponUploadOperator:
    options: dict[str, Any] = {
        "task_id": "redeem",
        "coupon_series_id": SERIES,
        "source": str(source),
        "customer_identifier": "MOBILE",
        "coupon_identifier": "COUPON_CODE",
        "poll_interval": 0.1,
        "timeout": 60,
        "deferrable": False,
    }
    options.update(kwargs)
    return RedeemedCouponUploadOperator(**options)


def seeded(sandbox: SandboxClient, count: int) -> list[tuple[str, str]]:
    """``count`` (mobile, code) pairs the series knows, each code issued to its mobile."""
    pairs = [(f"9198{n:08d}", f"R{n:07d}") for n in range(count)]
    sandbox.seed_codes(SERIES, [(code, mobile) for mobile, code in pairs], customer_identifier="MOBILE")
    return pairs


def docs_rows(pairs: list[tuple[str, str]]) -> list[tuple[str, ...]]:
    return [(MILLIS, "till-7", mobile, code, f"B{i}", f"N{i}", "") for i, (mobile, code) in enumerate(pairs)]


def test_a_docs_style_header_is_mapped_and_sent_as_upload_headers(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv(docs_rows(seeded(capillary_conn, 5)), header=DOCS_HEADER)
    summary = make_redeem_operator(source, details="POS export").execute(context)

    [job] = capillary_conn.redeemed_jobs(SERIES)
    assert job["uploadHeaders"] == {
        "redeemedDateInMillis": 0,
        "redeemedAt": 1,
        "mobile": 2,
        "couponCode": 3,
        "billId": 4,
        "billNumber": 5,
        "details": 6,
    }
    assert (job["customerIdentifier"], job["couponIdentifier"], job["details"]) == (
        "MOBILE",
        "COUPON_CODE",
        "POS export",
    )
    assert (summary["status"], summary["accepted_rows"], summary["rejected_rows"]) == ("COMPLETED", 5, 0)
    xcom = context["ti"].xcom
    assert (xcom["job_id"], xcom["job_ids"], xcom["status"]) == (job["jobId"], [job["jobId"]], "COMPLETED")
    assert xcom["summary"]["job_ids"] == [job["jobId"]]
    assert capillary_conn.jobs(SERIES) == []  # nothing went to the coupon upload endpoint


def test_explicit_upload_headers_on_a_reordered_file_work_deferred(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_fast_trigger_hook(monkeypatch)
    capillary_conn.set_step_seconds(0.5)  # still QUEUED when the operator checks before deferring
    pairs = seeded(capillary_conn, 4)
    rows = [(code, "till-1", MILLIS, mobile) for mobile, code in pairs]
    source = write_csv(rows, header=("c", "t", "d", "m"))
    headers = {"couponCode": 0, "redeemedAt": 1, "redeemedDateInMillis": 2, "mobile": 3}

    summary = run_operator(make_redeem_operator(source, upload_headers=headers, deferrable=True), context)

    [job] = capillary_conn.redeemed_jobs(SERIES)
    assert job["uploadHeaders"] == headers
    assert (summary["status"], summary["accepted_rows"]) == ("COMPLETED", 4)


def test_rejected_rows_over_the_threshold_fail_with_the_summary_in_xcom(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    pairs = seeded(capillary_conn, 3)
    rows = [*docs_rows(pairs), (MILLIS, "till-7", "919800000099", "NOT-IN-SERIES", "", "", "")]
    source = write_csv(rows, header=DOCS_HEADER)

    with pytest.raises(CouponUploadFailed, match="rejected 1 of 4 rows, more than max_error_rows=0"):
        make_redeem_operator(source).execute(context)

    summary = context["ti"].xcom["summary"]
    assert (summary["status"], summary["rejected_rows"], summary["accepted_rows"]) == ("COMPLETED", 1, 3)
    assert "max_error_rows=0" in summary["failure"]


def test_a_retry_attaches_to_the_job_instead_of_uploading_again(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv(docs_rows(seeded(capillary_conn, 3)), header=DOCS_HEADER)
    make_redeem_operator(source, wait_for_completion=False).execute(context)
    retry = {"ti": FakeTaskInstance()}  # the same task instance as `context`, next try
    retry["ti"].try_number = 2
    make_redeem_operator(source).execute(retry)

    assert len(capillary_conn.redeemed_jobs(SERIES)) == 1
    assert retry["ti"].xcom["job_ids"] == context["ti"].xcom["job_ids"]


def test_a_required_key_missing_from_the_header_fails_before_sending(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv([(MILLIS, "919800000001", "C1")], header=("redeemed date in millis", "mobile", "coupon code"))
    with pytest.raises(CouponFileError, match=r"no column for redeemedAt in the header row \(redeemed date in millis"):
        make_redeem_operator(source).execute(context)
    assert capillary_conn.requests("redeemFile") == []


def test_a_date_in_seconds_fails_before_sending_and_says_so(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv([("1764547200", "till-1", "919800000001", "C1", "", "", "")], header=DOCS_HEADER)
    seconds = r"1 row has a redemption date that looks like seconds, not milliseconds, in column 1 .*: row 2\. Multiply"
    with pytest.raises(CouponFileError, match=seconds):
        make_redeem_operator(source).execute(context)
    assert capillary_conn.requests("redeemFile") == []


def test_a_coupon_id_must_be_digits(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv(
        [(MILLIS, "till-1", "919800000001", "ABC")], header=("redeemedAt_millis", "redeemed at", "mobile", "coupon id")
    )
    operator = make_redeem_operator(
        source,
        coupon_identifier="COUPON_ID",
        upload_headers={"redeemedDateInMillis": 0, "redeemedAt": 1, "mobile": 2, "couponId": 3},
    )
    with pytest.raises(CouponFileError, match="1 row has an invalid COUPON_ID in column 4"):
        operator.execute(context)


def test_not_tagged_is_refused_as_a_config_error(write_csv: Callable[..., Path], context: dict[str, Any]) -> None:
    source = write_csv([(MILLIS, "till-1", "C1")], header=("redeemed date in millis", "redeemed at", "coupon code"))
    with pytest.raises(
        CapillaryConfigError, match="must be one of MOBILE, EMAIL, EXTERNAL_ID, USER_ID, not 'NOT_TAGGED'"
    ):
        make_redeem_operator(source, customer_identifier="NOT_TAGGED").execute(context)


# -- series check (both operators) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "words"),
    [("unknown", "does not know coupon series 8101 \\(not found\\)"), ("expired", "Coupon series 8101 expired on")],
)
def test_an_unknown_or_expired_series_fails_with_nothing_uploaded(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], state: str, words: str
) -> None:
    capillary_conn.set_series(SERIES, state=state)
    source = write_csv(docs_rows(seeded(capillary_conn, 2)), header=DOCS_HEADER)
    with pytest.raises(CapillaryConfigError, match=words):
        make_redeem_operator(source).execute(context)
    assert capillary_conn.requests("redeemFile") == []
    assert capillary_conn.redeemed_jobs(SERIES) == []


def test_a_series_read_refused_with_403_only_warns_and_the_upload_goes_on(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
) -> None:
    capillary_conn.set_series(SERIES, state="forbidden")
    source = write_csv(docs_rows(seeded(capillary_conn, 2)), header=DOCS_HEADER)
    summary = make_redeem_operator(source).execute(context)
    assert summary["status"] == "COMPLETED"
    assert len(capillary_conn.redeemed_jobs(SERIES)) == 1
    assert capillary_conn.requests("/v2/coupon/series")  # the check was made


def test_check_series_false_makes_no_series_read(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.set_series(SERIES, state="unknown")
    source = write_csv(docs_rows(seeded(capillary_conn, 2)), header=DOCS_HEADER)
    make_redeem_operator(source, check_series=False).execute(context)
    assert capillary_conn.requests("/v2/coupon/series") == []
    assert len(capillary_conn.redeemed_jobs(SERIES)) == 1


# -- waiting with a sensor ----------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_a_sensor_waits_for_redeemed_jobs_uploaded_without_waiting(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    deferrable: bool,
) -> None:
    use_fast_trigger_hook(monkeypatch)
    capillary_conn.set_step_seconds(0.5)
    source = write_csv(docs_rows(seeded(capillary_conn, 3)), header=DOCS_HEADER)
    uploaded = make_redeem_operator(source, wait_for_completion=False).execute(context)
    assert uploaded["status"] == "QUEUED"
    sensor = CouponUploadSensor(
        task_id="wait",
        coupon_series_id=SERIES,
        job_ids=uploaded["job_ids"],
        upload_kind="redeemed_coupon",
        poke_interval=0.1,
        timeout=60,
        deferrable=deferrable,
    )
    summary = run_operator(sensor, {"ti": FakeTaskInstance(task_id="wait")})  # type: ignore[arg-type]
    assert (summary["status"], summary["job_ids"], summary["accepted_rows"]) == ("COMPLETED", uploaded["job_ids"], 3)


def test_given_upload_headers_upload_only_the_mapped_columns_with_the_map_pointing_into_them(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    pairs = seeded(capillary_conn, 3)
    rows = [("store 7", code, "north", MILLIS, "till-1", mobile) for mobile, code in pairs]
    source = write_csv(rows, header=("store", "c", "region", "d", "t", "m"))
    headers = {"couponCode": 1, "redeemedDateInMillis": 3, "redeemedAt": 4, "mobile": 5}

    summary = make_redeem_operator(source, upload_headers=headers).execute(context)

    [job] = capillary_conn.redeemed_jobs(SERIES)
    assert job["uploadHeaders"] == {"couponCode": 0, "redeemedDateInMillis": 1, "redeemedAt": 2, "mobile": 3}
    sent = Path(job["storedPath"]).read_bytes().decode()
    assert sent == "c,d,t,m\n" + "".join(f"{code},{MILLIS},till-1,{mobile}\n" for mobile, code in pairs)
    assert (summary["status"], summary["accepted_rows"]) == ("COMPLETED", 3)


def test_a_header_row_with_a_column_it_does_not_map_fails_before_sending_naming_upload_headers(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    rows = [(mobile, code, MILLIS, "till-1", "store 7") for mobile, code in seeded(capillary_conn, 2)]
    source = write_csv(rows, header=("mobile", "coupon code", "redeemed date in millis", "redeemed at", "store"))

    with pytest.raises(CouponFileError) as raised:
        make_redeem_operator(source).execute(context)

    assert str(raised.value) == (
        f"{source}: has 5 columns but the header row maps 4 of them: column 4 (0-based; store) names no "
        "uploadHeaders key or repeats one. Capillary takes only the mapped columns: pass "
        "upload_headers={key: column} to upload only those, or name each column by its key."
    )
    assert capillary_conn.redeemed_jobs(SERIES) == []
