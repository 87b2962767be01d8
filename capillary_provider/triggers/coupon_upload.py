"""CouponUploadTrigger: wait for Capillary upload jobs in the triggerer, without holding a worker slot.

This module imports no HTTP library: the triggerer imports it on its event loop, so the hook (and
``requests`` with it) is imported in a worker thread when the first wait starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from capillary_provider._compat import AirflowFailException
from capillary_provider.kinds import COUPON, kind_named
from capillary_provider.polling import subscribe
from capillary_provider.waiting import (
    EVENT_DONE,
    EVENT_ERROR,
    EVENT_TIMEOUT,
    JobWatch,
    encode_event,
    next_poll_delay,
)

__all__ = ["EVENT_DONE", "EVENT_ERROR", "EVENT_TIMEOUT", "CouponUploadTrigger"]


class CouponUploadTrigger(BaseTrigger):
    """Poll a coupon series until the given upload jobs are terminal or a deadline passes; yield one event.

    Every poll is one status call for the whole series, whatever the number of jobs, and the waits on
    the same series in one triggerer share it (:mod:`capillary_provider.polling`: one call per interval,
    within the connection's ``max_calls_per_minute``). A poll is a single HTTP attempt in a worker
    thread (the event loop never waits on the network, and no thread sleeps in a backoff); when it fails
    with a connection error, a timeout, a 5xx or a 429, the next poll comes after ``poll_interval`` (a
    ``Retry-After`` pauses every wait on the connection), until the deadline.

    :param capillary_conn_id: the Airflow connection to Capillary.
    :param coupon_series_id: the series the jobs belong to.
    :param job_ids: the jobs to wait for.
    :param poll_interval: seconds between two polls.
    :param end_time: absolute wall-clock deadline (epoch seconds), so a triggerer restart does not
        extend the wait.
    :param upload_kind: ``coupon`` or ``redeemed_coupon`` (:mod:`capillary_provider.kinds`).
    """

    def __init__(
        self,
        capillary_conn_id: str,
        coupon_series_id: str,
        job_ids: Sequence[int],
        poll_interval: float,
        end_time: float,
        upload_kind: str = COUPON.name,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.capillary_conn_id = capillary_conn_id
        self.coupon_series_id = str(coupon_series_id)
        self.job_ids = [int(job_id) for job_id in job_ids]
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)
        self.upload_kind = upload_kind

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "capillary_conn_id": self.capillary_conn_id,
                "coupon_series_id": self.coupon_series_id,
                "job_ids": list(self.job_ids),
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "upload_kind": self.upload_kind,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        kind = kind_named(self.upload_kind)
        watch = JobWatch(self.coupon_series_id, self.job_ids, self.log)
        # The waits on this series in this triggerer share one status call per interval (polling.py).
        async with subscribe(self.capillary_conn_id, self.coupon_series_id, kind, self.poll_interval) as answers:
            while True:
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield _event(EVENT_TIMEOUT, watch, watch.timeout_message())
                    return
                try:
                    done = watch.assess(await asyncio.wait_for(answers.next(), remaining))
                except TimeoutError:
                    continue  # the deadline: the loop yields the timeout event
                except AirflowFailException as exc:
                    yield _event(EVENT_ERROR, watch, str(exc))
                    return
                except Exception as exc:
                    delay = next_poll_delay(exc, self.poll_interval)
                    self.log.warning(
                        "Polling coupon series %s failed (%s: %s); polling again in %.0f s",
                        self.coupon_series_id,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                else:
                    if done is not None:
                        yield TriggerEvent(encode_event(EVENT_DONE, done, "All upload jobs are terminal"))  # type: ignore[no-untyped-call]
                        return


def _event(status: str, watch: JobWatch, message: str) -> TriggerEvent:
    return TriggerEvent(encode_event(status, watch.last_known, message))  # type: ignore[no-untyped-call]
