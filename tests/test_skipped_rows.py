"""invalid_rows="skip": invalid rows never reach Capillary, each is kept, as it was, in rejected_rows_to."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryConfigError, CouponFileError
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows

pytestmark = pytest.mark.integration

SERIES = 7501
BAD = {5: ("12", "C-short-mobile"), 9: ("919800000009", ""), 14: ('"9198,00"', "C-quoted")}
"""Row number in the file (1 = header) -> the invalid row: a 2-digit mobile, an empty code, a quoted comma."""

skipping_operator = partial(make_operator, series=SERIES, batch_size=10, invalid_rows="skip")
"""An operator that skips invalid rows, in batches of 10 rows."""


def file_with_bad_rows(write_csv: Callable[..., Path], rows: int = 25) -> tuple[Path, list[tuple[str, str]]]:
    """``rows`` data rows of which those at :data:`BAD` are invalid; also returns the valid ones."""
    good = iter(mobile_rows(rows))
    all_rows, valid = [], []
    for row in range(2, rows + 2):
        if row in BAD:
            all_rows.append(BAD[row])
        else:
            pair = next(good)
            all_rows.append(pair)
            valid.append(pair)
    return write_csv(all_rows), valid


def uploaded_rows(sandbox: SandboxClient) -> list[list[str]]:
    rows: list[list[str]] = []
    for job in sorted(sandbox.jobs(SERIES), key=lambda job: job["jobId"]):
        header, *data = list(csv.reader(io.StringIO(Path(job["storedPath"]).read_text())))
        assert header == ["mobile", "code"]
        rows += data
    return rows


def test_skipped_rows_never_reach_capillary_and_the_others_go_up_in_batches(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source, valid = file_with_bad_rows(write_csv)
    summary = skipping_operator(source, rejected_rows_to=str(tmp_path / "out" / "rejected.csv")).execute(context)

    assert uploaded_rows(capillary_conn) == [list(pair) for pair in valid]
    assert [job["actualRowCount"] for job in sorted(capillary_conn.jobs(SERIES), key=lambda j: j["jobId"])] == [
        10,
        10,
        2,
    ]
    assert (summary["skipped_rows"], summary["accepted_rows"], summary["status"]) == (3, 22, "FINISHED")
    assert context["ti"].xcom["summary"]["skipped_rows"] == 3


def test_each_skipped_row_is_kept_as_it_was_with_its_row_number_and_reason(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source, _ = file_with_bad_rows(write_csv)
    rejected = tmp_path / "rejected.csv"
    skipping_operator(source, rejected_rows_to=str(rejected)).execute(context)

    lines = rejected.read_bytes().splitlines()
    assert lines[0] == b"mobile,code,row,reason"
    assert lines[1].startswith(b"12,C-short-mobile,5,")
    assert lines[2].startswith(b"919800000009,,9,")
    assert lines[3].startswith(b'"9198,00",C-quoted,14,')  # the raw row, quotes and all
    reasons = [row[3] for row in csv.reader(io.StringIO(rejected.read_text()))][1:]
    assert "invalid MOBILE" in reasons[0]
    assert "empty coupon code" in reasons[1]
    assert len(lines) == 4


def test_the_rejected_rows_are_saved_before_anything_is_uploaded(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source, _ = file_with_bad_rows(write_csv)
    rejected = tmp_path / "rejected.csv"
    capillary_conn.set_series(SERIES, state="unknown")  # the upload fails after the scan, before sending
    with pytest.raises(CapillaryConfigError, match="not found"):
        skipping_operator(source, rejected_rows_to=str(rejected)).execute(context)
    assert len(rejected.read_bytes().splitlines()) == 4
    assert capillary_conn.jobs(SERIES) == []


def test_more_invalid_rows_than_the_ceiling_fail_before_sending(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source, _ = file_with_bad_rows(write_csv)
    with pytest.raises(CouponFileError, match=r"3 invalid rows, more than max_skipped_rows=2; nothing was uploaded"):
        skipping_operator(source, rejected_rows_to=str(tmp_path / "rejected.csv"), max_skipped_rows=2).execute(context)
    assert capillary_conn.requests("/upload/file/") == []


def test_a_file_without_invalid_rows_writes_no_rejected_file(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    rejected = tmp_path / "rejected.csv"
    summary = skipping_operator(write_csv(mobile_rows(12)), rejected_rows_to=str(rejected)).execute(context)
    assert not rejected.exists()
    assert "skipped_rows" not in summary
    assert summary["accepted_rows"] == 12


def test_skip_without_a_place_for_the_rejected_rows_is_a_config_error() -> None:
    with pytest.raises(CapillaryConfigError, match='invalid_rows="skip" needs rejected_rows_to'):
        CouponUploadOperator(
            task_id="t", coupon_series_id=1, source="x.csv", customer_identifier="NOT_TAGGED", invalid_rows="skip"
        )


def test_the_default_still_fails_on_the_first_invalid_file(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source, _ = file_with_bad_rows(write_csv)
    with pytest.raises(CouponFileError) as info:
        skipping_operator(source, invalid_rows="fail", rejected_rows_to=None).execute(context)
    assert str(info.value) == (
        f'{source}: 2 rows have an invalid MOBILE identifier in column 1 ("mobile"): rows 5, 14. A mobile number is'
        " 8 to 15 digits with an optional leading '+': fix or remove those rows, or check customer_identifier_column"
        " and customer_identifier.\n"
        f'{source}: 1 row has an empty coupon code in column 2 ("code"): row 9. Remove those rows or fill in a code.'
    )
    assert capillary_conn.jobs(SERIES) == []
