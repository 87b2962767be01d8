"""CouponUploadTrigger: wait for Capillary upload jobs in the triggerer, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import requests
from airflow.triggers.base import BaseTrigger, TriggerEvent

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import CapillaryError, CouponUploadFailed, CouponUploadTimeout
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import JobChangeLog, UploadJob, select_jobs

EVENT_DONE = "done"
"""Every job is terminal; the verdict (FailurePolicy) is applied by the task, not here."""
EVENT_TIMEOUT = "timeout"
"""The deadline passed with jobs still in progress (or not listed yet)."""
EVENT_ERROR = "error"
"""A poll failed in a way no retry can fix (refused credentials, a 4xx other than 401/429)."""
EVENT_STATUSES = frozenset({EVENT_DONE, EVENT_TIMEOUT, EVENT_ERROR})


def is_transient_poll_error(exc: BaseException) -> bool:
    """True for a failed status call worth repeating at the next poll: no connection, a timeout, 5xx, 429.

    Failures a retry cannot fix (bad credentials, a 4xx other than 401/429) are
    :class:`~airflow.exceptions.AirflowFailException` and are not transient. Anything else is a bug
    and is not transient either: it must surface, not be polled away until the deadline.
    """
    if isinstance(exc, AirflowFailException):
        return False
    return isinstance(exc, (requests.RequestException, CapillaryError))


class CouponUploadTrigger(BaseTrigger):
    """Poll a coupon series until the given upload jobs are terminal or a deadline passes; yield one event.

    Every poll is one status call for the whole series, whatever the number of jobs. A poll is a single
    HTTP attempt in a worker thread (the event loop never waits on the network, and no thread sleeps in
    a backoff); when it fails with a connection error, a timeout, a 5xx or a 429, the trigger polls again
    after ``poll_interval`` (or the server's ``Retry-After``, if longer) until the deadline, so a
    Capillary outage shorter than the wait never fails it.

    :param capillary_conn_id: the Airflow connection to Capillary.
    :param coupon_series_id: the series the jobs belong to.
    :param job_ids: the jobs to wait for.
    :param poll_interval: seconds between two polls.
    :param end_time: absolute wall-clock deadline (epoch seconds), so a triggerer restart does not
        extend the wait.
    """

    def __init__(
        self,
        capillary_conn_id: str,
        coupon_series_id: str,
        job_ids: Sequence[int],
        poll_interval: float,
        end_time: float,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.capillary_conn_id = capillary_conn_id
        self.coupon_series_id = str(coupon_series_id)
        self.job_ids = [int(job_id) for job_id in job_ids]
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "capillary_conn_id": self.capillary_conn_id,
                "coupon_series_id": self.coupon_series_id,
                "job_ids": list(self.job_ids),
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # One attempt per poll: the retries are the polls themselves, paced by asyncio.sleep below.
        hook = CapillaryHook(self.capillary_conn_id, retry_limit=1)
        changes = JobChangeLog(self.log)
        known: dict[int, UploadJob] = {}
        try:
            while True:
                delay = self.poll_interval
                try:
                    found, missing = select_jobs(await hook.aget_upload_jobs(self.coupon_series_id), self.job_ids)
                except Exception as exc:
                    if not is_transient_poll_error(exc):
                        if isinstance(exc, AirflowFailException):
                            yield _event(EVENT_ERROR, self._last_known(known), str(exc))
                            return
                        raise
                    retry_after = getattr(exc, "retry_after", None)
                    if isinstance(retry_after, (int, float)):
                        delay = max(delay, float(retry_after))
                    self.log.warning(
                        "Polling coupon series %s failed (%s: %s); polling again in %.0f s",
                        self.coupon_series_id,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                else:
                    known.update((job.job_id, job) for job in found)
                    changes.update(found)
                    if not missing and all(job.is_terminal for job in found):
                        yield _event(EVENT_DONE, found, "All upload jobs are terminal")
                        return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    message = timeout_message(self.coupon_series_id, self.job_ids, self._last_known(known))
                    yield _event(EVENT_TIMEOUT, self._last_known(known), message)
                    return
                await asyncio.sleep(min(delay, remaining))
        finally:
            if "session" in hook.__dict__:
                hook.session.close()

    def _last_known(self, known: dict[int, UploadJob]) -> list[UploadJob]:
        return [known[job_id] for job_id in self.job_ids if job_id in known]


def _event(status: str, jobs: Sequence[UploadJob], message: str) -> TriggerEvent:
    return TriggerEvent({"status": status, "message": message, "jobs": [job.to_dict() for job in jobs]})  # type: ignore[no-untyped-call]


def timeout_message(coupon_series_id: str, job_ids: Sequence[int], jobs: Sequence[UploadJob]) -> str:
    """Why a wait timed out: every job id with its last known state (or that Capillary never listed it)."""
    by_id = {job.job_id: job for job in jobs}
    states = "; ".join(
        by_id[job_id].describe() if job_id in by_id else f"job {job_id} not listed by Capillary yet"
        for job_id in job_ids
    )
    return (
        f"Capillary upload jobs {', '.join(map(str, job_ids))} of coupon series {coupon_series_id} were not "
        f"finished before the timeout. Last known: {states}. A retry of the task waits for the same jobs."
    )


def jobs_from_event(event: dict[str, Any] | None) -> list[UploadJob]:
    """Turn a trigger event into terminal jobs, or raise: a missing or unknown status fails loudly.

    Shared by the operator and the sensor, so a deferred wait ends exactly like a wait in the worker:
    ``timeout`` raises :class:`CouponUploadTimeout` (with the job ids and last known states), ``error``
    raises :class:`CouponUploadFailed` (no retry), ``done`` returns the jobs for the failure policy.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise CapillaryError(f"Unexpected event from CouponUploadTrigger: {event!r}")
    if event["status"] == EVENT_TIMEOUT:
        raise CouponUploadTimeout(str(event.get("message")))
    if event["status"] == EVENT_ERROR:
        # The trigger only ends with an error for failures a retry cannot fix (see is_transient_poll_error).
        raise CouponUploadFailed(f"Waiting for Capillary failed: {event.get('message')}")
    try:
        jobs = [UploadJob.from_dict(job) for job in event.get("jobs") or []]
    except (TypeError, ValueError) as exc:
        raise CapillaryError(f"CouponUploadTrigger reported jobs this version cannot read: {event!r}") from exc
    if not jobs or not all(job.is_terminal for job in jobs):
        raise CapillaryError(f"CouponUploadTrigger reported done with jobs still in progress: {event!r}")
    return jobs
