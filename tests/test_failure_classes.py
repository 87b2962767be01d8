"""Failures classed by what they are, with messages that do not mislead (issue 19, item 5).

A refusal (any 4xx but 408 and 429, JSON or not) is never retried and never "outcome unknown"; refused
credentials during the series check fail at once; a rotated client secret is picked up; the series check
guards only a run's first upload. Faults are injected into the sandbox over real HTTP.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import (
    CapillaryAuthError,
    CapillaryPermanentApiError,
    CapillaryUploadOutcomeUnknown,
    CouponFileError,
    CouponUploadFailed,
    CouponUploadTimeout,
    SpoolDiskFull,
)
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import REDEEMED_COUPON
from capillary_provider.operators._series import check_series
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator
from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeTaskInstance, mobile_rows
from tests.faultkit import fast_hook, jobs_per_file, make_operator, upload_calls
from tests.recording_log import RecordingLog

SERIES = 6300
FIREWALL_PAGE = "<html><body><h1>403 Forbidden</h1>Request blocked by the firewall</body></html>"


def use_secret(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxClient, secret: str) -> None:
    """``capillary_default`` points at the sandbox with ``secret`` as its client secret."""
    conn = json.loads(connection_json(sandbox))
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", json.dumps({**conn, "password": secret}))


def token_calls(sandbox: SandboxClient) -> int:
    return len(sandbox.requests("/oauth/token"))


# -- the series check -------------------------------------------------------------------------------


@pytest.mark.integration
def test_refused_credentials_fail_the_series_check_at_once_without_uploading_anyway(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_secret(monkeypatch, sandbox, "not-the-secret")
    log = RecordingLog()
    with pytest.raises(CapillaryAuthError, match="refused the client key and secret"):
        check_series(fast_hook(), str(SERIES), log)
    assert "uploading anyway" not in " | ".join(log.messages)


@pytest.mark.integration
def test_no_read_access_to_series_warns_and_lets_the_upload_go_on(capillary_conn: SandboxClient) -> None:
    capillary_conn.set_series(SERIES, "forbidden")
    log = RecordingLog()
    check_series(fast_hook(), str(SERIES), log)
    assert f"Could not check coupon series {SERIES} before uploading" in " | ".join(log.messages)
    assert "uploading anyway" in " | ".join(log.messages)


@pytest.mark.integration
def test_a_retry_attaches_to_its_batches_although_the_series_expired_after_the_first_try(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    source = write_csv(mobile_rows(25))
    make_operator(source, SERIES, batch_size=10, wait_for_completion=False).execute(context)
    capillary_conn.set_series(SERIES, "expired")
    summary = make_operator(source, SERIES, batch_size=10).execute(context)  # the task's retry
    assert summary["accepted_rows"] == 25
    assert set(jobs_per_file(capillary_conn, SERIES).values()) == {1}


# -- refusals whose body is not JSON ----------------------------------------------------------------


@pytest.mark.integration
def test_an_upload_refused_with_a_firewall_page_is_sent_once_and_not_called_outcome_unknown(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any]
) -> None:
    capillary_conn.add_fault("upload", "status", status=403, html=FIREWALL_PAGE, times=None)
    with pytest.raises(CapillaryPermanentApiError) as info:
        make_operator(write_csv(mobile_rows(5)), SERIES).execute(context)
    assert "HTTP 403" in str(info.value)
    assert "Request blocked by the firewall" in str(info.value)
    assert not isinstance(info.value, CapillaryUploadOutcomeUnknown)
    assert isinstance(info.value, AirflowFailException)  # Airflow does not spend the task's retries on it
    assert len(upload_calls(capillary_conn, SERIES)) == 1


@pytest.mark.integration
@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_status_call_refused_with_a_page_that_is_not_json_is_not_retried(
    capillary_conn: SandboxClient, status: int
) -> None:
    capillary_conn.add_fault("status", "status", status=status, html=FIREWALL_PAGE, times=None)
    with pytest.raises(CapillaryPermanentApiError, match=f"not JSON.*HTTP {status}"):
        fast_hook(retry_limit=3).get_upload_jobs(SERIES)
    assert len(capillary_conn.requests(f"getUploadStatus/{SERIES}")) == 1


@pytest.mark.integration
@pytest.mark.parametrize("status", [408, 429, 502])
def test_an_unreadable_timeout_throttle_or_gateway_answer_is_still_retried(
    capillary_conn: SandboxClient, status: int, sleeps: list[float]
) -> None:
    capillary_conn.add_fault("status", "status", status=status, html="<html>busy</html>", times=1)
    assert fast_hook(retry_limit=3).get_upload_jobs(SERIES) == []
    assert len(capillary_conn.requests(f"getUploadStatus/{SERIES}")) == 2


# -- a rotated client secret ------------------------------------------------------------------------


@pytest.mark.integration
def test_a_client_secret_rotated_during_a_wait_is_picked_up(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_secret(monkeypatch, sandbox, "the-old-secret")
    hook = fast_hook()
    assert hook.connection.password == "the-old-secret"  # read once, as at the start of a long wait
    use_secret(monkeypatch, sandbox, sandbox.secret)  # rotated in Airflow meanwhile
    assert hook.get_upload_jobs(SERIES) == []
    assert token_calls(sandbox) == 2  # refused with the old secret, granted with the new one


@pytest.mark.integration
def test_a_refused_secret_that_did_not_change_fails_at_once_with_one_token_call(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_secret(monkeypatch, sandbox, "not-the-secret")
    with pytest.raises(CapillaryAuthError, match="refused the client key and secret"):
        fast_hook().get_upload_jobs(SERIES)
    assert token_calls(sandbox) == 1


# -- the advertised guarantees, without HTTP --------------------------------------------------------


def redeem_operator() -> RedeemedCouponUploadOperator:
    return RedeemedCouponUploadOperator(
        task_id="upload",
        coupon_series_id=SERIES,
        source="/nowhere/redeemed.csv",
        customer_identifier="MOBILE",
        coupon_identifier="COUPON_CODE",
        deferrable=True,
    )


def redeemed_job(status: str) -> dict[str, Any]:
    job = UploadJob.from_api(
        {"jobId": 7, "uploadRedeemedCouponStatus": status, "uploadedFileName": "b1.csv"}, REDEEMED_COUPON
    )
    return job.to_dict()


def test_a_redeemed_coupon_job_that_ends_errored_fails_the_task() -> None:
    context: dict[str, Any] = {"ti": FakeTaskInstance()}
    with pytest.raises(CouponUploadFailed, match="ERRORED"):
        redeem_operator().execute_complete(context, event={"status": "done", "jobs": [redeemed_job("ERRORED")]})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "timeout", "message": "still QUEUED", "jobs": [redeemed_job("QUEUED")]}, CouponUploadTimeout),
        ({"status": "error", "message": "refused", "jobs": [redeemed_job("QUEUED")]}, CouponUploadFailed),
        ({"status": "done", "jobs": [redeemed_job("ERRORED")]}, CouponUploadFailed),
    ],
    ids=["timeout", "failure", "job errored"],
)
def test_a_deferred_wait_that_ends_in_failure_or_timeout_leaves_the_summary_in_xcom(
    event: dict[str, Any], error: type[Exception]
) -> None:
    ti = FakeTaskInstance()
    with pytest.raises(error):
        redeem_operator().execute_complete({"ti": ti}, event=event)  # type: ignore[arg-type]
    assert ti.xcom["summary"]["job_ids"] == [7]
    assert ti.xcom["summary"]["failure"]


# -- the local disk and the storage -----------------------------------------------------------------


class DiskWithRoomFor:
    """A real temporary file on a disk with ``room`` bytes free: the write that does not fit fails with ENOSPC."""

    def __init__(self, real: Any, room: int) -> None:
        self.real, self.room, self.written = real, room, 0

    def write(self, data: bytes) -> int:
        if self.written + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        written: int = self.real.write(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.integration
def test_a_full_disk_while_spooling_names_the_folder_and_spool_dir_not_a_corrupt_file(
    capillary_conn: SandboxClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
) -> None:
    source = tmp_path / "coupons.csv.gz"
    source.write_bytes(
        gzip.compress(b"mobile,code\n" + b"".join(b"%s,%s\n" % (m.encode(), c.encode()) for m, c in mobile_rows(2000)))
    )
    real = tempfile.NamedTemporaryFile
    spool_module = SimpleNamespace(NamedTemporaryFile=lambda **kw: DiskWithRoomFor(real(**kw), room=1000))
    monkeypatch.setattr("capillary_provider.coupon_file.sources.tempfile", spool_module)
    with pytest.raises(SpoolDiskFull) as info:
        make_operator(source, SERIES).execute(context)
    assert str(info.value).startswith(f"The folder {tempfile.gettempdir()} is full (No space left on device): ")
    assert "spool_dir" in str(info.value)
    assert "corrupt" not in str(info.value)
    assert not isinstance(info.value, CouponFileError)
    assert upload_calls(capillary_conn, SERIES) == []
