"""Real exports: no header row, extra columns, other delimiters; converted on the fly to what Capillary takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryConfigError, CouponFileError
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows

pytestmark = pytest.mark.integration

SERIES = 7801


def uploaded(sandbox: SandboxClient) -> list[bytes]:
    return [Path(job["storedPath"]).read_bytes() for job in sorted(sandbox.jobs(SERIES), key=lambda j: j["jobId"])]


def test_a_file_without_header_row_goes_up_with_the_header_capillary_expects(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    rows = mobile_rows(4)
    source = tmp_path / "raw.csv"
    source.write_text("".join(f"{m},{c}\n" for m, c in rows))
    summary = make_operator(source, SERIES, has_header=False).execute(context)
    assert uploaded(capillary_conn) == [b"mobile,coupon code\n" + b"".join(f"{m},{c}\n".encode() for m, c in rows)]
    assert (summary["total_rows"], summary["accepted_rows"]) == (4, 4)


def test_rows_of_a_file_without_header_are_named_as_the_file_numbers_them(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    source = tmp_path / "raw.csv"
    source.write_text("919800000001,C1\n919800000002,C2\n12,C3\n")
    with pytest.raises(CouponFileError, match=r"invalid MOBILE identifier .*: row 3\."):
        make_operator(source, SERIES, has_header=False).execute(context)


@pytest.mark.parametrize(("delimiter", "sep"), [(";", ";"), ("tab", "\t"), ("|", "|")])
def test_extra_columns_stay_home_and_other_delimiters_become_commas(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any], delimiter: str, sep: str
) -> None:
    rows = mobile_rows(3)
    lines = [sep.join(["code", "name", "mobile", "amount"])]
    lines += [sep.join([code, "Ann, Bo", mobile, "10,50"]) for mobile, code in rows]
    source = tmp_path / "export.txt"
    source.write_text("\n".join(lines) + "\n")

    summary = make_operator(
        source, SERIES, delimiter=delimiter, coupon_code_column=0, customer_identifier_column=2
    ).execute(context)

    assert uploaded(capillary_conn) == [b"code,mobile\n" + b"".join(f"{c},{m}\n".encode() for m, c in rows)]
    assert (summary["accepted_rows"], summary["rejected_rows"]) == (3, 0)  # Capillary read column 1 as the mobile


def test_the_same_column_for_code_and_identifier_is_a_config_error(tmp_path: Path, context: dict[str, Any]) -> None:
    source = tmp_path / "x.csv"
    source.write_text("a,b\n1,2\n")
    with pytest.raises(CapillaryConfigError, match="coupon_code_column and customer_identifier_column are both 0"):
        make_operator(source, SERIES, coupon_code_column=0).execute(context)


def test_an_unknown_delimiter_is_a_config_error() -> None:
    with pytest.raises(CapillaryConfigError, match="delimiter must be one of"):
        CouponUploadOperator(
            task_id="t", coupon_series_id=1, source="x", customer_identifier="NOT_TAGGED", delimiter=":"
        )


def test_a_redemption_file_without_header_row_needs_and_uses_upload_headers(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    capillary_conn.seed_codes(SERIES, [("R1", "919800000001")], customer_identifier="MOBILE")
    source = tmp_path / "pos.csv"
    source.write_text("919800000001;R1;1764547200000;till-3\n")
    headers = {"mobile": 0, "couponCode": 1, "redeemedDateInMillis": 2, "redeemedAt": 3}
    operator = RedeemedCouponUploadOperator(
        task_id="upload",
        coupon_series_id=SERIES,
        source=str(source),
        customer_identifier="MOBILE",
        upload_headers=headers,
        has_header=False,
        delimiter=";",
        poll_interval=0.1,
        deferrable=False,
    )
    summary = operator.execute(context)
    [job] = capillary_conn.redeemed_jobs(SERIES)
    assert job["uploadHeaders"] == headers
    assert Path(job["storedPath"]).read_bytes().splitlines()[0] == b"mobile,couponCode,redeemedDateInMillis,redeemedAt"
    assert (summary["status"], summary["accepted_rows"]) == ("COMPLETED", 1)
