"""PGP-encrypted sources (``*.pgp``, ``*.gpg``): decrypted by GnuPG on the fly, never stored in clear.

GnuPG (Debian's ``gnupg``, ``/usr/bin/gpg``) runs as a subprocess whose standard output is read as the
clear stream. No Python wrapper is used: python-gnupg collects the clear text in memory or writes it
to a file (its ``on_data`` hook pushes chunks from a thread, so a pull-style reader would need a
queue around it), and PGPy (unmaintained since 2022) parses a whole message in memory. A pipe from
``gpg`` streams with flat memory, and its ``--status-file`` says exactly why a decryption failed.

Each source gets its own GnuPG home, a fresh temporary folder (mode 0700) into which the connection's
private key is imported, and which is deleted (its agent stopped) when the upload ends. The key goes in
on ``gpg``'s standard input and the passphrase through a pipe (``--passphrase-fd``): neither touches
a command line, an environment variable or a log. ``gpg``'s own messages (they print the key's
user id, often an email address) are discarded; only its status lines are read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.reading import CHUNK_SIZE, PositionedReader
from capillary_provider.exceptions import CapillaryConfigError, CouponFileError

ENCRYPTED_SUFFIXES = (".pgp", ".gpg")
GPG = "gpg"
MAX_HOME_LENGTH = 80
"""Longest GnuPG home path used; a longer temporary folder falls back to ``/tmp`` (agent socket limit)."""
ENCRYPTED_AS_IS = (
    "PGP-encrypted sources are uploaded as they decrypt: has_header=False, a delimiter other than ',', "
    'a column choice and invalid_rows="skip" each need a converted copy on disk, which would hold the '
    "clear text. Decrypt and convert upstream, or send a comma-separated file with its header row."
)


def is_encrypted(name: str) -> bool:
    """Whether a source is PGP-encrypted, by its name (``coupons.csv.pgp``, ``coupons.csv.gz.gpg``)."""
    return name.lower().endswith(ENCRYPTED_SUFFIXES)


def clear_name(name: str) -> str:
    """The name without its ``.pgp``/``.gpg`` suffix: what the clear text is (``.csv`` or ``.csv.gz``)."""
    return name[:-4] if is_encrypted(name) else name


@dataclass(frozen=True)
class PgpKey:
    """An armored private key and its passphrase, from the connection ``conn_id``; never printed.

    :param conn_id: the connection they came from, named in error messages.
    """

    conn_id: str
    private_key: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)


def key_from_connection(conn_id: str) -> PgpKey:
    """Read a :class:`PgpKey` from an Airflow connection and mask both secrets at once.

    Shape: extra ``private_key`` = the ASCII-armored private key; password = its passphrase (empty
    for a key without one).
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    conn = BaseHook.get_connection(conn_id)
    private_key = conn.extra_dejson.get("private_key")
    # Airflow 3.3 masks them as it reads the connection; 3.1 does not (tests/test_pgp_sources.py fails there without).
    if conn.password:
        mask_secret(conn.password)
    if not private_key or "PRIVATE KEY BLOCK" not in str(private_key):
        raise CapillaryConfigError(
            f"Connection {conn_id!r} (pgp_conn_id) has no PGP private key: put the ASCII-armored private "
            'key (-----BEGIN PGP PRIVATE KEY BLOCK-----) in its extra "private_key".'
        )
    mask_secret(str(private_key))
    return PgpKey(conn_id=conn_id, private_key=str(private_key), passphrase=conn.password or None)


class GnupgHome:
    """A throw-away GnuPG home holding one private key; :meth:`close` stops its agent and deletes it."""

    def __init__(self, key: PgpKey, tmp_dir: str | None = None) -> None:
        if shutil.which(GPG) is None:
            raise CapillaryConfigError("PGP-encrypted sources need GnuPG: install the 'gnupg' package (gpg).")
        self.key = key
        self.path = tempfile.mkdtemp(prefix="capillary-gnupg-", dir=tmp_dir)
        if len(self.path) > MAX_HOME_LENGTH:  # gpg-agent's socket lives in the home: sun_path holds 108 bytes
            os.rmdir(self.path)
            self.path = tempfile.mkdtemp(prefix="capillary-gnupg-", dir="/tmp")
        self._runs = 0
        done = subprocess.run(
            [GPG, "--homedir", self.path, "--batch", "--quiet", "--import"],
            input=key.private_key.encode(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            self.close()
            raise CapillaryConfigError(
                f'Connection {key.conn_id!r} (pgp_conn_id): its extra "private_key" cannot be imported by '
                "GnuPG. Paste the whole ASCII-armored private key (gpg --armor --export-secret-keys)."
            )
        listing = subprocess.run(
            [GPG, "--homedir", self.path, "--batch", "--with-colons", "--list-secret-keys"],
            capture_output=True,
            check=False,
        ).stdout.decode("utf-8", "replace")
        self.key_ids = {row.split(":")[4].upper() for row in listing.splitlines() if row.startswith(("sec:", "ssb:"))}
        """The IDs of the imported key and its subkeys: whom a file must be encrypted for."""

    def decrypt(self, cipher: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``gpg --decrypt`` on the local file ``cipher``; return the process and its status file."""
        self._runs += 1
        status = Path(self.path) / f"status-{self._runs}"
        args = [GPG, "--homedir", self.path, "--batch", "--quiet", "--no-tty", "--status-file", str(status)]
        args += ["--pinentry-mode", "loopback", "--no-auto-key-retrieve"]
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, (self.key.passphrase or "").encode())
        finally:
            os.close(write_end)
        args += ["--passphrase-fd", str(read_end), "--decrypt", cipher]
        try:
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=(read_end,)
            )
        finally:
            os.close(read_end)
        return process, status

    def close(self) -> None:
        """Stop the agent GnuPG started for this home and delete the home, key included."""
        subprocess.run(
            ["gpgconf", "--homedir", self.path, "--kill", "gpg-agent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(self.path, ignore_errors=True)


def decryption_error(name: str, home: GnupgHome, status: str) -> CouponFileError:
    """The failure ``gpg``'s status lines describe: wrong key, wrong passphrase, or a damaged file.

    ``ENC_TO`` names the keys the file is encrypted for: none of them ours is a wrong key; ours but no
    ``DECRYPTION_KEY`` (the session key never came out) is the passphrase; anything else is the data.
    """
    lines = [line.split()[1:] for line in status.splitlines() if line.startswith("[GNUPG:] ")]
    codes = {words[0] for words in lines if words}
    enc_to = {words[1].upper() for words in lines if len(words) > 1 and words[0] == "ENC_TO"}
    conn_id = home.key.conn_id
    if enc_to and not enc_to & home.key_ids:
        return fail(
            name,
            f"is encrypted for key ID {', '.join(sorted(enc_to))}, not for the private key in connection "
            f"{conn_id!r} (pgp_conn_id): wrong key. Ask the sender which public key they used, or put the "
            "matching private key in the connection.",
        )
    if (enc_to and "DECRYPTION_KEY" not in codes) or "BAD_PASSPHRASE" in codes:
        return fail(name, f"the passphrase in connection {conn_id!r} (its password) does not unlock its private key.")
    return fail(name, "cannot be decrypted: the encrypted file is damaged or truncated. Nothing was sent.")


class DecryptedStream(PositionedReader):
    """The clear text of a local encrypted file, read from ``gpg``'s output and never stored.

    Seekable as :class:`gzip.GzipFile` is: forward by reading on, backward by decrypting again from the
    start (a batch retried from its first byte). At the end of the stream the decryption's verdict is
    checked, so a damaged file fails the scan, before any upload.
    """

    def __init__(self, cipher: str, home: GnupgHome, name: str) -> None:
        self._cipher, self._home, self.name = cipher, home, name
        self._process: subprocess.Popen[bytes] | None = None
        self._pos, self.closed = 0, False
        self._start()

    def _start(self) -> None:
        self._stop()
        self._process, self._status = self._home.decrypt(self._cipher)
        self._pos, self._ended = 0, False

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            assert self._process.stdout is not None
            self._process.stdout.close()
            self._process = None

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` clear bytes; at the end, fail unless ``gpg`` decrypted the whole file."""
        assert self._process is not None
        assert self._process.stdout is not None
        data = self._process.stdout.read(-1 if size is None else size)
        self._pos += len(data)
        if not data or size is None or size < 0:
            self._check_end()
        return data

    def _check_end(self) -> None:
        if self._ended:
            return
        assert self._process is not None
        self._process.wait()
        status = self._status.read_text() if self._status.exists() else ""
        if "DECRYPTION_OKAY" not in status or "DECRYPTION_FAILED" in status:
            raise decryption_error(self.name, self._home, status)
        self._ended = True

    def seek(self, offset: int, whence: int = 0) -> int:
        target = {0: offset, 1: self._pos + offset}[whence]
        if target < self._pos:
            self._start()
        while self._pos < target and self.read(min(target - self._pos, CHUNK_SIZE)):
            pass
        return self._pos

    def finish(self) -> None:
        """Read to the end (discarding) and check the decryption's verdict."""
        while self.read(CHUNK_SIZE):
            pass

    def close(self) -> None:
        self._stop()
        self.closed = True
