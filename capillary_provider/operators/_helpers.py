"""Small pure helpers of the upload operators: series ids and job lookup by name."""

from __future__ import annotations

from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.jobs import UploadJob


def series_id_of(value: int | str) -> str:
    """``coupon_series_id`` as Capillary takes it: a positive whole number, as text."""
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0:
        raise CapillaryConfigError(f"coupon_series_id must be a positive whole number, not {value!r}")
    return text


def by_file_name(jobs: list[UploadJob]) -> dict[str, UploadJob]:
    """Index jobs by the file name they were uploaded as; the latest job wins if a name repeats."""
    return {job.uploaded_file_name: job for job in sorted(jobs, key=lambda j: j.job_id) if job.uploaded_file_name}
