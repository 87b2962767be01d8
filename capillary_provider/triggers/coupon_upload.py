"""CouponUploadTrigger: wait for Capillary upload jobs in the triggerer, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import CapillaryError, CouponUploadFailed, CouponUploadTimeout
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import JobChangeLog, UploadJob, select_jobs

EVENT_DONE = "done"
"""Every job is terminal; the verdict (FailurePolicy) is applied by the task, not here."""
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"
EVENT_STATUSES = frozenset({EVENT_DONE, EVENT_TIMEOUT, EVENT_ERROR})


class CouponUploadTrigger(BaseTrigger):
    """Poll a coupon series until the given upload jobs are terminal or a deadline passes; yield one event.

    Every poll is one status call for the whole series, whatever the number of jobs. Connection
    errors, 5xx and 429 are retried inside that call; if a poll still fails, the trigger keeps polling
    until the deadline, so a short Capillary outage does not fail a long wait.

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
                "job_ids": self.job_ids,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CapillaryHook(self.capillary_conn_id)
        changes = JobChangeLog(self.log)
        jobs: list[UploadJob] = []
        while True:
            try:
                jobs, missing = select_jobs(await hook.aget_upload_jobs(self.coupon_series_id), self.job_ids)
            except CapillaryError as exc:
                if not _is_retryable(exc):
                    yield _event(EVENT_ERROR, jobs, str(exc))
                    return
                self.log.warning("Polling coupon series %s failed, will poll again: %s", self.coupon_series_id, exc)
            except Exception as exc:  # connection errors that outlived the hook's retries
                self.log.warning("Polling coupon series %s failed, will poll again: %s", self.coupon_series_id, exc)
            else:
                changes.update(jobs)
                if not missing and all(job.is_terminal for job in jobs):
                    yield _event(EVENT_DONE, jobs, "All upload jobs are terminal")
                    return
            remaining = self.end_time - time.time()
            if remaining <= 0:
                yield _event(EVENT_TIMEOUT, jobs, timeout_message(self.coupon_series_id, self.job_ids, jobs))
                return
            await asyncio.sleep(min(self.poll_interval, remaining))


def _is_retryable(exc: CapillaryError) -> bool:
    """Everything but the failures a retry cannot fix (bad credentials, a 4xx other than 401/429)."""
    return not isinstance(exc, AirflowFailException)


def _event(status: str, jobs: Sequence[UploadJob], message: str) -> TriggerEvent:
    return TriggerEvent({"status": status, "message": message, "jobs": [job.to_dict() for job in jobs]})  # type: ignore[no-untyped-call]


def timeout_message(coupon_series_id: str, job_ids: Sequence[int], jobs: Sequence[UploadJob]) -> str:
    """Why a wait timed out: the job ids and the last known state of each."""
    known = "; ".join(job.describe() for job in jobs) or "no state known yet"
    return (
        f"Capillary upload jobs {', '.join(map(str, job_ids))} of coupon series {coupon_series_id} were not "
        f"finished before the timeout. Last known: {known}. A retry of the task waits for the same jobs."
    )


def jobs_from_event(event: dict[str, Any] | None) -> list[UploadJob]:
    """Turn a trigger event into terminal jobs, or raise: a missing or unknown status fails loudly.

    Shared by the operator and the sensor, so a deferred wait ends exactly like a wait in the worker.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise CapillaryError(f"Unexpected event from CouponUploadTrigger: {event!r}")
    if event["status"] == EVENT_TIMEOUT:
        raise CouponUploadTimeout(str(event.get("message")))
    if event["status"] == EVENT_ERROR:
        # The trigger only ends with an error for failures a retry cannot fix (see _is_retryable).
        raise CouponUploadFailed(f"Waiting for Capillary failed: {event.get('message')}")
    jobs = [UploadJob.from_dict(job) for job in event.get("jobs") or []]
    if not jobs or not all(job.is_terminal for job in jobs):
        raise CapillaryError(f"CouponUploadTrigger reported done with jobs still in progress: {event!r}")
    return jobs
