"""Small pure helpers of the upload operators: series ids, times, job lookup by name, the dry run's summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from capillary_provider.coupon_file import FilePlan
from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.jobs import UploadJob


def _parse_time(value: object) -> datetime | None:
    """An ISO 8601 time with offset (``2030-09-30T00:00:00+05:30``); None if absent or unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _series_id(value: int | str) -> str:
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0:
        raise CapillaryConfigError(f"coupon_series_id must be a positive whole number, not {value!r}")
    return text


def _by_file_name(jobs: list[UploadJob]) -> dict[str, UploadJob]:
    """Index jobs by the file name they were uploaded as; the latest job wins if a name repeats."""
    return {job.uploaded_file_name: job for job in sorted(jobs, key=lambda j: j.job_id) if job.uploaded_file_name}


def _dry_run_summary(series_id: str, plan: FilePlan, names: list[str]) -> dict[str, Any]:
    return {
        "coupon_series_id": series_id,
        "dry_run": True,
        "total_rows": plan.rows,
        "batches": [
            {"part": batch.part, "rows": batch.rows, "first_row": batch.first_row, "file_name": name}
            for batch, name in zip(plan.batches, names, strict=True)
        ],
    }
