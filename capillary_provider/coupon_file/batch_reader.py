"""Serve one batch of a source: ``header + stream[start:end]`` to the multipart upload, without a copy."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.reading import DECODING_ERRORS, PositionedReader, read_chunk, storage_error

if TYPE_CHECKING:
    from capillary_provider.coupon_file.scan import Batch


class BatchReader(PositionedReader):
    """A read-only binary file object over ``header + stream[batch.start:batch.end]``.

    It gives the multipart encoder a sized, rewindable body without copying the batch: ``len()`` (and
    the ``len`` attribute that ``requests``' ``super_len`` also accepts) is known up front, and
    ``seek(0)`` lets an upload attempt be retried by re-seeking the source to ``batch.start``.

    :param stream: the (decompressed) source; positioned at ``batch.start`` or seekable.
    :param header: the header line to send first (see :attr:`~capillary_provider.coupon_file.scan.FilePlan.header`).
    :param batch: which bytes of the source to serve after the header.
    """

    def __init__(self, stream: BinaryIO, header: bytes, batch: Batch) -> None:
        self._stream, self._header, self._batch = stream, header, batch
        self._name = str(getattr(stream, "name", "source"))
        self.len = len(header) + batch.end - batch.start
        self._pos = 0
        self._synced = False  # is the source positioned at the body byte matching self._pos?

    def __len__(self) -> int:
        return self.len

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
        except DECODING_ERRORS as exc:
            raise fail(self._name, f"cannot be re-read ({exc}).") from exc
        except OSError as exc:
            raise storage_error(self._name, exc) from exc
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
                piece = read_chunk(self._stream, want, self._name)
                if not piece:
                    raise fail(self._name, "ended early: did it change?")
                out.append(piece)
                self._pos += len(piece)
                want -= len(piece)
        return b"".join(out)
