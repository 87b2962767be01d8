"""Check blocks of complete records: whole-block fast checks where the kind's rules allow, else row by row.

The streaming pass (:func:`capillary_provider.coupon_file.scan.scan_file`) cuts the source into blocks
and hands each to a :class:`BlockScanner`, which checks it and tells the :class:`Batcher` where its
records end.
"""

from __future__ import annotations

from collections.abc import Callable

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.fast import BlockSpec, suspect_lines, valid_block_lines
from capillary_provider.coupon_file.records import nth_line_end, split_records, unquote
from capillary_provider.coupon_file.rows import Problems, RowRules


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


class BlockScanner:
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
