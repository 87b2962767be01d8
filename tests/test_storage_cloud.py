"""Cloud object stores as sources: abfs:// through Airflow's Microsoft Azure provider, against Azurite, and gs://
through Airflow's Google provider, against fake-gcs-server.

Each store's emulator is started once for the session (tests/stores.py, tests/emulators.py) and reached through
an Airflow connection given as ``AIRFLOW_CONN_*``, as a user points the provider at a private endpoint. Every
check runs against each store of the ``store`` fixture (markers ``azure`` and ``gcs``): streaming in batches,
``.gz``, each stored byte read once, a glob of many files, the rejected rows and the archive written back to the
bucket. A retry in the middle of a many-file upload, from every store: tests/test_many_file_retry.py.

The gs:// checks need the ``test-gcs`` extra (the Google provider: about 1.6 GB), which ``make test`` installs on
Airflow 3.3.2 / Python 3.13 only (the Makefile's ``GCS_PAIR``); on the other pairs it deselects them (``-m``)."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import CountingOpen, make_operator, mobile_rows
from tests.stores import Store, expected_batches, stored_batches

pytestmark = pytest.mark.integration

SERIES = 7701
CSV_BYTES = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(25))
"""25 valid rows: with batch_size=10 they go up as batches of 10, 10 and 5 rows."""


def cloud_operator(store: Store, source: Any, **kwargs: Any) -> CouponUploadOperator:
    """An operator on this module's series reading through ``store``'s connection, in batches of 10 rows."""
    return make_operator(source, SERIES, batch_size=10, source_conn_id=store.conn_id, **kwargs)


@pytest.fixture(
    params=[
        pytest.param("azure_store", marks=pytest.mark.azure, id="abfs"),
        pytest.param("gcs_store", marks=pytest.mark.gcs, id="gs"),
    ]
)
def store(request: pytest.FixtureRequest) -> Store:
    """Each test runs once per store; each test's keys are its own, so the stores need no cleaning."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["csv", "csv.gz"])
def test_a_cloud_source_is_streamed_up_in_batches_read_once(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    stored = CSV_BYTES if kind == "csv" else gzip.compress(CSV_BYTES)
    store.path(f"streamed/coupons.{kind}").write_bytes(stored)
    counting = CountingOpen(ObjectStoragePath.open)
    monkeypatch.setattr(ObjectStoragePath, "open", lambda path, *a, **kw: counting(path, *a, **kw))

    summary = cloud_operator(store, store.uri(f"streamed/coupons.{kind}")).execute(context)

    assert stored_batches(capillary_conn, SERIES) == expected_batches(CSV_BYTES)
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
    summary = cloud_operator(store, store.uri("many/*.csv"), max_error_rows=None).execute(context)
    assert [f["source"] for f in summary["files"]] == [store.uri(name) for name in names]
    assert [f["accepted_rows"] for f in summary["files"]] == [25, 0, 0, 0, 0, 0]
    assert stored_batches(capillary_conn, SERIES) == expected_batches(CSV_BYTES) * len(names)


def test_skipped_rows_of_a_cloud_source_are_written_to_the_bucket(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    store.path("mixed/mixed.csv").write_bytes(CSV_BYTES + b"12,C-bad\n")
    rejected = store.uri("rejected/2026-12-01/mixed.csv")

    summary = cloud_operator(
        store, store.uri("mixed/mixed.csv"), invalid_rows="skip", rejected_rows_to=rejected
    ).execute(context)

    assert stored_batches(capillary_conn, SERIES) == expected_batches(CSV_BYTES)
    assert summary["skipped_rows"] == 1
    lines = store.path("rejected/2026-12-01/mixed.csv").read_bytes().splitlines()
    assert lines[0] == b"mobile,code,row,reason"
    assert lines[1].startswith(b"12,C-bad,27,")


def test_a_cloud_source_is_moved_to_an_archive_in_the_bucket_after_the_verdict(
    store: Store, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    source = store.path("incoming/today.csv")
    source.write_bytes(CSV_BYTES)
    cloud_operator(store, str(source), archive_to=store.uri("processed/2026-12-01")).execute(context)
    assert not source.exists()
    assert store.path("processed/2026-12-01/today.csv").read_bytes() == CSV_BYTES
