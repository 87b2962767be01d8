"""JobWaiter: what every task that waits for Capillary's upload jobs has, written once for the upload
operators and the sensor: its hook, the verdict's policy, and the one deferral to the trigger.

The operators (in the worker or deferred) and :class:`~capillary_provider.sensors.coupon_upload.CouponUploadSensor`
defer the same way, to the same trigger, and resume in their own ``execute_complete`` with the same event
(:func:`~capillary_provider.waiting.decode_event`). Apart from :mod:`capillary_provider.waiting`, which the
triggerer loads on its event loop, because this module imports the hook and the trigger.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import NoReturn

from airflow.sdk import BaseOperator

from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.kinds import UploadKind
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from capillary_provider.verdict import FailurePolicy


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

    def defer_wait(
        self, coupon_series_id: str, job_ids: Sequence[int], *, poll_interval: float, timeout: float, kind: UploadKind
    ) -> NoReturn:
        """Defer to :class:`CouponUploadTrigger` until the jobs are terminal or ``timeout`` seconds pass;
        the task resumes in its ``execute_complete``."""
        self.defer(
            trigger=CouponUploadTrigger(
                capillary_conn_id=self.capillary_conn_id,
                coupon_series_id=coupon_series_id,
                job_ids=job_ids,
                poll_interval=poll_interval,
                end_time=time.time() + timeout,
                upload_kind=kind.name,
            ),
            method_name="execute_complete",
        )
