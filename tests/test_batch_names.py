"""Batch names: pinned exactly (golden), and mapped task instances kept apart on the sandbox.

Retries across an upgrade find their batches by name, so the names below are written out by hand: a change
of the scheme must fail here, not be recomputed with the product's own ``batch_file_name``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from capillary_provider.exceptions import CapillaryApiError
from capillary_provider.operators._base import batch_file_name
from capillary_provider.operators._files import display_name
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeTaskInstance, mobile_rows
from tests.faultkit import jobs_per_file, make_operator, no_recheck_pause, upload_calls

SERIES = 6450

RUN = "scheduled__2026-11-27T00:00:00+00:00"

GOLDEN = {
    (-1, 1): "promo__upload_coupons__scheduled__2026-11-27T00-00-00-00-00_c050cdd238e0_part0001.csv",
    (-1, 2): "promo__upload_coupons__scheduled__2026-11-27T00-00-00-00-00_c050cdd238e0_part0002.csv",
    (3, 1): "promo__upload_coupons__scheduled__2026-11-27T00-00-00-00-00_m3_f4c438eefd65_part0001.csv",
    (3, 2): "promo__upload_coupons__scheduled__2026-11-27T00-00-00-00-00_m3_f4c438eefd65_part0002.csv",
}


@pytest.mark.parametrize(("map_index", "part"), list(GOLDEN), ids=[f"m{m}-part{p}" for m, p in GOLDEN])
def test_batch_name_is_pinned(map_index: int, part: int) -> None:
    assert batch_file_name("promo", "upload_coupons", RUN, map_index, part) == GOLDEN[(map_index, part)]


def test_batch_name_of_the_operator_is_the_pinned_name(write_csv: Callable[..., Path]) -> None:
    """The operator names its batches with the task instance's ids and map index, as pinned above."""
    operator = make_operator(write_csv(mobile_rows(1)), SERIES)
    ti = FakeTaskInstance(dag_id="promo", task_id="upload_coupons", run_id=RUN, map_index=3)
    assert operator._file_name({"ti": ti}, 2) == GOLDEN[(3, 2)]  # type: ignore[arg-type]
    ti = FakeTaskInstance(dag_id="promo", task_id="upload_coupons", run_id=RUN, map_index=-1)
    assert operator._file_name({"ti": ti}, 1) == GOLDEN[(-1, 1)]  # type: ignore[arg-type]


def test_batch_name_of_an_unmapped_task_instance_without_map_index_is_the_unmapped_name(
    write_csv: Callable[..., Path],
) -> None:
    operator = make_operator(write_csv(mobile_rows(1)), SERIES)
    ti = FakeTaskInstance(dag_id="promo", task_id="upload_coupons", run_id=RUN)
    ti.map_index = None
    assert operator._file_name({"ti": ti}, 1) == GOLDEN[(-1, 1)]  # type: ignore[arg-type]


MANY_PREFIX = "promo__upload_coupons__scheduled__2026-11-27T00-00-00-00-00_c050cdd238e0"
GOLDEN_MANY = {
    # A local glob, here in a fixed folder so that its names can be written out.
    "glob": [
        ("file:///tmp/capillary-batch-names-golden/coupons-01.csv", f"{MANY_PREFIX}_f69d624b76e_part0001.csv"),
        ("file:///tmp/capillary-batch-names-golden/coupons-02.csv", f"{MANY_PREFIX}_f545b1ba155_part0001.csv"),
    ],
    # A list of S3 keys read with source_conn_id: str() says s3://aws_default@..., the name does not.
    "s3": [
        ("s3://promo-exports/2026-11-27/coupons-01.csv", f"{MANY_PREFIX}_fd398041e3d_part0001.csv"),
        ("s3://promo-exports/2026-11-27/coupons-02.csv", f"{MANY_PREFIX}_f1ef2222c42_part0001.csv"),
    ],
    # SFTP: str(ObjectStoragePath) keeps neither the connection nor the host, only the path.
    "sftp": [
        ("sftp:///outbox/coupons-01.csv", f"{MANY_PREFIX}_f7d08481055_part0001.csv"),
        ("sftp:///outbox/coupons-02.csv", f"{MANY_PREFIX}_faee947f345_part0001.csv"),
    ],
}


def _many_sources(store: str) -> tuple[list[str] | str, dict[str, str]]:
    if store == "glob":
        folder = Path("/tmp/capillary-batch-names-golden")
        folder.mkdir(exist_ok=True)
        for name in ("coupons-01.csv", "coupons-02.csv"):
            (folder / name).write_text("mobile,code\n", encoding="utf-8")
        return str(folder / "coupons-*.csv"), {}
    if store == "s3":
        keys = ["s3://promo-exports/2026-11-27/coupons-01.csv", "s3://promo-exports/2026-11-27/coupons-02.csv"]
        return keys, {"source_conn_id": "aws_default"}
    paths = ["sftp://sftp.partner.example/outbox/coupons-01.csv", "sftp://sftp.partner.example/outbox/coupons-02.csv"]
    return paths, {"source_conn_id": "partner_sftp"}


@pytest.mark.parametrize("store", list(GOLDEN_MANY))
def test_batch_names_of_many_files_are_pinned(store: str) -> None:
    """Each file of a many-file upload is keyed by its display name, which comes from str(ObjectStoragePath).

    An Airflow or universal_pathlib upgrade that changes str() changes these names: a retry across it would
    upload its batches again. The paths are resolved as the operator resolves them, without network.
    """
    source, kwargs = _many_sources(store)
    operator = make_operator(source, SERIES, **kwargs)  # type: ignore[arg-type]
    ti = FakeTaskInstance(dag_id="promo", task_id="upload_coupons", run_id=RUN, map_index=-1)
    names = [
        (display_name(path), operator._file_name({"ti": ti}, 1, display_name(path)))  # type: ignore[arg-type]
        for path in operator._source_paths()
    ]
    assert names == GOLDEN_MANY[store]


def test_batch_name_cleans_and_cuts_long_ids() -> None:
    name = batch_file_name("d" * 50, "a task/with spaces", "manual__x" + "y" * 50, 0, 12)
    assert name == (
        "dddddddddddddddddddddddddddddddddddddddd__a-task-with-spaces__manual__xyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
        "_m0_c4d53115cd75_part0012.csv"
    )


# -- mapped task instances against the sandbox ------------------------------------------------------------


def mapped_ti(map_index: int, try_number: int = 1) -> FakeTaskInstance:
    """A task instance of ``promo.upload_coupons`` in one run; a retry is a new instance with the next try."""
    ti = FakeTaskInstance(dag_id="promo", task_id="upload_coupons", run_id=RUN, map_index=map_index)
    ti.try_number = try_number
    return ti


def names_of(map_index: int, parts: int) -> list[str]:
    return [batch_file_name("promo", "upload_coupons", RUN, map_index, part) for part in range(1, parts + 1)]


@pytest.mark.integration
def test_mapped_task_instances_never_attach_to_each_others_batches(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    files = {m: write_csv(mobile_rows(15, start=100 * m, prefix=f"M{m}"), name=f"m{m}.csv") for m in (0, 3)}
    for map_index, source in files.items():
        make_operator(source, SERIES, batch_size=10).execute({"ti": mapped_ti(map_index)})  # type: ignore[arg-type]
    expected = {name: 1 for m in (0, 3) for name in names_of(m, 2)}
    assert len(expected) == 4
    assert jobs_per_file(capillary_conn, SERIES) == expected
    codes = {code["code"] for code in capillary_conn.series_codes(SERIES)}
    assert codes >= {code for m in (0, 3) for _, code in mobile_rows(15, start=100 * m, prefix=f"M{m}")}


@pytest.mark.integration
def test_retry_of_one_map_index_attaches_to_its_own_batches_only(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_recheck_pause(monkeypatch)
    files = {m: write_csv(mobile_rows(25, start=100 * m, prefix=f"M{m}"), name=f"m{m}.csv") for m in (0, 1)}
    make_operator(files[0], SERIES, batch_size=10).execute({"ti": mapped_ti(0)})  # type: ignore[arg-type]
    # Map index 1: batch 1 goes through, batch 2 is refused twice: the try fails.
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", "status", status=401, times=2)
    with pytest.raises(CapillaryApiError):
        make_operator(files[1], SERIES, batch_size=10, wait_for_completion=False).execute(  # type: ignore[arg-type]
            {"ti": mapped_ti(1)}
        )
    before = len(upload_calls(capillary_conn, SERIES))
    # Airflow's retry: a new task instance, same ids and map index, the next try number.
    retry = mapped_ti(1, try_number=2)
    summary = make_operator(files[1], SERIES, batch_size=10).execute({"ti": retry})  # type: ignore[arg-type]
    sent = [entry["fileName"] for entry in upload_calls(capillary_conn, SERIES)[before:] if entry["status"] == 200]
    assert sent == names_of(1, 3)[1:]  # only the missing batches of map index 1
    expected = {name: 1 for name in names_of(0, 3) + names_of(1, 3)}
    assert len(expected) == 6
    assert jobs_per_file(capillary_conn, SERIES) == expected
    own = {job["jobId"] for job in capillary_conn.jobs(SERIES) if job["uploadedFileName"] in names_of(1, 3)}
    assert set(summary["job_ids"]) == own
