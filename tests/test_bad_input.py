"""Bad input fails the task with a clear error before any request reaches Capillary.

Each case runs the operator against the sandbox and checks the sandbox's request log: not even a token
request may have been made. A BOM is the one "odd" input that is valid: it is dropped, and uploaded rows
carry none.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryConfigError, CouponFileError
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import mobile_rows
from tests.faultkit import make_operator

pytestmark = pytest.mark.integration

SERIES = 6400
GOOD = b"mobile,code\n919800000001,CODE0001\n919800000002,CODE0002\n"


@dataclass(frozen=True)
class BadInput:
    """A source (bytes written to a file, or a path builder) plus operator options, and the error expected."""

    name: str
    content: bytes | None
    error: type[Exception]
    words: str
    options: tuple[tuple[str, Any], ...] = ()
    file_name: str = "coupons.csv"


CASES = [
    BadInput("empty-file", b"", CouponFileError, "is empty"),
    BadInput("header-only", b"mobile,code\n", CouponFileError, "no rows|no coupon|at least one row"),
    BadInput("semicolon-delimiter", b"mobile;code\n919800000001;CODE1\n", CouponFileError, "delimiter"),
    BadInput("ragged-rows", b"mobile,code\n919800000001,CODE1\n919800000002\n", CouponFileError, "row 3"),
    BadInput("quoted-newline-in-code", b'mobile,code\n919800000001,"CO\nDE1"\n', CouponFileError, "line break"),
    BadInput("latin-1-bytes", "mobile,code\n919800000001,CAFÉ1\n".encode("latin-1"), CouponFileError, "UTF-8"),
    BadInput("nul-bytes", b"mobile,code\n919800000001,CO\x00DE1\n", CouponFileError, "NUL"),
    BadInput("directory", None, CouponFileError, "directory"),
    BadInput("missing-object", None, CouponFileError, "does not exist"),
    BadInput("series-id-abc", GOOD, CapillaryConfigError, "coupon_series_id", (("coupon_series_id", "abc"),)),
    BadInput("series-id-zero", GOOD, CapillaryConfigError, "coupon_series_id", (("coupon_series_id", "0"),)),
    BadInput("negative-column", GOOD, CapillaryConfigError, "0 or more", (("customer_identifier_column", -1),)),
    BadInput("column-out-of-range", GOOD, CouponFileError, "out of range", (("customer_identifier_column", 5),)),
    BadInput("column-not-a-number", GOOD, CapillaryConfigError, "zero-based", (("customer_identifier_column", "x"),)),
    BadInput(
        "unknown-identifier", GOOD, CapillaryConfigError, "customer_identifier", (("customer_identifier", "PHONE"),)
    ),
    BadInput(
        "identifier-missing-column",
        GOOD,
        Exception,
        "customer_identifier_column",
        (("customer_identifier_column", None),),
    ),
    BadInput(
        "10-mb-single-line",
        b"mobile,code\n919800000001," + b"X" * (10 << 20) + b"\n",
        CouponFileError,
        "1 MiB|too long|longer",
    ),
    BadInput("10-mb-no-newline", b"m" * (10 << 20), CouponFileError, "1 MiB|longer"),
    BadInput(
        "truncated-gzip",
        gzip.compress(GOOD * 2000)[:-200],
        CouponFileError,
        "gzip|compressed|truncated|ended",
        file_name="c.csv.gz",
    ),
    BadInput("not-gzip-but-gz-name", GOOD, CouponFileError, "gzip|compressed|Not a gzipped", file_name="c.csv.gz"),
    BadInput("invalid-mobile", b"mobile,code\nnot-a-phone,CODE1\n", CouponFileError, "mobile"),
    BadInput("empty-code", b"mobile,code\n919800000001,\n", CouponFileError, "empty|code"),
]


def source_for(case: BadInput, tmp_path: Path) -> Path:
    if case.name == "directory":
        folder = tmp_path / "folder.csv"
        folder.mkdir()
        return folder
    if case.name == "missing-object":
        return tmp_path / "nowhere" / "coupons.csv"
    path = tmp_path / case.file_name
    assert case.content is not None
    path.write_bytes(case.content)
    return path


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_fails_clearly_before_any_request_to_capillary(
    case: BadInput, capillary_conn: SandboxClient, context: dict[str, Any], tmp_path: Path
) -> None:
    source = source_for(case, tmp_path)
    with pytest.raises(case.error, match=case.words) as info:
        make_operator(source, SERIES, **dict(case.options)).execute(context)  # type: ignore[arg-type]
    assert capillary_conn.requests() == []
    assert len(str(info.value)) < 2000  # a clear message, not a dump of the file


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.content is not None and c.error is CouponFileError], ids=lambda c: c.name
)
def test_file_errors_name_the_file(
    case: BadInput, capillary_conn: SandboxClient, context: dict[str, Any], tmp_path: Path
) -> None:
    source = source_for(case, tmp_path)
    with pytest.raises(CouponFileError) as info:
        make_operator(source, SERIES, **dict(case.options)).execute(context)  # type: ignore[arg-type]
    assert source.name in str(info.value)


def test_bom_is_dropped_and_capillary_receives_none(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    plain = write_csv(mobile_rows(5))
    source = tmp_path / "bom.csv"
    source.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    summary = make_operator(source, SERIES, batch_size=3).execute(context)  # type: ignore[arg-type]
    assert summary["accepted_rows"] == 5
    stored = [Path(job["storedPath"]).read_bytes() for job in capillary_conn.jobs(SERIES)]
    assert len(stored) == 2
    assert all(body.startswith(b"mobile,code\n") for body in stored)
