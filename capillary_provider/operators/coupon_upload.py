"""CouponUploadOperator: validate a coupon CSV, upload it in batches, and wait for Capillary's verdict."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk import BaseOperator, ObjectStoragePath

from capillary_provider._compat import AirflowFailException, conf
from capillary_provider.coupon_csv import (
    DEFAULT_BATCH_SIZE,
    IDENTIFIER_TYPES,
    BatchReader,
    CouponFilePlan,
    open_coupon_source,
    scan_coupon_file,
)
from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryConfigError,
    CouponUploadAborted,
    CouponUploadTimeout,
)
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import FailurePolicy, JobChangeLog, UploadJob, overall_status, select_jobs, summarize
from capillary_provider.triggers.coupon_upload import (
    CouponUploadTrigger,
    is_transient_poll_error,
    jobs_from_event,
    timeout_message,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_JOB_ID = "job_id"
XCOM_JOB_IDS = "job_ids"
XCOM_STATUS = "status"

UNCERTAIN_UPLOAD_ATTEMPTS = 3
"""Uploads whose outcome is unknown (connection lost after sending) before the task gives up and retries."""
UNCERTAIN_UPLOAD_RECHECK_SECONDS = 2.0
"""Pause before looking for the job of an upload whose answer was lost."""


def batch_file_name(dag_id: str, task_id: str, run_id: str, map_index: int, part: int) -> str:
    """The name Capillary records for one batch: the same for every try of the same task instance.

    Readable parts say where the batch comes from; the digest keeps names distinct where the readable
    parts are cut short or cleaned of characters a file name should not carry.
    """
    digest = hashlib.sha256(f"{dag_id}\0{task_id}\0{run_id}\0{map_index}".encode()).hexdigest()[:12]

    def clean(text: str, limit: int) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:limit]

    mapped = f"_m{map_index}" if map_index >= 0 else ""
    return f"{clean(dag_id, 40)}__{clean(task_id, 40)}__{clean(run_id, 40)}{mapped}_{digest}_part{part:04d}.csv"


class CouponUploadOperator(BaseOperator):
    """Upload a CSV of coupon codes to a Capillary coupon series and wait until Capillary has processed it.

    The file is read from any storage Airflow's :class:`~airflow.sdk.ObjectStoragePath` reaches and
    streamed: first once to validate it and plan batches of at most ``batch_size`` rows (nothing is sent
    if it is malformed), then batch by batch to Capillary, each batch its own upload job with the header
    repeated. Each batch has a name derived from the task instance, and an existing job carrying that
    name is reused instead of uploading again, so retries never duplicate codes. The job ids and status
    are pushed to XCom as soon as they exist, before waiting.

    :param coupon_series_id: the coupon series to load the codes into (templated).
    :param source: the CSV: a local path or a URI such as ``s3://bucket/coupons.csv``; ``.gz`` files are
        decompressed on the fly (templated).
    :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID, USER_ID, or NOT_TAGGED for codes that are not
        tied to customers (templated).
    :param customer_identifier_column: zero-based index of the identifier column; required unless
        ``customer_identifier`` is NOT_TAGGED (templated).
    :param capillary_conn_id: the Capillary connection (templated).
    :param source_conn_id: the connection for remote storage, e.g. ``aws_default`` (templated).
    :param batch_size: most data rows per upload; Capillary recommends 500,000 at most.
    :param validate: check the CSV before uploading; turn off only for files you trust.
    :param dry_run: validate and report the batches that would be uploaded, then stop.
    :param wait_for_completion: wait until Capillary has processed every batch; if False, the task ends
        after the upload and a :class:`~capillary_provider.sensors.coupon_upload.CouponUploadSensor` can wait.
    :param deferrable: wait in the triggerer instead of the worker (default from
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between two status calls while waiting.
    :param timeout: seconds to wait for Capillary before the task fails (and may retry: a retry
        attaches to the same jobs).
    :param max_error_rows: most rows Capillary may reject before the task fails; None for no limit.
    :param max_error_ratio: most rejected rows as a fraction of all rows; None for no limit.
    """

    template_fields: Sequence[str] = (
        "coupon_series_id",
        "source",
        "customer_identifier",
        "customer_identifier_column",
        "capillary_conn_id",
        "source_conn_id",
    )
    ui_color = "#f2e6ff"

    def __init__(
        self,
        *,
        coupon_series_id: int | str,
        source: str | ObjectStoragePath,
        customer_identifier: str,
        customer_identifier_column: int | str | None = None,
        capillary_conn_id: str = CapillaryHook.default_conn_name,
        source_conn_id: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        validate: bool = True,
        dry_run: bool = False,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        timeout: float | timedelta = timedelta(hours=6),
        max_error_rows: int | None = 0,
        max_error_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, not {poll_interval}")
        self.coupon_series_id = coupon_series_id
        self.source = source
        self.customer_identifier = customer_identifier
        self.customer_identifier_column = customer_identifier_column
        self.capillary_conn_id = capillary_conn_id
        self.source_conn_id = source_conn_id
        self.batch_size = batch_size
        self.validate = validate
        # Not `self.dry_run`: BaseOperator.dry_run() is a method Airflow calls.
        self.validate_only = dry_run
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.policy = FailurePolicy(max_error_rows=max_error_rows, max_error_ratio=max_error_ratio)
        self._accepted: list[UploadJob] = []

    @cached_property
    def hook(self) -> CapillaryHook:
        return CapillaryHook(self.capillary_conn_id)

    # -- execute ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        series_id = _series_id(self.coupon_series_id)
        column = self._identifier_column()
        path = self._source_path()
        with open_coupon_source(path) as stream:
            plan = scan_coupon_file(
                stream,
                name=str(self.source),
                customer_identifier=self.customer_identifier,
                customer_identifier_column=column,
                batch_size=self.batch_size,
                validate=self.validate,
            )
        names = [self._file_name(context, batch.part) for batch in plan.batches]
        self.log.info(
            "%s: %d rows, %d columns, %d bytes -> %d batch(es) of at most %d rows",
            self.source,
            plan.rows,
            plan.columns,
            plan.size,
            len(plan.batches),
            self.batch_size,
        )
        if self.validate_only:
            self.log.info("Dry run: nothing uploaded. Batches: %s", ", ".join(names))
            return _dry_run_summary(series_id, plan, names)

        jobs = self._upload(context, series_id, path, plan, column, names)
        if not self.wait_for_completion:
            return summarize(series_id, jobs)
        if self.deferrable:
            jobs = self._poll_once(series_id, jobs)
            if not all(job.is_terminal for job in jobs):
                self.defer(
                    trigger=CouponUploadTrigger(
                        capillary_conn_id=self.capillary_conn_id,
                        coupon_series_id=series_id,
                        job_ids=[job.job_id for job in jobs],
                        poll_interval=self.poll_interval,
                        end_time=time.time() + self.timeout,
                    ),
                    method_name="execute_complete",
                )
        else:
            jobs = self._wait(series_id, jobs)
        return self._finish(context, series_id, jobs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the same verdict as a wait in the worker."""
        return self._finish(context, _series_id(self.coupon_series_id), jobs_from_event(event))

    def on_kill(self) -> None:
        """Abort a running upload at once (from any thread) and say which batches Capillary already has.

        A rerun of the task attaches to those batches and uploads only the others.
        """
        self.log.warning(
            "Task killed: aborting the upload to Capillary. Batches already accepted: %s", self._accepted_text()
        )
        if "hook" in self.__dict__:
            self.hook.abort()

    def _accepted_text(self) -> str:
        return ", ".join(f"{job.uploaded_file_name} (job {job.job_id})" for job in self._accepted) or "none"

    # -- steps ------------------------------------------------------------------------------------

    def _upload(
        self,
        context: Context,
        series_id: str,
        path: ObjectStoragePath,
        plan: CouponFilePlan,
        column: int | None,
        names: list[str],
    ) -> list[UploadJob]:
        """Upload each batch not already in the series, pushing the job ids to XCom as they come."""
        existing = _by_file_name(self.hook.get_upload_jobs(series_id))
        self._accepted = []
        with open_coupon_source(path) as stream:
            for batch, name in zip(plan.batches, names, strict=True):
                if self.hook.aborted:
                    raise CouponUploadAborted(
                        f"Upload stopped before batch {batch.part}: the task was killed. "
                        f"Batches already accepted: {self._accepted_text()}"
                    )
                job = existing.get(name)
                if job is not None:
                    self.log.info(
                        "Batch %d is already in Capillary as job %s (%s): not uploading it again",
                        batch.part,
                        job.job_id,
                        name,
                    )
                else:
                    self.log.info(
                        "Uploading batch %d of %d: %d rows as %s", batch.part, len(plan.batches), batch.rows, name
                    )
                    try:
                        job = self._upload_batch(series_id, BatchReader(stream, plan.header, batch), name, column)
                    except CouponUploadAborted as exc:
                        raise CouponUploadAborted(
                            f"{exc}. Batches already accepted: {self._accepted_text()}; a rerun attaches to them "
                            f"and looks for {name} before uploading it again"
                        ) from exc
                self._accepted.append(job)
                self._push(context, self._accepted)
        return list(self._accepted)

    def _upload_batch(self, series_id: str, body: BatchReader, name: str, column: int | None) -> UploadJob:
        """Upload one batch exactly once, even when the answer to an upload is lost.

        When the connection drops after the body was sent, Capillary may have stored the batch: look
        for a job carrying its name before sending it again.
        """
        for attempt in range(1, UNCERTAIN_UPLOAD_ATTEMPTS + 1):
            try:
                return self.hook.upload_coupon_file(
                    series_id,
                    body,
                    file_name=name,
                    customer_identifier=self.customer_identifier,
                    customer_identifier_column=column,
                )
            except Exception as exc:
                if not _maybe_stored(exc) or attempt == UNCERTAIN_UPLOAD_ATTEMPTS or self.hook.aborted:
                    raise
                self.log.warning(
                    "The answer to the upload of %s was lost (%s); checking whether Capillary has it", name, exc
                )
                time.sleep(UNCERTAIN_UPLOAD_RECHECK_SECONDS)
                job = _by_file_name(self.hook.get_upload_jobs(series_id)).get(name)
                if job is not None:
                    self.log.info("Capillary has %s as job %s: not uploading it again", name, job.job_id)
                    return job
                body.seek(0)
        raise AssertionError("unreachable")

    def _poll_once(self, series_id: str, jobs: list[UploadJob]) -> list[UploadJob]:
        """One status call before deferring: finished jobs need no trigger; a failed call leaves it to the trigger."""
        try:
            found, missing = select_jobs(self.hook.get_upload_jobs(series_id), [job.job_id for job in jobs])
        except Exception as exc:
            if not is_transient_poll_error(exc):
                raise
            self.log.warning("Checking coupon series %s failed (%s); the trigger polls again", series_id, exc)
            return jobs
        JobChangeLog(self.log).update(found)
        return jobs if missing else found

    def _wait(self, series_id: str, jobs: list[UploadJob]) -> list[UploadJob]:
        """Poll in the worker until every job is terminal, or fail after ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        changes = JobChangeLog(self.log)
        job_ids = [job.job_id for job in jobs]
        known = {job.job_id: job for job in jobs}
        while True:
            try:
                found, missing = select_jobs(self.hook.get_upload_jobs(series_id), job_ids)
            except Exception as exc:
                # The hook has retried already; like the trigger, keep polling until the deadline.
                if not is_transient_poll_error(exc):
                    raise
                self.log.warning("Polling coupon series %s failed (%s); polling again", series_id, exc)
            else:
                known.update((job.job_id, job) for job in found)
                changes.update(found)
                if not missing and all(job.is_terminal for job in found):
                    return found
            if time.monotonic() >= deadline:
                last_known = [known[job_id] for job_id in job_ids if job_id in known]
                raise CouponUploadTimeout(timeout_message(series_id, job_ids, last_known))
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _finish(self, context: Context, series_id: str, jobs: list[UploadJob]) -> dict[str, Any]:
        context["ti"].xcom_push(key=XCOM_STATUS, value=overall_status(jobs))
        summary = summarize(series_id, jobs)
        self.log.info(
            "Capillary processed %d job(s): %d rows, %d accepted, %d rejected",
            len(jobs),
            summary["total_rows"],
            summary["accepted_rows"],
            summary["rejected_rows"],
        )
        self.policy.check(jobs)
        return summary

    # -- helpers ----------------------------------------------------------------------------------

    def _push(self, context: Context, jobs: list[UploadJob]) -> None:
        ti = context["ti"]
        ti.xcom_push(key=XCOM_JOB_ID, value=jobs[0].job_id)
        ti.xcom_push(key=XCOM_JOB_IDS, value=[job.job_id for job in jobs])
        ti.xcom_push(key=XCOM_STATUS, value=overall_status(jobs))

    def _identifier_column(self) -> int | None:
        if self.customer_identifier not in IDENTIFIER_TYPES:
            raise CapillaryConfigError(
                f"customer_identifier must be one of {', '.join(IDENTIFIER_TYPES)}, not {self.customer_identifier!r}"
            )
        column = self.customer_identifier_column
        if column is None or column == "":
            return None
        try:
            index = int(column)
        except (TypeError, ValueError):
            raise CapillaryConfigError(
                f"customer_identifier_column must be a zero-based column number, not {column!r}"
            ) from None
        if index < 0:
            raise CapillaryConfigError(
                f"customer_identifier_column must be 0 or more (zero-based: 0 is the first column), not {index}"
            )
        return index

    def _source_path(self) -> ObjectStoragePath:
        if isinstance(self.source, ObjectStoragePath):
            return self.source
        source = str(self.source)
        if "://" not in source:  # a plain local path
            source = "file://" + os.path.abspath(source)
        return ObjectStoragePath(source, conn_id=self.source_conn_id)

    def _file_name(self, context: Context, part: int) -> str:
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return batch_file_name(ti.dag_id, ti.task_id, ti.run_id, map_index, part)


def _series_id(value: int | str) -> str:
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0:
        raise CapillaryConfigError(f"coupon_series_id must be a positive whole number, not {value!r}")
    return text


def _by_file_name(jobs: list[UploadJob]) -> dict[str, UploadJob]:
    """Index jobs by the file name they were uploaded as; the latest job wins if a name repeats."""
    return {job.uploaded_file_name: job for job in sorted(jobs, key=lambda j: j.job_id) if job.uploaded_file_name}


def _maybe_stored(exc: Exception) -> bool:
    """True when an upload failed in a way that leaves open whether Capillary stored the file."""
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    return (
        isinstance(exc, CapillaryApiError)
        and not isinstance(exc, AirflowFailException)
        and (exc.http_status is None or exc.http_status >= 500 or exc.http_status == 200)
    )


def _dry_run_summary(series_id: str, plan: CouponFilePlan, names: list[str]) -> dict[str, Any]:
    return {
        "coupon_series_id": series_id,
        "dry_run": True,
        "total_rows": plan.rows,
        "batches": [
            {"part": batch.part, "rows": batch.rows, "first_row": batch.first_row, "file_name": name}
            for batch, name in zip(plan.batches, names, strict=True)
        ],
    }
