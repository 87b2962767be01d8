"""Sources: open a local or remote CSV for reading (``.gz`` decompressed, ``.pgp`` decrypted), read once."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from capillary_provider.coupon_file.encrypted import DecryptedStream, GnupgHome, PgpKey, clear_name, is_encrypted
from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.reading import CHUNK_SIZE, DECODING_ERRORS, naming_a_full_disk, read_chunk
from capillary_provider.exceptions import CouponFileError


@contextmanager
def open_coupon_source(path: Any, name: str | None = None) -> Iterator[BinaryIO]:
    """Open a local or remote source for binary reading, decompressing ``*.gz`` transparently.

    :param path: an :class:`airflow.sdk.ObjectStoragePath` or anything with ``open("rb")`` and ``name``.
    :param name: how error messages name the source (default: the path); the task's ``source`` as written.
    :raises CouponFileError: if the path is missing, a directory, or cannot be opened.
    """
    name = name or str(path)
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


class _Tee:
    """A reader that copies every byte it reads to ``copy``: the scan reads the source, the copy fills."""

    def __init__(self, stream: BinaryIO, copy: BinaryIO, name: str) -> None:
        self._stream, self._copy, self._name = stream, copy, name

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        with naming_a_full_disk(self._copy, self._name):
            self._copy.write(data)
        return data


class _Finishing:
    """A decompressing reader over a decrypted stream whose :meth:`finish` checks the decryption."""

    def __init__(self, stream: gzip.GzipFile, clear: DecryptedStream) -> None:
        self._stream, self._clear, self.name = stream, clear, clear.name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._stream, attribute)

    def read(self, size: int = -1) -> bytes:
        """Decompress; a decompression error first asks the decryption, whose verdict names the cause."""
        try:
            return self._stream.read(size)
        except (*DECODING_ERRORS, OSError):
            self._clear.finish()
            raise

    def finish(self) -> None:
        while read_chunk(self, CHUNK_SIZE, self.name):  # type: ignore[arg-type]
            pass
        self._clear.finish()


class ReadOnce:
    """A source read from its store once: the scan reads it, the upload reads a local copy made on the way.

    Validation and upload each need the whole file. Read twice, a remote file is fetched twice and a
    ``.gz`` decompressed twice; so while the scan reads a remote or compressed source, every byte it
    reads is written to a local spool file, and the batches are later served from the spool. A plain
    local file is not copied (it is read twice from the local disk instead).

    Disk budget: the spool holds the decompressed file (the same size as what is uploaded), in
    ``spool_dir`` (default: the system's temporary folder), and is deleted when the upload ends.

    :param path: the source, an :class:`~airflow.sdk.ObjectStoragePath` (or anything ``open_coupon_source``
        opens).
    :param spool_dir: where the local copy goes.
    :param name: how error messages name the source.
    :param owns_file: ``path`` is a local file made for this upload: deleted on :meth:`close`.
    :param pgp: the private key of a PGP-encrypted source (``*.pgp``, ``*.gpg``), see
        :mod:`~capillary_provider.coupon_file.encrypted`. Such a source is never spooled in clear: a
        remote one is spooled *encrypted*, and each pass (scan, upload) decrypts it again as a stream.
    """

    def __init__(
        self,
        path: Any,
        spool_dir: str | None = None,
        name: str | None = None,
        owns_file: bool = False,
        pgp: PgpKey | None = None,
    ) -> None:
        self.path, self.name, self._owns_file = path, name, owns_file
        remote = getattr(path, "protocol", "file") not in ("file", "local", "")
        self.encrypted = is_encrypted(str(path))
        if self.encrypted and pgp is None:
            raise fail(
                name or str(path),
                "is PGP-encrypted but no private key was given: set pgp_conn_id to a connection holding the "
                "private key (see docs/connection.md).",
            )
        self.spooled = remote or (not self.encrypted and str(path).lower().endswith(".gz"))
        self._spool_dir = spool_dir
        self._spool: Any = None
        self._home = None if pgp is None else GnupgHome(pgp, spool_dir)

    @contextmanager
    def for_scan(self) -> Iterator[BinaryIO]:
        """The source, for the validating scan; spooled to a local file on the way if it is remote or ``.gz``."""
        if self.encrypted:
            with self._decrypted() as clear:
                yield clear
                clear.finish()
            return
        with open_coupon_source(self.path, self.name) as stream:
            if not self.spooled:
                yield stream
                return
            self._spool = tempfile.NamedTemporaryFile(prefix="capillary-spool-", suffix=".csv", dir=self._spool_dir)  # noqa: SIM115
            yield _Tee(stream, self._spool, self.name or str(self.path))  # type: ignore[misc]
            with naming_a_full_disk(self._spool, self.name or str(self.path)):
                self._spool.flush()

    @contextmanager
    def for_upload(self) -> Iterator[BinaryIO]:
        """The bytes the scan read, from the spool when there is one (the store is not read again)."""
        if self.encrypted:
            with self._decrypted() as clear:
                yield clear
            return
        if self._spool is None:
            with open_coupon_source(self.path, self.name) as stream:
                yield stream
            return
        with open(self._spool.name, "rb") as handle:
            yield handle

    @contextmanager
    def _decrypted(self) -> Iterator[Any]:
        """The clear text of an encrypted source, decrypted from a local file (a remote one spooled first)."""
        name = self.name or str(self.path)
        cipher = str(getattr(self.path, "path", self.path))
        if self.spooled:
            if self._spool is None:
                self._spool = tempfile.NamedTemporaryFile(prefix="capillary-spool-", suffix=".pgp", dir=self._spool_dir)  # noqa: SIM115
                with open_coupon_source(self.path, self.name) as stream, naming_a_full_disk(self._spool, name):
                    shutil.copyfileobj(stream, self._spool, CHUNK_SIZE)
                    self._spool.flush()
            cipher = self._spool.name
        assert self._home is not None
        clear = DecryptedStream(cipher, self._home, name)
        try:
            if clear_name(str(self.path)).lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=clear, mode="rb") as unzipped:
                    yield _Finishing(unzipped, clear)
            else:
                yield clear
        finally:
            clear.close()

    def close(self) -> None:
        """Delete the spool (and the file itself, if it was made for this upload) and any GnuPG home."""
        if self._home is not None:
            self._home.close()
            self._home = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._owns_file:
            Path(str(self.path)).unlink(missing_ok=True)
