"""Real exports into the CSV Capillary expects: another delimiter, no header row, extra columns.

The comma-separated copy is what is validated and uploaded, so the checks and the batches see exactly
what Capillary receives.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.reading import BOM, CHUNK_SIZE, read_chunk
from capillary_provider.coupon_file.records import record_blocks
from capillary_provider.coupon_file.sources import ReadOnce, open_coupon_source

DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
"""The delimiters accepted (``"tab"`` names the tab)."""


def delimiter_of(value: str) -> str:
    """The delimiter ``value`` names; :class:`ValueError` naming the accepted ones otherwise."""
    if value not in DELIMITERS:
        raise ValueError(f"delimiter must be one of ',', ';', 'tab' (or a tab), '|', not {value!r}")
    return DELIMITERS[value]


def normalize(
    stream: BinaryIO,
    out: BinaryIO,
    *,
    name: str,
    delimiter: str = ",",
    header_for: Callable[[int], Sequence[str]] | None = None,
    columns: Sequence[int] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> int:
    """Copy a CSV to ``out`` comma-separated, with a header row, keeping only ``columns`` (in file order).

    The source is read in blocks of complete records. A block without quotes, commas or stray CRs
    whose lines all have the same number of fields is converted with bytes operations
    (:func:`_converted`); any other block goes through :mod:`csv`, which writes the same bytes for
    such blocks (a property test holds them equal), so the fast path changes the speed only.

    :param stream: the (decompressed) source, read once from its start.
    :param delimiter: the source's field delimiter.
    :param header_for: for a source without header row: the header to write, given the number of
        columns that go up (the first row is then data); None when the first row is the header.
    :param columns: 0-based columns of the source to keep; None keeps every column. A row too short
        for them keeps what it has, so the validation names it.
    :param chunk_size: read size; small values exist for tests of block boundaries.
    :return: the number of data rows written.
    """
    sep, offset, lines_before, written = delimiter.encode(), 0, 0, 0
    for block, _ in record_blocks(stream, name, chunk_size, read_chunk(stream, chunk_size, name).removeprefix(BOM)):
        if written == 0 and header_for is not None:
            first = next(csv.reader(io.StringIO(block.decode("utf-8", "replace"), newline=""), delimiter=delimiter))
            kept = len(first) if columns is None else sum(1 for index in columns if index < len(first))
            out.write(_csv_line(list(header_for(kept))))
            written += 1
        fast = _converted(block if block.endswith(b"\n") else block + b"\n", sep, columns)
        if fast is not None:
            out.write(fast)
            rows = lines = fast.count(b"\n")
        else:
            rows, lines = _converted_by_csv(block, out, name, delimiter, columns, offset, lines_before)
        written, offset, lines_before = written + rows, offset + len(block), lines_before + lines
    return max(0, written - 1)


def _csv_line(row: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue().encode()


def _converted_by_csv(
    block: bytes, out: BinaryIO, name: str, delimiter: str, columns: Sequence[int] | None, offset: int, lines: int
) -> tuple[int, int]:
    """Convert one block of complete records with :mod:`csv`; return the rows written and lines read."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(name, f"is not valid UTF-8 text near byte {offset + exc.start}. Save the file as UTF-8.") from exc
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    count = 0
    try:
        for row in rows:
            writer.writerow(row if columns is None else [row[index] for index in columns if index < len(row)])
            count += 1
    except csv.Error as exc:
        row_number = lines + rows.line_num
        raise fail(name, f"row {row_number} cannot be read as CSV ({exc}). Check the delimiter and quotes.") from exc
    out.write(buffer.getvalue().encode())
    return count, rows.line_num


_PROJECTIONS: dict[tuple[bytes, int, tuple[int, ...]], re.Pattern[bytes]] = {}


def _converted(block: bytes, sep: bytes, columns: Sequence[int] | None) -> bytes | None:
    """``block`` (complete lines ending with LF) as :mod:`csv` would write it, or None if it cannot tell.

    Without quotes, NULs, commas (in a file of another delimiter) and CRs other than CRLF, no field
    needs quoting, so the conversion is: CRLF to LF, and the kept fields joined by commas. A projection
    needs the same number of fields on every line (the ``translate`` shape proves it) and is one regex
    substitution; a single kept field that is empty would be written ``""`` by csv: left to it.
    """
    if b'"' in block or b"\x00" in block or (sep != b"," and b"," in block):
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if b"\r" in block:
        if block.count(b"\r") != block.count(b"\r\n"):
            return None
        block = block.replace(b"\r\n", b"\n")
    if columns is None:
        return block.replace(sep, b",") if sep != b"," else block
    fields = block.count(sep, 0, block.index(b"\n")) + 1
    lines = block.count(b"\n")
    if (
        block.translate(None, bytes(b for b in range(256) if b not in sep + b"\n"))
        != (sep * (fields - 1) + b"\n") * lines
    ):
        return None
    keep = tuple(index for index in columns if index < fields)
    if keep == tuple(range(fields)):
        return block.replace(sep, b",") if sep != b"," else block
    key = (sep, fields, keep)
    pattern = _PROJECTIONS.get(key)
    field = b"[^" + re.escape(sep) + rb"\n]*+"
    if keep == tuple(range(len(keep))) and keep:
        # The first fields: delete the others at the end of each line (a substitution without groups,
        # written out rather than repeated: about 4x faster than one that rebuilds lines from groups).
        if pattern is None:
            pattern = _PROJECTIONS[key] = re.compile((re.escape(sep) + field) * (fields - len(keep)) + b"\n")
        converted = pattern.sub(b"\n", block).replace(sep, b",")
    else:
        if pattern is None:
            pattern = _PROJECTIONS[key] = re.compile(re.escape(sep).join([b"(" + field + b")"] * fields) + rb"\n")
        converted = pattern.sub(b",".join(b"\\g<%d>" % (index + 1) for index in keep) + b"\n", block)
    if len(keep) == 1 and (converted.startswith(b"\n") or b"\n\n" in converted):
        return None
    return converted


def normalized_copy(path: Any, *, name: str, spool_dir: str | None = None, **options: Any) -> ReadOnce:
    """:func:`normalize` the source into a local file and return it as the source to validate and upload.

    The source is read from its store once; the local copy (deleted when the returned source is
    closed) is what Capillary receives. ``options`` are :func:`normalize`'s.
    """
    handle, local = tempfile.mkstemp(prefix="capillary-normalized-", suffix=".csv", dir=spool_dir)
    try:
        with open_coupon_source(path, name) as stream, os.fdopen(handle, "wb") as out:
            normalize(stream, out, name=name, **options)
    except BaseException:
        os.unlink(local)
        raise
    return ReadOnce(Path(local), name=name, owns_file=True)
