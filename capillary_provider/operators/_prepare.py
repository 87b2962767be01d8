"""One source file made ready to upload: opened as the parameters ask, scanned (validated, its batches
planned), its invalid rows set aside (``invalid_rows="skip"``) and its batches named.

A step of :class:`~capillary_provider.operators._base.BaseUploadOperator`'s ``execute``: a function of
the task (:class:`~capillary_provider.operators._task.UploadTask`), so that ``execute`` reads as its steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import ObjectStoragePath

from capillary_provider.coupon_file import RowRules, scan_file
from capillary_provider.coupon_file.first_row import check_first_row
from capillary_provider.operators._files import PreparedFile, is_many, source_name
from capillary_provider.operators._source import open_source
from capillary_provider.operators._task import UploadTask
from capillary_provider.wording import plural

if TYPE_CHECKING:
    from airflow.sdk import Context


def prepare_file(task: UploadTask, context: Context, path: ObjectStoragePath, rules: RowRules) -> PreparedFile:
    """Validate and plan one source file; with ``invalid_rows="skip"``, set its invalid rows aside first."""
    many = is_many(task.source)
    name = source_name(task.source, path)
    source = open_source(
        path,
        name,
        columns=task.upload_columns(),
        has_header=task.has_header,
        delimiter=task.delimiter,
        header_for=task.generated_header,
        skip_invalid=task.invalid_rows == "skip",
        spool_dir=task.spool_dir,
        pgp_key=lambda: task._pgp_key,
    )
    try:  # a file that fails its scan is closed here: its spool, copy or GnuPG home (key) go at once
        with source.for_scan() as stream:
            plan = scan_file(
                stream,
                name=name,
                rules=rules,
                batch_size=task.batch_size,
                validate=task.validate,
                skip_invalid=task.invalid_rows == "skip",
                row_offset=1 if task.has_header is False else 0,
            )
        check_first_row(name, plan.header, rules, task.has_header, task.log)
    except BaseException:
        source.close()
        raise
    prepared = PreparedFile(name=name, key=name if many else None, source=source, plan=plan)
    if plan.rejected:
        target = task._storage_path(task.rejected_rows_to)
        prepared.set_aside(
            rules,
            batch_size=task.batch_size,
            max_skipped_rows=task.max_skipped_rows,
            rejected_rows_to=target / path.name if many else target,
            log=task.log,
            spool_dir=task.spool_dir,
        )
    prepared.names = [task._file_name(context, batch.part, prepared.key) for batch in prepared.plan.batches]
    done = prepared.plan  # without the rows set aside
    counts = plural(done.rows, "row"), done.columns, plan.size, plural(len(done.batches), "batch", "batches")
    task.log.info("%s: %s, %d columns, %d bytes -> %s of at most %d rows", name, *counts, task.batch_size)
    return prepared
