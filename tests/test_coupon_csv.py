from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any, ClassVar

import pytest
from airflow.sdk import ObjectStoragePath
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capillary_provider._compat import AirflowFailException
from capillary_provider.coupon_file import (
    Batch,
    BatchReader,
    CouponRows,
    FilePlan,
    open_coupon_source,
    scan_file,
)
from capillary_provider.coupon_file.header import parse_header
from capillary_provider.coupon_file.rows import (
    COUPON_KEYS,
    Describe,
    Problems,
    RedeemedRows,
    header_key,
)
from capillary_provider.exceptions import CouponFileError, CouponSourceReadError
from capillary_provider.identifiers import ID_FIXES, CouponIdentifier, IdentifierType, parse

CHUNK_SIZES = [1, 2, 3, 5, 7, 16, 64, 8 << 20]


def scan(data: bytes, identifier: str = "MOBILE", column: int | None = 0, **kwargs: object) -> FilePlan:
    """:func:`scan_file` with the coupon rules the operator builds (``CouponUploadOperator.row_rules``)."""
    rules = CouponRows(IdentifierType(identifier), column)
    return scan_file(io.BytesIO(data), name="coupons.csv", rules=rules, **kwargs)  # type: ignore[arg-type]


def scan_error(data: bytes, identifier: str = "MOBILE", column: int | None = 0, **kwargs: object) -> str:
    with pytest.raises(CouponFileError) as info:
        scan(data, identifier, column, **kwargs)
    return str(info.value)


def batch_bytes(data: bytes, plan: FilePlan) -> list[bytes]:
    stream = io.BytesIO(data)
    return [BatchReader(stream, plan.header, batch).read() for batch in plan.batches]


def records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


GOOD = b"mobile,code\n919876543210,AB12\n919876543211,CD34\n+919876543212,EF56\n919876543213,GH78\n"


def test_valid_file_gives_header_rows_size_and_one_batch() -> None:
    plan = scan(GOOD)
    assert plan.header == b"mobile,code\n"
    assert (plan.columns, plan.rows, plan.size, plan.name) == (2, 4, len(GOOD), "coupons.csv")
    assert plan.batches == (Batch(1, 12, len(GOOD), 4, 2),)


def test_batches_have_exact_boundaries_and_first_rows() -> None:
    plan = scan(GOOD, batch_size=3)
    assert plan.batches == (Batch(1, 12, 67, 3, 2), Batch(2, 67, len(GOOD), 1, 5))


def test_batch_reader_repeats_header_and_reproduces_records() -> None:
    plan = scan(GOOD, batch_size=2)
    parts = batch_bytes(GOOD, plan)
    assert parts[0] == b"mobile,code\n919876543210,AB12\n919876543211,CD34\n"
    assert all(part.startswith(b"mobile,code\n") for part in parts)
    assert b"".join(part[len(plan.header) :] for part in parts) == GOOD[len(plan.header) :]


def test_batch_reader_len_small_reads_and_seek_zero_reread() -> None:
    plan = scan(GOOD, batch_size=3)
    stream = io.BytesIO(GOOD)
    reader = BatchReader(stream, plan.header, plan.batches[1])
    expected = b"mobile,code\n919876543213,GH78\n"
    assert len(reader) == reader.len == len(expected)
    assert b"".join(iter(lambda: reader.read(5), b"")) == expected
    assert reader.tell() == len(expected)
    assert reader.seek(0) == 0
    assert reader.read() == expected
    assert reader.readable()


def test_batch_reader_never_reads_past_batch_end() -> None:
    plan = scan(GOOD, batch_size=2)
    stream = io.BytesIO(GOOD)
    reader = BatchReader(stream, plan.header, plan.batches[0])
    reader.read()
    assert stream.tell() == plan.batches[0].end


def test_batch_reader_works_with_multipart_encoder_length() -> None:
    from requests.utils import super_len

    plan = scan(GOOD)
    reader = BatchReader(io.BytesIO(GOOD), plan.header, plan.batches[0])
    assert super_len(reader) == len(GOOD)  # type: ignore[no-untyped-call]


def test_utf8_bom_is_dropped_from_header_and_offsets() -> None:
    data = b"\xef\xbb\xbf" + GOOD
    plan = scan(data, batch_size=2)
    assert plan.header == b"mobile,code\n"
    assert plan.batches[0].start == 3 + len(b"mobile,code\n")
    assert batch_bytes(data, plan)[0] == b"mobile,code\n919876543210,AB12\n919876543211,CD34\n"


def test_crlf_file_keeps_line_endings_in_header_and_batches() -> None:
    data = GOOD.replace(b"\n", b"\r\n")
    plan = scan(data, batch_size=3)
    assert plan.header == b"mobile,code\r\n"
    assert plan.rows == 4
    assert b"".join(p[len(plan.header) :] for p in batch_bytes(data, plan)) == data[len(plan.header) :]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_quoted_comma_newline_and_doubled_quotes_are_one_record_each(chunk_size: int) -> None:
    data = (
        b'mobile,code\r\n919876543210,"A,B"\r\n919876543211,"multi\nline"\r\n'
        b'"919876543212","say ""hi"""\r\n919876543213,Z\r\n'
    )
    # validate=False: record splitting only (a code with a line break fails validation, see test_bad_input).
    plan = scan(data, batch_size=2, chunk_size=chunk_size, validate=False)
    assert plan.rows == 4
    assert [b.first_row for b in plan.batches] == [2, 4]
    parts = batch_bytes(data, plan)
    assert records(parts[0])[1:] == [["919876543210", "A,B"], ["919876543211", "multi\nline"]]
    assert records(parts[1])[1:] == [["919876543212", 'say "hi"'], ["919876543213", "Z"]]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_multibyte_characters_split_across_chunks_are_valid(chunk_size: int) -> None:
    data = "code\nCAFÉ€1\n日本語コード\n".encode()
    plan = scan(data, "NOT_TAGGED", None, chunk_size=chunk_size)
    assert plan.rows == 2


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_batches_are_identical_for_every_chunk_size(chunk_size: int) -> None:
    data = b"code\n" + b"".join(b"C%05d\n" % i for i in range(40)) + b'"Q,1"\nC\n'
    plan = scan(data, "NOT_TAGGED", None, batch_size=7, chunk_size=chunk_size)
    assert plan == scan(data, "NOT_TAGGED", None, batch_size=7)
    assert [b.rows for b in plan.batches] == [7, 7, 7, 7, 7, 7]


def test_file_without_trailing_newline_ends_last_batch_at_eof() -> None:
    data = GOOD.rstrip(b"\n")
    plan = scan(data, batch_size=3)
    assert plan.batches[-1].end == len(data)
    assert batch_bytes(data, plan)[-1] == b"mobile,code\n919876543213,GH78"


def test_header_without_newline_gets_one_in_plan() -> None:
    data = b"code"
    assert "no coupon rows" in scan_error(data, "NOT_TAGGED", None)


def test_trailing_empty_line_at_eof_is_accepted_and_not_a_row() -> None:
    plan = scan(GOOD + b"\n")
    assert plan.rows == 4
    assert plan.batches[-1].end == len(GOOD)


def test_empty_line_in_the_middle_is_an_error_naming_the_row() -> None:
    message = scan_error(b"code\nA\n\nB\n", "NOT_TAGGED", None)
    assert message.startswith("coupons.csv: 1 row has an empty coupon code in column 1")
    assert "row 3." in message


def test_empty_codes_are_collected_with_count_rows_column_and_fix() -> None:
    data = b"mobile,code\n" + b"".join(b"91987654%04d,%s\n" % (i, b"" if i % 2 else b"X") for i in range(30))
    message = scan_error(data)
    assert message.startswith('coupons.csv: 15 rows have an empty coupon code in column 2 ("code"): ')
    assert "rows 3, 5, 7, 9, 11, 13, 15, 17, 19, 21 and 5 more." in message
    assert "Remove those rows or fill in a code." in message


def test_whitespace_only_code_counts_as_empty() -> None:
    assert "empty coupon code" in scan_error(b"mobile,code\n919876543210,   \n")


@pytest.mark.parametrize("value", [b"1234567", b"1234567890123456", b"91-98765432", b"abc", b"", b"9198+76543"])
def test_invalid_mobile_is_reported_with_row_and_column(value: bytes) -> None:
    message = scan_error(b"mobile,code\n919876543210,A\n" + value + b",B\n")
    assert 'invalid MOBILE identifier in column 1 ("mobile"): row 3.' in message


@pytest.mark.parametrize("value", [b"12345678", b"+123456789012345", b"123456789012345"])
def test_mobile_of_8_to_15_digits_with_optional_plus_is_valid(value: bytes) -> None:
    assert scan(b"mobile,code\n" + value + b",A\n").rows == 1


def test_email_user_id_and_external_id_shapes_are_checked() -> None:
    assert scan(b"code,email\nA,a.b@example.com\n", "EMAIL", 1).rows == 1
    assert "invalid EMAIL" in scan_error(b"code,email\nA,a@b\n", "EMAIL", 1)
    assert "invalid USER_ID" in scan_error(b"id,code\n12a,A\n", "USER_ID", 0)
    assert scan(b"id,code\n123,A\n", "USER_ID", 0).rows == 1
    assert "invalid EXTERNAL_ID" in scan_error(b"id,code\n ,A\n", "EXTERNAL_ID", 0)


def test_code_column_is_first_column_that_is_not_the_identifier() -> None:
    assert 'empty coupon code in column 1 ("code")' in scan_error(b"code,mobile\n,919876543210\n", "MOBILE", 1)


def test_wrong_column_count_names_rows_and_counts() -> None:
    message = scan_error(b"mobile,code\n919876543210,A,B\n919876543211,C\n919876543212\n")
    assert "2 rows have a number of columns different from the header's 2: rows 2 (3 columns), 4 (1 columns)" in message


def test_semicolon_file_says_the_delimiter_looks_wrong() -> None:
    message = scan_error(b"mobile;code\n919876543210;A\n")
    assert "delimiter looks wrong" in message
    assert "coupons.csv" in message


def test_identifier_column_out_of_range_is_an_error() -> None:
    assert "customer_identifier_column 2 is out of range" in scan_error(GOOD, "MOBILE", 2)


def test_unknown_identifier_type_lists_the_valid_ones() -> None:
    """What the hook says of ``customer_identifier`` (the operator checks the parameter before any file)."""
    with pytest.raises(ValueError, match=r"^must be one of") as info:
        parse(IdentifierType, "PHONE")
    assert str(info.value) == "must be one of MOBILE, EMAIL, EXTERNAL_ID, USER_ID, NOT_TAGGED, not 'PHONE'"


def test_negative_identifier_column_is_an_error() -> None:
    assert "must be 0 or more" in scan_error(GOOD, "MOBILE", -1)


def test_not_tagged_with_a_column_is_an_error() -> None:
    assert "must be None for NOT_TAGGED" in scan_error(GOOD, "NOT_TAGGED", 0)


def test_tagged_type_without_column_asks_to_pass_it() -> None:
    assert "pass customer_identifier_column" in scan_error(GOOD, "MOBILE", None)


def test_empty_file_is_an_error() -> None:
    assert scan_error(b"").startswith("coupons.csv: is empty")


def test_header_only_file_is_an_error() -> None:
    assert "header row but no coupon rows" in scan_error(b"mobile,code\n")


def test_latin1_bytes_are_reported_as_not_utf8_with_row() -> None:
    message = scan_error(b"code\nA\ncaf\xe9\n", "NOT_TAGGED", None)
    assert message == (
        "coupons.csv: row 3 is not valid UTF-8 text. Save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel)."
    )


def test_nul_bytes_are_reported_as_binary_content() -> None:
    assert "row 2 contains NUL bytes" in scan_error(b"code\nA\x00B\n", "NOT_TAGGED", None)


def test_unterminated_quote_at_eof_is_an_error() -> None:
    assert "row 3 opens a quoted field that is never closed" in scan_error(b'code\nA\n"B\nC\n', "NOT_TAGGED", None)


def test_stray_quote_is_an_error() -> None:
    assert "row 2 has a stray double quote" in scan_error(b'code\nA"B\n', "NOT_TAGGED", None)


def test_line_longer_than_1_mib_is_a_clear_error() -> None:
    data = b"code\n" + b"A" * (10 * 2**20)
    message = scan_error(data, "NOT_TAGGED", None, chunk_size=2**20)
    assert message == "coupons.csv: row 2 is longer than 1 MiB: is this a CSV of coupon codes?"


def test_file_larger_than_a_chunk_of_over_1_mib_is_not_mistaken_for_a_long_row() -> None:
    data = b"mobile,code\n" + b"".join(b"9198%08d,C%09d\n" % (n, n) for n in range(150_000))  # 3.4 MiB
    assert scan(data, chunk_size=2 << 20).rows == 150_000


def test_long_row_spanning_two_chunks_is_reported_with_its_row_number() -> None:
    data = b"mobile,code\n" + b"919876543210,A\n" * 3 + b"919876543210," + b"X" * (2 << 20) + b"\n"
    assert "row 5 is longer than 1 MiB" in scan_error(data, chunk_size=1 << 20)


def test_validate_false_skips_content_checks_but_still_batches() -> None:
    data = b"mobile,code\nabc,\n,\n"
    plan = scan(data, validate=False, batch_size=1)
    assert [b.rows for b in plan.batches] == [1, 1]


def test_validate_false_still_rejects_a_file_without_rows() -> None:
    assert "no coupon rows" in scan_error(b"mobile,code\n", validate=False)


def test_gzip_source_is_decompressed_via_open_coupon_source(tmp_path: Path) -> None:
    target = tmp_path / "coupons.csv.gz"
    target.write_bytes(gzip.compress(GOOD))
    path = ObjectStoragePath(f"file://{target}")
    with open_coupon_source(path) as stream:
        plan = scan_file(stream, name=str(path), rules=CouponRows(IdentifierType.MOBILE, 0))
    assert plan.size == len(GOOD)
    with open_coupon_source(path) as stream:
        assert batch_bytes_from(stream, plan) == [GOOD]


def batch_bytes_from(stream: io.BufferedIOBase | object, plan: FilePlan) -> list[bytes]:
    return [BatchReader(stream, plan.header, b).read() for b in plan.batches]  # type: ignore[arg-type]


def test_truncated_gzip_raises_coupon_file_error_naming_file(tmp_path: Path) -> None:
    target = tmp_path / "coupons.csv.gz"
    target.write_bytes(gzip.compress(GOOD * 50)[:-30])
    path = ObjectStoragePath(f"file://{target}")
    with pytest.raises(CouponFileError, match=r"coupons\.csv\.gz.*cannot be read"), open_coupon_source(path) as stream:
        scan_file(stream, name=str(path), rules=CouponRows(IdentifierType.MOBILE, 0))


def test_missing_path_raises_coupon_file_error(tmp_path: Path) -> None:
    path = ObjectStoragePath(f"file://{tmp_path}/nope.csv")
    with pytest.raises(CouponFileError, match=r"nope\.csv"), open_coupon_source(path):
        pass


def test_directory_path_raises_coupon_file_error(tmp_path: Path) -> None:
    path = ObjectStoragePath(f"file://{tmp_path}")
    with pytest.raises(CouponFileError, match="is a directory"), open_coupon_source(path):
        pass


def test_fixed_and_variable_width_fast_paths_agree_with_row_by_row_errors() -> None:
    fixed = b"mobile,code\n" + b"".join(b"9198765%05d,CODE%04d\n" % (i, i) for i in range(2000))
    assert scan(fixed).rows == 2000
    broken = fixed.replace(b"919876501000,", b"91987650100X,")
    assert "row 1002." in scan_error(broken)
    variable = b"mobile,code\n" + b"".join(b"+9198765%05d,C%d\n" % (i, i) for i in range(2000))
    assert scan(variable).rows == 2000
    assert "row 502." in scan_error(variable.replace(b",C500\n", b",\n"))


class CountingRows(CouponRows):
    """CouponRows that counts the rows it is asked to check one by one."""

    checked: ClassVar[list[int]] = []

    def check(self, fields: list[str], row: int, problems: Problems, column: Describe) -> None:
        CountingRows.checked.append(row)
        super().check(fields, row, problems, column)


def variable_width_rows(count: int, bad: dict[int, bytes], eol: bytes = b"\n") -> bytes:
    """``mobile,code`` rows of varying width (so no fixed-width proof); ``bad`` replaces rows by number."""
    rows = [bad.get(row, b"%d,C%d" % (9_000_000_000 + row * 7, row)) for row in range(2, count + 2)]
    return b"mobile,code" + eol + b"".join(row + eol for row in rows)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_a_block_with_a_few_bad_rows_checks_only_those_rows_one_by_one(eol: bytes) -> None:
    bad = {5: b"12,C5", 1500: b"9000010500,", 2000: b"9000014000,C1,x"}
    odd_but_valid = {2999: b"9000020993,C 9"}  # a space: left to the row check, which accepts it
    CountingRows.checked = []
    plan = scan_file(
        io.BytesIO(variable_width_rows(3000, bad | odd_but_valid, eol)),
        name="coupons.csv",
        rules=CountingRows(IdentifierType.MOBILE, 0),
        skip_invalid=True,
    )
    assert CountingRows.checked == [5, 1500, 2999]  # row 2000's column count is wrong: no field check
    assert sorted(plan.rejected) == sorted(bad)
    assert "MOBILE" in plan.rejected[5]
    assert "empty coupon code" in plan.rejected[1500]
    assert "columns" in plan.rejected[2000]
    assert (plan.rows, plan.batches[0].rows) == (3000, 3000)


class RecordByRecord(CouponRows):
    """CouponRows without a block spec: every block is checked record by record (the reference)."""

    def bind(self, name: str, header: list[str], hint: str) -> None:  # type: ignore[override]
        super().bind(name, header, hint)


ROW_SHAPES = [
    b"919876543210,AB12",
    b"+91987654321,C",
    b"12,C5",
    b"9198765432,",
    b"9198765432, ",
    b"9198765432,A B",
    b"9198765432,A,B",
    b"",
    b"91987654\xc3\xa9,C",
    b"abc,C",
    b"9198765432109876,C",
    b"91987654321,C\x1c",
]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.sampled_from(ROW_SHAPES), min_size=1, max_size=60),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from([16, 64, 256, 1 << 20]),
)
def test_skipped_rows_are_the_same_with_and_without_the_fast_checks(
    rows: list[bytes], eol: bytes, chunk_size: int
) -> None:
    data = b"mobile,code" + eol + b"".join(row + eol for row in rows) + b"919876543210,LAST" + eol

    def plan_of(rules: CouponRows) -> FilePlan:
        return scan_file(io.BytesIO(data), name="coupons.csv", rules=rules, skip_invalid=True, chunk_size=chunk_size)

    assert plan_of(CouponRows(IdentifierType.MOBILE, 0)) == plan_of(RecordByRecord(IdentifierType.MOBILE, 0))


# -- redeemed-coupon rows: the header map and the row checks (rows.RedeemedRows) ---------------------------


def redeemed_rules(
    headers: dict[str, Any] | None = None,
    identifier: IdentifierType = IdentifierType.MOBILE,
    coupon: CouponIdentifier = CouponIdentifier.COUPON_CODE,
) -> RedeemedRows:
    return RedeemedRows(identifier, coupon, headers)


def bind_error(rules: RedeemedRows, header: list[str], hint: str = "") -> str:
    with pytest.raises(CouponFileError) as info:
        rules.bind("f.csv", header, hint)
    return str(info.value)


def test_header_cells_name_their_key_whatever_the_case_spaces_or_separators() -> None:
    cells = ["couponCode", "coupon_code", "Coupon Code", "coupon-code", "redeemed date in millis", "Bill Number", "x"]
    assert [header_key(cell) for cell in cells] == [*["couponCode"] * 4, "redeemedDateInMillis", "billNumber", None]


def test_the_header_row_maps_each_key_to_its_column() -> None:
    rules = redeemed_rules()
    rules.bind("f.csv", ["mobile", "coupon_code", "Redeemed Date In Millis", "redeemedAt", "billId"], "")
    assert rules.headers == {"mobile": 0, "couponCode": 1, "redeemedDateInMillis": 2, "redeemedAt": 3, "billId": 4}


def test_a_header_row_column_that_names_no_key_or_repeats_one_fails_naming_upload_headers() -> None:
    header = ["mobile", "coupon_code", "Redeemed Date In Millis", "redeemedAt", "store", "Mobile"]
    assert bind_error(redeemed_rules(), header, " HINT") == (
        "f.csv: has 6 columns but the header row maps 4 of them: columns 4, 5 (0-based; store, Mobile) name no "
        "uploadHeaders key or repeat one. Capillary takes only the mapped columns: pass upload_headers={key: column} "
        "to upload only those, or name each column by its key. HINT"
    )


def test_given_upload_headers_on_the_projected_copy_point_into_it_and_name_the_users_columns() -> None:
    given = {"mobile": 5, "couponCode": 1, "redeemedDateInMillis": 3, "redeemedAt": 4}
    rules = RedeemedRows(IdentifierType.MOBILE, CouponIdentifier.COUPON_CODE, given, projected=True)
    rules.bind("f.csv", ["c", "d", "t", "m"], "")
    assert rules.headers == {"mobile": 3, "couponCode": 0, "redeemedDateInMillis": 1, "redeemedAt": 2}
    assert bind_error(rules, ["c", "d"], " HINT") == (
        "f.csv: upload_headers points outside the file's columns: {'mobile': 5, 'redeemedAt': 4} (row 1 has 2 of "
        "the 4 columns upload_headers names). HINT"
    )


def test_a_header_row_without_the_required_keys_names_them_with_their_labels() -> None:
    rules = redeemed_rules(identifier=IdentifierType.EMAIL, coupon=CouponIdentifier.COUPON_ID)
    assert bind_error(rules, ["name", "code", "redeemedDateInMillis"], " HINT") == (
        "f.csv: no column for email, couponId, redeemedAt in the header row (name, code, redeemedDateInMillis). "
        "Name the columns email (or 'email'); couponId (or 'coupon id'); redeemedAt (or 'redeemed at') in the "
        "header row, or pass upload_headers={key: column}. HINT"
    )


def test_a_header_less_redemption_file_is_described_never_quoted_so_no_phone_number_reaches_the_log() -> None:
    row_1 = ["919876543210", "CODE1", "1764547200000", "Store 7"]
    assert bind_error(redeemed_rules(), row_1, " HINT") == (
        "f.csv: no column for mobile, couponCode, redeemedDateInMillis, redeemedAt in the header row (row 1 looks "
        "like data: if the file has no header row, also set has_header=False). Name the columns mobile (or "
        "'mobile'); couponCode (or 'coupon code'); redeemedDateInMillis (or 'redeemed date in millis'); "
        "redeemedAt (or 'redeemed at') in the header row, or pass upload_headers={key: column}. HINT"
    )


def test_upload_headers_with_unknown_keys_list_the_keys_there_are() -> None:
    assert bind_error(redeemed_rules({"mobile": 0, "zzz": 1, "nope": 1}), ["a", "b"]) == (
        "f.csv: upload_headers has unknown keys ['nope', 'zzz']: the keys are mobile, email, externalId, userId, "
        "couponCode, couponId, redeemedDateInMillis, redeemedAt, billId, billNumber, details."
    )


def test_upload_headers_outside_the_files_columns_are_named() -> None:
    headers = {"mobile": 0, "couponCode": 2, "redeemedAt": -1, "billId": "1", "details": 1}
    assert bind_error(redeemed_rules(headers), ["a", "b"], " HINT") == (
        "f.csv: upload_headers points outside the file's 2 columns: {'couponCode': 2, 'redeemedAt': -1, "
        "'billId': '1'} (0-based indexes 0 to 1). HINT"
    )


def test_upload_headers_without_the_required_keys_say_so() -> None:
    assert bind_error(redeemed_rules({"mobile": 0, "couponCode": 1}), ["a", "b"]).startswith(
        "f.csv: no column for redeemedDateInMillis, redeemedAt in upload_headers. "
    )


def test_given_upload_headers_are_sent_as_given_and_not_shared() -> None:
    given = {"redeemedAt": 0, "mobile": 1, "couponCode": 2, "redeemedDateInMillis": 3}
    rules = redeemed_rules(given)
    rules.bind("f.csv", ["till", "m", "c", "d"], "")
    given["mobile"] = 3
    assert rules.headers == {"redeemedAt": 0, "mobile": 1, "couponCode": 2, "redeemedDateInMillis": 3}


def redeemed_problems(*rows: list[str], coupon: CouponIdentifier = CouponIdentifier.COUPON_CODE) -> str | None:
    """The error the rows ``[mobile, coupon, date, till]`` (rows 2, 3, ...) raise, None if they are valid."""
    rules = redeemed_rules(coupon=coupon)
    rules.bind("f.csv", ["mobile", COUPON_KEYS[coupon], "redeemedDateInMillis", "redeemedAt"], "")
    problems = Problems("f.csv")
    for number, row in enumerate(rows, start=2):
        rules.check(row, number, problems, lambda index: f"column {index + 1}")
    try:
        problems.raise_if_any()
    except CouponFileError as exc:
        return str(exc)
    return None


VALID_REDEMPTION = ["919800000001", "CODE1", "1764547200000", "till-1"]


@pytest.mark.parametrize("date", ["1764547200000", " 10000000000 ", "1000000000000"], ids=["13", "11", "13b"])
def test_a_redemption_with_epoch_milliseconds_and_a_till_is_valid(date: str) -> None:
    assert redeemed_problems(["919800000001", "CODE1", date, "till-1"]) is None


@pytest.mark.parametrize(
    ("date", "problem"),
    [
        ("yesterday", "a redemption date that is not epoch milliseconds in column 3: row 2. Give"),
        ("1764547200", "a redemption date that looks like seconds, not milliseconds, in column 3: row 2. Multiply"),
        ("17645472000000", "a redemption date that is not epoch milliseconds in column 3: row 2. Give"),
    ],
    ids=["not-digits", "seconds", "too-long"],
)
def test_a_redemption_date_that_is_not_epoch_milliseconds_is_a_problem(date: str, problem: str) -> None:
    assert redeemed_problems(["919800000001", "CODE1", date, "till-1"]) == f"f.csv: 1 row has {problem}" + (
        " redeemedDateInMillis as epoch milliseconds, e.g. 1764547200000."
        if problem.endswith("Give")
        else " epoch seconds by 1000: redeemedDateInMillis is in milliseconds."
    )


def test_an_empty_till_is_a_problem() -> None:
    assert redeemed_problems(["919800000001", "CODE1", "1764547200000", "  "]) == (
        "f.csv: 1 row has an empty redeemedAt (till) in column 4: row 2. Fill in the till id."
    )


def test_an_invalid_customer_or_coupon_id_is_a_problem_of_its_own_column() -> None:
    message = redeemed_problems(
        ["919800000001", "123", "1764547200000", "t"],
        ["12345", "123", "1764547200000", "t"],
        ["919800000001", "A1", "1764547200000", "t"],
        coupon=CouponIdentifier.COUPON_ID,
    )
    assert message == (
        "f.csv: 1 row has an invalid MOBILE in column 1: row 3. "
        f"{ID_FIXES[IdentifierType.MOBILE]}: fix or remove those rows.\n"
        "f.csv: 1 row has an invalid COUPON_ID in column 2: row 4. A coupon id is made of digits only: fix or "
        "remove those rows."
    )


# -- coupon rows, the header and the problem collector, one function at a time -----------------------------


def header_error(line: bytes) -> str:
    with pytest.raises(CouponFileError) as info:
        parse_header("f.csv", line)
    return str(info.value)


def test_a_header_with_nul_bytes_is_not_taken_for_a_csv() -> None:
    assert header_error(b"mobile,\x00code\n") == "f.csv: row 1 contains NUL bytes: is this a CSV of coupon codes?"


def test_a_header_that_is_not_utf8_asks_for_utf8() -> None:
    assert header_error(b"mobile,c\xf6de\n") == "f.csv: row 1 is not valid UTF-8 text. Save the file as UTF-8."


def test_a_header_with_an_unclosed_quote_names_row_one() -> None:
    assert header_error(b'mobile,"code\n') == (
        "f.csv: row 1 opens a quoted field that is never closed. Close the quote."
    )


WRONG = " The delimiter looks wrong: row 1 has 1 column but contains "


@pytest.mark.parametrize(
    ("line", "cells", "hint"),
    [
        (b"mobile;code\n", ["mobile;code"], WRONG + "';'; set delimiter=\";\"."),
        (b"mobile\tcode\n", ["mobile\tcode"], WRONG + 'a tab; set delimiter="tab".'),
        (b"mobile|code\n", ["mobile|code"], WRONG + "'|'; set delimiter=\"|\"."),
        (b"code\n", ["code"], ""),
        (b'"mo""bile",code\r\n', ['mo"bile', "code"], ""),
        (b"mobile;x,code\n", ["mobile;x", "code"], ""),
    ],
    ids=["semicolon", "tab", "pipe", "one-column", "quoted", "semicolon-in-a-cell"],
)
def test_the_header_cells_and_a_hint_naming_the_delimiter_to_set_for_one_column_holding_another(
    line: bytes, cells: list[str], hint: str
) -> None:
    assert parse_header("f.csv", line) == (cells, hint)


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        (b"919800000001;CODE1\n", ";"),
        (b"CODE1\tjane@example.com\r\n", "tab"),
        (b"12345|CODE1\n", "|"),
    ],
    ids=["mobile", "email", "user-id"],
)
def test_the_delimiter_hint_also_says_has_header_false_when_row_1_looks_like_data(line: bytes, delimiter: str) -> None:
    seen = "a tab" if delimiter == "tab" else repr(delimiter)
    expected = f'{WRONG}{seen}; set delimiter="{delimiter}" and has_header=False (row 1 looks like data).'
    assert parse_header("f.csv", line)[1] == expected
    assert "9198" not in expected
    assert "jane" not in expected


@pytest.mark.parametrize(
    ("identifier", "column", "problem"),
    [
        (
            IdentifierType.NOT_TAGGED,
            0,
            "customer_identifier_column must be None for NOT_TAGGED (the file holds only codes).",
        ),
        (
            IdentifierType.MOBILE,
            None,
            "pass customer_identifier_column (0-based) to say which column holds the MOBILE.",
        ),
        (IdentifierType.MOBILE, -1, "customer_identifier_column must be 0 or more, not -1."),
        (
            IdentifierType.MOBILE,
            2,
            "customer_identifier_column 2 is out of range: the header has 2 column(s) (0-based indexes 0 to 1). HINT",
        ),
    ],
    ids=["not-tagged-with-column", "no-column", "negative", "out-of-range"],
)
def test_coupon_rows_refuse_a_column_that_cannot_hold_the_identifier(
    identifier: IdentifierType, column: int | None, problem: str
) -> None:
    with pytest.raises(CouponFileError) as info:
        CouponRows(identifier, column).bind("f.csv", ["mobile", "code"], " HINT")
    assert str(info.value) == f"f.csv: {problem}"


def coupon_problems(*rows: list[str], column: int = 0) -> str:
    rules, problems = CouponRows(IdentifierType.MOBILE, column), Problems("f.csv")
    for number, row in enumerate(rows, start=2):
        rules.check(row, number, problems, lambda index: f"column {index + 1}")
    with pytest.raises(CouponFileError) as info:
        problems.raise_if_any()
    return str(info.value)


def test_coupon_rows_name_each_problem_its_column_rows_and_fix() -> None:
    assert coupon_problems(
        ["919800000001", " "], ["919800000001", "A\nB"], ["919800000001", "A\rB"], ["12345", "C1"], ["919800000001", ""]
    ) == (
        "f.csv: 2 rows have an empty coupon code in column 2: rows 2, 6. Remove those rows or fill in a code.\n"
        "f.csv: 2 rows have a coupon code containing a line break in column 2: rows 3, 4. A coupon code is one "
        "line: remove the line breaks inside the quoted codes.\n"
        f"f.csv: 1 row has an invalid MOBILE identifier in column 1: row 5. {ID_FIXES[IdentifierType.MOBILE]}: fix "
        "or remove those rows, or check customer_identifier_column and customer_identifier."
    )


def test_problems_keep_the_first_problem_of_each_bad_row_only_when_asked() -> None:
    kept, counted = Problems("f.csv", keep_rows=True), Problems("f.csv")
    for problems in (kept, counted):
        problems.add("a", "first", "fix", 3)
        problems.add("b", "second", "fix", 3)
    assert (kept.bad_rows, counted.bad_rows) == ({3: "first"}, {})


def test_problems_name_rows_as_the_users_file_does_and_count_past_ten_examples() -> None:
    problems = Problems("f.csv", row_offset=1)
    for row in range(2, 15):
        problems.add("a", "a problem", "Fix it.", row)
    with pytest.raises(CouponFileError) as info:
        problems.raise_if_any()
    assert str(info.value) == "f.csv: 13 rows have a problem: rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 3 more. Fix it."


def test_dates_that_are_not_digits_and_dates_too_long_are_counted_as_one_problem() -> None:
    assert redeemed_problems(
        ["919800000001", "CODE1", "yesterday", "t"], ["919800000001", "CODE1", "17645472000000", "t"]
    ) == (
        "f.csv: 2 rows have a redemption date that is not epoch milliseconds in column 3: rows 2, 3. Give "
        "redeemedDateInMillis as epoch milliseconds, e.g. 1764547200000."
    )


# -- scan_file's own messages, word for word (each names the file, the row and the fix) -----------------

MIB = 1 << 20
ROW = b"919876543210,A\n"
SCAN_MESSAGES = {
    "a row over 1 MiB across chunks": (
        b"mobile,code\n" + ROW * 3 + b"919876543210," + b"C" * MIB + b"\n" + ROW,
        "row 5 is longer than 1 MiB: is this a CSV of coupon codes?",
    ),
    "a row over 1 MiB after blank lines": (
        b"mobile,code\n" + ROW * 3 + b"\n\n919876543210," + b"C" * MIB + b"\n" + ROW,
        "row 7 is longer than 1 MiB: is this a CSV of coupon codes?",
    ),
    "a header over 1 MiB": (
        b"m" * (2 * MIB) + b",code\n" + ROW,
        "row 1 is longer than 1 MiB: is this a CSV of coupon codes?",
    ),
    "an unclosed quote over 1 MiB": (
        b"mobile,code\n" + ROW + b'919876543210,"' + b"C" * (MIB + 10),
        "row 3 opens a quoted field that is never closed. Close the quote.",
    ),
    "a header and no rows": (b"mobile,code\n", "has a header row but no coupon rows. Add rows or skip the upload."),
    "only spaces": (b"   \n", "needs 2 columns (a MOBILE and a coupon code) but has 1."),
    "spaces after the last row": (
        b"mobile,code\n" + ROW + b"   ",
        "1 row has a number of columns different from the header's 2: row 3 (1 columns). Give every row 2 "
        "comma-separated fields; quote fields containing commas.",
    ),
    "an empty line": (
        b"mobile,code\n" + ROW + b"\n" + ROW,
        "1 row has no content (an empty line): row 3. Remove the empty lines.",
    ),
    "a NUL as a block's first byte": (
        b"mobile,code\n\x00" + ROW + ROW,
        "row 2 contains NUL bytes: is this a CSV of coupon codes?",
    ),
    "a NUL right after a row": (
        b"mobile,code\n" + ROW + b"\x00" + ROW,
        "row 3 contains NUL bytes: is this a CSV of coupon codes?",
    ),
    "the first of two NULs": (
        b"mobile,code\n" + ROW + b"91987654321\x00,B\n9198765432\x00,C\n",
        "row 3 contains NUL bytes: is this a CSV of coupon codes?",
    ),
    "bad UTF-8 as a block's first byte": (
        b"mobile,code\n\xff" + ROW + ROW,
        "row 2 is not valid UTF-8 text. Save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel).",
    ),
    "bad UTF-8 right after a row": (
        b"mobile,code\n" + ROW + b"\xff" + ROW,
        "row 3 is not valid UTF-8 text. Save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel).",
    ),
    "a stray quote": (
        b"mobile,code\n" + ROW + b'919876543210,B"x\n',
        "row 3 has a stray double quote (inside an unquoted field or after a closing quote). Enclose such fields "
        'in double quotes and double the quotes inside them ("").',
    ),
    "a NUL in the header": (b"mobile,co\x00de\n" + ROW, "row 1 contains NUL bytes: is this a CSV of coupon codes?"),
}


SCAN_MESSAGE_CASES = [
    pytest.param(data, reason, chunk_size, id=f"{label} [{chunk_size}-byte chunks]")
    for label, (data, reason) in SCAN_MESSAGES.items()
    for chunk_size in ([1 << 16] if len(data) > MIB else [4, 1 << 16])  # 4-byte chunks over a MiB: slow, no more proof
]


@pytest.mark.parametrize(("data", "reason", "chunk_size"), SCAN_MESSAGE_CASES)
def test_scan_names_the_file_row_and_fix(data: bytes, reason: str, chunk_size: int) -> None:
    assert scan_error(data, chunk_size=chunk_size) == f"coupons.csv: {reason}"


def test_a_row_of_exactly_1_mib_is_accepted() -> None:
    data = b"mobile,code\n" + ROW * 3 + b"919876543210," + b"C" * (MIB - 13) + b"\n" + ROW
    assert scan(data, chunk_size=1 << 16).rows == 5


def test_an_empty_line_of_a_codes_only_file_is_an_empty_code() -> None:
    assert scan_error(b"code\nA\n\nB\n", "NOT_TAGGED", None) == (
        'coupons.csv: 1 row has an empty coupon code in column 1 ("code"): row 3. Remove those rows or fill in a code.'
    )


@pytest.mark.parametrize(
    ("identifier", "column", "reason"),
    [
        ("MOBILE", 0, "batch_size must be at least 1, not 0."),
        ("MOBILE", None, "pass customer_identifier_column (0-based) to say which column holds the MOBILE."),
    ],
    ids=["batch size", "identifier column"],
)
def test_scan_arguments_are_named_with_the_file(identifier: str, column: int | None, reason: str) -> None:
    batch_size = 0 if "batch_size" in reason else 10
    assert scan_error(GOOD, identifier, column, batch_size=batch_size) == f"coupons.csv: {reason}"


class FailingStream(io.BytesIO):
    """A source whose reads fail after ``good`` bytes, as a truncated download does."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.good:
            raise OSError("connection reset")
        return super().read(size)


@pytest.mark.parametrize("good", [0, 20], ids=["first read", "a later read"])
def test_a_failing_read_names_the_file_and_is_retried_as_a_storage_error_not_a_corrupt_file(good: int) -> None:
    with pytest.raises(CouponSourceReadError) as info:
        scan_file(
            FailingStream(GOOD * 3, good), name="coupons.csv", rules=CouponRows(IdentifierType.MOBILE, 0), chunk_size=8
        )
    assert str(info.value) == (
        "coupons.csv: reading it failed (OSError: connection reset). This is a storage or network error, "
        "not a fault of the file: a retry of the task reads it again."
    )
    assert not isinstance(info.value, (CouponFileError, AirflowFailException))  # Airflow retries the task


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_a_byte_order_mark_read_in_tiny_chunks_is_dropped(chunk_size: int) -> None:
    data = b"\xef\xbb\xbf" + GOOD
    assert scan(data, chunk_size=chunk_size) == scan(data)
    assert scan(data, chunk_size=chunk_size).header == GOOD.split(b"\n")[0] + b"\n"


def test_row_offset_renames_rows_in_messages_and_is_kept_in_the_plan() -> None:
    data = b"mobile,code\n" + ROW + b"12,B\n"
    plan = scan_file(
        io.BytesIO(data),
        name="coupons.csv",
        rules=CouponRows(IdentifierType.MOBILE, 0),
        skip_invalid=True,
        row_offset=1,
    )
    assert plan.row_offset == 1
    assert list(plan.rejected) == [3]
    with pytest.raises(CouponFileError, match=r": row 2\."):
        scan_file(io.BytesIO(data), name="coupons.csv", rules=CouponRows(IdentifierType.MOBILE, 0), row_offset=1)


def test_files_without_a_block_spec_are_batched_at_the_same_boundaries() -> None:
    data = variable_width_rows(25, {})
    fast = scan_file(io.BytesIO(data), name="coupons.csv", rules=CouponRows(IdentifierType.MOBILE, 0), batch_size=7)
    slow = scan_file(io.BytesIO(data), name="coupons.csv", rules=RecordByRecord(IdentifierType.MOBILE, 0), batch_size=7)
    assert slow.batches == fast.batches
    assert [batch.rows for batch in slow.batches] == [7, 7, 7, 4]
