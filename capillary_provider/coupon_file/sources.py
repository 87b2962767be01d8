"""Sources: open a local or remote CSV for reading (``.gz`` decompressed), and serve one batch of it.

:class:`BatchReader` serves ``header + stream[start:end]`` to the multipart upload without copying the
batch anywhere.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from capillary_provider.coupon_file.rows import fail
from capillary_provider.exceptions import CouponFileError

if TYPE_CHECKING:
    from capillary_provider.coupon_file.scan import Batch

STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)
"""What reading a truncated or corrupt source raises."""


def read_chunk(stream: BinaryIO, size: int, name: str) -> bytes:
    """Read from the source, turning decompression and I/O failures into :class:`CouponFileError`."""
    try:
        return stream.read(size)
    except STREAM_ERRORS as exc:
        raise fail(name, f"cannot be read ({type(exc).__name__}: {exc}); is it truncated or corrupt?") from exc


class BatchReader:
    """A read-only binary file object over ``header + stream[batch.start:batch.end]``.

    It gives the multipart encoder a sized, rewindable body without copying the batch: ``len()`` (and
    the ``len`` attribute that ``requests``' ``super_len`` also accepts) is known up front, and
    ``seek(0)`` lets an upload attempt be retried by re-seeking the source to ``batch.start``.

    :param stream: the (decompressed) source; positioned at ``batch.start`` or seekable.
    :param header: the header line to send first (see :attr:`CouponFilePlan.header`).
    :param batch: which bytes of the source to serve after the header.
    """

    def __init__(self, stream: BinaryIO, header: bytes, batch: Batch) -> None:
        self._stream, self._header, self._batch = stream, header, batch
        self.len = len(header) + batch.end - batch.start
        self._pos = 0
        self._synced = False  # is the source positioned at the body byte matching self._pos?
        self.closed = False

    def __len__(self) -> int:
        return self.len

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.len}[whence]
        self._pos = max(0, min(self.len, base + offset))
        self._synced = False
        return self._pos

    def _sync(self) -> None:
        target = self._batch.start + self._pos - len(self._header)
        try:
            at_target = self._stream.seekable() and self._stream.tell() == target
            if not at_target and (self._stream.seekable() or self._pos > len(self._header)):
                self._stream.seek(target)
        except STREAM_ERRORS as exc:
            raise fail(str(getattr(self._stream, "name", "source")), f"cannot be re-read ({exc}).") from exc
        self._synced = True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all remaining if negative); never reads past ``batch.end``."""
        remaining = self.len - self._pos
        want = remaining if size is None or size < 0 else min(size, remaining)
        out = []
        hlen = len(self._header)
        if want and self._pos < hlen:
            piece = self._header[self._pos : self._pos + want]
            out.append(piece)
            self._pos += len(piece)
            want -= len(piece)
        if want:
            if not self._synced:
                self._sync()
            while want:
                piece = read_chunk(self._stream, want, str(getattr(self._stream, "name", "source")))
                if not piece:
                    raise fail(str(getattr(self._stream, "name", "source")), "ended early: did it change?")
                out.append(piece)
                self._pos += len(piece)
                want -= len(piece)
        return b"".join(out)

    def close(self) -> None:
        """Mark closed; the underlying stream belongs to the caller and stays open."""
        self.closed = True

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def open_coupon_source(path: Any) -> Iterator[BinaryIO]:
    """Open a local or remote source for binary reading, decompressing ``*.gz`` transparently.

    :param path: an :class:`airflow.sdk.ObjectStoragePath` or anything with ``open("rb")`` and ``name``.
    :raises CouponFileError: if the path is missing, a directory, or cannot be opened.
    """
    name = str(path)
    try:
        if path.is_dir():
            raise fail(name, "is a directory, not a CSV file. Point source at the file.")
        handle = path.open("rb")
    except CouponFileError:
        raise
    except FileNotFoundError as exc:
        raise fail(name, "does not exist. Check the source path.") from exc
    except (OSError, ValueError) as exc:
        raise fail(name, f"cannot be opened ({type(exc).__name__}: {exc}).") from exc
    try:
        if str(getattr(path, "name", name)).lower().endswith(".gz"):
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield handle
    finally:
        handle.close()
