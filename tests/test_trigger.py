"""CouponUploadTrigger: serialisation, and polling the sandbox under asyncio (states, timeouts, failures)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import CapillaryTransientError
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import REDEEMED_COUPON
from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import SandboxClient
from capillary_provider.triggers.coupon_upload import EVENT_DONE, EVENT_ERROR, EVENT_TIMEOUT, CouponUploadTrigger
from capillary_provider.waiting import JobWatch
from tests.conftest import mobile_rows
from tests.faultkit import PollCounter
from tests.recording_log import RecordingLog

SERIES = 7001
STATUS_PATH = "getUploadStatus"
BOUND_SECONDS = 10.0
"""Longest a unit wait may take; a bound against hangs, not a timing assertion."""


def _trigger(job_ids: list[int], *, poll_interval: float = 0.05, wait: float = 60.0) -> CouponUploadTrigger:
    return CouponUploadTrigger(
        capillary_conn_id="capillary_default",
        coupon_series_id=str(SERIES),
        job_ids=job_ids,
        poll_interval=poll_interval,
        end_time=time.time() + wait,
    )


def _events(trigger: CouponUploadTrigger) -> list[dict[str, Any]]:
    """Run the trigger to the end of its generator under asyncio; return every payload it yielded."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def _upload(write_csv: Callable[..., Path], rows: int = 5, *, name: str = "batch.csv", start: int = 0) -> int:
    path = write_csv(mobile_rows(rows, start=start), name=name)
    job = CapillaryHook().upload_coupon_file(SERIES, path, file_name=name, customer_identifier="MOBILE")
    return job.job_id


def _status_polls(sandbox: SandboxClient) -> list[dict[str, Any]]:
    return sandbox.requests(STATUS_PATH)


# -- serialisation ----------------------------------------------------------------------------------


def test_serialize_round_trip_rebuilds_the_same_trigger() -> None:
    trigger = CouponUploadTrigger("capillary_default", "7001", [11, 12], 30.0, 1_900_000_000.5)

    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

    assert rebuilt.serialize() == (classpath, kwargs)


def test_serialize_keeps_only_json_primitives() -> None:
    _, kwargs = CouponUploadTrigger("capillary_default", 7001, (11, "12"), 30, 1_900_000_000).serialize()

    assert kwargs == {
        "capillary_conn_id": "capillary_default",
        "coupon_series_id": "7001",
        "job_ids": [11, 12],
        "poll_interval": 30.0,
        "end_time": 1_900_000_000.0,
        "upload_kind": "coupon",
    }


@pytest.mark.integration
def test_trigger_kwargs_hold_no_token_or_secret(capillary_conn: SandboxClient, write_csv: Callable[..., Path]) -> None:
    job_id = _upload(write_csv)
    trigger = _trigger([job_id])
    _events(trigger)  # the trigger has fetched a token by now

    text = json.dumps(trigger.serialize())

    assert capillary_conn.secret not in text
    assert "sbx-tok-" not in text


# -- polling the sandbox ----------------------------------------------------------------------------


@pytest.mark.integration
def test_trigger_yields_one_done_event_with_final_states(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    job_id = _upload(write_csv)

    events = _events(_trigger([job_id]))

    assert len(events) == 1
    assert events[0]["status"] == EVENT_DONE
    assert [(job["job_id"], job["status"], job["actual_row_count"]) for job in events[0]["jobs"]] == [
        (job_id, "FINISHED", 5)
    ]


@pytest.mark.integration
def test_trigger_polls_until_the_job_is_terminal(capillary_conn: SandboxClient, write_csv: Callable[..., Path]) -> None:
    capillary_conn.set_step_seconds(1.0)  # FINISHED three steps, about 3 s, after the upload
    job_id = _upload(write_csv)

    _events(_trigger([job_id], poll_interval=0.1))

    assert len(_status_polls(capillary_conn)) >= 3


@pytest.mark.integration
def test_trigger_makes_one_status_call_per_poll_whatever_the_number_of_jobs(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = [_upload(write_csv, name=f"part{n}.csv", start=n * 100) for n in range(3)]
    counter = PollCounter(monkeypatch)
    status_calls_before = len(_status_polls(capillary_conn))

    events = _events(_trigger(job_ids))

    assert events[0]["status"] == EVENT_DONE
    assert len(_status_polls(capillary_conn)) - status_calls_before == counter.polls


@pytest.mark.integration
def test_trigger_never_sends_http_on_the_event_loop_thread(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _upload(write_csv)
    http_threads: set[int] = set()
    original_send = requests.Session.send

    def recording_send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        http_threads.add(threading.get_ident())
        return original_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording_send)
    loop_threads: set[int] = set()

    async def run() -> list[Any]:
        loop_threads.add(threading.get_ident())
        return [event async for event in _trigger([job_id]).run()]

    asyncio.run(run())

    assert http_threads, "the trigger sent no HTTP request at all"
    assert not http_threads & loop_threads


@pytest.mark.integration
def test_trigger_logs_each_state_change_once_not_every_poll(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capillary_conn.set_step_seconds(0.5)
    job_id = _upload(write_csv)
    capsys.readouterr()

    _events(_trigger([job_id], poll_interval=0.05))

    output = capsys.readouterr()
    marker = f"Capillary upload job {job_id} "
    lines = [line[line.index(marker) :] for line in (output.out + output.err).splitlines() if marker in line]
    assert len(lines) == len(set(lines))
    assert lines[-1].startswith(f"{marker}FINISHED: 5 rows, 5 accepted, 0 rejected")
    assert len(_status_polls(capillary_conn)) > len(lines)


@pytest.mark.integration
def test_trigger_times_out_with_job_ids_and_last_known_states(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = _upload(write_csv)

    events = _events(_trigger([job_id], poll_interval=0.05, wait=0.3))

    assert len(events) == 1
    assert events[0]["status"] == EVENT_TIMEOUT
    assert f"job {job_id} STARTED" in events[0]["message"]
    assert [job["status"] for job in events[0]["jobs"]] == ["STARTED"]


@pytest.mark.integration
def test_trigger_timeout_names_jobs_capillary_never_listed(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    capillary_conn.set_step_seconds(3600)
    job_id = _upload(write_csv)

    events = _events(_trigger([job_id, 999_999], wait=0.2))

    assert events[0]["status"] == EVENT_TIMEOUT
    assert "job 999999 not listed by Capillary yet" in events[0]["message"]
    assert f"job {job_id} STARTED" in events[0]["message"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "fault",
    [
        {"action": "status", "status": 503},
        {"action": "status", "status": 500},
        {"action": "status", "status": 429},
        {"action": "drop_before_body"},
        {"action": "malformed_json"},
    ],
    ids=["503", "500", "429", "connection-dropped", "malformed-json"],
)
def test_trigger_keeps_polling_through_transient_status_failures(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], fault: dict[str, Any]
) -> None:
    job_id = _upload(write_csv)
    capillary_conn.add_fault("status", times=3, **fault)

    events = _events(_trigger([job_id]))

    assert events[0]["status"] == EVENT_DONE
    assert [entry["fault"] is not None for entry in _status_polls(capillary_conn)][:3] == [True, True, True]


@pytest.mark.integration
def test_trigger_honours_retry_after_of_a_429(capillary_conn: SandboxClient, write_csv: Callable[..., Path]) -> None:
    job_id = _upload(write_csv)
    capillary_conn.add_fault("status", "status", times=1, status=429, retry_after=1)

    started = time.monotonic()
    _events(_trigger([job_id], poll_interval=0.01))

    assert time.monotonic() - started >= 1.0  # a lower bound only: the trigger waited at least Retry-After


@pytest.mark.integration
def test_trigger_fails_only_at_the_deadline_while_status_calls_keep_failing(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    job_id = _upload(write_csv)
    capillary_conn.add_fault("status", "status", times=None, status=503)

    events = _events(_trigger([job_id], poll_interval=0.05, wait=0.5))

    assert events[0]["status"] == EVENT_TIMEOUT
    assert f"job {job_id} not listed by Capillary yet" in events[0]["message"]
    assert len(_status_polls(capillary_conn)) >= 2


@pytest.mark.integration
def test_trigger_ends_with_an_error_on_a_permanent_4xx(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path]
) -> None:
    job_id = _upload(write_csv)
    capillary_conn.add_fault("status", "status", times=None, status=404)

    events = _events(_trigger([job_id]))

    assert events[0]["status"] == EVENT_ERROR
    assert "404" in events[0]["message"]
    assert len(_status_polls(capillary_conn)) == 1


@pytest.mark.integration
def test_trigger_ends_with_an_error_when_capillary_refuses_the_credentials(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(connection_json(sandbox))
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", json.dumps({**conn, "password": "wrong-secret"}))

    events = _events(_trigger([1]))

    assert events[0]["status"] == EVENT_ERROR
    assert "wrong-secret" not in events[0]["message"]
    assert sandbox.requests(STATUS_PATH) == []


# -- the wait loop without a sandbox (the shared poller replaced by scripted answers) -----------------------


class ScriptedAnswers:
    """What ``subscribe`` yields: each ``next()`` returns the next listing or raises the next error; once the
    script is used up, ``next()`` waits forever (the deadline must end the wait)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script

    async def next(self) -> list[UploadJob]:
        if not self.script:
            await asyncio.Event().wait()
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return list(step)


@pytest.fixture
def subscribed(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple[Any, ...]]]:
    """``subscribed(*script)``: the trigger's subscription answers ``script``; returns the subscribe calls."""
    calls: list[tuple[Any, ...]] = []

    def script(*steps: Any) -> list[tuple[Any, ...]]:
        @contextlib.asynccontextmanager
        async def subscribe(conn_id: str, series_id: str, kind: Any, interval: float) -> AsyncIterator[Any]:
            calls.append((conn_id, series_id, kind, interval))
            yield ScriptedAnswers(list(steps))

        monkeypatch.setattr("capillary_provider.triggers.coupon_upload.subscribe", subscribe)
        return calls

    return script


def unit_trigger(job_ids: list[int], *, wait: float = 60.0, kind: str = "coupon") -> CouponUploadTrigger:
    trigger = CouponUploadTrigger("capillary_test", SERIES, job_ids, 30, time.time() + wait, upload_kind=kind)
    trigger._log = RecordingLog()  # type: ignore[assignment]
    return trigger


def listed(job_id: int, status: str, kind: str = "coupon") -> UploadJob:
    return UploadJob(job_id=job_id, status=status, uploaded_file_name=f"b{job_id}.csv", kind=kind)


def test_trigger_subscribes_to_its_connection_series_kind_and_interval(subscribed: Callable[..., Any]) -> None:
    calls = subscribed([listed(11, "COMPLETED", kind="redeemed_coupon")])
    events = _events(unit_trigger([11], kind="redeemed_coupon"))
    assert [e["status"] for e in events] == [EVENT_DONE]
    assert calls == [("capillary_test", str(SERIES), REDEEMED_COUPON, 30.0)]


def test_trigger_yields_done_once_every_job_is_terminal_and_not_before(subscribed: Callable[..., Any]) -> None:
    subscribed(
        [listed(11, "FINISHED")],
        [listed(11, "FINISHED"), listed(12, "STARTED")],
        [listed(11, "FINISHED"), listed(12, "ERRORED")],
    )
    events = _events(unit_trigger([11, 12]))
    assert [(e["status"], e["message"], [j["status"] for j in e["jobs"]]) for e in events] == [
        (EVENT_DONE, "All upload jobs are terminal", ["FINISHED", "ERRORED"])
    ]


def timeout_text(seen: list[UploadJob]) -> str:
    """The timeout message of a wait for job 11 of :data:`SERIES` that last saw ``seen``."""
    watch = JobWatch(str(SERIES), [11], RecordingLog())
    watch.assess(seen)
    return watch.timeout_message()


def test_trigger_past_its_deadline_yields_timeout_without_waiting_for_an_answer(subscribed: Callable[..., Any]) -> None:
    subscribed()
    events = _events(unit_trigger([11], wait=-1.0))
    assert events == [{"status": EVENT_TIMEOUT, "message": timeout_text([]), "jobs": []}]


def test_trigger_times_out_at_the_deadline_with_the_last_known_states(subscribed: Callable[..., Any]) -> None:
    subscribed([listed(11, "STARTED")])
    started = time.monotonic()
    events = _events(unit_trigger([11], wait=0.3))
    assert time.monotonic() - started < BOUND_SECONDS
    job = listed(11, "STARTED")
    assert events == [{"status": EVENT_TIMEOUT, "message": timeout_text([job]), "jobs": [job.to_dict()]}]


def test_trigger_ends_with_an_error_event_on_a_failure_no_retry_can_fix(subscribed: Callable[..., Any]) -> None:
    subscribed([listed(11, "STARTED")], AirflowFailException("refused: 403"))
    events = _events(unit_trigger([11]))
    assert events == [{"status": EVENT_ERROR, "message": "refused: 403", "jobs": [listed(11, "STARTED").to_dict()]}]


def test_trigger_logs_a_transient_failure_and_polls_again(subscribed: Callable[..., Any]) -> None:
    subscribed(CapillaryTransientError("HTTP 503", retry_after=45.0), [listed(11, "FINISHED")])
    trigger = unit_trigger([11])
    events = _events(trigger)
    assert [e["status"] for e in events] == [EVENT_DONE]
    assert trigger._log.messages[0] == (  # type: ignore[union-attr]
        f"Polling coupon series {SERIES} failed (CapillaryTransientError: HTTP 503); polling again in 45 s"
    )


def test_trigger_lets_an_error_that_is_not_ours_surface(subscribed: Callable[..., Any]) -> None:
    subscribed(KeyError("bug"))
    with pytest.raises(KeyError, match="bug"):
        _events(unit_trigger([11]))
