"""The one deferral of a wait: how a task (an upload operator, the sensor) hands its jobs to the trigger.

The operators and :class:`~capillary_provider.sensors.coupon_upload.CouponUploadSensor` defer the same
way, to the same trigger, and resume in their own ``execute_complete`` with the same event
(:func:`~capillary_provider.waiting.decode_event`). Apart from :mod:`capillary_provider.waiting` because
that module is loaded on the triggerer's event loop, and this one imports the trigger.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NoReturn

from airflow.sdk import BaseOperator

from capillary_provider.kinds import UploadKind
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger


def defer_wait(
    task: BaseOperator,
    *,
    capillary_conn_id: str,
    coupon_series_id: str,
    job_ids: Sequence[int],
    poll_interval: float,
    timeout: float,
    kind: UploadKind,
) -> NoReturn:
    """Defer ``task`` to :class:`CouponUploadTrigger` until the jobs are terminal or ``timeout`` seconds pass;
    the task resumes in its ``execute_complete``."""
    task.defer(
        trigger=CouponUploadTrigger(
            capillary_conn_id=capillary_conn_id,
            coupon_series_id=coupon_series_id,
            job_ids=job_ids,
            poll_interval=poll_interval,
            end_time=time.time() + timeout,
            upload_kind=kind.name,
        ),
        method_name="execute_complete",
    )
