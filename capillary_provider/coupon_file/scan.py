"""Validate a CSV and plan its upload batches in one streaming pass, in chunks cut at record boundaries.

Each block is checked by :class:`~capillary_provider.coupon_file.blocks.BlockScanner`: whole-block C
operations where they can prove it valid, else record by record with the kind's row rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from capillary_provider.coupon_file.blocks import Batcher, BlockScanner
from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.fast import BlockSpec
from capillary_provider.coupon_file.header import parse_header
from capillary_provider.coupon_file.reading import BOM, CHUNK_SIZE, read_chunk
from capillary_provider.coupon_file.records import (
    first_record_end,
    keep_blank_tail,
    last_record_end,
    split_records,
)
from capillary_provider.coupon_file.rows import RowRules
from capillary_provider.exceptions import CouponFileError

DEFAULT_BATCH_SIZE = 500_000
"""Capillary recommends at most 500,000 rows per upload."""
MAX_ROW_BYTES = 1 << 20


def _too_long(name: str, row: int) -> CouponFileError:
    return fail(name, f"row {row} is longer than 1 MiB: is this a CSV of coupon codes?")


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
    """With ``skip_invalid``: the invalid rows (1-based row number in the file) and why each is invalid."""
    row_offset: int = 0
    """What to subtract from a row number to name it in the user's file (1 for a file without header)."""


def _read_header(
    stream: BinaryIO, name: str, rules: RowRules, chunk_size: int
) -> tuple[bytes, list[str], BlockSpec | None, tuple[bytes, int, bool]]:
    """Read up to the header row (a BOM dropped) and bind the rules to it.

    :returns: the header line (ending in a newline), its cells, the shape the fast checks may prove,
        and where the rows start: the bytes read past it, their offset in the stream, whether it has ended.
    """
    buf = read_chunk(stream, chunk_size, name)
    offset, eof = 0, not buf
    if buf.startswith(BOM[: len(buf)]) and len(buf) < len(BOM):
        buf += read_chunk(stream, len(BOM), name)
    if buf.startswith(BOM):
        buf, offset = buf[len(BOM) :], len(BOM)
    while not eof and first_record_end(buf) == 0:
        if len(buf) > MAX_ROW_BYTES:
            raise _too_long(name, 1)
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
    return header_line, header, spec, (buf, offset, eof)


def _scan_rows(
    stream: BinaryIO,
    name: str,
    chunk_size: int,
    scanner: BlockScanner,
    batcher: Batcher,
    start: tuple[bytes, int, bool],
) -> tuple[int, int]:
    """Scan every record after the header, block by block; returns the next row number and the stream's size."""
    (buf, offset, eof), row = start, 2
    while True:
        if not eof:
            more = read_chunk(stream, chunk_size, name)
            eof = not more
            nl = more.rfind(b"\n")
            if nl >= 0:
                # The carry's last (partial) line continues up to the new chunk's first newline.
                last = buf.rfind(b"\n")
                if len(buf) - last - 1 + more.find(b"\n") > MAX_ROW_BYTES:
                    raise _too_long(name, row + buf.count(b"\n", 0, last + 1))
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
                raise _too_long(name, row)
            continue
        row += scanner.block(buf[:cut], row, batcher, offset, final=False)
        buf, offset = buf[cut:], offset + cut
    return row, size


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
    header_line, header, spec, start = _read_header(stream, name, rules, chunk_size)
    scanner = BlockScanner(name, rules, spec, header, validate, skip_invalid, row_offset)
    batcher = Batcher(batch_size, start[1])
    row, size = _scan_rows(stream, name, chunk_size, scanner, batcher, start)
    if not skip_invalid:
        scanner.problems.raise_if_any()
    if row == 2:
        raise fail(name, "has a header row but no coupon rows. Add rows or skip the upload.")
    batches = tuple(Batch(*fields) for fields in batcher.batches)
    return FilePlan(name, header_line, len(header), row - 2, batches, size, scanner.problems.bad_rows, row_offset)
