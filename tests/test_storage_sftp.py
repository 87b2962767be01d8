"""sftp:// sources through Airflow's SFTP provider, against a real SFTP server on 127.0.0.1.

The server is asyncssh's (the SSH library the provider's ``sshfs`` filesystem uses as a client too),
run by the tests in a thread with its own event loop, serving a temporary folder over password
authentication (``sftp_root``: tests/stores.py): Airflow reaches it through an ``sftp`` connection, as it
would a partner's server.
"""

from __future__ import annotations

import gzip
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CouponFileError
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows
from tests.stores import SFTP_CONN_ID

pytestmark = [pytest.mark.integration, pytest.mark.sftp]

SERIES = 7401
CSV_BYTES = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(25))

sftp_operator = partial(make_operator, series=SERIES, source_conn_id=SFTP_CONN_ID, batch_size=10)
"""An operator reading through the SFTP connection, in batches of 10 rows."""


@pytest.fixture(scope="module")
def exports(sftp_root: Path) -> dict[str, str]:
    folder = sftp_root / "exports"
    folder.mkdir()
    (folder / "coupons.csv").write_bytes(CSV_BYTES)
    (folder / "coupons.csv.gz").write_bytes(gzip.compress(CSV_BYTES))
    return {
        "csv": "sftp://127.0.0.1/exports/coupons.csv",
        "gz": "sftp://127.0.0.1/exports/coupons.csv.gz",
        "missing": "sftp://127.0.0.1/exports/not-there.csv",
    }


def stored_batches(sandbox: SandboxClient) -> list[bytes]:
    jobs = sorted(sandbox.jobs(SERIES), key=lambda job: job["jobId"])
    return [Path(job["storedPath"]).read_bytes() for job in jobs]


def expected_batches(size: int = 10) -> list[bytes]:
    header, *rows = CSV_BYTES.splitlines(keepends=True)
    return [header + b"".join(rows[i : i + size]) for i in range(0, len(rows), size)]


@pytest.mark.parametrize("kind", ["csv", "gz"])
def test_an_sftp_source_is_streamed_up_in_batches_with_the_header_repeated(
    exports: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any], kind: str
) -> None:
    summary = sftp_operator(exports[kind]).execute(context)
    assert stored_batches(capillary_conn) == expected_batches()
    assert (summary["status"], summary["accepted_rows"]) == ("FINISHED", 25)


def test_a_missing_sftp_file_fails_before_any_request_to_capillary(
    exports: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponFileError, match=r"sftp://127.0.0.1/exports/not-there.csv: does not exist"):
        sftp_operator(exports["missing"]).execute(context)
    assert capillary_conn.requests() == []


def test_a_headerless_semicolon_export_on_sftp_is_converted_on_the_fly(
    sftp_root: Path, exports: dict[str, str], capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    rows = mobile_rows(12, start=100)
    (sftp_root / "exports" / "partner.txt").write_text("".join(f"{code};{mobile};x\n" for mobile, code in rows))
    sftp_operator(
        "sftp://127.0.0.1/exports/partner.txt",
        has_header=False,
        delimiter=";",
        coupon_code_column=0,
        customer_identifier_column=1,
    ).execute(context)
    body = b"".join(f"{code},{mobile}\n".encode() for mobile, code in rows)
    assert b"".join(batch.split(b"\n", 1)[1] for batch in stored_batches(capillary_conn)) == body
    assert {batch.split(b"\n", 1)[0] for batch in stored_batches(capillary_conn)} == {b"coupon code,mobile"}
