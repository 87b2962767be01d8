"""Every injected sandbox fault against the hook, the operator (in-worker and deferrable) and the sensor.

Each case asserts the outcome (success after retry, or a clear failure) and what the sandbox holds:
never two jobs for one batch, and (after a retry where the first try failed) never a batch missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryApiError, CapillaryUploadOutcomeUnknown, CouponUploadFailed
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.kinds import UploadStatus
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.sensors.coupon_upload import CouponUploadSensor
from tests.conftest import FakeTaskInstance
from tests.faultkit import (
    LATE_ANSWER_SECONDS,
    TaskDeferred,
    batch_names,
    fast_hook,
    jobs_per_file,
    make_operator,
    no_recheck_pause,
    run_operator,
    run_trigger_of,
    upload_calls,
    use_fast_trigger_hook,
)

pytestmark = pytest.mark.integration

SERIES = 6100
ROWS, BATCH_SIZE, BATCHES = 25, 10, 3


@dataclass(frozen=True)
class Fault:
    """A sandbox fault rule; ``endpoints`` are the endpoints it makes sense on."""

    name: str
    action: dict[str, Any]
    times: int = 1
    endpoints: tuple[str, ...] = ("upload", "status")
    stores_upload: bool = False
    """On the upload endpoint: Capillary stored the batch although the client saw a failure."""
    extra: dict[str, Any] = field(default_factory=dict)

    def inject(self, sandbox: SandboxClient, endpoint: str) -> None:
        sandbox.add_fault(endpoint, dict(self.action), times=self.times)


FAULTS = [
    Fault("401-once", {"type": "status", "status": 401}),
    Fault("401-persistent", {"type": "status", "status": 401}, times=3),
    Fault("429-retry-after", {"type": "status", "status": 429, "retry_after": 0.25}),
    Fault("500", {"type": "status", "status": 500}),
    Fault("502", {"type": "status", "status": 502}),
    Fault("503", {"type": "status", "status": 503}),
    Fault(
        "503-after-body",
        {"type": "status", "status": 503, "after_body": True},
        endpoints=("upload",),
        stores_upload=True,
    ),
    Fault("drop-before-body", {"type": "drop_before_body"}),
    Fault("drop-after-body", {"type": "drop_after_body"}, stores_upload=True),
    Fault("answer-after-timeout", {"type": "delay", "seconds": LATE_ANSWER_SECONDS}, stores_upload=True),
    Fault("malformed-json", {"type": "malformed_json"}, stores_upload=True),
    Fault("success-false-http-200", {"type": "success_false"}, stores_upload=True),
    Fault("token-expires-early", {"type": "expire_tokens", "seconds": 0}, endpoints=("token",)),
    Fault("job-errored", {"type": "job_errored"}, endpoints=("upload",), stores_upload=True),
]


def cases(*endpoints: str) -> list[Any]:
    return [
        pytest.param(fault, endpoint, id=f"{fault.name}@{endpoint}")
        for fault in FAULTS
        for endpoint in fault.endpoints
        if endpoint in endpoints
    ]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    """No pause before re-checking an uncertain upload; triggers use a hook with a short read timeout."""
    no_recheck_pause(monkeypatch)
    use_fast_trigger_hook(monkeypatch)


def upload_once(hook: CapillaryHook, source: Path, name: str = "matrix.csv") -> Any:
    return hook.upload_coupon_file(
        SERIES, source, file_name=name, customer_identifier="MOBILE", customer_identifier_column=0
    )


def assert_one_job_per_batch(sandbox: SandboxClient, context: dict[str, Any]) -> None:
    assert jobs_per_file(sandbox, SERIES) == dict.fromkeys(batch_names(context, BATCHES), 1)


# -- hook: upload -------------------------------------------------------------------------------------

HOOK_UPLOAD_FAILS: dict[str, tuple[type[Exception], str | None]] = {
    "401-persistent": (CapillaryApiError, "freshly generated token was refused"),
    "500": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*HTTP 500"),
    "502": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*HTTP 502"),
    "503": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*HTTP 503"),
    "503-after-body": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*HTTP 503"),
    "drop-before-body": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*ConnectionError"),
    "drop-after-body": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*ConnectionError"),
    "answer-after-timeout": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*ReadTimeout"),
    "malformed-json": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*not JSON"),
    "success-false-http-200": (CapillaryUploadOutcomeUnknown, "may or may not have been stored.*Injected failure"),
}


@pytest.mark.parametrize(("fault", "endpoint"), cases("upload", "token"))
def test_hook_upload_under_fault_succeeds_or_fails_clearly_and_never_stores_twice(
    fault: Fault, endpoint: str, capillary_conn: SandboxClient, coupons: Path, fast: None
) -> None:
    fault.inject(capillary_conn, endpoint)
    hook = fast_hook()
    if fault.name in HOOK_UPLOAD_FAILS:
        error, words = HOOK_UPLOAD_FAILS[fault.name]
        with pytest.raises(error, match=words):
            upload_once(hook, coupons)
        # An upload whose fate is unknown is never repeated by the hook: the caller re-checks by name.
        expected_jobs = 1 if fault.stores_upload else 0
        assert len(capillary_conn.jobs(SERIES)) == expected_jobs
    else:
        job = upload_once(hook, coupons)
        assert [view["jobId"] for view in capillary_conn.jobs(SERIES)] == [job.job_id]
        final = capillary_conn.wait_for_job(job.job_id)["uploadStatus"]
        assert final == (UploadStatus.ERRORED if fault.name == "job-errored" else UploadStatus.FINISHED)


def test_hook_upload_after_429_waits_as_long_as_retry_after_says(
    capillary_conn: SandboxClient, coupons: Path, sleeps: list[float]
) -> None:
    capillary_conn.add_fault("upload", "status", status=429, retry_after=0.25)
    upload_once(fast_hook(retry_max_wait=5.0), coupons)
    assert sleeps == [0.25]


# -- hook: status -------------------------------------------------------------------------------------

HOOK_STATUS_FAILS = {
    "401-persistent": (CapillaryApiError, "freshly generated token was refused"),
    "success-false-http-200": (CapillaryApiError, "Injected failure"),
}


@pytest.mark.parametrize(("fault", "endpoint"), cases("status", "token"))
def test_hook_status_under_fault_succeeds_after_retry_or_fails_clearly(
    fault: Fault, endpoint: str, capillary_conn: SandboxClient, coupons: Path, fast: None
) -> None:
    job = upload_once(fast_hook(), coupons)
    fault.inject(capillary_conn, endpoint)
    hook = fast_hook()
    if fault.name in HOOK_STATUS_FAILS:
        error, words = HOOK_STATUS_FAILS[fault.name]
        with pytest.raises(error, match=words):
            hook.get_upload_jobs(SERIES)
    else:
        assert [found.job_id for found in hook.get_upload_jobs(SERIES)] == [job.job_id]
    assert len(capillary_conn.jobs(SERIES)) == 1


# -- operator -----------------------------------------------------------------------------------------


def run_with_fault(
    operator: CouponUploadOperator, context: dict[str, Any], sandbox: SandboxClient, fault: Fault, endpoint: str
) -> dict[str, Any]:
    """Run the operator as Airflow would, with the fault armed where it bites.

    Upload and token faults are armed before the run. Status faults are armed once the batches are
    uploaded, so that they hit the wait (in the worker: the polls; deferrable: the trigger's polls),
    not the listing that precedes the uploads.
    """
    if endpoint != "status":
        fault.inject(sandbox, endpoint)
    sandbox.set_step_seconds(3600)  # jobs stay in progress until the wait starts: the deferral is certain
    uploads = operator._uploads
    upload = uploads.run

    def upload_then_arm(*args: Any, **kwargs: Any) -> Any:
        jobs = upload(*args, **kwargs)
        if endpoint == "status" and not operator.deferrable:
            fault.inject(sandbox, endpoint)
        sandbox.set_step_seconds(0.05)
        return jobs

    uploads.run = upload_then_arm  # type: ignore[method-assign]
    if not operator.deferrable:
        result: dict[str, Any] = operator.execute(context)  # type: ignore[arg-type]
        return result
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)  # type: ignore[arg-type]
    if endpoint == "status":
        fault.inject(sandbox, endpoint)
    event = run_trigger_of(deferred.value)
    result = getattr(operator, deferred.value.method_name)(context, event=event)
    return result


OPERATOR_FIRST_TRY_FAILS = {
    "401-persistent": (CapillaryApiError, "freshly generated token was refused"),
    "job-errored": (CouponUploadFailed, "ERRORED"),
}


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferrable"])
@pytest.mark.parametrize(("fault", "endpoint"), cases("upload", "status", "token"))
def test_operator_under_fault_ends_with_exactly_one_job_per_batch(
    fault: Fault,
    endpoint: str,
    deferrable: bool,
    capillary_conn: SandboxClient,
    coupons: Path,
    context: dict[str, Any],
    fast: None,
) -> None:
    def operator() -> CouponUploadOperator:
        return make_operator(coupons, SERIES, batch_size=BATCH_SIZE, deferrable=deferrable)

    failure = OPERATOR_FIRST_TRY_FAILS.get(fault.name) if endpoint == "upload" else None
    if failure is None:
        summary = run_with_fault(operator(), context, capillary_conn, fault, endpoint)
        assert (summary["status"], summary["total_rows"], summary["accepted_rows"]) == ("FINISHED", ROWS, ROWS)
    else:
        error, words = failure
        with pytest.raises(error, match=words):
            run_with_fault(operator(), context, capillary_conn, fault, endpoint)
        calls_before_retry = len(upload_calls(capillary_conn, SERIES))
        capillary_conn.set_step_seconds(0.05)
        if fault.name == "job-errored":
            # The batch Capillary errored is attached to again, never uploaded twice: the retry fails the same way.
            with pytest.raises(CouponUploadFailed, match="ERRORED"):
                run_operator(operator(), context)
            assert len(upload_calls(capillary_conn, SERIES)) == calls_before_retry
        else:
            summary = run_operator(operator(), context)  # Airflow's retry of the task
            assert summary["status"] == "FINISHED"
    assert_one_job_per_batch(capillary_conn, context)


# -- sensor -------------------------------------------------------------------------------------------


def make_sensor(job_ids: list[int], deferrable: bool = False) -> CouponUploadSensor:
    sensor = CouponUploadSensor(
        task_id="wait",
        coupon_series_id=SERIES,
        job_ids=job_ids,
        poke_interval=0.05,
        timeout=60,
        deferrable=deferrable,
    )
    sensor.hook = fast_hook()
    return sensor


def run_sensor(
    sensor: CouponUploadSensor, context: dict[str, Any], sandbox: SandboxClient, arm: Callable[[], None]
) -> Any:
    if not sensor.deferrable:
        arm()
        return sensor.execute(context)  # type: ignore[arg-type]
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)  # type: ignore[arg-type]
    arm()
    sandbox.set_step_seconds(0.05)
    return getattr(sensor, deferred.value.method_name)(context, event=run_trigger_of(deferred.value))


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize(("fault", "endpoint"), cases("status", "token"))
def test_sensor_under_fault_succeeds_after_retry(
    fault: Fault, endpoint: str, deferrable: bool, capillary_conn: SandboxClient, coupons: Path, fast: None
) -> None:
    capillary_conn.set_step_seconds(3600 if deferrable else 0.05)
    job = upload_once(fast_hook(), coupons)
    context = {"ti": FakeTaskInstance(task_id="wait")}
    summary = run_sensor(
        make_sensor([job.job_id], deferrable), context, capillary_conn, lambda: fault.inject(capillary_conn, endpoint)
    )
    assert (summary["status"], summary["job_ids"], summary["accepted_rows"]) == ("FINISHED", [job.job_id], ROWS)
    assert len(capillary_conn.jobs(SERIES)) == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_fails_clearly_when_the_job_ends_errored(
    deferrable: bool, capillary_conn: SandboxClient, coupons: Path, fast: None
) -> None:
    capillary_conn.set_step_seconds(3600 if deferrable else 0.05)
    capillary_conn.add_fault("upload", "job_errored")
    job = upload_once(fast_hook(), coupons)
    context = {"ti": FakeTaskInstance(task_id="wait")}
    with pytest.raises(CouponUploadFailed, match=f"{job.job_id}.*ERRORED|ERRORED.*{job.job_id}"):
        run_sensor(make_sensor([job.job_id], deferrable), context, capillary_conn, lambda: None)
    assert len(capillary_conn.jobs(SERIES)) == 1
