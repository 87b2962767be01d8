"""PGP-encrypted sources on remote stores, through the operator: a partner's drop on SFTP, an export on S3.

A remote encrypted source is spooled *encrypted* to the temporary folder, and each pass (scan, upload) decrypts
the spool again as a stream: the clear text is never written whole to disk. The keys (``keys``, ``pgp_conn``)
and the watch on the temporary folder are in tests/pgp_keys.py, the servers in tests/stores.py; local encrypted
files, wrong keys and damaged files are in tests/test_pgp_sources.py.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows
from tests.pgp_keys import files_seen_during_upload
from tests.stores import Store, expected_batches, stored_batches

pytestmark = pytest.mark.integration

SERIES = 7901


def coupons(rows: int) -> bytes:
    return b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(rows))


def from_store(
    store: Store, path: str, cipher: bytes, pgp_conn: str, batch_size: int, **kwargs: Any
) -> CouponUploadOperator:
    """Put ``cipher`` at ``path`` in ``store``; the operator that uploads it from there in batches of
    ``batch_size``, decrypting it with the key in ``pgp_conn``."""
    store.put(path, cipher)
    return make_operator(
        store.uri(path), SERIES, batch_size=batch_size, source_conn_id=store.conn_id, pgp_conn_id=pgp_conn, **kwargs
    )


@pytest.fixture
def spool() -> Iterator[Path]:
    """A short temporary folder (gpg-agent's socket lives in the GnuPG home made in it), deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="spool-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


@pytest.mark.sftp
def test_an_encrypted_csv_on_sftp_is_decrypted_and_uploaded_in_batches(
    keys: dict[str, Any], pgp_conn: str, sftp_store: Store, capillary_conn: SandboxClient, context: Any
) -> None:
    data = coupons(25)

    summary = from_store(sftp_store, "pgp-drop/coupons.csv.pgp", keys["encrypt"](data), pgp_conn, 10).execute(context)

    assert stored_batches(capillary_conn, SERIES) == expected_batches(data)  # batches of 10, 10 and 5 rows
    assert (summary["status"], summary["total_rows"], summary["accepted_rows"]) == ("FINISHED", 25, 25)


@pytest.mark.sftp
def test_an_encrypted_csv_on_sftp_is_spooled_encrypted_and_never_written_in_clear(
    keys: dict[str, Any],
    pgp_conn: str,
    sftp_store: Store,
    spool: Path,
    capillary_conn: SandboxClient,
    context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every file in the spool folder (the operator's ``spool_dir``, and the temporary folder of anything else) is
    read at the end of the scan and as each batch goes up. The file is larger than a file buffer (60 kB), so a
    clear copy would show on disk, not sit in memory."""
    data = coupons(3000)
    cipher = keys["encrypt"](data)
    operator = from_store(sftp_store, "pgp-drop/large.csv.pgp", cipher, pgp_conn, 1000, spool_dir=str(spool))
    seen = files_seen_during_upload(spool, operator, monkeypatch)
    monkeypatch.setattr("tempfile.tempdir", str(spool))

    operator.execute(context)

    assert stored_batches(capillary_conn, SERIES) == expected_batches(data, 1000)
    assert cipher in seen, "the remote file is spooled as it is stored: encrypted"
    assert not [content for content in seen if b"9198" in content or b"mobile,code" in content]
    assert list(spool.iterdir()) == [], "the spool and the GnuPG home (with the private key) are deleted"


@pytest.mark.s3
def test_an_encrypted_gzipped_csv_on_s3_is_decrypted_and_uploaded(
    keys: dict[str, Any], pgp_conn: str, s3_store: Store, capillary_conn: SandboxClient, context: Any
) -> None:
    data = coupons(25)
    cipher = keys["encrypt"](gzip.compress(data))
    from_store(s3_store, "partner-drop/coupons.csv.gz.pgp", cipher, pgp_conn, 10).execute(context)
    assert stored_batches(capillary_conn, SERIES) == expected_batches(data)
