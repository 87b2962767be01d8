"""The body of an upload, private to the hook: what a file to upload may be, opened with the bytes it has
left, and the wrapper that reports progress and stops on an abort. No HTTP here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sized
from contextlib import contextmanager
from typing import Any, Protocol

from airflow.sdk import ObjectStoragePath

from capillary_provider.exceptions import CapillaryError, CouponUploadAborted

PROGRESS_INTERVAL_SECONDS = 10.0


class BinaryReader(Protocol):
    """What the hook needs of a file object: read it, and rewind it for another attempt."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


UploadSource = str | os.PathLike[str] | BinaryReader | ObjectStoragePath


class ProgressReader:
    """Wraps the file part of an upload: counts bytes as they are sent and logs progress at a steady pace.

    requests_toolbelt takes a part's ``len()`` as the bytes still to send: it computes the body's
    Content-Length from it up front, then reads until it reaches 0.
    """

    def __init__(
        self,
        raw: BinaryReader,
        length: int,
        report: Callable[[int, int, float], None],
        aborted: threading.Event | None = None,
    ) -> None:
        self._raw = raw
        self._aborted = aborted
        self._length = length
        self._report = report
        self._sent = 0
        self._started = time.monotonic()
        self._last_report = self._started

    def __len__(self) -> int:
        return self._length - self._sent

    def read(self, size: int = -1) -> bytes:
        if self._aborted is not None and self._aborted.is_set():
            raise CouponUploadAborted(f"Upload aborted after {self._sent} of {self._length} bytes: the task was killed")
        data = self._raw.read(size)
        if not data and size != 0 and self._sent < self._length:
            # requests_toolbelt reads until the declared length is reached: never loop on a short file.
            raise CapillaryError(f"The file ended after {self._sent} of the {self._length} bytes announced")
        self._sent += len(data)
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_INTERVAL_SECONDS:
            self._last_report = now
            self._report(self._sent, self._length, now - self._started)
        return data


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def log_progress(log: logging.Logger | Any, sent: int, total: int, elapsed: float) -> None:
    """Log one progress line of an upload (a :class:`ProgressReader`'s report): sizes, percent and rate."""
    rate = sent / elapsed if elapsed else 0.0
    percent = 100.0 * sent / total if total else 100.0
    log.info(
        "Upload progress: %s of %s (%.1f%%) at %s/s", human_bytes(sent), human_bytes(total), percent, human_bytes(rate)
    )


@contextmanager
def open_source(file: UploadSource) -> Iterator[tuple[BinaryReader, int]]:
    """Open an upload source and tell how many bytes remain in it, without reading it."""
    if isinstance(file, ObjectStoragePath):
        with file.open("rb") as handle:  # type: ignore[no-untyped-call]
            yield handle, file.stat().st_size - handle.tell()
    elif isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
    else:
        yield file, remaining_length(file)


def remaining_length(handle: BinaryReader) -> int:
    """Bytes from the current position to the end: from ``len()`` where the object knows it, else by seeking."""
    if isinstance(handle, Sized):  # e.g. a BatchReader: a window onto a larger stream
        return len(handle) - handle.tell()
    position = handle.tell()
    end = handle.seek(0, os.SEEK_END)
    handle.seek(position)
    return end - position
