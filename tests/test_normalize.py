"""``normalize`` writes what the csv module would write, whichever path (bytes operations or csv) a block takes."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capillary_provider.coupon_file.normalize as normalize_module
from capillary_provider.coupon_file.normalize import normalize
from capillary_provider.exceptions import CouponFileError

SETTINGS = settings(
    max_examples=300, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
HEADER = ["mobile", "coupon code"]


def reference(data: bytes, delimiter: str, columns: Sequence[int] | None, header: bool) -> tuple[bytes, int]:
    """The conversion done row by row with the csv module: what every block must come out as."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    written = 0
    for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter, strict=True):
        kept = row if columns is None else [row[index] for index in columns if index < len(row)]
        if written == 0 and not header:
            writer.writerow(HEADER[: len(kept)])
            written += 1
        writer.writerow(kept)
        written += 1
    return out.getvalue().encode(), max(0, written - 1)


def converted(
    data: bytes, delimiter: str, columns: Sequence[int] | None, header: bool, chunk_size: int
) -> tuple[bytes, int]:
    out = io.BytesIO()
    rows = normalize(
        io.BytesIO(data),
        out,
        name="export.csv",
        delimiter=delimiter,
        columns=columns,
        header_for=None if header else (lambda n: HEADER[:n]),
        chunk_size=chunk_size,
    )
    return out.getvalue(), rows


FIELD = st.text(st.sampled_from([*'ab12 é,;\t|"', "\r"]), max_size=4) | st.sampled_from(["9198765432", "C0001", ""])


@st.composite
def exports(draw: st.DrawFn) -> tuple[bytes, str, Sequence[int] | None, bool, int]:
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = draw(st.integers(1, 4))
    plain = draw(st.booleans())  # rows of plain fields, all the same width: the fast path's case
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        cells = draw(
            st.lists(
                st.sampled_from(["9198765432", "C0001", "x y", ""]) if plain else FIELD,
                min_size=width,
                max_size=width if plain else width + 1,
            )
        )
        rows.append(delimiter.join(cells))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(rows) + (eol if draw(st.booleans()) else "")
    columns = draw(st.none() | st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True).map(sorted))
    return text.encode(), delimiter, columns, draw(st.booleans()), draw(st.sampled_from([8, 32, 1 << 20]))


def outcome(function: object, *args: object) -> tuple[bytes, int] | str:
    try:
        return function(*args)  # type: ignore[operator,no-any-return]
    except (csv.Error, CouponFileError):
        return "cannot be read as CSV"


@pytest.mark.slow
@SETTINGS
@given(exports())
def test_normalize_writes_what_the_csv_module_writes(
    example: tuple[bytes, str, Sequence[int] | None, bool, int],
) -> None:
    data, delimiter, columns, header, chunk_size = example
    assert outcome(converted, data, delimiter, columns, header, chunk_size) == outcome(
        reference, data, delimiter, columns, header
    )


def test_plain_blocks_take_the_bytes_path(monkeypatch: pytest.MonkeyPatch) -> None:
    by_csv: list[int] = []
    real = normalize_module._converted_by_csv

    def counting(*args: object) -> tuple[int, int]:
        by_csv.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(normalize_module, "_converted_by_csv", counting)
    data = b"".join(b"91987654%04d;C%d;Ann Bo;10.50\r\n" % (n, n) for n in range(2000))
    out, rows = converted(data, ";", [0, 1], False, 4096)
    assert by_csv == []
    assert rows == 2000
    assert out.splitlines()[:2] == [b"mobile,coupon code", b"919876540000,C0"]


def test_a_block_with_quotes_goes_through_csv_and_keeps_their_meaning() -> None:
    data = b'mobile;code;note\n9198765432;"C;1";"a ""b"""\n9198765433;C2;x\n'
    out, rows = converted(data, ";", [0, 1], True, 1 << 20)
    assert out == b"mobile,code\n9198765432,C;1\n9198765433,C2\n"
    assert rows == 2


def test_a_broken_quote_is_named_by_its_row_in_the_whole_file_not_in_its_block() -> None:
    data = b"".join(b"9198765%03d;C%d\n" % (n, n) for n in range(100)) + b'9198765999;"C\n' + b"x" * 10
    messages = []
    for chunk_size in (64, 1 << 20):
        with pytest.raises(CouponFileError) as info:
            converted(data, ";", None, True, chunk_size)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "row 102 cannot be read as CSV (unexpected end of data)" in messages[0]  # csv's line count
