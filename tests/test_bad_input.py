"""Bad input fails the task with a clear error before any request reaches Capillary.

Each case runs the operator against the sandbox. The error is the provider's own exception type and its
message, word for word, names the file, the row and the field and says what to fix; and the sandbox's
request log shows that not even a token request was made. A BOM is the one "odd" input that is valid: it
is dropped, and uploaded rows carry none.
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
    """A source (bytes written to a file, or a path builder) plus operator options, and the error expected:
    its exact type and its exact message, ``{source}`` standing for the source's path."""

    name: str
    content: bytes | None
    error: type[Exception]
    message: str
    options: tuple[tuple[str, Any], ...] = ()
    file_name: str = "coupons.csv"


MOBILE_FIX = (
    "A mobile number is 8 to 15 digits with an optional leading '+': fix or remove those rows, or check"
    " customer_identifier_column and customer_identifier."
)
CASES = [
    BadInput(
        "empty-file",
        b"",
        CouponFileError,
        "{source}: is empty: a header row and at least one row of coupon codes are needed.",
    ),
    BadInput(
        "header-only",
        b"mobile,code\n",
        CouponFileError,
        "{source}: has a header row but no coupon rows. Add rows or skip the upload.",
    ),
    BadInput(
        "semicolon-delimiter",
        b"mobile;code\n919800000001;CODE1\n",
        CouponFileError,
        "{source}: needs 2 columns (a MOBILE and a coupon code) but has 1. The delimiter looks wrong: row 1 has 1"
        " column but contains ';'; set delimiter=\";\".",
    ),
    BadInput(
        "ragged-rows",
        b"mobile,code\n919800000001,CODE1\n919800000002\n",
        CouponFileError,
        "{source}: 1 row has a number of columns different from the header's 2: row 3 (1 columns). Give every"
        " row 2 comma-separated fields; quote fields containing commas.",
    ),
    BadInput(
        "quoted-newline-in-code",
        b'mobile,code\n919800000001,"CO\nDE1"\n',
        CouponFileError,
        '{source}: 1 row has a coupon code containing a line break in column 2 ("code"): row 2. A coupon code is'
        " one line: remove the line breaks inside the quoted codes.",
    ),
    BadInput(
        "latin-1-bytes",
        "mobile,code\n919800000001,CAFÉ1\n".encode("latin-1"),
        CouponFileError,
        "{source}: row 2 is not valid UTF-8 text. Save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel).",
    ),
    BadInput(
        "nul-bytes",
        b"mobile,code\n919800000001,CO\x00DE1\n",
        CouponFileError,
        "{source}: row 2 contains NUL bytes: is this a CSV of coupon codes?",
    ),
    BadInput("directory", None, CouponFileError, "{source}: is a directory, not a CSV file. Point source at the file."),
    BadInput("missing-object", None, CouponFileError, "{source}: does not exist. Check the source path."),
    BadInput(
        "series-id-abc",
        GOOD,
        CapillaryConfigError,
        "coupon_series_id must be a positive whole number, not 'abc'",
        (("coupon_series_id", "abc"),),
    ),
    BadInput(
        "series-id-zero",
        GOOD,
        CapillaryConfigError,
        "coupon_series_id must be a positive whole number, not '0'",
        (("coupon_series_id", "0"),),
    ),
    BadInput(
        "negative-column",
        GOOD,
        CapillaryConfigError,
        "customer_identifier_column must be 0 or more (zero-based: 0 is the first column), not -1",
        (("customer_identifier_column", -1),),
    ),
    BadInput(
        "column-out-of-range",
        GOOD,
        CouponFileError,
        "{source}: customer_identifier_column 5 is out of range: the header has 2 column(s) (0-based indexes 0 to 1).",
        (("customer_identifier_column", 5),),
    ),
    BadInput(
        "column-not-a-number",
        GOOD,
        CapillaryConfigError,
        "customer_identifier_column must be a zero-based column number, not 'x'",
        (("customer_identifier_column", "x"),),
    ),
    BadInput(
        "unknown-identifier",
        GOOD,
        CapillaryConfigError,
        "customer_identifier must be one of MOBILE, EMAIL, EXTERNAL_ID, USER_ID, NOT_TAGGED, not 'PHONE'",
        (("customer_identifier", "PHONE"),),
    ),
    BadInput(
        "identifier-missing-column",
        GOOD,
        CouponFileError,
        "{source}: pass customer_identifier_column (0-based) to say which column holds the MOBILE.",
        (("customer_identifier_column", None),),
    ),
    BadInput(
        "10-mb-single-line",
        b"mobile,code\n919800000001," + b"X" * (10 << 20) + b"\n",
        CouponFileError,
        "{source}: row 2 is longer than 1 MiB: is this a CSV of coupon codes?",
    ),
    BadInput(
        "10-mb-no-newline",
        b"m" * (10 << 20),
        CouponFileError,
        "{source}: row 1 is longer than 1 MiB: is this a CSV of coupon codes?",
    ),
    BadInput(
        "truncated-gzip",
        gzip.compress(GOOD * 2000)[:-200],
        CouponFileError,
        "{source}: cannot be read (EOFError: Compressed file ended before the end-of-stream marker was reached);"
        " is it truncated or corrupt?",
        file_name="c.csv.gz",
    ),
    BadInput(
        "not-gzip-but-gz-name",
        GOOD,
        CouponFileError,
        "{source}: cannot be read (BadGzipFile: Not a gzipped file (b'mo')); is it truncated or corrupt?",
        file_name="c.csv.gz",
    ),
    BadInput(
        "invalid-mobile",
        b"mobile,code\nnot-a-phone,CODE1\n",
        CouponFileError,
        '{source}: 1 row has an invalid MOBILE identifier in column 1 ("mobile"): row 2. ' + MOBILE_FIX,
    ),
    BadInput(
        "empty-code",
        b"mobile,code\n919800000001,\n",
        CouponFileError,
        '{source}: 1 row has an empty coupon code in column 2 ("code"): row 2. Remove those rows or fill in a code.',
    ),
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
def test_bad_input_fails_with_our_error_and_the_exact_reason(
    case: BadInput, capillary_conn: SandboxClient, context: dict[str, Any], tmp_path: Path
) -> None:
    """The error is the provider's own type (not a subclass, not a bare Exception) and its message names the
    file, the row and the field, and says what to fix, word for word."""
    source = source_for(case, tmp_path)
    with pytest.raises(case.error) as info:
        make_operator(source, SERIES, **dict(case.options)).execute(context)  # type: ignore[arg-type]
    assert type(info.value) is case.error
    assert str(info.value) == case.message.format(source=source)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused_before_any_request_to_capillary(
    case: BadInput, capillary_conn: SandboxClient, context: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(case.error):
        make_operator(source_for(case, tmp_path), SERIES, **dict(case.options)).execute(context)  # type: ignore[arg-type]
    assert capillary_conn.requests() == []


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
