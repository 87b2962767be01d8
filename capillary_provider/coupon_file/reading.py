"""Reading a source: one chunk at a time, a failed read named as the file's fault or the storage's.

A basic piece of :mod:`capillary_provider.coupon_file`: the scan, the batch reader, the sources and the
rejected-rows split all read through :func:`read_chunk`.
"""

from __future__ import annotations

import errno
import gzip
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from capillary_provider.coupon_file.errors import fail
from capillary_provider.exceptions import CouponSourceReadError, SpoolDiskFull

CHUNK_SIZE = 1 << 20
"""Read size of every pass over a source: blocks that stay in the CPU cache across the scan's several
whole-block passes (1 MiB scans about 15% faster than 8 MiB, and needs less memory)."""
BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte-order mark, which Excel writes first: never part of the header row."""
DECODING_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
"""What decompressing a truncated or corrupt ``.gz`` source raises: a fault of the file."""


class PositionedReader:
    """File-object basics of the upload bodies: readable, seekable, at the position ``_pos`` each keeps."""

    _pos: int

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos


def read_chunk(stream: BinaryIO, size: int, name: str) -> bytes:
    """Read from the source. A decoding failure is a corrupt file (:class:`CouponFileError`, not retried);
    any other ``OSError`` is the storage's or the network's (:class:`CouponSourceReadError`, retried)."""
    try:
        return stream.read(size)
    except DECODING_ERRORS as exc:
        raise fail(name, f"cannot be read ({type(exc).__name__}: {exc}); is it truncated or corrupt?") from exc
    except OSError as exc:
        raise storage_error(name, exc) from exc


def storage_error(name: str, exc: OSError) -> CouponSourceReadError:
    """The error for a read that failed in the storage or the network: the file is not at fault."""
    return CouponSourceReadError(
        f"{name}: reading it failed ({type(exc).__name__}: {exc}). This is a storage or network error, "
        "not a fault of the file: a retry of the task reads it again."
    )


@contextmanager
def naming_a_full_disk(copy: BinaryIO, name: str) -> Iterator[None]:
    """Around writes to a local copy: a full disk names the folder that is full and how to choose another."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = os.path.dirname(os.path.abspath(str(getattr(copy, "name", ""))))
        raise SpoolDiskFull(
            f"The folder {folder} is full ({exc.strerror}): the local copy of {name} does not fit. Free space "
            "there, or choose a folder with room for the whole decompressed file with the operator's spool_dir "
            "parameter."
        ) from exc
