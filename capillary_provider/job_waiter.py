"""JobWaiter: what every task that waits for upload jobs has (the upload operators and the sensor): its
hook, the verdict's policy, the one status check and the one wait, :class:`CouponUploadTrigger`, deferred
to the triggerer or run in the worker; either way the task ends in ``execute_complete`` with the trigger's
event, so a timeout, a failure or a verdict reads the same. Apart from :mod:`capillary_provider.waiting`,
which the triggerer loads on its event loop, because this module imports the hook.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NoReturn

from airflow.sdk import BaseOperator

from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import UploadKind
from capillary_provider.polling import drop_registry
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from capillary_provider.verdict import FailurePolicy
from capillary_provider.waiting import JobWatch, is_transient_poll_error


class JobWaiter(BaseOperator):
    """A task that waits for upload jobs; the upload operators and the sensor subclass it (with their own
    parameters: this class takes none). Each stores ``capillary_conn_id``, ``max_error_rows`` and
    ``max_error_ratio``."""

    capillary_conn_id: str
    max_error_rows: int | None
    max_error_ratio: float | None

    @cached_property
    def hook(self) -> CapillaryHook:
        """The task's hook, made on first use (``on_kill`` too may be the first)."""
        return CapillaryHook(self.capillary_conn_id)

    @property
    def policy(self) -> FailurePolicy:
        """The verdict's thresholds, from ``max_error_rows`` and ``max_error_ratio``."""
        return FailurePolicy(self.max_error_rows, self.max_error_ratio)

    def check_jobs(self, watch: JobWatch, kind: UploadKind) -> list[UploadJob] | None:
        """One status call: the jobs of ``watch`` if all are terminal, else None (a poke, or the check
        before deferring). A failure a later call may not meet (the hook has retried already) is logged
        and is None: the next poke or the trigger tries again; any other failure is raised."""
        try:
            done = watch.assess(self.hook.get_upload_jobs(watch.coupon_series_id, kind))
        except Exception as exc:
            if not is_transient_poll_error(exc):
                raise
            self.log.warning("Checking coupon series %s failed (%s); checking again", watch.coupon_series_id, exc)
            return None
        if watch.missing:
            self.log.info("Coupon series %s does not list %s yet", watch.coupon_series_id, watch.missing)
        return done

    def trigger(
        self, coupon_series_id: str, job_ids: Sequence[int], *, poll_interval: float, timeout: float, kind: UploadKind
    ) -> CouponUploadTrigger:
        """The wait: until the jobs are terminal or ``timeout`` seconds from now have passed."""
        return CouponUploadTrigger(
            capillary_conn_id=self.capillary_conn_id,
            coupon_series_id=coupon_series_id,
            job_ids=job_ids,
            poll_interval=poll_interval,
            end_time=time.time() + timeout,
            upload_kind=kind.name,
        )

    def defer_wait(self, trigger: CouponUploadTrigger) -> NoReturn:
        """Wait in the triggerer; the task resumes in ``execute_complete`` with the trigger's event."""
        self.defer(trigger=trigger, method_name="execute_complete")

    def wait_here(self, trigger: CouponUploadTrigger) -> dict[str, Any] | None:
        """Wait in the worker: the trigger's event, for ``execute_complete``.

        The trigger runs on an event loop of its own, so its pollers and request budget
        (:mod:`capillary_provider.polling`) live and end with this wait.
        """
        return asyncio.run(_first_event(trigger))


async def _first_event(trigger: CouponUploadTrigger) -> dict[str, Any] | None:
    try:
        async for event in trigger.run():
            payload: dict[str, Any] = event.payload
            return payload
        return None  # execute_complete fails on a missing event
    finally:
        drop_registry()
