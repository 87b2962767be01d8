"""The end of an upload run: the summary pushed, the verdict given, then the Asset event and the archive.

A step of :class:`~capillary_provider.operators._base.BaseUploadOperator`, in the worker or resumed after a
deferral alike: a function of the task (:class:`~capillary_provider.operators._task.UploadTask`) and of
the terminal jobs, so that ``execute`` and ``execute_complete`` end the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capillary_provider import assets, metrics
from capillary_provider.exceptions import CouponUploadFailed
from capillary_provider.jobs import UploadJob
from capillary_provider.operators._files import archive
from capillary_provider.operators._task import UploadTask
from capillary_provider.operators._xcom import push_summary, source_files
from capillary_provider.wording import plural

if TYPE_CHECKING:
    from airflow.sdk import Context


def record_summary(
    task: UploadTask, context: Context, series_id: str, jobs: list[UploadJob], failure: str | None
) -> dict[str, Any]:
    """Push ``status`` and ``summary`` (:func:`._xcom.push_summary`), kept as ``task.last_summary`` for lineage."""
    task.last_summary = push_summary(context["ti"], series_id, jobs, failure)
    return task.last_summary


def finish(task: UploadTask, context: Context, series_id: str, jobs: list[UploadJob]) -> dict[str, Any]:
    """The verdict. The summary goes to XCom first, so an alert task can read it when the verdict fails."""
    failure = task.policy.failure(jobs)
    summary = record_summary(task, context, series_id, jobs, failure)
    task.log.info(
        "Capillary processed %s: %d rows, %d accepted, %d rejected",
        plural(len(jobs), "job"),
        summary["total_rows"],
        summary["accepted_rows"],
        summary["rejected_rows"],
    )
    metrics.verdict(task.upload_kind.name, summary["accepted_rows"], summary["rejected_rows"])
    if failure is not None:
        raise CouponUploadFailed(failure)
    extra = assets.asset_event_extra(summary, task.upload_kind.name)
    assets.record_asset_event(context, task.outlets, task.hook.coupon_url, series_id, extra)
    if task.archive_to:
        records = source_files(context["ti"])
        summary["archived"] = archive(
            [task._storage_path(record["source"]) for record in records],
            task._storage_path(task.archive_to),
            move=task.archive_mode == "move",
            log=task.log,
        )
    return summary
