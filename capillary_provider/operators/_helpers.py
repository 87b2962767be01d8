"""Small pure helpers of the upload operators: job lookup by name."""

from __future__ import annotations

from capillary_provider.jobs import UploadJob


def by_file_name(jobs: list[UploadJob]) -> dict[str, UploadJob]:
    """Index jobs by the file name they were uploaded as; the latest job wins if a name repeats."""
    return {job.uploaded_file_name: job for job in sorted(jobs, key=lambda j: j.job_id) if job.uploaded_file_name}
