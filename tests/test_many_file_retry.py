"""A retry in the middle of a many-file upload, from every store, in clear and PGP-encrypted: each batch once.

Three files matched by one pattern go up as five batches (15, 15 and 5 rows in batches of 10). The sandbox
accepts the first three uploads and refuses the fourth (its token, twice: the task fails), then Airflow runs the
task again (a new try of the same task instance). The end state: exactly one job per batch, none sent twice,
none lost, with the rows of every file; the retry sends only the two batches Capillary does not have.
Each store is served locally (tests/stores.py); the PGP files are encrypted for a real key pair
(tests/pgp_keys.py) and read through the ``pgp_partner`` connection.
"""

from __future__ import annotations

from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryApiError
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeTaskInstance, make_operator, mobile_rows
from tests.faultkit import jobs_per_file, no_recheck_pause, upload_calls
from tests.stores import Store, expected_batches, stored_batches

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERIES = 7801
ROWS_PER_FILE = {"a": 15, "b": 15, "c": 5}
"""Five batches of at most 10 rows: a1, a2, b1 | b2, c1 (the first try stops at b2)."""
ACCEPTED_BEFORE_THE_FAILURE = 3


@pytest.fixture
def local_store(tmp_path: Any) -> Store:
    return Store("file", None, str(tmp_path))


@pytest.fixture(
    params=[
        pytest.param(("local_store", "clear"), id="local"),
        pytest.param(("s3_store", "clear"), marks=pytest.mark.s3, id="s3"),
        pytest.param(("sftp_store", "clear"), marks=pytest.mark.sftp, id="sftp"),
        pytest.param(("azure_store", "clear"), marks=pytest.mark.azure, id="abfs"),
        pytest.param(("gcs_store", "clear"), marks=pytest.mark.gcs, id="gs"),
        # PGP: a local file (decrypted in place) and a partner's drop on SFTP (spooled encrypted, then decrypted).
        pytest.param(("local_store", "pgp"), id="local-pgp"),
        pytest.param(("sftp_store", "pgp"), marks=pytest.mark.sftp, id="sftp-pgp"),
    ]
)
def source(request: pytest.FixtureRequest) -> tuple[Store, dict[str, Any]]:
    """A store, and how its files are written: in clear, or encrypted for our key (``.csv.pgp``) and read with
    the ``pgp_partner`` connection."""
    store_fixture, encryption = request.param
    store: Store = request.getfixturevalue(store_fixture)
    if encryption == "clear":
        return store, {"suffix": ".csv", "encode": lambda data: data, "options": {}}
    keys = request.getfixturevalue("keys")
    options = {"pgp_conn_id": request.getfixturevalue("pgp_conn")}
    return store, {"suffix": ".csv.pgp", "encode": keys["encrypt"], "options": options}


def drop_files(store: Store, folder: str, encryption: dict[str, Any]) -> list[bytes]:
    """Write the files of :data:`ROWS_PER_FILE` (distinct rows) under ``folder``; return their clear contents."""
    contents, start = [], 0
    for name, rows in ROWS_PER_FILE.items():
        clear = b"mobile,code\n" + b"".join(f"{m},{c}\n".encode() for m, c in mobile_rows(rows, start=start))
        store.put(f"{folder}/{name}{encryption['suffix']}", encryption["encode"](clear))
        contents.append(clear)
        start += rows
    return contents


def test_a_retry_in_the_middle_of_a_many_file_upload_sends_each_batch_exactly_once(
    source: tuple[Store, dict[str, Any]],
    capillary_conn: SandboxClient,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    store, encryption = source
    folder = f"retry-{request.node.callspec.id}"
    contents = drop_files(store, folder, encryption)
    pattern = store.uri(f"{folder}/*{encryption['suffix']}")
    options = {"batch_size": 10, "source_conn_id": store.conn_id, **encryption["options"]}
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", times=ACCEPTED_BEFORE_THE_FAILURE, seconds=0)  # a1, a2, b1 pass
    capillary_conn.add_fault("upload", "status", times=2, status=401)  # b2: the token refused, and the new one too

    with pytest.raises(CapillaryApiError):
        make_operator(pattern, SERIES, **options).execute(context)
    accepted_by_the_first_try = set(jobs_per_file(capillary_conn, SERIES))
    assert len(accepted_by_the_first_try) == ACCEPTED_BEFORE_THE_FAILURE

    retry = FakeTaskInstance()
    retry.try_number = 2
    summary = make_operator(pattern, SERIES, **options).execute({"ti": retry})

    jobs = jobs_per_file(capillary_conn, SERIES)
    assert (len(jobs), set(jobs.values())) == (5, {1})  # five batches, one job each
    assert accepted_by_the_first_try < set(jobs)
    assert stored_batches(capillary_conn, SERIES) == [batch for data in contents for batch in expected_batches(data)]
    sent = [call["fileName"] for call in upload_calls(capillary_conn, SERIES) if call["status"] == 200]
    assert sorted(sent) == sorted(jobs)  # every batch went up once: the retry sent only b2 and c1
    assert (summary["accepted_rows"], len(summary["job_ids"])) == (35, 5)
