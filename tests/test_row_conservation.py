"""Row conservation, as a property: every data row of a source is uploaded once or set aside once, or nothing is sent.

Hypothesis generates coupon and redemption files (header or not, delimiter, extra columns, invalid
rows, ``.gz``, CRLF, BOM, quoted fields holding the delimiter, quotes and line breaks, blank lines) and
the operator's options, runs the real operator against the sandbox over HTTP, and reads back the bytes
the sandbox stored. A reference reader built on :mod:`csv` alone (no product code) says what the data
rows are and which columns Capillary takes; the uploaded batches plus the rejected-rows file must hold
exactly those rows, each once, or the task must have failed with nothing sent.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from capillary_provider.exceptions import CapillaryError
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeTaskInstance
from tests.row_reference import cells, project, reference_records, rejected_rows, stored_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERIES_IDS = itertools.count(9701)
"""A series of its own per example: the sandbox is never reset, so the token (and Airflow's secrets masker,
which recompiles its pattern for each new token) stays as it is."""
MILLIS = "1764547200000"
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "|": "|"}
VALID = {
    "MOBILE": st.integers(10**11, 10**12 - 1).map(str),
    "EMAIL": st.from_regex(r"[a-z]{1,5}@[a-z]{1,5}\.com", fullmatch=True),
    "USER_ID": st.integers(1, 10**9).map(str),
}
INVALID = {"MOBILE": "12ab", "EMAIL": "no-at-sign", "USER_ID": "x1", "EXTERNAL_ID": " "}
HEADER_KEY = {"id": "mobile", "code": "couponCode", "date": "redeemedDateInMillis", "till": "redeemedAt"}
# Text with everything a CSV writer must quote: each delimiter, quotes, and (where allowed) line breaks.
TEXT = st.text(alphabet='ab7 ,;|\t"', min_size=1, max_size=6).filter(lambda text: text.strip())
FREE = st.text(alphabet='ab ,;|\t"\n', max_size=6)


@dataclass
class Case:
    """One generated upload: the file's records (header first when it has one) and the operator's options."""

    kind: str
    roles: list[str]
    records: list[list[str]]
    file_header: bool
    options: dict[str, Any]
    taken: list[int]
    """The source columns Capillary takes, in file order."""
    encoded: bytes
    suffix: str
    header_row: bool
    """Whether row 1 is the header as the provider must read it: the file's header, or (``has_header=None``)
    a header-less file's row 1 that cannot be told from one (no customer identifier, no date in it)."""
    refuse: bool
    """A header-less file read with ``has_header=None`` whose row 1 is data: the task must fail before sending."""
    projected: bool
    """Whether the options choose the columns (``coupon_code_column``, ``upload_headers``): the upload is then a
    copy of those columns, and so are the rows set aside."""
    clean: bool
    """Nothing to refuse: no invalid row, no blank line inside, the options fit the file: the upload must happen."""


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["coupon", "redeemed"]))
    identifier = "MOBILE" if kind == "redeemed" else draw(st.sampled_from([*VALID, "EXTERNAL_ID", "NOT_TAGGED"]))
    roles = ["code"] if identifier == "NOT_TAGGED" else ["id", "code"]
    roles += ["date", "till"] if kind == "redeemed" else []
    roles += [f"extra{n}" for n in range(draw(st.integers(0, 2)))]
    roles = draw(st.permutations(roles))
    skip = draw(st.booleans())
    data_rows = [draw(row(roles, identifier, invalid=skip)) for _ in range(draw(st.integers(1, 7)))]
    header = [HEADER_KEY.get(role, role) if kind == "redeemed" else role for role in roles]
    data_like = identifier in VALID or kind == "redeemed"
    file_header = draw(st.booleans()) if data_like else True
    has_header = draw(st.sampled_from([None, True] if file_header else [None, False]))
    delimiter = draw(st.sampled_from(sorted(DELIMITERS)))
    options: dict[str, Any] = {
        "has_header": has_header,
        "delimiter": delimiter,
        "invalid_rows": "skip" if skip else "fail",
        "batch_size": draw(st.sampled_from([2, 3, 1000])),
    }
    extra = any(role.startswith("extra") for role in roles)
    if kind == "coupon":
        options["customer_identifier"] = identifier
        options["customer_identifier_column"] = roles.index("id") if "id" in roles else None
        if extra or draw(st.booleans()):
            options["coupon_code_column"] = roles.index("code") if draw(st.sampled_from([1, 1, 1, 0])) else None
        fits = not extra or options.get("coupon_code_column") is not None
        taken = sorted(roles.index(role) for role in ("id", "code") if role in roles)
    else:
        if has_header is False or extra or draw(st.booleans()):
            given_map = {HEADER_KEY[role]: index for index, role in enumerate(roles) if role in HEADER_KEY}
            options["upload_headers"] = given_map if draw(st.sampled_from([1, 1, 1, 0])) else None
        fits = bool(options.get("upload_headers")) or (not extra and has_header is not False)
        taken = sorted(index for index, role in enumerate(roles) if role in HEADER_KEY)
    records = ([header] if file_header else []) + data_rows
    encoded, suffix, blank_inside = draw(encoding(records, DELIMITERS[delimiter]))
    valid = not any(is_invalid(fields, roles, identifier) for fields in data_rows)
    clean = fits and valid and not blank_inside and file_header == (has_header is not False)
    refuse = not file_header and has_header is None and first_row_is_data(data_rows[0], roles, identifier)
    header_row = file_header or (has_header is None and not refuse)
    projected = options.get("coupon_code_column") is not None or bool(options.get("upload_headers"))
    return Case(
        kind, roles, records, file_header, options, taken, encoded, suffix, header_row, refuse, projected, clean
    )


def first_row_is_data(fields: list[str], roles: list[str], identifier: str) -> bool:
    """Whether a data row holds what no header cell is: a valid customer identifier, or a redemption date."""
    value = dict(zip(roles, fields, strict=True))
    return (identifier in VALID and value["id"] != INVALID[identifier]) or value.get("date") == MILLIS


def row(roles: list[str], identifier: str, invalid: bool) -> st.SearchStrategy[list[str]]:
    valid_id = VALID.get(identifier, TEXT)
    fields = {
        "id": st.one_of(valid_id, st.just(INVALID.get(identifier, " "))) if invalid else valid_id,
        "code": st.one_of(TEXT, st.sampled_from(["", "a\nb"])) if invalid else TEXT,
        "date": st.sampled_from([MILLIS, "123"]) if invalid else st.just(MILLIS),
        "till": TEXT,
    }
    return st.tuples(*(fields.get(role, FREE) for role in roles)).map(list)


@st.composite
def encoding(draw: st.DrawFn, records: list[list[str]], delimiter: str) -> tuple[bytes, str, bool]:
    """The records as a CSV file: LF or CRLF, blank lines after records, a BOM, gzip; and whether a blank
    line comes before a record (the scan refuses those; a blank tail is allowed)."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    blank_inside = False
    for index, record in enumerate(records):
        writer.writerow(record)
        if index and draw(st.integers(0, 5)) == 0:
            out.write(newline)
            blank_inside = blank_inside or index < len(records) - 1
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + out.getvalue().encode()
    return (gzip.compress(data), ".csv.gz", blank_inside) if draw(st.booleans()) else (data, ".csv", blank_inside)


def is_invalid(fields: list[str], roles: list[str], identifier: str) -> bool:
    """The reference's row check: what Capillary would refuse, decided without product code."""
    value = dict(zip(roles, fields, strict=True))
    code = value["code"]
    if not code.strip() or "\n" in code or "\r" in code:
        return True
    if value.get("date", MILLIS) != MILLIS:
        return True
    ident = value.get("id")
    return ident is not None and (
        ident == INVALID.get(identifier) or (ident.strip() != ident and identifier != "EXTERNAL_ID")
    )


def operator(
    case: Case, series: int, source: Path, rejected: Path
) -> CouponUploadOperator | RedeemedCouponUploadOperator:
    common: dict[str, Any] = {
        "task_id": "upload",
        "coupon_series_id": series,
        "source": str(source),
        "wait_for_completion": False,
        "check_series": False,
        "rejected_rows_to": str(rejected),
        **case.options,
    }
    if case.kind == "coupon":
        return CouponUploadOperator(**common)
    return RedeemedCouponUploadOperator(customer_identifier="MOBILE", coupon_identifier="COUPON_CODE", **common)


@settings(
    max_examples=250,
    deadline=None,
    database=None,
    phases=[Phase.generate, Phase.shrink],
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(case=cases())
def test_every_data_row_is_uploaded_or_set_aside_exactly_once_or_nothing_is_sent(
    case: Case, capillary_conn: SandboxClient
) -> None:
    series = next(SERIES_IDS)
    with tempfile.TemporaryDirectory(prefix="conservation-") as folder:
        check_conservation(case, series, Path(folder), capillary_conn)


def check_conservation(case: Case, series: int, folder: Path, capillary_conn: SandboxClient) -> None:
    """Upload ``case`` from ``folder`` to ``series``; then nothing was sent, or every data row is accounted for."""
    source, rejected = folder / f"source{case.suffix}", folder / "rejected.csv"
    source.write_bytes(case.encoded)
    try:
        operator(case, series, source, rejected).execute({"ti": FakeTaskInstance()})
    except CapillaryError as error:
        event(f"refused: {type(error).__name__}")
        assert capillary_conn.jobs(series, kind="all") == [], "the task failed after sending"
        assert not case.clean, "a file with nothing to refuse was refused"
        return
    assert not case.refuse, "a header-less file whose row 1 is data was uploaded with has_header=None"
    event(f"uploaded, {'some rows set aside' if rejected.exists() else 'nothing set aside'}")
    records = reference_records(source, DELIMITERS[case.options["delimiter"]])
    headers, uploaded = stored_rows(capillary_conn, series)
    set_aside = rejected_rows(rejected)
    sent = list(range(len(case.taken)))  # an uploaded row holds the taken columns, in file order
    kept = sent if case.projected else case.taken
    for fields, number in set_aside:
        assert cells(fields, kept) == cells(records[number - 1], case.taken), f"row {number} set aside wrongly"
    data_rows = records[1:] if case.header_row else records
    accounted = project(uploaded, sent) + project([fields for fields, _ in set_aside], kept)
    assert accounted == project(data_rows, case.taken)
    assert all(len(fields) == len(case.taken) for fields in uploaded)
    assert all(len(batch_header) == len(case.taken) for batch_header in headers)
    if case.header_row:
        assert {tuple(h) for h in headers} == {cells(case.records[0], case.taken)}
