"""Sources on any storage: S3 through a real S3 API served locally (moto's server mode), file:// and .csv.gz.

The S3 server is moto's ``ThreadedMotoServer`` on 127.0.0.1 (no cloud account): Airflow's
``ObjectStoragePath`` reaches it through an ``aws`` connection whose extra ``endpoint_url`` points
at it, exactly as a user would point it at MinIO or any S3-compatible store.
"""

from __future__ import annotations

import gzip
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.sdk import ObjectStoragePath

from capillary_provider.exceptions import CouponFileError
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import CountingOpen, make_operator, mobile_rows

pytestmark = [pytest.mark.integration, pytest.mark.s3]

SERIES = 7301
BUCKET = "promo-exports"
AWS_CONN_ID = "aws_test"
ROWS = 25
CSV_BYTES = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(ROWS))
"""25 valid rows: with batch_size=10 they go up as batches of 10, 10 and 5 rows."""

s3_operator = partial(make_operator, series=SERIES, batch_size=10)
"""An operator on this module's series, in batches of 10 rows."""


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> dict[str, str]:
    """A bucket holding ``coupons.csv`` and ``coupons.csv.gz`` (the same rows); returns their URIs."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing-key-id",
        aws_secret_access_key="testing-secret",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="daily/coupons.csv", Body=CSV_BYTES)
    client.put_object(Bucket=BUCKET, Key="daily/coupons.csv.gz", Body=gzip.compress(CSV_BYTES))
    client.put_object(Bucket=BUCKET, Key="daily/bad.csv", Body=b"mobile,code\n12,C1\n")
    return {
        "csv": f"s3://{BUCKET}/daily/coupons.csv",
        "gz": f"s3://{BUCKET}/daily/coupons.csv.gz",
        "bad": f"s3://{BUCKET}/daily/bad.csv",
        "missing": f"s3://{BUCKET}/daily/nothing-here.csv",
    }


def stored_batches(sandbox: SandboxClient) -> list[bytes]:
    """What the sandbox received, one entry per upload job, in upload order."""
    jobs = sorted(sandbox.jobs(SERIES), key=lambda job: job["jobId"])
    return [Path(job["storedPath"]).read_bytes() for job in jobs]


def expected_batches(data: bytes = CSV_BYTES, size: int = 10) -> list[bytes]:
    header, *rows = data.splitlines(keepends=True)
    return [header + b"".join(rows[i : i + size]) for i in range(0, len(rows), size)]


# -- operator, S3 -----------------------------------------------------------------------------------


def test_operator_uploads_an_s3_csv_in_batches_with_the_header_repeated(
    bucket: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    s3_operator(bucket["csv"], source_conn_id=AWS_CONN_ID).execute(context)
    assert stored_batches(capillary_conn) == expected_batches()


def test_operator_decompresses_an_s3_csv_gz_on_the_fly(
    bucket: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    s3_operator(bucket["gz"], source_conn_id=AWS_CONN_ID).execute(context)
    assert stored_batches(capillary_conn) == expected_batches()


def test_operator_summary_for_an_s3_source_adds_up_all_batches(
    bucket: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    summary = s3_operator(bucket["csv"], source_conn_id=AWS_CONN_ID).execute(context)
    job_ids = sorted(job["jobId"] for job in capillary_conn.jobs(SERIES))
    assert (summary["status"], summary["job_ids"], summary["total_rows"], summary["accepted_rows"]) == (
        "FINISHED",
        job_ids,
        ROWS,
        ROWS,
    )
    assert context["ti"].xcom["job_ids"] == job_ids


def test_operator_accepts_an_object_storage_path_source(
    bucket: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    s3_operator(ObjectStoragePath(bucket["csv"], conn_id=AWS_CONN_ID)).execute(context)
    assert stored_batches(capillary_conn) == expected_batches()


def test_invalid_s3_file_fails_before_anything_is_uploaded(
    bucket: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponFileError, match=r"bad\.csv.*invalid MOBILE identifier"):
        s3_operator(bucket["bad"], source_conn_id=AWS_CONN_ID).execute(context)
    assert capillary_conn.jobs(SERIES) == []


def test_missing_s3_object_fails_naming_the_uri(
    bucket: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponFileError, match=r"nothing-here\.csv: does not exist"):
        s3_operator(bucket["missing"], source_conn_id=AWS_CONN_ID).execute(context)
    assert capillary_conn.jobs(SERIES) == []


# -- hook, S3 ---------------------------------------------------------------------------------------


def test_hook_uploads_an_s3_object_storage_path_byte_for_byte(
    bucket: dict[str, str], capillary_conn: SandboxClient
) -> None:
    job = CapillaryHook().upload_coupon_file(
        SERIES,
        ObjectStoragePath(bucket["csv"], conn_id=AWS_CONN_ID),
        file_name="from-s3.csv",
        customer_identifier="MOBILE",
        customer_identifier_column=0,
    )
    [stored] = [job_view for job_view in capillary_conn.jobs(SERIES) if job_view["jobId"] == job.job_id]
    assert (stored["uploadedFileName"], Path(stored["storedPath"]).read_bytes()) == ("from-s3.csv", CSV_BYTES)


# -- local: file:// and .csv.gz ---------------------------------------------------------------------


@pytest.fixture
def local_csv(tmp_path: Path) -> Path:
    path = tmp_path / "coupons.csv"
    path.write_bytes(CSV_BYTES)
    return path


def test_operator_reads_a_file_uri(local_csv: Path, capillary_conn: SandboxClient, context: dict[str, Any]) -> None:
    s3_operator(f"file://{local_csv}").execute(context)
    assert stored_batches(capillary_conn) == expected_batches()


def test_operator_decompresses_a_local_csv_gz(
    tmp_path: Path, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    path = tmp_path / "coupons.csv.gz"
    path.write_bytes(gzip.compress(CSV_BYTES))
    s3_operator(str(path)).execute(context)
    assert stored_batches(capillary_conn) == expected_batches()


def test_operator_decompresses_a_gz_file_uri_in_a_single_batch(
    tmp_path: Path, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    path = tmp_path / "coupons.CSV.GZ"
    path.write_bytes(gzip.compress(CSV_BYTES))
    s3_operator(f"file://{path}", batch_size=500_000).execute(context)
    assert stored_batches(capillary_conn) == [CSV_BYTES]


def test_corrupt_csv_gz_fails_before_anything_is_uploaded(
    tmp_path: Path, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    path = tmp_path / "coupons.csv.gz"
    path.write_bytes(gzip.compress(CSV_BYTES)[:-20])
    with pytest.raises(CouponFileError, match="truncated or corrupt"):
        s3_operator(str(path)).execute(context)
    assert capillary_conn.jobs(SERIES) == []


# -- every remote byte read once -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "gz"])
def test_a_remote_source_is_fetched_once_for_validation_and_upload(
    capillary_conn: SandboxClient,
    bucket: dict[str, str],
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    counting = CountingOpen(ObjectStoragePath.open)
    monkeypatch.setattr(ObjectStoragePath, "open", lambda path, *a, **kw: counting(path, *a, **kw))
    stored = CSV_BYTES if kind == "csv" else gzip.compress(CSV_BYTES)

    s3_operator(bucket[kind], source_conn_id="aws_test").execute(context)

    assert counting.bytes_read == len(stored)  # validation read it, the upload read the local spool
    assert stored_batches(capillary_conn) == expected_batches()


def test_skipped_rows_of_an_s3_source_are_written_to_s3(
    capillary_conn: SandboxClient, bucket: dict[str, str], context: dict[str, Any]
) -> None:
    source = ObjectStoragePath(f"s3://{BUCKET}/daily/mixed.csv", conn_id=AWS_CONN_ID)
    source.write_bytes(CSV_BYTES + b"12,C-bad\n")
    rejected = f"s3://{BUCKET}/rejected/2026-12-01/mixed.csv"

    summary = s3_operator(
        str(source), source_conn_id=AWS_CONN_ID, invalid_rows="skip", rejected_rows_to=rejected
    ).execute(context)

    assert stored_batches(capillary_conn) == expected_batches()
    assert summary["skipped_rows"] == 1
    lines = ObjectStoragePath(rejected, conn_id=AWS_CONN_ID).read_bytes().splitlines()
    assert lines[0] == b"mobile,code,row,reason"
    assert lines[1].startswith(b"12,C-bad,27,")


def test_a_pattern_on_s3_uploads_every_matching_object(
    capillary_conn: SandboxClient, bucket: dict[str, str], context: dict[str, Any]
) -> None:
    for name in ("many/a.csv", "many/b.csv"):
        ObjectStoragePath(f"s3://{BUCKET}/{name}", conn_id=AWS_CONN_ID).write_bytes(CSV_BYTES)
    # The same codes twice: Capillary rejects the second file's rows as duplicates, which the summary shows.
    summary = s3_operator(f"s3://{BUCKET}/many/*.csv", source_conn_id=AWS_CONN_ID, max_error_rows=None).execute(context)
    assert [f["source"] for f in summary["files"]] == [f"s3://{BUCKET}/many/a.csv", f"s3://{BUCKET}/many/b.csv"]
    assert [(f["total_rows"], f["accepted_rows"]) for f in summary["files"]] == [(25, 25), (25, 0)]
    assert stored_batches(capillary_conn) == expected_batches() * 2


def test_an_s3_source_is_moved_to_an_s3_archive_after_the_verdict(
    capillary_conn: SandboxClient, bucket: dict[str, str], context: dict[str, Any]
) -> None:
    source = ObjectStoragePath(f"s3://{BUCKET}/incoming/today.csv", conn_id=AWS_CONN_ID)
    source.write_bytes(CSV_BYTES)
    s3_operator(str(source), source_conn_id=AWS_CONN_ID, archive_to=f"s3://{BUCKET}/processed/2026-12-01").execute(
        context
    )
    assert not source.exists()
    archived = ObjectStoragePath(f"s3://{BUCKET}/processed/2026-12-01/today.csv", conn_id=AWS_CONN_ID)
    assert archived.read_bytes() == CSV_BYTES


def test_a_tab_separated_s3_export_with_extra_columns_goes_up_as_two_columns(
    capillary_conn: SandboxClient, bucket: dict[str, str], context: dict[str, Any]
) -> None:
    rows = mobile_rows(ROWS)
    text = "id\tmobile\tcode\n" + "".join(f"{n}\t{m}\t{c}\n" for n, (m, c) in enumerate(rows))
    source = ObjectStoragePath(f"s3://{BUCKET}/exports/tabs.tsv", conn_id=AWS_CONN_ID)
    source.write_bytes(text.encode())
    s3_operator(
        str(source), source_conn_id=AWS_CONN_ID, delimiter="tab", customer_identifier_column=1, coupon_code_column=2
    ).execute(context)
    assert stored_batches(capillary_conn) == expected_batches()
