"""The end of an upload run: the summary pushed, the verdict given, then the Asset event and the archive.

A function of the task (:class:`~capillary_provider.operators._task.UploadTask`) and of the run's record
with its terminal jobs, so that ``execute`` and ``execute_complete`` (after a deferral) end the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capillary_provider import assets, metrics
from capillary_provider.exceptions import CouponUploadFailed
from capillary_provider.operators._files import archive
from capillary_provider.operators._task import UploadTask
from capillary_provider.run import UploadRun, push_summary
from capillary_provider.wording import plural

if TYPE_CHECKING:
    from airflow.sdk import Context


def finish(task: UploadTask, context: Context, run: UploadRun) -> dict[str, Any]:
    """The verdict. The summary goes to XCom first, so an alert task can read it when the verdict fails."""
    failure = task.policy.failure(run.jobs)
    summary = push_summary(context["ti"], run, failure)
    counts = [summary[key] for key in ("total_rows", "accepted_rows", "rejected_rows")]
    task.log.info("Capillary processed %s: %d rows, %d accepted, %d rejected", plural(len(run.jobs), "job"), *counts)
    metrics.verdict(run.kind, *counts[1:])
    if failure is not None:
        raise CouponUploadFailed(failure)
    extra = assets.asset_event_extra(summary, run.kind)
    assets.record_asset_event(context, task.outlets, task.hook.coupon_url, run.series_id, extra)
    if task.archive_to:
        summary["archived"] = archive(
            [task._storage_path(file.source) for file in run.files],
            task._storage_path(task.archive_to),
            move=task.archive_mode == "move",
            log=task.log,
        )
    return summary
