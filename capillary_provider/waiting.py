"""Waiting for upload jobs, in one place: the assess step, poll failures, trigger events, timeouts.

The trigger (in the triggerer, or run in the worker: :mod:`capillary_provider.job_waiter`) and the
sensor's poke only pace their polls; what a poll's answer means is decided here. This module imports
no HTTP library: the trigger imports it on the triggerer's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import (
    CapillaryError,
    CapillaryTransientError,
    CouponUploadFailed,
    CouponUploadTimeout,
)
from capillary_provider.jobs import UploadJob, select_jobs
from capillary_provider.kinds import COUPON, UploadKind
from capillary_provider.wording import job_list

EVENT_DONE = "done"
"""Every job is terminal; the verdict (FailurePolicy) is applied by the task, not by the trigger."""
EVENT_TIMEOUT = "timeout"
"""The deadline passed with jobs still in progress (or not listed yet)."""
EVENT_ERROR = "error"
"""A poll failed in a way no retry can fix (refused credentials, a 4xx other than 401/429)."""
EVENT_STATUSES = frozenset({EVENT_DONE, EVENT_TIMEOUT, EVENT_ERROR})


class JobChangeLog:
    """Logs each job once per change of state or counts, not once per poll.

    :param log: the logger of the task or trigger that waits.
    """

    def __init__(self, log: logging.Logger | Any) -> None:
        self._log = log
        self._seen: dict[int, tuple[str, int, int, int]] = {}

    def update(self, jobs: Iterable[UploadJob]) -> None:
        for job in jobs:
            key = (job.status, job.actual_row_count, job.total_uploaded_count, job.error_count)
            if self._seen.get(job.job_id) != key:
                self._seen[job.job_id] = key
                if job.status and not job.upload_kind.is_known(job.status):
                    self._log.warning("Capillary reports an unknown status; treated as in progress: %s", job.describe())
                else:
                    self._log.info("Capillary upload %s", job.describe())


class JobWatch:
    """What a wait knows about its jobs: the last state of each, logged once per change.

    :param coupon_series_id: the series the jobs belong to.
    :param job_ids: the jobs waited for, in the order results are reported.
    :param log: the waiting task's or trigger's logger.
    """

    def __init__(self, coupon_series_id: str, job_ids: Sequence[int], log: logging.Logger | Any) -> None:
        self.coupon_series_id = str(coupon_series_id)
        self.job_ids = [int(job_id) for job_id in job_ids]
        self._known: dict[int, UploadJob] = {}
        self._changes = JobChangeLog(log)
        self.missing: list[int] = list(self.job_ids)

    def assess(self, listed: Iterable[UploadJob]) -> list[UploadJob] | None:
        """Take one status answer (every job of the series): the jobs if all are terminal, else None.

        A job the answer does not list yet, or in a status this version does not know, is in progress.
        """
        found, self.missing = select_jobs(listed, self.job_ids)
        self._known.update((job.job_id, job) for job in found)
        self._changes.update(found)
        if self.missing or not all(job.is_terminal for job in found):
            return None
        return found

    @property
    def last_known(self) -> list[UploadJob]:
        """The latest state seen of each job, in the order of ``job_ids`` (jobs never seen are left out)."""
        return [self._known[job_id] for job_id in self.job_ids if job_id in self._known]

    def timeout_message(self) -> str:
        """Why the wait timed out: every job id with its last known state (or that Capillary never listed it)."""
        by_id = {job.job_id: job for job in self.last_known}
        states = "; ".join(
            by_id[job_id].describe() if job_id in by_id else f"job {job_id} not listed by Capillary yet"
            for job_id in self.job_ids
        )
        return (
            f"Capillary upload {job_list(self.job_ids)} of coupon series {self.coupon_series_id} "
            f"{'was' if len(self.job_ids) == 1 else 'were'} not finished before the timeout. Last known: {states}. "
            "A retry of the task waits for the same jobs."
        )


def is_transient_poll_error(exc: BaseException) -> bool:
    """True for a failed status call worth repeating at the next poll: no connection, a timeout, 5xx, 429.

    Failures a retry cannot fix (bad credentials, a 4xx other than 401/429) are
    :class:`~airflow.exceptions.AirflowFailException` and are not transient; neither is anything that
    is not one of our errors: a bug must surface, not be polled away until the deadline.
    """
    return isinstance(exc, CapillaryError) and not isinstance(exc, AirflowFailException)


def next_poll_delay(exc: BaseException, poll_interval: float) -> float:
    """Seconds until the next poll after a failed one: the interval, or the server's ``Retry-After`` if longer.

    Re-raises ``exc`` when it is not transient (see :func:`is_transient_poll_error`).
    """
    if not is_transient_poll_error(exc):
        raise exc
    if isinstance(exc, CapillaryTransientError) and exc.retry_after is not None:
        return max(poll_interval, exc.retry_after)
    return poll_interval


def encode_event(status: str, jobs: Sequence[UploadJob], message: str) -> dict[str, Any]:
    """The payload of the trigger's one event."""
    return {"status": status, "message": message, "jobs": [job.to_dict() for job in jobs]}


def decode_event(event: dict[str, Any] | None, kind: UploadKind = COUPON) -> list[UploadJob]:
    """Turn a trigger event into terminal jobs, or raise: a missing or unknown status fails loudly.

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
        jobs = event_jobs(event, kind)
    except (TypeError, ValueError) as exc:
        raise CapillaryError(f"CouponUploadTrigger reported jobs this version cannot read: {event!r}") from exc
    if not jobs or not all(job.is_terminal for job in jobs):
        raise CapillaryError(f"CouponUploadTrigger reported done with jobs still in progress: {event!r}")
    return jobs


def event_jobs(event: dict[str, Any] | None, kind: UploadKind = COUPON) -> list[UploadJob]:
    """The jobs a trigger event carries, as they were last seen (a timeout's event carries them too)."""
    return [UploadJob.from_dict(job, kind) for job in (event or {}).get("jobs") or []]
