"""on_kill during an upload: the transfer stops at once, the log names the accepted batches, a rerun completes once.

Airflow calls ``on_kill`` on SIGTERM while ``execute`` is still running; here it is called from the test
thread while ``execute`` runs in another, blocked either waiting for Capillary's answer or mid-body. A
blocked upload stops within 2 s even while the sandbox holds its answer back for 30 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.coupon_file import BatchReader
from capillary_provider.exceptions import CouponUploadAborted
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests import conftest
from tests.conftest import mobile_rows, wait_for
from tests.faultkit import batch_names, jobs_per_file, make_operator, no_recheck_pause

pytestmark = pytest.mark.integration

SERIES = 6300
BOUND = 60.0
"""Longest wait for a thread or the sandbox; a bound against hangs, not a timing assertion."""
HELD_SECONDS = 30
"""How long the sandbox holds back its answer to the upload being killed."""
STOP_BOUND = 2.0
"""How soon after on_kill a blocked upload must have stopped: the one timing assertion."""


class Run:
    """``execute`` in a thread, remembering its error and when it ended."""

    def __init__(self, operator: CouponUploadOperator, context: dict[str, Any]) -> None:
        self.error: BaseException | None = None
        self.ended: float | None = None
        self.thread = threading.Thread(target=self._run, args=(operator, context), daemon=True)
        self.thread.start()

    def _run(self, operator: CouponUploadOperator, context: dict[str, Any]) -> None:
        try:
            operator.execute(context)  # type: ignore[arg-type]
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended = time.monotonic()

    def join(self, bound: float = BOUND) -> BaseException | None:
        self.thread.join(bound)
        assert not self.thread.is_alive(), f"execute still blocked {bound} s after on_kill"
        return self.error


@pytest.fixture
def killed_waiting_for_answer(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> BaseException | None:
    """Batch 2 is stored but its answer is held back 30 s; on_kill comes while the task waits for it."""
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", "delay", seconds=HELD_SECONDS)
    operator = make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False)
    operator.hook.timeout = (10.0, 120.0)  # only on_kill can end the wait
    run = Run(operator, context)
    wait_for(lambda: len(capillary_conn.jobs(SERIES)) == 2, "batch 2 never reached the sandbox", timeout=BOUND)
    operator.on_kill()
    return run.join()


def test_on_kill_stops_an_upload_waiting_for_a_held_answer_within_two_seconds(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hook's read timeout is longer than the held answer: only the in-flight socket shutdown of
    ``on_kill`` can end the wait within the bound, not the answer finally coming."""
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=HELD_SECONDS)
    operator = make_operator(write_csv(mobile_rows(5)), SERIES, wait_for_completion=False)
    operator.hook.timeout = (10.0, 120.0)  # longer than the held answer
    run = Run(operator, context)
    wait_for(lambda: len(capillary_conn.jobs(SERIES)) == 1, "the batch never reached the sandbox", timeout=BOUND)
    time.sleep(0.2)  # let the worker sit in its read of the held answer (not an assertion on timing)
    killed = time.monotonic()
    operator.on_kill()
    error = run.join(STOP_BOUND)
    assert run.ended is not None
    assert run.ended - killed < STOP_BOUND
    assert isinstance(error, CouponUploadAborted)


def test_on_kill_while_waiting_for_an_answer_aborts_with_a_clear_error(
    killed_waiting_for_answer: BaseException | None,
) -> None:
    error = killed_waiting_for_answer
    assert isinstance(error, CouponUploadAborted)
    assert "the task was killed" in str(error)


def test_on_kill_error_names_the_batches_already_accepted(
    killed_waiting_for_answer: BaseException | None, context: dict[str, Any]
) -> None:
    error = killed_waiting_for_answer
    first, second, _third = batch_names(context, 3)
    assert f"Batches already accepted: {first} (job " in str(error)
    assert second in str(error)  # the batch whose answer was lost is named, to be looked for on rerun


def test_on_kill_logs_the_batches_already_accepted(
    capillary_conn: SandboxClient,
    coupons: Path,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=0)
    capillary_conn.add_fault("upload", "delay", seconds=HELD_SECONDS)
    operator = make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False)
    operator.hook.timeout = (10.0, 120.0)
    run = Run(operator, context)
    wait_for(lambda: len(capillary_conn.jobs(SERIES)) == 2, "batch 2 never reached the sandbox", timeout=BOUND)
    operator.on_kill()
    run.join()
    [job_1] = [job for job in capillary_conn.jobs(SERIES) if job["uploadedFileName"] == batch_names(context, 1)[0]]
    out = capsys.readouterr().out
    assert f"Batches already accepted: {batch_names(context, 1)[0]} (job {job_1['jobId']})" in out


def test_on_kill_sends_no_further_batch(
    killed_waiting_for_answer: BaseException | None, capillary_conn: SandboxClient, context: dict[str, Any]
) -> None:
    # Batch 2's answer is still held back by the sandbox; batch 3 never left the worker.
    assert sorted(job["uploadedFileName"] for job in capillary_conn.jobs(SERIES)) == batch_names(context, 2)


def test_rerun_after_on_kill_completes_with_one_job_per_batch(
    killed_waiting_for_answer: BaseException | None,
    capillary_conn: SandboxClient,
    coupons: Path,
    context: dict[str, Any],
) -> None:
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert jobs_per_file(capillary_conn, SERIES) == dict.fromkeys(batch_names(context, 3), 1)


def test_on_kill_mid_body_aborts_the_transfer_and_capillary_stores_nothing_of_it(
    capillary_conn: SandboxClient,
    coupons: Path,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_recheck_pause(monkeypatch)
    reading, killed = threading.Event(), threading.Event()
    read = BatchReader.read

    def slow_read(self: BatchReader, size: int | None = -1) -> bytes:
        """Batch 2 sends a few bytes, then its source stalls until on_kill has run."""
        if self._batch.part == 2 and self.tell() > 0:  # type: ignore[attr-defined]
            reading.set()
            killed.wait(BOUND)
        return read(self, 8 if self._batch.part == 2 else size)  # type: ignore[attr-defined]

    monkeypatch.setattr(BatchReader, "read", slow_read)
    operator = make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False)
    run = Run(operator, context)
    assert reading.wait(BOUND), "batch 2 never started"
    operator.on_kill()
    killed.set()
    error = run.join()
    assert isinstance(error, CouponUploadAborted)
    assert [job["uploadedFileName"] for job in capillary_conn.jobs(SERIES)] == batch_names(context, 1)
    monkeypatch.setattr(BatchReader, "read", read)
    make_operator(coupons, SERIES, batch_size=10).execute(context)  # type: ignore[arg-type]
    assert jobs_per_file(capillary_conn, SERIES) == dict.fromkeys(batch_names(context, 3), 1)


def test_on_kill_before_the_first_upload_means_no_batch_is_sent(
    capillary_conn: SandboxClient, coupons: Path, context: dict[str, Any]
) -> None:
    """A kill that comes before the operator made its hook still aborts: the run that carries on sends nothing."""
    operator = conftest.make_operator(coupons, SERIES, batch_size=10, wait_for_completion=False)  # no hook yet
    operator.on_kill()
    with pytest.raises(CouponUploadAborted, match="Upload stopped before batch 1: the task was killed"):
        operator.execute(context)  # type: ignore[arg-type]
    assert capillary_conn.jobs(SERIES) == []
