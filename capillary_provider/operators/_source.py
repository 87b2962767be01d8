"""Open one source file the way the task's parameters ask: as it is (read once, decrypted if ``.pgp``), or
converted to a comma-separated copy with a header and only the columns that go up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from capillary_provider.coupon_file import ReadOnce
from capillary_provider.coupon_file.encrypted import ENCRYPTED_AS_IS, PgpKey, is_encrypted
from capillary_provider.coupon_file.normalize import delimiter_of, normalized_copy
from capillary_provider.exceptions import CapillaryConfigError


def open_source(
    path: Any,
    name: str,
    *,
    columns: list[int] | None,
    has_header: bool | None,
    delimiter: str,
    header_for: Callable[[int], list[str]],
    skip_invalid: bool,
    spool_dir: str | None,
    pgp_key: Callable[[], PgpKey | None],
) -> ReadOnce:
    """The source to scan and upload. An encrypted file is uploaded as it is (never converted, never split
    into rejected rows: its clear text is not written to disk); ``pgp_key`` is read only for one."""
    converted = has_header is False or delimiter != "," or columns is not None
    encrypted = is_encrypted(str(path))
    if encrypted and (converted or skip_invalid):
        raise CapillaryConfigError(ENCRYPTED_AS_IS)
    if converted:
        return normalized_copy(
            path,
            name=name,
            delimiter=delimiter_of(delimiter),
            header_for=header_for if has_header is False else None,
            columns=columns,
            spool_dir=spool_dir,
        )
    return ReadOnce(path, spool_dir=spool_dir, name=name, pgp=pgp_key() if encrypted else None)
