"""Upload jobs as Capillary reports them: the job model, and picking jobs out of a series' list.

The verdict and the summary of jobs are in :mod:`capillary_provider.verdict`, how a wait logs them in
:mod:`capillary_provider.waiting`, the English of messages in :mod:`capillary_provider.wording`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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


__all__ = ["UploadJob", "select_jobs"]
