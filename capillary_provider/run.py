"""One record of an upload run: the series, the kind, the source files with their batch names, and the jobs.

The upload operators' ``execute`` builds it once the files are prepared, adds the jobs Capillary accepted
and pushes it to XCom before waiting; after a deferral the operator is a new object, and
``execute_complete`` reads the record back and adds the trigger's jobs. Everything that ends a run is a
function of it: the summary (:func:`summary`), the verdict (the task's policy of ``run.jobs``), the Asset
event (the summary's counts), lineage (:func:`capillary_provider.lineage.facets_on_complete`) and the
archive (its files). Plain data, JSON primitives only in :meth:`UploadRun.to_dict`: no secret, no open file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import kind_named
from capillary_provider.verdict import summarize


@dataclass(frozen=True)
class RunFile:
    """One source file of a run.

    :param source: the file as the task names it (in messages and the summary; lineage's input; what
        the archive moves).
    :param batch_names: the names its batches go up as: which of the run's jobs are this file's.
    :param skipped_rows: the invalid rows set aside (``invalid_rows="skip"``); None when none were.
    :param rejected_rows_file: where those rows were written.
    """

    source: str
    batch_names: tuple[str, ...] = ()
    skipped_rows: int | None = None
    rejected_rows_file: str | None = None


@dataclass(frozen=True)
class UploadRun:
    """An upload run: ``series_id`` and the name of the upload ``kind``, its ``files`` (in the order they
    go up) and the ``jobs`` Capillary reported for them, as last seen."""

    series_id: str
    kind: str
    files: tuple[RunFile, ...] = ()
    jobs: tuple[UploadJob, ...] = ()

    def with_jobs(self, jobs: Iterable[UploadJob]) -> UploadRun:
        """The same run with ``jobs`` as its jobs' latest states."""
        return replace(self, jobs=tuple(jobs))

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON primitives, for XCom."""
        files = [{**asdict(file), "batch_names": list(file.batch_names)} for file in self.files]
        jobs = [job.to_dict() for job in self.jobs]
        return {"series_id": self.series_id, "kind": self.kind, "files": files, "jobs": jobs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadRun:
        """Inverse of :meth:`to_dict`."""
        kind = kind_named(data["kind"])
        files = tuple(RunFile(**{**file, "batch_names": tuple(file["batch_names"])}) for file in data["files"])
        jobs = tuple(UploadJob.from_dict(job, kind) for job in data["jobs"])
        return cls(str(data["series_id"]), kind.name, files, jobs)


def summary(run: UploadRun, failure: str | None = None) -> dict[str, Any]:
    """The run's summary: the jobs' (:func:`~capillary_provider.verdict.summarize`, with ``failure``: why the
    task fails, or None), the skipped rows, and one entry per file when there are several (its jobs, found
    by their batch names, and their counts)."""
    result = summarize(run.series_id, run.jobs, failure)
    skipped = [file for file in run.files if file.skipped_rows is not None]
    if skipped:
        result["skipped_rows"] = sum(file.skipped_rows or 0 for file in skipped)
        result["rejected_rows_files"] = [file.rejected_rows_file for file in skipped]
    if len(run.files) > 1:
        result["files"] = [_file_summary(file, run.jobs) for file in run.files]
    return result


def _file_summary(file: RunFile, jobs: Iterable[UploadJob]) -> dict[str, Any]:
    mine = [job for job in jobs if job.uploaded_file_name in file.batch_names]
    entry: dict[str, Any] = {
        "source": file.source,
        "job_ids": [job.job_id for job in mine],
        "total_rows": sum(job.actual_row_count for job in mine),
        "accepted_rows": sum(job.total_uploaded_count for job in mine),
        "rejected_rows": sum(job.error_count for job in mine),
    }
    if file.skipped_rows is not None:
        entry.update(skipped_rows=file.skipped_rows, rejected_rows_file=file.rejected_rows_file)
    return entry


__all__ = ["RunFile", "UploadRun", "summary"]
