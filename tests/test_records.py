"""``coupon_file.records`` boundaries against plain references, and the hook's byte sizes, exactly."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capillary_provider.coupon_file.records import (
    first_record_end,
    keep_blank_tail,
    last_record_end,
    nth_line_end,
    split_records,
    unquote,
)
from capillary_provider.exceptions import CouponFileError
from capillary_provider.hooks._upload_body import human_bytes


def nth_line_end_reference(blk: bytes, n: int) -> int:
    pos = 0
    for _ in range(n):
        found = blk.find(b"\n", pos)
        if found < 0:
            return len(blk)
        pos = found + 1
    return pos


def last_record_end_reference(buf: bytes) -> int:
    """The end of the last newline that has an even number of quotes before it."""
    quotes, end = 0, 0
    for i, byte in enumerate(buf):
        if byte == 34:
            quotes += 1
        elif byte == 10 and quotes % 2 == 0:
            end = i + 1
    return end


LINES = st.lists(st.sampled_from([b"", b"a", b"bb,c", b'"q"', b'"x\ny"', b'"', b"zzzz"]), max_size=30)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(LINES, st.integers(0, 40))
def test_nth_line_end_matches_the_reference(parts: list[bytes], n: int) -> None:
    blk = b"\n".join(parts)
    assert nth_line_end(blk, n) == nth_line_end_reference(blk, n)


@pytest.mark.parametrize("n", [0, 1, 2, 5000, 5999, 6000, 6001, 6002, 12000, 12001, 12002, 20000])
def test_nth_line_end_bisects_large_blocks(n: int) -> None:
    blk = b"".join(b"row%07d\n" % i for i in range(12001))  # 132 KB: past the 64 KiB bisection window
    assert nth_line_end(blk, n) == nth_line_end_reference(blk, n)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(LINES)
def test_last_record_end_matches_the_reference(parts: list[bytes]) -> None:
    buf = b"\n".join(parts)
    assert last_record_end(buf) == last_record_end_reference(buf)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1024.0 KiB"),
        (1024**2, "1.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**4, "3072.0 GiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


def first_record_end_reference(buf: bytes) -> int:
    """The end of the first newline that has an even number of quotes before it (0 if none)."""
    quotes = 0
    for i, byte in enumerate(buf):
        if byte == 34:
            quotes += 1
        elif byte == 10 and quotes % 2 == 0:
            return i + 1
    return 0


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(LINES)
def test_first_record_end_matches_the_reference(parts: list[bytes]) -> None:
    buf = b"\n".join(parts)
    assert first_record_end(buf) == first_record_end_reference(buf)


FIELDS = st.lists(st.text(alphabet='ab,"\n\r ', max_size=6), min_size=1, max_size=4)


def written(row: list[str], newline: str) -> str:
    """One row as the csv module writes it, ending with ``newline``. It is written with CRLF and the end
    swapped: with an LF terminator, Python up to 3.12 leaves a field holding a CR unquoted (a bare CR,
    which we refuse: test_split_records_names_the_row_and_the_problem)."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\r\n").writerow(row)
    return line.getvalue()[:-2] + newline


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(FIELDS, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_split_records_gives_back_what_the_csv_module_wrote(rows: list[list[str]], newline: str) -> None:
    lines = [written(row, newline).encode() for row in rows]
    split = list(split_records(b"".join(lines), 1, "f.csv", final=True))
    assert [[unquote(f).decode() for f in fields] for _, fields in split] == rows
    assert [end for end, _ in split] == [sum(map(len, lines[: n + 1])) for n in range(len(lines))]


def test_split_records_ends_a_last_record_without_newline_at_the_block_end() -> None:
    assert list(split_records(b'a,"b"\nlast', 1, "f.csv", final=True)) == [(6, [b"a", b'"b"']), (10, [b"last"])]


@pytest.mark.parametrize(
    ("blk", "final", "problem"),
    [
        (b'ok\n"never closed\n', True, "row 4 opens a quoted field that is never closed. Close the quote."),
        (
            b'ok\n"never closed\n',
            False,
            "row 4 has a stray double quote (inside an unquoted field or after a closing quote). Enclose such "
            'fields in double quotes and double the quotes inside them ("").',
        ),
        (
            b'ok\nab"c\n',
            True,
            "row 4 has a stray double quote (inside an unquoted field or after a closing quote). Enclose such "
            'fields in double quotes and double the quotes inside them ("").',
        ),
        (b"ok\na\rb\n", True, "row 4 contains a carriage return that does not end a line."),
    ],
    ids=["unclosed", "unclosed-not-final", "stray", "bare-cr"],
)
def test_split_records_names_the_row_and_the_problem(blk: bytes, final: bool, problem: str) -> None:
    with pytest.raises(CouponFileError) as info:
        list(split_records(blk, 3, "f.csv", final=final))
    assert str(info.value) == f"f.csv: {problem}"


def test_an_unquoted_field_before_an_unclosed_quote_is_a_stray_quote() -> None:
    with pytest.raises(CouponFileError, match="stray double quote"):
        list(split_records(b'a"never closed\n', 1, "f.csv", final=True))


@pytest.mark.parametrize(
    ("field", "value"), [(b'"a""b"', b'a"b'), (b'""', b""), (b"plain", b"plain"), (b'"x,y\n"', b"x,y\n")]
)
def test_unquote_drops_the_enclosing_quotes_and_undoubles_the_inner_ones(field: bytes, value: bytes) -> None:
    assert unquote(field) == value


@pytest.mark.parametrize(
    ("buf", "cut", "kept"),
    [
        (b"a\nb\n", 4, 4),
        (b"a\nb\n\n\n", 6, 4),
        (b"a\r\nb\r\n\r\n", 8, 6),
        (b"a\r\nb\n\r\n", 7, 5),
        (b"\n\n", 2, 0),
        (b"a\n\n\nb\n", 3, 2),
        (b"a\r\n\r\nb\n", 5, 3),
        (b"\n\r\nX", 3, 0),
    ],
    ids=["no-blank-tail", "lf", "crlf", "lf-then-crlf", "only-blank", "cut-inside", "crlf-cut-inside", "crlf-at-start"],
)
def test_keep_blank_tail_moves_the_cut_before_trailing_empty_lines(buf: bytes, cut: int, kept: int) -> None:
    assert keep_blank_tail(buf, cut) == kept


def test_text_right_after_a_closing_quote_is_named_a_stray_quote() -> None:
    with pytest.raises(CouponFileError, match=r"^coupons.csv: row 3 has a stray double quote \(inside an unquoted"):
        list(split_records(b'"a"b,1\n', 3, "coupons.csv", final=True))
