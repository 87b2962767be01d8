"""CouponUploadSensor: wait for upload jobs started elsewhere (e.g. with ``wait_for_completion=False``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from capillary_provider._compat import AirflowSensorTimeout, conf
from capillary_provider.exceptions import CapillaryConfigError, CouponUploadTimeout
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.job_waiter import JobWaiter
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import COUPON, UploadKind, kind_named
from capillary_provider.verdict import FailurePolicy, summarize
from capillary_provider.waiting import JobWatch, decode_event

if TYPE_CHECKING:
    from airflow.sdk import Context


class CouponUploadSensor(JobWaiter, BaseSensorOperator):
    """Succeed when every given upload job is terminal and passes the failure policy.

    The verdict is the operator's: a job that ended ERRORED, or more rejected rows than the thresholds
    allow, fails the task without retries. The sensor's ``timeout`` bounds the whole wait, in poke,
    reschedule and deferrable mode alike; a timeout fails with the job ids and their last known states.
    The summary of the jobs (the operator's return value) is pushed as this task's XCom return value.

    :param coupon_series_id: the coupon series the jobs belong to (templated).
    :param job_ids: the job ids to wait for, e.g. ``"{{ ti.xcom_pull('upload', key='job_ids') }}"``
        (templated; a list, a single id, or the rendered text of a list).
    :param capillary_conn_id: the Capillary connection.
    :param max_error_rows: most rows Capillary may reject before the task fails; None for no limit.
    :param max_error_ratio: most rejected rows as a fraction of all rows; None for no limit.
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``); the
        trigger polls every ``poke_interval`` seconds.
    :param upload_kind: ``coupon`` (the default) for jobs of ``CouponUploadOperator``, ``redeemed_coupon``
        for jobs of ``RedeemedCouponUploadOperator``.
    """

    template_fields: Sequence[str] = ("coupon_series_id", "job_ids", "capillary_conn_id")
    ui_color = "#f2e6ff"

    def __init__(
        self,
        *,
        coupon_series_id: int | str,
        job_ids: Sequence[int] | int | str,
        capillary_conn_id: str = CapillaryHook.default_conn_name,
        max_error_rows: int | None = 0,
        max_error_ratio: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        upload_kind: str = COUPON.name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.coupon_series_id = coupon_series_id
        self.job_ids = job_ids
        self.capillary_conn_id = capillary_conn_id
        self.max_error_rows = max_error_rows
        self.max_error_ratio = max_error_ratio
        self.deferrable = deferrable
        self.upload_kind = upload_kind
        FailurePolicy.checked(max_error_rows, max_error_ratio)
        try:
            kind_named(upload_kind)
        except ValueError as exc:
            raise CapillaryConfigError(str(exc)) from None

    @property
    def kind(self) -> UploadKind:
        return kind_named(self.upload_kind)

    @cached_property
    def _watch(self) -> JobWatch:
        return JobWatch(str(self.coupon_series_id), _job_ids(self.job_ids), self.log)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(f"{exc} {self._watch.timeout_message()}") from exc
        done = self.poke(context)
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        self.defer_wait(
            self.trigger(
                str(self.coupon_series_id),
                _job_ids(self.job_ids),
                poll_interval=float(self.poke_interval),
                timeout=self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout),
                kind=self.kind,
            )
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        jobs = self.check_jobs(self._watch, self.kind)
        return False if jobs is None else PokeReturnValue(is_done=True, xcom_value=self._judge(jobs))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the same verdict as a poke, and a timeout is a sensor timeout."""
        try:
            jobs = decode_event(event, self.kind)
        except CouponUploadTimeout as exc:
            raise AirflowSensorTimeout(str(exc)) from exc
        return self._judge(jobs)

    def _judge(self, jobs: list[UploadJob]) -> dict[str, Any]:
        self.policy.check(jobs)
        return summarize(str(self.coupon_series_id), jobs)


def _job_ids(value: Sequence[int] | int | str) -> list[int]:
    """Accept a list of ids, one id, or a rendered template such as ``"[101, 102]"``."""
    if isinstance(value, int):
        return [value]
    parts: Sequence[int | str] = value
    if isinstance(value, str):
        parts = [part for part in value.strip().strip("[]").replace(",", " ").split() if part]
    try:
        ids = [int(job_id) for job_id in parts]
    except (TypeError, ValueError):
        raise CapillaryConfigError(f"job_ids must be upload job ids (whole numbers), not {value!r}") from None
    if not ids:
        raise CapillaryConfigError("job_ids is empty: give the upload job ids to wait for") from None
    return ids
