"""Real PGP key pairs for tests, made by GnuPG in a throw-away home (ed25519 + cv25519: milliseconds).

A pytest plugin (``pytest_plugins`` in tests/conftest.py): ``keys`` makes our key pair and a stranger's once per
session, and encrypts as a partner would, with the ``gpg`` command line; ``pgp_conn`` is the connection the
operator takes the private key from (extra ``private_key``, password = passphrase), through the environment.
:func:`files_seen_during_upload` watches the temporary folder for clear text written whole.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.operators import _prepare
from capillary_provider.operators.coupon_upload import CouponUploadOperator

PASSPHRASE = "correct horse battery staple"
PGP_CONN_ID = "pgp_partner"


def gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback", *args],
        input=data,
        capture_output=True,
        check=True,
    )
    return done.stdout


def new_key(home: Path, user: str, passphrase: str) -> tuple[str, str, str]:
    """A signing ed25519 key with a cv25519 encryption subkey: (fingerprint, armored private key, subkey ID)."""
    home.mkdir(mode=0o700)
    gpg(home, "--passphrase", passphrase, "--quick-gen-key", user, "ed25519", "sign", "0")
    listing = gpg(home, "--list-keys", "--with-colons").decode()
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    gpg(home, "--passphrase", passphrase, "--quick-add-key", fingerprint, "cv25519", "encr", "0")
    armored = gpg(home, "--passphrase", passphrase, "--armor", "--export-secret-keys", fingerprint).decode()
    listing = gpg(home, "--list-keys", "--with-colons").decode()
    subkey = next(line.split(":")[4] for line in listing.splitlines() if line.startswith("sub"))
    return fingerprint, armored, subkey


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Our key pair (with a passphrase) and a stranger's; ``encrypt(data, for_key)`` as a partner would."""
    root = tmp_path_factory.mktemp("gnupg")
    ours = new_key(root / "ours", "Coupons <coupons@example.com>", PASSPHRASE)
    theirs = new_key(root / "theirs", "Someone else <else@example.com>", "other")

    def encrypt(data: bytes, key: tuple[str, str, str] = ours) -> bytes:
        home = root / "ours" if key is ours else root / "theirs"
        return gpg(home, "--trust-model", "always", "--recipient", key[0], "--encrypt", data=data)

    yield {"ours": ours, "theirs": theirs, "encrypt": encrypt}
    for home in ("ours", "theirs"):
        subprocess.run(["gpgconf", "--homedir", str(root / home), "--kill", "gpg-agent"], check=False)


@pytest.fixture
def pgp_conn(keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """Connection ``pgp_partner``: extra ``private_key`` = our armored key, password = its passphrase."""
    conn = {"conn_type": "generic", "password": PASSPHRASE, "extra": {"private_key": keys["ours"][1]}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{PGP_CONN_ID.upper()}", json.dumps(conn))
    return PGP_CONN_ID


def files_seen_during_upload(
    folder: Path, operator: CouponUploadOperator, monkeypatch: pytest.MonkeyPatch
) -> list[bytes]:
    """The contents of every file in ``folder``, read at the end of each file's scan and as each batch goes up:
    the list fills while ``operator`` runs. A file written whole in clear would be complete at those moments."""
    seen: list[bytes] = []

    def look() -> None:
        seen.extend(path.read_bytes() for path in folder.rglob("*") if path.is_file())

    scan_file = _prepare.scan_file
    monkeypatch.setattr(_prepare, "scan_file", lambda *args, **kwargs: (scan_file(*args, **kwargs), look())[0])
    upload = operator.upload_batch
    operator.upload_batch = lambda *args, **kwargs: (look(), upload(*args, **kwargs))[1]  # type: ignore[method-assign]
    return seen
