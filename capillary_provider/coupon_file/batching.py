"""Cut the records of a scan into batches of at most ``batch_size`` rows, as blocks of them are scanned."""

from __future__ import annotations

from collections.abc import Callable


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
