"""``coupon_file.records`` boundaries against plain references, and the hook's byte sizes, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capillary_provider.coupon_file.records import last_record_end, nth_line_end
from capillary_provider.hooks._transport import human_bytes


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


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(LINES, st.integers(0, 40))
def test_nth_line_end_matches_the_reference(parts: list[bytes], n: int) -> None:
    blk = b"\n".join(parts)
    assert nth_line_end(blk, n) == nth_line_end_reference(blk, n)


@pytest.mark.parametrize("n", [0, 1, 2, 5000, 5999, 6000, 6001, 6002, 12000, 12001, 12002, 20000])
def test_nth_line_end_bisects_large_blocks(n: int) -> None:
    blk = b"".join(b"row%07d\n" % i for i in range(12001))  # 132 KB: past the 64 KiB bisection window
    assert nth_line_end(blk, n) == nth_line_end_reference(blk, n)


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
