"""``coupon_file.rejects``: the kept and rejected rows a split writes, whatever the size of the blocks it reads."""

from __future__ import annotations

import io

import pytest

from capillary_provider.coupon_file.rejects import split_rejected

HEADER = b"mobile,code\n"


def split(data: bytes, rejected: dict[int, str], chunk_size: int) -> tuple[int, bytes, bytes]:
    kept, rejects = io.BytesIO(), io.BytesIO()
    written = split_rejected(
        io.BytesIO(data),
        name="coupons.csv",
        header=HEADER,
        rejected=rejected,
        kept=kept,
        rejects=rejects,
        chunk_size=chunk_size,
    )
    return written, kept.getvalue(), rejects.getvalue()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_blank_lines_inside_and_at_the_end_split_the_same_at_every_block_size(newline: bytes) -> None:
    rows = [b"919800000001,A", b"", b"", b'"bad,one",B', b"919800000003,C", b"bad,D", b"", b""]
    data = HEADER + newline.join(rows) + newline
    rejected = {5: "invalid mobile", 7: "invalid mobile"}  # spreadsheet rows: the header is row 1
    whole = split(data, rejected, 1 << 20)
    assert whole[0] == 2
    assert whole[2] == b'mobile,code,row,reason\n"bad,one",B,5,invalid mobile\nbad,D,7,invalid mobile\n'
    assert b"bad" not in whole[1]
    assert b"919800000001,A" in whole[1]
    assert b"919800000003,C" in whole[1]
    assert [split(data, rejected, size) for size in range(1, len(data) + 1)] == [whole] * len(data)
