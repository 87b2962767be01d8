"""Real PGP key pairs for tests, made by GnuPG in a throw-away home (ed25519 + cv25519: milliseconds)."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
