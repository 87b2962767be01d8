"""Validate a CSV and plan its upload batches in one streaming pass.

:func:`scan_file` reads the (decompressed) source once, in chunks of 1 MiB cut at the last record
boundary, validates it and records where every batch of at most ``batch_size`` records starts and
ends. Blocks without quotes are checked with whole-chunk C operations
(:mod:`capillary_provider.coupon_file.fast`); blocks with quotes, or that fail a fast check, are
re-scanned record by record with the kind's :class:`~capillary_provider.coupon_file.rows.RowRules`,
which is also what names the offending rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.fast import BlockSpec, suspect_lines, valid_block_lines
from capillary_provider.coupon_file.header import parse_header
from capillary_provider.coupon_file.reading import read_chunk
from capillary_provider.coupon_file.records import (
    first_record_end,
    keep_blank_tail,
    last_record_end,
    nth_line_end,
    split_records,
    unquote,
)
from capillary_provider.coupon_file.rows import CouponRows, Problems, RowRules
from capillary_provider.identifiers import IdentifierType

DEFAULT_BATCH_SIZE = 500_000
"""Capillary recommends at most 500,000 rows per upload."""
CHUNK_SIZE = 1 << 20
"""Read size of the scan: blocks that stay in the CPU cache across the several whole-block passes (1 MiB
scans about 15% faster than 8 MiB, and needs less memory)."""
MAX_ROW_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Batch:
    """One upload: records ``[start, end)`` of the decompressed stream, sent after the header."""

    part: int
    start: int
    end: int
    rows: int
    first_row: int


@dataclass(frozen=True)
class FilePlan:
    """The result of :func:`scan_file`."""

    name: str
    header: bytes
    columns: int
    rows: int
    batches: tuple[Batch, ...]
    size: int
    rejected: dict[int, str] = field(default_factory=dict)
    row_offset: int = 0
    """What to subtract from a row number to name it in the user's file (1 for a file without header)."""
    """With ``skip_invalid``: the invalid rows (1-based row number in the file) and why each is invalid."""


class Batcher:
    """Cuts the records into batches of at most ``size`` as blocks of them are scanned."""

    def __init__(self, size: int, start: int) -> None:
        self.size, self.start, self.rows, self.first_row = size, start, 0, 2
        self.batches: list[tuple[int, int, int, int, int]] = []  # Batch fields

    def _close(self, end: int) -> None:
        part = len(self.batches) + 1
        self.batches.append((part, self.start, end, self.rows, self.first_row))
        self.start, self.first_row, self.rows = end, self.first_row + self.rows, 0

    def add_block(self, offset: int, count: int, end_of: Callable[[int], int]) -> None:
        """Add ``count`` records; ``end_of(j)`` is the block offset just past its ``j``-th record."""
        done = 0
        while self.rows + count - done >= self.size:
            done += self.size - self.rows
            self.rows = self.size
            self._close(offset + end_of(done))
        self.rows += count - done

    def finish(self, end: int) -> None:
        if self.rows:
            self._close(end)


class _Scanner:
    """Scans blocks of complete records: whole-block fast checks where the rules allow, else row by row."""

    def __init__(
        self,
        name: str,
        rules: RowRules,
        spec: BlockSpec | None,
        header: list[str],
        validate: bool,
        keep_rows: bool,
        row_offset: int = 0,
    ) -> None:
        self.name, self.rules, self.spec, self.header, self.validate = name, rules, spec, header, validate
        self.columns = len(header)
        self.problems = Problems(name, keep_rows, row_offset)

    def _col(self, col: int) -> str:
        return f'column {col + 1} ("{self.header[col]}")'

    def precise(self, blk: bytes, row: int, batcher: Batcher, offset: int, final: bool) -> int:
        """Record-by-record scan of one block; returns the number of records."""
        ends = self._records(blk, row, final)
        batcher.add_block(offset, len(ends), lambda j: ends[j - 1])
        return len(ends)

    def _records(self, blk: bytes, row: int, final: bool) -> list[int]:
        """Check the records of ``blk`` one by one (from row number ``row``); return their end offsets."""
        bad_utf8 = bad_nul = -1
        if self.validate:
            try:
                blk.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_utf8 = exc.start
            bad_nul = blk.find(b"\x00")
        ends: list[int] = []
        for end, fields in split_records(blk, row, self.name, final):
            if 0 <= bad_nul < end:
                raise fail(self.name, f"row {row} contains NUL bytes: is this a CSV of coupon codes?")
            if 0 <= bad_utf8 < end:
                raise fail(
                    self.name,
                    f"row {row} is not valid UTF-8 text. Save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel).",
                )
            if self.validate:
                self._check(fields, row)
            ends.append(end)
            row += 1
        return ends

    def _suspects_checked(self, body: bytes, spec: BlockSpec, row: int) -> int:
        """Check only the lines of a quote-free block that :func:`suspect_lines` finds; return the line count."""
        pos = 0
        for start, end in suspect_lines(body, spec):
            row += body.count(b"\n", pos, start)  # counted piece by piece: one pass over the block in all
            self._records(body[start:end], row, final=True)
            row, pos = row + 1, end
        return body.count(b"\n")

    def _check(self, raw: list[bytes], row: int) -> None:
        columns, add = self.columns, self.problems.add
        if len(raw) != columns:
            if raw == [b""] and columns > 1:
                add("empty", "no content (an empty line)", "Remove the empty lines.", row)
            else:
                add(
                    "columns",
                    f"a number of columns different from the header's {columns}",
                    f"Give every row {columns} comma-separated fields; quote fields containing commas.",
                    row,
                    f"{row} ({len(raw)} columns)",
                )
            return
        self.rules.check([unquote(f).decode("utf-8") for f in raw], row, self.problems, self._col)

    def block(self, blk: bytes, row: int, batcher: Batcher, offset: int, final: bool) -> int:
        """Scan one block of complete records; returns the number of records."""
        if not blk:
            return 0
        if b'"' in blk:
            return self.precise(blk, row, batcher, offset, final)
        body = blk if blk.endswith(b"\n") else blk + b"\n"
        if self.validate:
            if self.spec is None:
                return self.precise(blk, row, batcher, offset, final)
            count = valid_block_lines(body, self.spec)
            if count is None:
                # Some bad rows: check those alone (the search proves the rest of the block valid).
                count = self._suspects_checked(body, self.spec, row)
        else:
            count = body.count(b"\n")
        batcher.add_block(offset, count, lambda j: nth_line_end(blk, j))
        return count


def scan_file(
    stream: BinaryIO,
    *,
    name: str,
    rules: RowRules,
    batch_size: int = DEFAULT_BATCH_SIZE,
    validate: bool = True,
    chunk_size: int = CHUNK_SIZE,
    skip_invalid: bool = False,
    row_offset: int = 0,
) -> FilePlan:
    """Validate a CSV and plan its batches in one sequential pass with flat memory.

    :param stream: the decompressed binary source, read sequentially with ``read(n)``.
    :param name: file name or URI used in error messages.
    :param rules: what the upload kind requires of the header and of each row.
    :param batch_size: maximum records per batch.
    :param skip_invalid: collect the invalid rows in :attr:`FilePlan.rejected` instead of raising (the
        batches then still include them: :func:`capillary_provider.coupon_file.rejects.split_rejected`
        writes the file without them). Problems of the whole file (not UTF-8, a broken quote) still raise.
    :param row_offset: subtracted from row numbers in messages: 1 when the header was added to a file
        that had none, so rows are named as the user's file numbers them.
    :param validate: ``False`` skips content checks but still finds record boundaries.
    :param chunk_size: read size; small values exist for tests of chunk-boundary cases.
    :raises CouponFileError: naming the file, rows, column, count and fix.
    """
    if batch_size < 1:
        raise fail(name, f"batch_size must be at least 1, not {batch_size}.")
    buf = read_chunk(stream, chunk_size, name)
    offset, eof = 0, not buf
    if buf.startswith(_BOM[: len(buf)]) and len(buf) < len(_BOM):
        buf += read_chunk(stream, len(_BOM), name)
    if buf.startswith(_BOM):
        buf, offset = buf[len(_BOM) :], len(_BOM)
    while not eof and first_record_end(buf) == 0:
        if len(buf) > MAX_ROW_BYTES:
            raise fail(name, "row 1 is longer than 1 MiB: is this a CSV of coupon codes?")
        more = read_chunk(stream, chunk_size, name)
        eof = not more
        buf += more
    if not buf.strip(b"\r\n"):
        raise fail(name, "is empty: a header row and at least one row of coupon codes are needed.")
    cut = first_record_end(buf) or len(buf)
    header_line, buf = buf[:cut], buf[cut:]
    header, hint = parse_header(name, header_line)
    spec = rules.bind(name, header, hint)
    offset += cut
    if not header_line.endswith(b"\n"):
        header_line += b"\n"
    scanner = _Scanner(name, rules, spec, header, validate, skip_invalid, row_offset)
    batcher = Batcher(batch_size, offset)
    row = 2
    while True:
        if not eof:
            more = read_chunk(stream, chunk_size, name)
            eof = not more
            nl = more.rfind(b"\n")
            if nl >= 0:
                # The carry's last (partial) line continues up to the new chunk's first newline.
                last = buf.rfind(b"\n")
                if len(buf) - last - 1 + more.find(b"\n") > MAX_ROW_BYTES:
                    long_row = row + buf.count(b"\n", 0, last + 1)
                    raise fail(name, f"row {long_row} is longer than 1 MiB: is this a CSV of coupon codes?")
            if nl >= 0 and b'"' not in more and b'"' not in buf:
                # Common case: the new chunk ends lines and has no quotes, so the block is the carry
                # plus the chunk up to its last newline, built with a single copy.
                blk = b"".join((buf, memoryview(more)[: nl + 1]))
                buf = more[nl + 1 :]
                cut = keep_blank_tail(blk, len(blk))
                if cut < len(blk):
                    blk, buf = blk[:cut], blk[cut:] + buf
                row += scanner.block(blk, row, batcher, offset, final=False)
                offset += len(blk)
                continue
            buf += more
        if eof:
            size = offset + len(buf)
            buf = b"" if not buf.strip(b"\r\n") else buf[: keep_blank_tail(buf, len(buf))]
            row += scanner.block(buf, row, batcher, offset, final=True)
            batcher.finish(offset + len(buf))
            break
        cut = keep_blank_tail(buf, last_record_end(buf))
        if cut == 0:
            if len(buf) > MAX_ROW_BYTES:
                if b'"' in buf:
                    list(split_records(buf, row, name, final=True))
                raise fail(name, f"row {row} is longer than 1 MiB: is this a CSV of coupon codes?")
            continue
        row += scanner.block(buf[:cut], row, batcher, offset, final=False)
        buf, offset = buf[cut:], offset + cut
    if not skip_invalid:
        scanner.problems.raise_if_any()
    if row == 2:
        raise fail(name, "has a header row but no coupon rows. Add rows or skip the upload.")
    batches = tuple(Batch(*fields) for fields in batcher.batches)
    return FilePlan(name, header_line, len(header), row - 2, batches, size, scanner.problems.bad_rows, row_offset)


def scan_coupon_file(
    stream: BinaryIO,
    *,
    name: str,
    customer_identifier: str,
    customer_identifier_column: int | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    validate: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> FilePlan:
    """:func:`scan_file` for a coupon upload (:class:`~capillary_provider.coupon_file.rows.CouponRows`)."""
    try:
        identifier = IdentifierType.parse(customer_identifier)
    except ValueError as exc:
        raise fail(name, f"customer_identifier {exc}.") from None
    rules = CouponRows(identifier, customer_identifier_column)
    rules.check_arguments(name)
    return scan_file(stream, name=name, rules=rules, batch_size=batch_size, validate=validate, chunk_size=chunk_size)
