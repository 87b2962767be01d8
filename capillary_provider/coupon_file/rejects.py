"""Skipped rows (``invalid_rows="skip"``): split a scanned file into the rows that go up and the rejected ones.

A rejected row is written in the form it would have gone up (comma-separated, only the columns Capillary
takes), with its 1-based row number in the source and the reason. Both files are streamed.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from capillary_provider.coupon_file.reading import BOM, CHUNK_SIZE, read_chunk
from capillary_provider.coupon_file.records import record_blocks, split_records
from capillary_provider.coupon_file.rows import RowRules
from capillary_provider.coupon_file.scan import FilePlan, scan_file
from capillary_provider.coupon_file.sources import ReadOnce


def _extra_cells(row: int, reason: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([row, reason])
    return b"," + buffer.getvalue().encode()


def split_rejected(
    stream: BinaryIO,
    *,
    name: str,
    header: bytes,
    rejected: dict[int, str],
    kept: BinaryIO,
    rejects: BinaryIO,
    chunk_size: int = CHUNK_SIZE,
    row_offset: int = 0,
) -> int:
    """Copy ``stream`` (header included) to ``kept`` without the ``rejected`` rows, which go to ``rejects``.

    :param stream: the source as the scan read it, from its start (a UTF-8 byte-order mark is dropped).
    :param header: the header line the scan found (written first to both files).
    :param rejected: row number (1 = the header) to reason, from the scan.
    :return: the number of rows written to ``rejects``.
    """
    kept.write(header)
    rejects.write(header.rstrip(b"\r\n") + b",row,reason\n")
    buf = read_chunk(stream, chunk_size, name)
    buf = buf.removeprefix(BOM)
    skip = len(header)
    while len(buf) < skip:  # the header may be longer than a chunk
        more = read_chunk(stream, chunk_size, name)
        if not more:
            break
        buf += more
    row, written, bad_rows = 2, 0, sorted(rejected)
    for block, final in record_blocks(stream, name, chunk_size, buf[skip:]):
        records = _records(block, row, name, final)
        written += _write_block(block, records, row, (rejected, bad_rows), kept, rejects, row_offset)
        row += len(records)
    return written


def _records(block: bytes, row: int, name: str, final: bool) -> list[bytes]:
    """The records of ``block``: without quotes a record is a line (split in C); with quotes, record by record."""
    if b'"' in block:
        ends = [end for end, _ in split_records(block, row, name, final=final)]
        return [block[start:end] for start, end in zip([0, *ends], ends, strict=False)]
    return block.splitlines(keepends=True)


def _write_block(
    block: bytes,
    records: list[bytes],
    row: int,
    rejected: tuple[dict[int, str], list[int]],
    kept: BinaryIO,
    rejects: BinaryIO,
    row_offset: int,
) -> int:
    """Write the rejected rows of this block (``rejected``: reasons by row, and their sorted row numbers), then
    the runs of kept records between them, written whole; return how many were rejected."""
    reasons, bad_rows = rejected
    bad = bad_rows[bisect.bisect_left(bad_rows, row) : bisect.bisect_left(bad_rows, row + len(records))]
    kept_from = 0
    for bad_row in bad:
        at = bad_row - row
        kept.write(b"".join(records[kept_from:at]))
        rejects.write(records[at].rstrip(b"\r\n") + _extra_cells(bad_row - row_offset, reasons[bad_row]) + b"\n")
        kept_from = at + 1
    kept.write(b"".join(records[kept_from:]) if kept_from else block)
    return len(bad)


class SkippedRows:
    """The file without its invalid rows, ready to upload, and the rejected rows saved where the user said.

    Order matters: the rejected rows are written to ``rejected_rows_to`` before anything is uploaded, so
    a row that never reaches Capillary is never lost, whatever happens next.

    :param source: the scanned source.
    :param plan: the scan's plan, with :attr:`FilePlan.rejected`.
    :param rules: the kind's row rules (the file without the rows is planned again with them).
    :param name: the source as the task names it, for messages.
    :param batch_size: most rows per batch.
    :param rejected_rows_to: where the rejected-rows CSV goes (any ``ObjectStoragePath``).
    :param spool_dir: the local folder of the file without its invalid rows (None: the system's temporary
        folder); it holds that second copy until the upload ends.
    """

    def __init__(
        self,
        source: ReadOnce,
        plan: FilePlan,
        rules: RowRules,
        *,
        name: str,
        batch_size: int,
        rejected_rows_to: Any,
        spool_dir: str | None = None,
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="capillary-skip-", dir=spool_dir))
        kept_path, rejects_path = self._dir / "kept.csv", self._dir / "rejected.csv"
        with source.for_upload() as stream, kept_path.open("wb") as kept, rejects_path.open("wb") as rejects:
            self.count = split_rejected(
                stream,
                name=name,
                header=plan.header,
                rejected=plan.rejected,
                kept=kept,
                rejects=rejects,
                row_offset=plan.row_offset,
            )
        with contextlib.suppress(OSError, NotImplementedError):  # object stores have no folders to make
            rejected_rows_to.parent.mkdir(parents=True, exist_ok=True)
        with rejects_path.open("rb") as local, rejected_rows_to.open("wb") as remote:
            shutil.copyfileobj(local, remote, CHUNK_SIZE)
        self.rejected_rows_to = rejected_rows_to
        self.source = ReadOnce(kept_path, name=name)
        with self.source.for_scan() as stream:
            self.plan = scan_file(
                stream, name=name, rules=rules, batch_size=batch_size, validate=False, row_offset=plan.row_offset
            )

    def close(self) -> None:
        """Delete the local files (the rejected rows are safe in ``rejected_rows_to``)."""
        shutil.rmtree(self._dir, ignore_errors=True)
