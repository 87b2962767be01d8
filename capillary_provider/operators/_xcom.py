"""The task's XCom: the keys the operators push, and the pushes and the pull ``execute`` shares.

Module functions over the task instance, so the operator (in the worker or resumed after a deferral) and
anything else reading a run's XCom name the keys once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capillary_provider.jobs import UploadJob
from capillary_provider.operators._files import files_summary
from capillary_provider.verdict import overall_status, summarize

XCOM_JOB_ID = "job_id"
XCOM_JOB_IDS = "job_ids"
XCOM_STATUS = "status"
XCOM_SUMMARY = "summary"
XCOM_FILES = "source_files"
"""Each source file with its batch names (and skipped rows), pushed before waiting: the verdict's summary
reads it back, also after a deferral."""


def push_jobs(ti: Any, jobs: Sequence[UploadJob]) -> None:
    """Push ``job_id``, ``job_ids`` and ``status`` of the jobs Capillary accepted so far."""
    ti.xcom_push(key=XCOM_JOB_ID, value=jobs[0].job_id)
    ti.xcom_push(key=XCOM_JOB_IDS, value=[job.job_id for job in jobs])
    ti.xcom_push(key=XCOM_STATUS, value=overall_status(jobs))


def source_files(ti: Any) -> list[dict[str, Any]]:
    """This task instance's own :data:`XCOM_FILES` (after a deferral, the operator is a new object).

    ``map_indexes`` is given: without it Airflow returns the values of every map index.
    """
    map_index = ti.map_index if ti.map_index is not None else -1
    records: list[dict[str, Any]] = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_FILES, map_indexes=map_index) or []
    return records


def push_summary(ti: Any, series_id: str, jobs: Sequence[UploadJob], failure: str | None) -> dict[str, Any]:
    """Push ``status`` and ``summary`` (with ``failure``: why the task fails, or None) and return the summary:
    the jobs' summary with the files of :data:`XCOM_FILES` (pushed by this task instance before it waited)."""
    summary = {**summarize(series_id, jobs, failure), **files_summary(source_files(ti), jobs)}
    ti.xcom_push(key=XCOM_STATUS, value=summary["status"])
    ti.xcom_push(key=XCOM_SUMMARY, value=summary)
    return summary
