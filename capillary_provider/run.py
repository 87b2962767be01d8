"""One record of an upload run (the series, the kind, the source files with their batch names, the jobs),
and the XCom that carries it and the run's results. ``execute`` pushes the record before waiting; resumed
after a deferral (a new operator object), ``execute_complete`` reads it back (:func:`pull_run`). The summary,
the verdict, the Asset event, lineage and the archive are functions of it. JSON in XCom: no secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import kind_named
from capillary_provider.verdict import overall_status, summarize

XCOM_JOB_ID = "job_id"
XCOM_JOB_IDS = "job_ids"
XCOM_STATUS = "status"
XCOM_SUMMARY = "summary"
XCOM_RUN = "upload_run"
FILE_COUNTS = ("job_ids", "total_rows", "accepted_rows", "rejected_rows")  # of each file's own jobs, in a summary


@dataclass(frozen=True)
class RunFile:
    """One source file of a run: ``source`` as the task names it (messages, summary, lineage, archive), the
    ``batch_names`` its batches go up as (which jobs are its own), and its invalid rows set aside
    (``invalid_rows="skip"``): how many, and where (None when none were)."""

    source: str
    batch_names: tuple[str, ...] = ()
    skipped_rows: int | None = None
    rejected_rows_file: str | None = None


@dataclass(frozen=True)
class UploadRun:
    """An upload run: its series, the name of its kind, its files (in upload order) and its jobs as last seen."""

    series_id: str
    kind: str
    files: tuple[RunFile, ...] = ()
    jobs: tuple[UploadJob, ...] = ()

    def with_jobs(self, jobs: Iterable[UploadJob]) -> UploadRun:
        return replace(self, jobs=tuple(jobs))

    def to_dict(self) -> dict[str, Any]:
        files = [{**asdict(file), "batch_names": list(file.batch_names)} for file in self.files]
        jobs = [job.to_dict() for job in self.jobs]
        return {"series_id": self.series_id, "kind": self.kind, "files": files, "jobs": jobs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadRun:
        kind = kind_named(data["kind"])
        files = tuple(RunFile(**{**file, "batch_names": tuple(file["batch_names"])}) for file in data["files"])
        return cls(str(data["series_id"]), kind.name, files, tuple(UploadJob.from_dict(j, kind) for j in data["jobs"]))


def summary(run: UploadRun, failure: str | None = None) -> dict[str, Any]:
    """The jobs' summary (:func:`~capillary_provider.verdict.summarize`, with ``failure``), the skipped rows, and
    with several files one entry per file (its jobs, found by their batch names, and their counts)."""
    result = summarize(run.series_id, run.jobs, failure)
    skipped = [file for file in run.files if file.skipped_rows is not None]
    if skipped:
        result["skipped_rows"] = sum(file.skipped_rows or 0 for file in skipped)
        result["rejected_rows_files"] = [file.rejected_rows_file for file in skipped]
    if len(run.files) > 1:
        result["files"] = [_file_summary(run, file) for file in run.files]
    return result


def _file_summary(run: UploadRun, file: RunFile) -> dict[str, Any]:
    counts = summarize(run.series_id, [job for job in run.jobs if job.uploaded_file_name in file.batch_names])
    entry = {"source": file.source, **{key: counts[key] for key in FILE_COUNTS}}
    if file.skipped_rows is not None:
        entry.update(skipped_rows=file.skipped_rows, rejected_rows_file=file.rejected_rows_file)
    return entry


def push_jobs(ti: Any, jobs: Sequence[UploadJob]) -> None:
    """Push ``job_id``, ``job_ids`` and ``status`` of the jobs Capillary accepted so far."""
    ti.xcom_push(key=XCOM_JOB_ID, value=jobs[0].job_id)
    ti.xcom_push(key=XCOM_JOB_IDS, value=[job.job_id for job in jobs])
    ti.xcom_push(key=XCOM_STATUS, value=overall_status(jobs))


def pull_run(ti: Any) -> UploadRun | None:
    """This task instance's own record, or None (``map_indexes``: else Airflow returns every map index's)."""
    data = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_RUN, map_indexes=-1 if ti.map_index is None else ti.map_index)
    return UploadRun.from_dict(data) if data else None


def push_summary(ti: Any, run: UploadRun, failure: str | None) -> dict[str, Any]:
    """Push ``status`` and ``summary`` of the run (``failure``: why the task fails, or None); return the summary."""
    result = summary(run, failure)
    ti.xcom_push(key=XCOM_STATUS, value=result["status"])
    ti.xcom_push(key=XCOM_SUMMARY, value=result)
    return result
