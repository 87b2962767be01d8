"""PGP-encrypted sources through the operator, against the sandbox, with real key pairs made by GnuPG.

The keys (``keys``, ``pgp_conn``: tests/pgp_keys.py) are generated once per session in a throw-away GnuPG
home; the files are encrypted with the ``gpg`` command line as a partner would. The operator gets the
private key from a connection (extra ``private_key``, password = passphrase) through the environment.
Encrypted files on remote stores are in tests/test_pgp_stores.py.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryConfigError, CouponFileError
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows
from tests.pgp_keys import PASSPHRASE, files_seen_during_upload
from tests.stores import expected_batches, stored_batches

pytestmark = [pytest.mark.integration]

SERIES = 7401
CSV_BYTES = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(25))


def run(source: Any, conn_id: str | None, context: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return make_operator(source, SERIES, batch_size=10, pgp_conn_id=conn_id, **kwargs).execute(context)


def refused(
    error: type[Exception],
    source: Path,
    conn_id: str | None,
    context: dict[str, Any],
    sandbox: SandboxClient,
    **kwargs: Any,
) -> str:
    """Run the upload of ``source``, which must fail with ``error`` before anything reaches Capillary; its message."""
    with pytest.raises(error) as failure:
        run(source, conn_id, context, **kwargs)
    assert sandbox.jobs(SERIES) == []
    return str(failure.value)


@pytest.mark.parametrize(
    ("name", "gzipped", "as_uri"),
    [
        pytest.param("coupons.csv.pgp", False, False, id="pgp"),
        pytest.param("coupons.csv.gpg", False, False, id="gpg"),
        pytest.param("coupons.csv.gz.pgp", True, False, id="gzipped-decrypted-then-decompressed"),
        pytest.param("coupons.csv.pgp", False, True, id="read-through-an-object-store-uri"),
    ],
)
def test_an_encrypted_csv_is_decrypted_and_uploaded_in_batches(
    name: str,
    gzipped: bool,
    as_uri: bool,
    keys: dict[str, Any],
    pgp_conn: str,
    tmp_path: Path,
    capillary_conn: SandboxClient,
    context: Any,
) -> None:
    source = tmp_path / name
    source.write_bytes(keys["encrypt"](gzip.compress(CSV_BYTES) if gzipped else CSV_BYTES))
    run(f"file://{source}" if as_uri else source, pgp_conn, context)
    assert stored_batches(capillary_conn, SERIES) == expected_batches(CSV_BYTES)


def test_no_clear_text_reaches_the_temporary_folder(
    keys: dict[str, Any], pgp_conn: str, capillary_conn: SandboxClient, context: Any, monkeypatch: Any
) -> None:
    """Every file in the temporary folder is read at the end of the scan and as each batch goes up.

    The file is larger than a file buffer (60 kB), so a clear copy would show on disk, not sit in memory.
    """
    data = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(3000))
    spool = Path(tempfile.mkdtemp(prefix="spool-", dir="/tmp"))  # short: gpg-agent's socket lives in it
    source = spool.parent / f"{spool.name}.csv.gz.pgp"
    source.write_bytes(keys["encrypt"](gzip.compress(data)))
    operator = make_operator(source, SERIES, batch_size=1000, pgp_conn_id=pgp_conn)
    seen = files_seen_during_upload(spool, operator, monkeypatch)
    try:
        monkeypatch.setattr("tempfile.tempdir", str(spool))
        operator.execute(context)
        assert stored_batches(capillary_conn, SERIES) == expected_batches(data, 1000)
        assert seen, "the GnuPG home lives in the temporary folder while the file is read"
        assert not [data for data in seen if b"9198" in data or b"mobile,code" in data]
        assert list(spool.iterdir()) == [], "the GnuPG home (with the private key) is deleted after the upload"
    finally:
        shutil.rmtree(spool)
        source.unlink()


def test_a_file_for_another_key_fails_before_anything_is_sent(
    keys: dict[str, Any], pgp_conn: str, tmp_path: Path, capillary_conn: SandboxClient, context: Any
) -> None:
    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(keys["encrypt"](CSV_BYTES, keys["theirs"]))
    assert refused(CouponFileError, source, pgp_conn, context, capillary_conn) == (
        f"{source}: is encrypted for key ID {keys['theirs'][2]}, not for the private key in connection "
        "'pgp_partner' (pgp_conn_id): wrong key. Ask the sender which public key they used, or put the "
        "matching private key in the connection."
    )


def test_a_wrong_passphrase_fails_before_anything_is_sent(
    keys: dict[str, Any], tmp_path: Path, capillary_conn: SandboxClient, context: Any, monkeypatch: Any
) -> None:
    conn = {"conn_type": "generic", "password": "not it", "extra": {"private_key": keys["ours"][1]}}
    monkeypatch.setenv("AIRFLOW_CONN_PGP_PARTNER", json.dumps(conn))
    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(keys["encrypt"](CSV_BYTES))
    assert refused(CouponFileError, source, "pgp_partner", context, capillary_conn) == (
        f"{source}: the passphrase in connection 'pgp_partner' (its password) does not unlock its private key."
    )


def test_an_encrypted_file_without_pgp_conn_id_fails_naming_the_parameter(
    keys: dict[str, Any], tmp_path: Path, capillary_conn: SandboxClient, context: Any
) -> None:
    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(keys["encrypt"](CSV_BYTES))
    assert refused(CouponFileError, source, None, context, capillary_conn) == (
        f"{source}: is PGP-encrypted but no private key was given: set pgp_conn_id to a connection holding the "
        "private key (see docs/connection.md)."
    )


def test_a_connection_without_private_key_fails_naming_the_extra(
    keys: dict[str, Any], tmp_path: Path, capillary_conn: SandboxClient, context: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PGP_PARTNER", json.dumps({"conn_type": "generic", "password": PASSPHRASE}))
    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(keys["encrypt"](CSV_BYTES))
    assert refused(CapillaryConfigError, source, "pgp_partner", context, capillary_conn) == (
        "Connection 'pgp_partner' (pgp_conn_id) has no PGP private key: put the ASCII-armored private "
        'key (-----BEGIN PGP PRIVATE KEY BLOCK-----) in its extra "private_key".'
    )


@pytest.mark.parametrize("name", ["coupons.csv.pgp", "coupons.csv.gz.pgp"])
def test_a_damaged_file_fails_before_anything_is_sent(
    name: str, keys: dict[str, Any], pgp_conn: str, tmp_path: Path, capillary_conn: SandboxClient, context: Any
) -> None:
    """One byte flipped in the middle of the encrypted data: the integrity check at its end catches it."""
    data = CSV_BYTES * 40
    cipher = bytearray(keys["encrypt"](gzip.compress(data) if name.endswith(".gz.pgp") else data))
    cipher[len(cipher) // 2] ^= 0xFF
    source = tmp_path / name
    source.write_bytes(bytes(cipher))
    assert refused(CouponFileError, source, pgp_conn, context, capillary_conn) == (
        f"{source}: cannot be decrypted: the encrypted file is damaged or truncated. Nothing was sent."
    )


def test_a_truncated_file_fails_before_anything_is_sent(
    keys: dict[str, Any], pgp_conn: str, tmp_path: Path, capillary_conn: SandboxClient, context: Any
) -> None:
    cipher = keys["encrypt"](CSV_BYTES * 40)
    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(cipher[: len(cipher) - 40])
    assert refused(CouponFileError, source, pgp_conn, context, capillary_conn) == (
        f"{source}: cannot be decrypted: the encrypted file is damaged or truncated. Nothing was sent."
    )


def test_a_conversion_of_an_encrypted_file_is_refused_rather_than_written_in_clear(
    keys: dict[str, Any], pgp_conn: str, tmp_path: Path, capillary_conn: SandboxClient, context: Any
) -> None:
    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(keys["encrypt"](CSV_BYTES))
    message = refused(CapillaryConfigError, source, pgp_conn, context, capillary_conn, delimiter=";")
    assert "would hold the clear text" in message


def test_the_gnupg_home_is_private_to_its_owner(keys: dict[str, Any], tmp_path: Path) -> None:
    from capillary_provider.coupon_file.encrypted import GnupgHome, PgpKey

    home = GnupgHome(PgpKey("pgp_partner", keys["ours"][1], PASSPHRASE), str(tmp_path))
    try:
        assert os.stat(home.path).st_mode & 0o777 == 0o700
    finally:
        home.close()
    assert not Path(home.path).exists()


@pytest.mark.parametrize("name", ["coupons.csv.pgp", "coupons.csv.gz.pgp"])
def test_reading_again_from_an_earlier_byte_decrypts_the_file_anew(
    name: str, keys: dict[str, Any], tmp_path: Path
) -> None:
    """What a retried batch does (BatchReader seeks its source back): the clear text is not kept to re-read."""
    from capillary_provider.coupon_file.encrypted import PgpKey
    from capillary_provider.coupon_file.sources import ReadOnce

    data = b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(40_000))  # 1 MB: more than any read buffer
    source = tmp_path / name
    source.write_bytes(keys["encrypt"](gzip.compress(data) if ".gz" in name else data))
    read_once = ReadOnce(source, pgp=PgpKey("pgp_partner", keys["ours"][1], PASSPHRASE))
    try:
        with read_once.for_upload() as stream:
            assert stream.read(len(data) - 100) == data[:-100]
            assert stream.seek(40) == 40
            assert stream.tell() == 40
            assert stream.read(100) == data[40:140]
    finally:
        read_once.close()


def test_the_key_and_passphrase_are_masked_and_kept_out_of_xcom(
    keys: dict[str, Any], pgp_conn: str, tmp_path: Path, capillary_conn: SandboxClient, context: Any
) -> None:
    # The task SDK's masker, the one mask_secret feeds; its module is where it is on Airflow 3.1 to 3.3.
    from airflow.sdk._shared.secrets_masker import redact

    source = tmp_path / "coupons.csv.pgp"
    source.write_bytes(keys["encrypt"](CSV_BYTES))
    summary = run(source, pgp_conn, context)
    key_line = keys["ours"][1].splitlines()[3]
    assert PASSPHRASE not in redact(f"passphrase {PASSPHRASE}")
    assert key_line not in str(redact(keys["ours"][1]))
    pushed = json.dumps([summary, context["ti"].xcom], default=str)
    assert PASSPHRASE not in pushed
    assert key_line not in pushed


@pytest.mark.parametrize("fault", ["wrong key", "damaged"])
def test_a_failed_decryption_leaves_no_key_and_no_agent_behind(
    fault: str, keys: dict[str, Any], pgp_conn: str, capillary_conn: SandboxClient, context: Any, monkeypatch: Any
) -> None:
    spool = Path(tempfile.mkdtemp(prefix="spool-", dir="/tmp"))  # short: gpg-agent's socket lives in it
    source = spool.parent / f"{spool.name}.csv.pgp"
    cipher = bytearray(keys["encrypt"](CSV_BYTES * 40, keys["theirs"] if fault == "wrong key" else keys["ours"]))
    if fault == "damaged":
        cipher[len(cipher) // 2] ^= 0xFF
    source.write_bytes(bytes(cipher))
    try:
        monkeypatch.setattr("tempfile.tempdir", str(spool))
        with pytest.raises(CouponFileError):
            run(source, pgp_conn, context)
        assert list(spool.iterdir()) == [], "the GnuPG home (with the private key) is deleted at once"
        agents = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {spool}/"], capture_output=True, check=False)
        assert agents.stdout == b"", "its gpg-agent is stopped"
    finally:
        shutil.rmtree(spool)
        source.unlink()
