"""Exactly once per batch: retries, a worker killed with SIGKILL, lost answers and a triggerer restart.

Every batch is named after the task instance (dag, task, run, map index) and its part number; before
uploading, the operator looks for a job of the series carrying that name and attaches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from capillary_provider.coupon_file import BatchReader
from capillary_provider.coupon_file.scan import Batch, FilePlan
from capillary_provider.exceptions import CapillaryApiError, CapillaryUploadOutcomeUnknown, CouponUploadAborted
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import COUPON, REDEEMED_COUPON
from capillary_provider.operators._exactly_once import (
    UNCERTAIN_UPLOAD_ATTEMPTS,
    UNCERTAIN_UPLOAD_RECHECK_SECONDS,
    BatchUploads,
)
from capillary_provider.operators._files import PreparedFile
from capillary_provider.operators.coupon_upload import batch_file_name
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from tests.conftest import mobile_rows, wait_for
from tests.faultkit import (
    TaskDeferred,
    batch_names,
    jobs_per_file,
    make_operator,
    no_recheck_pause,
    run_operator,
    upload_calls,
)
from tests.recording_log import RecordingLog

SERIES = 6200
BOUND = 60.0
"""Longest wait for a subprocess or the sandbox; a bound against hangs, not a timing assertion."""


def assert_one_job_per_batch(sandbox: SandboxClient, context: dict[str, Any], batches: int = 3) -> None:
    assert jobs_per_file(sandbox, SERIES) == dict.fromkeys(batch_names(context, batches), 1)


# -- names ----------------------------------------------------------------------------------------------


def test_batch_name_is_the_same_for_every_try_of_a_task_instance() -> None:
    assert batch_file_name("d", "t", "manual__2026-01-01", 3, 2) == batch_file_name(
        "d", "t", "manual__2026-01-01", 3, 2
    )


@pytest.mark.parametrize(
    "other",
    [
        ("d2", "t", "r", -1, 1),
        ("d", "t2", "r", -1, 1),
        ("d", "t", "r2", -1, 1),
        ("d", "t", "r", 0, 1),
        ("d", "t", "r", -1, 2),
    ],
    ids=["dag", "task", "run", "map-index", "part"],
)
def test_batch_name_differs_when_any_part_of_its_identity_differs(other: tuple[str, str, str, int, int]) -> None:
    assert batch_file_name(*other) != batch_file_name("d", "t", "r", -1, 1)


def test_batch_names_stay_distinct_when_long_ids_are_cut_short() -> None:
    long_run = "scheduled__2026-01-01T00:00:00+00:00" + "x" * 60
    assert batch_file_name("d", "t", long_run + "a", -1, 1) != batch_file_name("d", "t", long_run + "b", -1, 1)


# -- task retry -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_retry_after_a_failure_on_batch_two_uploads_only_the_missing_batches(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=0)  # batch 1 goes through
    capillary_conn.add_fault("upload", "status", status=401, times=2)  # batch 2: token refused twice
    with pytest.raises(CapillaryApiError):
        make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False).execute(context)  # type: ignore[arg-type]
    assert list(jobs_per_file(capillary_conn, SERIES)) == batch_names(context, 1)
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)
    assert [entry["fileName"] for entry in upload_calls(capillary_conn, SERIES) if entry["status"] == 200] == (
        batch_names(context, 3)
    )


@pytest.mark.integration
def test_retry_after_success_uploads_nothing(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    calls = len(upload_calls(capillary_conn, SERIES))
    summary = make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert len(upload_calls(capillary_conn, SERIES)) == calls
    assert summary["job_ids"] == sorted(job["jobId"] for job in capillary_conn.jobs(SERIES))


@pytest.mark.integration
def test_another_run_of_the_same_task_uploads_its_own_batches(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    make_operator(write_csv(mobile_rows(5)), SERIES).execute(context)  # type: ignore[arg-type]
    context["ti"].run_id = "manual__2"
    make_operator(write_csv(mobile_rows(5, start=100), name="next.csv"), SERIES).execute(context)  # type: ignore[arg-type]
    assert len(capillary_conn.jobs(SERIES)) == 2


# -- answers lost after Capillary stored the body ---------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "action",
    [
        {"type": "drop_after_body"},
        {"type": "status", "status": 502, "after_body": True},
        {"type": "malformed_json"},
        {"type": "success_false"},
    ],
    ids=["dropped-after-body", "502-after-body", "malformed-answer", "success-false"],
)
def test_lost_answer_to_a_stored_batch_is_found_by_name_not_uploaded_again(
    action: dict[str, Any],
    capillary_conn: SandboxClient,
    coupons: Path,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", action)  # batch 2
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)
    assert len(upload_calls(capillary_conn, SERIES)) == 3


@pytest.mark.integration
def test_upload_refused_before_the_body_was_read_is_sent_again(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "drop_before_body")
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)
    assert len(upload_calls(capillary_conn, SERIES)) == 4


@pytest.mark.integration
def test_recheck_pause_is_taken_from_the_module_constant(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("capillary_provider.operators._exactly_once.UNCERTAIN_UPLOAD_RECHECK_SECONDS", 0.125)
    monkeypatch.setattr("capillary_provider.operators._exactly_once.time.sleep", pauses.append)
    capillary_conn.add_fault("upload", "drop_after_body")
    make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False).execute(context)  # type: ignore[arg-type]
    assert pauses == [0.125]


# -- worker killed with SIGKILL ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from capillary_provider.coupon_file import BatchReader
    from tests.conftest import FakeTaskInstance
    from tests.faultkit import make_operator

    source, series, stall_part, marker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    read = BatchReader.read

    def stalling_read(self, size=-1):
        # Part ``stall_part`` sends a few bytes, says so, then hangs: the worker dies mid-body.
        if self._batch.part == stall_part:
            if self.tell() > 0:
                marker.write_text("mid-body")
                import time
                time.sleep(3600)
            return read(self, 8)
        return read(self, size)

    if stall_part:
        BatchReader.read = stalling_read
    operator = make_operator(source, series, batch_size=10, wait_for_completion=False)
    operator.execute({"ti": FakeTaskInstance()})
    """
)


def start_worker(source: Path, stall_part: int, marker: Path) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-c", CHILD, str(source), str(SERIES), str(stall_part), str(marker)]
    return subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(BOUND)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.integration
def test_worker_killed_while_waiting_for_the_answer_to_batch_two_then_rerun_ends_with_one_job_per_batch(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], tmp_path: Path
) -> None:
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", "delay", seconds=60)  # batch 2 is stored, its answer held back
    worker = start_worker(coupons, 0, tmp_path / "marker")
    try:
        wait_for(lambda: len(capillary_conn.jobs(SERIES)) == 2, "batch 2 never reached the sandbox", timeout=BOUND)
    finally:
        kill(worker)
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]  # the retry
    assert_one_job_per_batch(capillary_conn, context)


@pytest.mark.integration
def test_worker_killed_mid_body_of_batch_two_then_rerun_ends_with_one_job_per_batch(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    worker = start_worker(coupons, 2, marker)
    try:
        wait_for(marker.exists, "the worker never started batch 2", timeout=BOUND)
    finally:
        kill(worker)
    assert list(jobs_per_file(capillary_conn, SERIES)) == batch_names(context, 1)  # the cut body stored nothing
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert_one_job_per_batch(capillary_conn, context)


# -- triggerer restart ------------------------------------------------------------------------------------


def rebuild(deferred: TaskDeferred) -> CouponUploadTrigger:
    """A trigger from its serialized kwargs, through JSON, as a (restarted) triggerer builds it."""
    classpath, kwargs = deferred.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger: CouponUploadTrigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    return trigger


@pytest.mark.integration
def test_triggerer_restart_mid_wait_ends_with_one_event_and_no_new_upload(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    capillary_conn.set_step_seconds(3600)  # the jobs stay in progress: the first trigger cannot finish
    operator = make_operator(coupons, SERIES, batch_size=10, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)  # type: ignore[arg-type]
    uploads = len(upload_calls(capillary_conn, SERIES))
    status_path = f"/coupon/api/v1/upload/getUploadStatus/{SERIES}"

    async def first_trigger_then_restart() -> list[Any]:
        first = asyncio.ensure_future(anext(rebuild(deferred.value).run()))
        polls = len(capillary_conn.requests(status_path))
        while len(capillary_conn.requests(status_path)) == polls:  # the first trigger has polled at least once
            await asyncio.sleep(0.02)
        first.cancel()  # the triggerer stops
        with pytest.raises(asyncio.CancelledError):
            await first
        capillary_conn.set_step_seconds(0.05)
        events = []
        async for event in rebuild(deferred.value).run():  # a new triggerer picks the trigger up
            events.append(event.payload)
        return events

    events = asyncio.run(asyncio.wait_for(first_trigger_then_restart(), BOUND))
    assert [event["status"] for event in events] == ["done"]
    summary = operator.execute_complete(context, event=json.loads(json.dumps(events[0])))  # type: ignore[arg-type]
    assert summary["status"] == "FINISHED"
    assert len(upload_calls(capillary_conn, SERIES)) == uploads
    assert_one_job_per_batch(capillary_conn, context)


@pytest.mark.integration
def test_task_retry_after_a_deferred_wait_attaches_to_the_same_jobs(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    first = run_operator(make_operator(coupons, SERIES, batch_size=10, deferrable=True), context)
    second = run_operator(make_operator(coupons, SERIES, batch_size=10, deferrable=True), context)
    assert second["job_ids"] == first["job_ids"]
    assert_one_job_per_batch(capillary_conn, context)


# -- the upload loop without a sandbox (BatchUploads with a fake hook) --------------------------------------


class ListingHook:
    """Just what :class:`BatchUploads` asks of a hook: the series' job listings (one per call) and ``aborted``."""

    def __init__(self, *listings: list[UploadJob], aborted: bool = False) -> None:
        self.listings = list(listings)
        self.aborted = aborted
        self.listed: list[tuple[str, Any]] = []

    def get_upload_jobs(self, series_id: str, kind: Any) -> list[UploadJob]:
        self.listed.append((series_id, kind))
        return self.listings.pop(0) if self.listings else []


DATA = b"9198,C1\n9199,C2\n9200,C3\n"
HEADER = b"mobile,code\n"


def prepared_file(parts: int = 3) -> PreparedFile:
    """A file of ``parts`` one-row batches (rows 8 bytes each), named ``b1.csv``, ``b2.csv``..."""
    batches = tuple(Batch(part, 8 * (part - 1), 8 * part, 1, part + 1) for part in range(1, parts + 1))
    plan = FilePlan("coupons.csv", HEADER, 2, parts, batches, len(DATA))
    source = SimpleNamespace(for_upload=lambda: contextlib.nullcontext(io.BytesIO(DATA)))
    return PreparedFile("coupons.csv", None, source, plan, [f"b{part}.csv" for part in range(1, parts + 1)])  # type: ignore[arg-type]


def job(job_id: int, name: str) -> UploadJob:
    return UploadJob(job_id=job_id, status="IN_PROGRESS", uploaded_file_name=name)


class Uploader:
    """An ``upload_batch`` that reads each body whole, records it, and fails with ``failures`` first."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.bodies: list[tuple[str, str, bytes]] = []

    def __call__(self, series_id: str, body: BatchReader, name: str) -> UploadJob:
        self.bodies.append((series_id, name, body.read()))
        if self.failures:
            raise self.failures.pop(0)
        return job(100 + len(self.bodies), name)


def unknown(name: str = "b1.csv") -> CapillaryUploadOutcomeUnknown:
    return CapillaryUploadOutcomeUnknown("connection lost after the body", file_name=name)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The recheck pauses taken (none is slept)."""
    taken: list[float] = []
    monkeypatch.setattr("capillary_provider.operators._exactly_once.time.sleep", taken.append)
    return taken


def test_run_lists_the_series_once_with_the_kind_and_uploads_only_the_batches_not_listed(pauses: list[float]) -> None:
    hook, upload = ListingHook([job(7, "b2.csv")]), Uploader()
    jobs = BatchUploads(hook, REDEEMED_COUPON, upload, RecordingLog()).run("6200", [prepared_file()], lambda _: None)  # type: ignore[arg-type]
    assert hook.listed == [("6200", REDEEMED_COUPON)]
    assert [(series, name) for series, name, _ in upload.bodies] == [("6200", "b1.csv"), ("6200", "b3.csv")]
    assert [(j.job_id, j.uploaded_file_name) for j in jobs] == [(101, "b1.csv"), (7, "b2.csv"), (102, "b3.csv")]


def test_each_batch_body_is_the_header_then_its_own_rows(pauses: list[float]) -> None:
    upload = Uploader()
    BatchUploads(ListingHook(), COUPON, upload, RecordingLog()).run("1", [prepared_file()], lambda _: None)  # type: ignore[arg-type]
    assert [body for _, _, body in upload.bodies] == [
        HEADER + b"9198,C1\n",
        HEADER + b"9199,C2\n",
        HEADER + b"9200,C3\n",
    ]


def test_accepted_is_told_the_growing_list_after_each_batch(pauses: list[float]) -> None:
    told: list[list[str | None]] = []
    uploads = BatchUploads(ListingHook([job(7, "b1.csv")]), COUPON, Uploader(), RecordingLog())  # type: ignore[arg-type]
    uploads.run("1", [prepared_file()], lambda accepted: told.append([j.uploaded_file_name for j in accepted]))
    assert told == [["b1.csv"], ["b1.csv", "b2.csv"], ["b1.csv", "b2.csv", "b3.csv"]]


def test_a_second_run_starts_with_no_accepted_batches(pauses: list[float]) -> None:
    uploads = BatchUploads(ListingHook(), COUPON, Uploader(), RecordingLog())  # type: ignore[arg-type]
    uploads.run("1", [prepared_file(1)], lambda _: None)
    assert [j.uploaded_file_name for j in uploads.run("1", [prepared_file(2)], lambda _: None)] == ["b1.csv", "b2.csv"]


def test_run_logs_which_batch_it_attaches_to_and_which_it_uploads(pauses: list[float]) -> None:
    log = RecordingLog()
    BatchUploads(ListingHook([job(7, "b1.csv")]), COUPON, Uploader(), log).run("1", [prepared_file(2)], lambda _: None)  # type: ignore[arg-type]
    assert log.messages == [
        "Batch 1 is already in Capillary as job 7 (b1.csv): not uploading it again",
        "Uploading batch 2 of 2: 1 rows as b2.csv",
    ]


def test_each_uploaded_batch_is_counted_in_the_metrics(pauses: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        "capillary_provider.operators._exactly_once.metrics.batch_uploaded",
        lambda kind, rows, size, seconds: counted.append((kind, rows, size)) if 0 <= seconds < BOUND else None,
    )
    BatchUploads(ListingHook([job(7, "b1.csv")]), REDEEMED_COUPON, Uploader(), RecordingLog()).run(  # type: ignore[arg-type]
        "1", [prepared_file(2)], lambda _: None
    )
    assert counted == [(REDEEMED_COUPON.name, 1, len(HEADER) + 8)]


def test_no_batch_is_uploaded_once_the_hook_is_aborted(pauses: list[float]) -> None:
    upload = Uploader()
    with pytest.raises(
        CouponUploadAborted,
        match=r"^Upload stopped before batch 1: the task was killed\. "
        r"Batches already accepted: none$",
    ):
        BatchUploads(ListingHook(aborted=True), COUPON, upload, RecordingLog()).run(
            "1", [prepared_file()], lambda _: None
        )  # type: ignore[arg-type]
    assert upload.bodies == []


def test_an_aborted_upload_names_the_accepted_batches_and_the_batch_a_rerun_looks_for(pauses: list[float]) -> None:
    uploads = BatchUploads(
        ListingHook([job(7, "b1.csv")]), COUPON, Uploader(CouponUploadAborted("cut")), RecordingLog()
    )  # type: ignore[arg-type]
    with pytest.raises(CouponUploadAborted) as raised:
        uploads.run("1", [prepared_file()], lambda _: None)
    assert str(raised.value) == (
        "cut. Batches already accepted: b1.csv (job 7); a rerun attaches to them and looks for b2.csv before "
        "uploading it again"
    )
    assert isinstance(raised.value.__cause__, CouponUploadAborted)


def test_accepted_text_lists_every_accepted_batch_with_its_job() -> None:
    uploads = BatchUploads(ListingHook(), COUPON, Uploader(), RecordingLog())  # type: ignore[arg-type]
    uploads.accepted = [job(7, "b1.csv"), job(8, "b2.csv")]
    assert uploads.accepted_text() == "b1.csv (job 7), b2.csv (job 8)"


def test_a_lost_answer_whose_batch_is_listed_is_attached_to_not_sent_again(pauses: list[float]) -> None:
    hook, upload, log = ListingHook([], [job(9, "b1.csv")]), Uploader(unknown()), RecordingLog()
    jobs = BatchUploads(hook, REDEEMED_COUPON, upload, log).run("6200", [prepared_file(1)], lambda _: None)  # type: ignore[arg-type]
    assert [(j.job_id, len(upload.bodies)) for j in jobs] == [(9, 1)]
    assert hook.listed == [("6200", REDEEMED_COUPON), ("6200", REDEEMED_COUPON)]
    assert pauses == [UNCERTAIN_UPLOAD_RECHECK_SECONDS] == [2.0]
    assert log.messages[1:] == [
        "connection lost after the body; checking whether Capillary has b1.csv",
        "Capillary has b1.csv as job 9: not uploading it again",
    ]


def test_a_lost_answer_whose_batch_is_not_listed_is_sent_again_from_its_start(pauses: list[float]) -> None:
    upload = Uploader(unknown())
    jobs = BatchUploads(ListingHook(), COUPON, upload, RecordingLog()).run("1", [prepared_file(1)], lambda _: None)  # type: ignore[arg-type]
    assert [body for _, _, body in upload.bodies] == [HEADER + b"9198,C1\n"] * 2
    assert [j.job_id for j in jobs] == [102]


def test_an_upload_whose_answer_is_lost_every_time_fails_after_three_attempts(pauses: list[float]) -> None:
    hook, upload = ListingHook(), Uploader(unknown(), unknown(), unknown(), unknown())
    with pytest.raises(CapillaryUploadOutcomeUnknown):
        BatchUploads(hook, COUPON, upload, RecordingLog()).run("1", [prepared_file(1)], lambda _: None)  # type: ignore[arg-type]
    assert (len(upload.bodies), len(hook.listed), len(pauses)) == (UNCERTAIN_UPLOAD_ATTEMPTS, 3, 2) == (3, 3, 2)


def test_a_lost_answer_after_the_hook_was_aborted_is_not_looked_for(pauses: list[float]) -> None:
    hook = ListingHook()

    def upload_then_abort(series_id: str, body: BatchReader, name: str) -> UploadJob:
        hook.aborted = True
        raise unknown()

    with pytest.raises(CapillaryUploadOutcomeUnknown):
        BatchUploads(hook, COUPON, upload_then_abort, RecordingLog()).run("1", [prepared_file(1)], lambda _: None)  # type: ignore[arg-type]
    assert (len(hook.listed), pauses) == (1, [])


def test_accepted_text_is_none_before_the_first_run() -> None:
    assert BatchUploads(ListingHook(), COUPON, Uploader(), RecordingLog()).accepted_text() == "none"  # type: ignore[arg-type]


def test_a_file_whose_names_do_not_match_its_batches_uploads_nothing_unnamed(pauses: list[float]) -> None:
    prepared, upload = prepared_file(), Uploader()
    prepared.names = prepared.names[:2]
    with pytest.raises(ValueError, match="zip"):
        BatchUploads(ListingHook(), COUPON, upload, RecordingLog()).run("1", [prepared], lambda _: None)  # type: ignore[arg-type]
    assert [name for _, name, _ in upload.bodies] == ["b1.csv", "b2.csv"]
