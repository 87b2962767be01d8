from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import ClassVar

import pytest
from airflow.sdk import ObjectStoragePath
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capillary_provider.coupon_file import (
    Batch,
    BatchReader,
    CouponRows,
    FilePlan,
    open_coupon_source,
    scan_coupon_file,
    scan_file,
)
from capillary_provider.coupon_file.rows import Describe, Problems
from capillary_provider.exceptions import CouponFileError
from capillary_provider.identifiers import IdentifierType

CHUNK_SIZES = [1, 2, 3, 5, 7, 16, 64, 8 << 20]


def scan(data: bytes, identifier: str = "MOBILE", column: int | None = 0, **kwargs: object) -> FilePlan:
    return scan_coupon_file(
        io.BytesIO(data),
        name="coupons.csv",
        customer_identifier=identifier,
        customer_identifier_column=column,
        **kwargs,  # type: ignore[arg-type]
    )


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
    message = scan_error(GOOD, "PHONE", 0)
    assert "MOBILE, EMAIL, EXTERNAL_ID, USER_ID, NOT_TAGGED" in message


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
        plan = scan_coupon_file(stream, name=str(path), customer_identifier="MOBILE", customer_identifier_column=0)
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
        scan_coupon_file(stream, name=str(path), customer_identifier="MOBILE", customer_identifier_column=0)


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
