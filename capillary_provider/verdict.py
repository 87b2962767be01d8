"""The verdict on finished upload jobs and their summary: the one rule and the one summary shared by every wait.

The operators (in the worker or resumed after a deferral) and the sensor judge terminal jobs with
:class:`FailurePolicy` and report them with :func:`summarize`; :func:`overall_status` is the one status
of several jobs (XCom ``status``). Functions of :class:`~capillary_provider.jobs.UploadJob`, apart from
the job model itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from capillary_provider.exceptions import CapillaryConfigError, CouponUploadFailed
from capillary_provider.jobs import UploadJob
from capillary_provider.wording import job_list, plural


def overall_status(jobs: Sequence[UploadJob]) -> str:
    """One status for several jobs of one kind: failed if any failed, done if all are, else the least advanced."""
    if not jobs:
        return ""
    return jobs[0].upload_kind.overall_status([job.status for job in jobs])


def summarize(coupon_series_id: str, jobs: Sequence[UploadJob], failure: str | None = None) -> dict[str, Any]:
    """The JSON summary the operator returns: the jobs, their ids, the counts added up, and why the task
    fails (``failure``; None when it does not, or not yet)."""
    return {
        "coupon_series_id": str(coupon_series_id),
        "status": overall_status(jobs),
        "job_ids": [job.job_id for job in jobs],
        "total_rows": sum(job.actual_row_count for job in jobs),
        "accepted_rows": sum(job.total_uploaded_count for job in jobs),
        "rejected_rows": sum(job.error_count for job in jobs),
        "error_file_urls": [job.error_file_url for job in jobs if job.error_file_url],
        "jobs": [job.to_dict() for job in jobs],
        "failure": failure,
    }


@dataclass(frozen=True)
class FailurePolicy:
    """When finished jobs fail the task; the same rule for the operators, the sensor and the trigger's event.

    A job that ended in a failed status (``ERRORED``) always fails. Rejected rows are added up over all
    the jobs (all the batches of one file) and compared with both thresholds; ``None`` switches a
    threshold off.

    :param max_error_rows: most rejected rows tolerated; the default 0 means every row must be accepted.
    :param max_error_ratio: most rejected rows tolerated as a fraction of all rows (0.01 = 1 %).
    """

    max_error_rows: int | None = 0
    max_error_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.max_error_rows is not None and self.max_error_rows < 0:
            raise ValueError(f"max_error_rows must be >= 0 or None, not {self.max_error_rows}")
        if self.max_error_ratio is not None and not 0 <= self.max_error_ratio <= 1:
            raise ValueError(f"max_error_ratio must be between 0 and 1 or None, not {self.max_error_ratio}")

    @classmethod
    def checked(cls, max_error_rows: int | None, max_error_ratio: float | None) -> FailurePolicy:
        """The policy of a task's thresholds; impossible ones are a :class:`CapillaryConfigError` (not retried)."""
        try:
            return cls(max_error_rows, max_error_ratio)
        except ValueError as exc:
            raise CapillaryConfigError(str(exc)) from None

    def failure(self, jobs: Sequence[UploadJob]) -> str | None:
        """Why terminal ``jobs`` fail the policy, or None if they pass."""
        errored = [job for job in jobs if job.is_failed]
        details = "; ".join(job.describe() for job in jobs)
        if errored:
            ids = [job.job_id for job in errored]
            return (
                f"Capillary reports upload {job_list(ids)} {errored[0].status}. {details}. A retry of this task "
                f"attaches to the same {'job' if len(ids) == 1 else 'jobs'} and fails again: fix the cause, then "
                "start a new DAG run (a new run id) to upload the file anew."
            )
        rejected = sum(job.error_count for job in jobs)
        total = sum(job.actual_row_count for job in jobs)
        if self.max_error_rows is not None and rejected > self.max_error_rows:
            return (
                f"Capillary rejected {rejected} of {plural(total, 'row')}, more than "
                f"max_error_rows={self.max_error_rows}. {details}"
            )
        if self.max_error_ratio is not None and total and rejected / total > self.max_error_ratio:
            return (
                f"Capillary rejected {rejected} of {plural(total, 'row')} ({rejected / total:.2%}), more than "
                f"max_error_ratio={self.max_error_ratio:.2%}. {details}"
            )
        return None

    def check(self, jobs: Sequence[UploadJob]) -> None:
        """Raise :class:`CouponUploadFailed` if terminal ``jobs`` fail the policy; return if they pass."""
        reason = self.failure(jobs)
        if reason is not None:
            raise CouponUploadFailed(reason)


__all__ = ["FailurePolicy", "overall_status", "summarize"]
