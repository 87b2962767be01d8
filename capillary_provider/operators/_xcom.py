"""The task's XCom: the keys the operators push, and the pushes and the pull ``execute`` shares.

Module functions over the task instance, so the operator (in the worker or resumed after a deferral) and
anything else reading a run's XCom name the keys once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capillary_provider.jobs import UploadJob
from capillary_provider.run import UploadRun, summary
from capillary_provider.verdict import overall_status

XCOM_JOB_ID = "job_id"
XCOM_JOB_IDS = "job_ids"
XCOM_STATUS = "status"
XCOM_SUMMARY = "summary"
XCOM_RUN = "upload_run"
"""The run's record (:class:`~capillary_provider.run.UploadRun`), pushed once before waiting: a task resumed
after a deferral is a new operator object, and reads its files back from here."""


def push_jobs(ti: Any, jobs: Sequence[UploadJob]) -> None:
    """Push ``job_id``, ``job_ids`` and ``status`` of the jobs Capillary accepted so far."""
    ti.xcom_push(key=XCOM_JOB_ID, value=jobs[0].job_id)
    ti.xcom_push(key=XCOM_JOB_IDS, value=[job.job_id for job in jobs])
    ti.xcom_push(key=XCOM_STATUS, value=overall_status(jobs))


def push_run(ti: Any, run: UploadRun) -> None:
    """Push the run's record (:data:`XCOM_RUN`)."""
    ti.xcom_push(key=XCOM_RUN, value=run.to_dict())


def pull_run(ti: Any) -> UploadRun | None:
    """This task instance's own record (:data:`XCOM_RUN`), or None if it pushed none.

    ``map_indexes`` is given: without it Airflow returns the values of every map index.
    """
    map_index = ti.map_index if ti.map_index is not None else -1
    data = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_RUN, map_indexes=map_index)
    return UploadRun.from_dict(data) if data else None


def push_summary(ti: Any, run: UploadRun, failure: str | None) -> dict[str, Any]:
    """Push ``status`` and ``summary`` of the run (``failure``: why the task fails, or None); return the summary."""
    result = summary(run, failure)
    ti.xcom_push(key=XCOM_STATUS, value=result["status"])
    ti.xcom_push(key=XCOM_SUMMARY, value=result)
    return result
