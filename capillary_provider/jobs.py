"""Upload jobs as Capillary reports them, their summary, and the one verdict shared by every wait."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from capillary_provider.exceptions import CapillaryConfigError, CouponUploadFailed
from capillary_provider.kinds import COUPON, KINDS, UploadKind


def _int(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


@dataclass(frozen=True)
class UploadJob:
    """One upload job of a coupon series.

    ``status`` is kept exactly as Capillary sent it, so a state this package does not know yet is not
    lost; it is treated as still in progress (never as success). Compare it with
    :class:`~capillary_provider.kinds.UploadStatus` (or the statuses of the job's kind). Times are epoch
    milliseconds, as Capillary sends them.
    ``error_file_url`` is a storage key inside Capillary, not a downloadable URL. ``kind`` names the
    upload kind (:mod:`capillary_provider.kinds`) whose statuses apply.
    """

    job_id: int
    status: str
    uploaded_file_name: str | None = None
    actual_row_count: int = 0
    total_uploaded_count: int = 0
    error_count: int = 0
    error_file_url: str | None = None
    success_file_url: str | None = None
    created_on: int | None = None
    updated_on: int | None = None
    kind: str = COUPON.name

    @classmethod
    def from_api(cls, item: dict[str, Any], kind: UploadKind = COUPON) -> UploadJob:
        """Build a job from one entry of the kind's job list (``uploadJobStatuses`` for coupons)."""
        return cls(
            job_id=int(item["jobId"]),
            status=str(item.get(kind.status_field) or ""),
            uploaded_file_name=item.get("uploadedFileName"),
            actual_row_count=_int(item.get("actualRowCount")),
            total_uploaded_count=_int(item.get("totalUploadedCount")),
            error_count=_int(item.get("errorCount")),
            error_file_url=item.get("errorFileUrl"),
            success_file_url=item.get("successFileUrl"),
            created_on=_int(item.get("createdOn")) or None,
            updated_on=_int(item.get("updatedOn")) or None,
            kind=kind.name,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], kind: UploadKind = COUPON) -> UploadJob:
        """Inverse of :meth:`to_dict` (used for trigger events and XCom), for a job of ``kind``."""
        return cls(**data, kind=kind.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, used in XCom, trigger events and the operator's summary (the kind is the task's)."""
        data = asdict(self)
        del data["kind"]
        return data

    @property
    def upload_kind(self) -> UploadKind:
        return KINDS[self.kind]

    @property
    def is_terminal(self) -> bool:
        return self.status in self.upload_kind.terminal_statuses

    @property
    def is_failed(self) -> bool:
        return self.status in self.upload_kind.failed_statuses

    def describe(self) -> str:
        """One line for logs and error messages: id, status, counts and error file key."""
        text = (
            f"job {self.job_id} {self.status or '?'}: {self.actual_row_count} rows, "
            f"{self.total_uploaded_count} accepted, {self.error_count} rejected"
        )
        if self.error_file_url:
            text += f", error file {self.error_file_url}"
        return text


def select_jobs(jobs: Iterable[UploadJob], job_ids: Sequence[int]) -> tuple[list[UploadJob], list[int]]:
    """Pick ``job_ids`` out of a series' job list, in the order asked; also return the ids not found."""
    by_id = {job.job_id: job for job in jobs}
    found = [by_id[job_id] for job_id in job_ids if job_id in by_id]
    missing = [job_id for job_id in job_ids if job_id not in by_id]
    return found, missing


def overall_status(jobs: Sequence[UploadJob]) -> str:
    """One status for several jobs of one kind: failed if any failed, done if all are, else the least advanced."""
    if not jobs:
        return ""
    return jobs[0].upload_kind.overall_status([job.status for job in jobs])


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 job``, ``2 jobs``: ``word`` is the singular, ``many`` the plural if it is not ``word + "s"``."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def job_list(job_ids: Sequence[int]) -> str:
    """``job 35`` or ``jobs 35, 36``."""
    return ("job " if len(job_ids) == 1 else "jobs ") + ", ".join(str(job_id) for job_id in job_ids)


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


__all__ = [
    "FailurePolicy",
    "JobChangeLog",
    "UploadJob",
    "overall_status",
    "select_jobs",
    "summarize",
]
