"""BaseUploadOperator: validate a CSV, upload it in batches exactly once, wait for Capillary, give one verdict.

Written once for every upload kind (:mod:`capillary_provider.kinds`). A kind's operator subclasses it
with its own parameters and supplies two things: the row rules its CSV must follow, and the hook call
that uploads one batch. Everything else (batches, names, exactly-once, XCom, the three ways of
waiting, the verdict) is here.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Asset, BaseOperator, ObjectStoragePath

from capillary_provider import assets, lineage, metrics
from capillary_provider._compat import conf
from capillary_provider.coupon_file import (
    DEFAULT_BATCH_SIZE,
    BatchReader,
    FilePlan,
    RowRules,
    open_coupon_source,
    scan_file,
)
from capillary_provider.exceptions import (
    CapillaryConfigError,
    CapillaryError,
    CapillaryUploadOutcomeUnknown,
    CouponUploadAborted,
    CouponUploadFailed,
    CouponUploadTimeout,
)
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import FailurePolicy, UploadJob, overall_status, plural, summarize
from capillary_provider.kinds import UploadKind
from capillary_provider.operators._helpers import _by_file_name, _dry_run_summary, _parse_time, _series_id
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from capillary_provider.waiting import JobWatch, decode_event, next_poll_delay

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_JOB_ID = "job_id"
XCOM_JOB_IDS = "job_ids"
XCOM_STATUS = "status"
XCOM_SUMMARY = "summary"

UNCERTAIN_UPLOAD_ATTEMPTS = 3
"""Uploads whose outcome is unknown (connection lost after sending) before the task gives up and retries."""
UNCERTAIN_UPLOAD_RECHECK_SECONDS = 2.0
"""Pause before looking for the job of an upload whose answer was lost."""


def batch_file_name(dag_id: str, task_id: str, run_id: str, map_index: int, part: int) -> str:
    """The name Capillary records for one batch: the same for every try of the same task instance.

    Readable parts say where the batch comes from; the digest keeps names distinct where the readable
    parts are cut short or cleaned of characters a file name should not carry. Retries across an
    upgrade find their batches by this name: it must not change between releases.
    """
    digest = hashlib.sha256(f"{dag_id}\0{task_id}\0{run_id}\0{map_index}".encode()).hexdigest()[:12]

    def clean(text: str, limit: int) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:limit]

    mapped = f"_m{map_index}" if map_index >= 0 else ""
    return f"{clean(dag_id, 40)}__{clean(task_id, 40)}__{clean(run_id, 40)}{mapped}_{digest}_part{part:04d}.csv"


class BaseUploadOperator(BaseOperator):
    """The orchestration shared by every upload kind; see the kinds' operators for the parameters.

    :param coupon_series_id: the coupon series to upload to (templated).
    :param source: the CSV: a local path, a URI such as ``s3://bucket/file.csv``, an ``ObjectStoragePath``
        or an ``Asset`` (its URI is read; it and an ``ObjectStoragePath`` become the task's inlet);
        ``.gz`` files are decompressed on the fly (templated).
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
    :param check_series: read the series before the first upload and fail, sending nothing, when
        Capillary does not know it or it has expired. Any other answer (no read access, a timeout)
        only logs a warning: the check never stops a valid upload.
    """

    upload_kind: ClassVar[UploadKind]
    template_fields: Sequence[str] = ("coupon_series_id", "source", "capillary_conn_id", "source_conn_id")
    ui_color = "#f2e6ff"

    def __init__(
        self,
        *,
        coupon_series_id: int | str,
        source: str | ObjectStoragePath | Asset,
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
        check_series: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise CapillaryConfigError(f"batch_size must be at least 1, not {batch_size}")
        if poll_interval <= 0:
            raise CapillaryConfigError(f"poll_interval must be positive, not {poll_interval}")
        try:
            FailurePolicy(max_error_rows, max_error_ratio)
        except ValueError as exc:
            raise CapillaryConfigError(str(exc)) from None
        self.coupon_series_id = coupon_series_id
        self.source = source
        self.capillary_conn_id = capillary_conn_id
        self.source_conn_id = source_conn_id
        self.batch_size = batch_size
        self.validate = validate
        # Not `self.dry_run`: BaseOperator.dry_run() is a method Airflow calls.
        self.dry_run_only = dry_run
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.max_error_rows = max_error_rows
        self.max_error_ratio = max_error_ratio
        self.check_series = check_series
        self._accepted: list[UploadJob] = []
        self.last_summary: dict[str, Any] | None = None
        assets.declare(self.inlets, self.outlets, source)  # the series (an alias until run time) and the source

    @property
    def policy(self) -> FailurePolicy:
        """The verdict's thresholds, from ``max_error_rows`` and ``max_error_ratio``."""
        return FailurePolicy(self.max_error_rows, self.max_error_ratio)

    @cached_property
    def hook(self) -> CapillaryHook:
        return CapillaryHook(self.capillary_conn_id)

    # -- what a kind supplies ---------------------------------------------------------------------

    def row_rules(self) -> RowRules:
        """What the kind's CSV must hold; raises :class:`CapillaryConfigError` for wrong parameters."""
        raise NotImplementedError

    def upload_batch(self, series_id: str, body: BatchReader, file_name: str) -> UploadJob:
        """Upload one batch with the kind's hook method."""
        raise NotImplementedError

    # -- execute ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        series_id = _series_id(self.coupon_series_id)
        rules = self.row_rules()
        path = self._source_path()
        with open_coupon_source(path) as stream:
            plan = scan_file(
                stream, name=str(self.source), rules=rules, batch_size=self.batch_size, validate=self.validate
            )
        names = [self._file_name(context, batch.part) for batch in plan.batches]
        self.log.info(
            "%s: %s, %d columns, %d bytes -> %s of at most %d rows",
            self.source,
            plural(plan.rows, "row"),
            plan.columns,
            plan.size,
            plural(len(plan.batches), "batch", "batches"),
            self.batch_size,
        )
        if self.dry_run_only:
            self.log.info("Dry run: nothing uploaded. Batches: %s", ", ".join(names))
            return _dry_run_summary(series_id, plan, names)

        self._check_series(series_id)
        jobs = self._upload(context, series_id, path, plan, names)
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
                        upload_kind=self.upload_kind.name,
                    ),
                    method_name="execute_complete",
                )
        else:
            jobs = self._wait(context, series_id, jobs)
        return self._finish(context, series_id, jobs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the same verdict as a wait in the worker."""
        series_id = _series_id(self.coupon_series_id)
        try:
            jobs = decode_event(event, self.upload_kind)
        except (CouponUploadTimeout, CouponUploadFailed):
            last = [UploadJob.from_dict(job, self.upload_kind) for job in (event or {}).get("jobs") or []]
            self._push_summary(context, series_id, last, str((event or {}).get("message")))
            raise
        return self._finish(context, series_id, jobs)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source file in, the coupon series out (:mod:`capillary_provider.lineage`)."""
        return lineage.facets_on_complete(self)

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

    def _check_series(self, series_id: str) -> None:
        """Fail before sending when Capillary does not know the series or it has expired (``check_series``)."""
        if not self.check_series:
            return
        try:
            series = self.hook.get_coupon_series(series_id)
            valid_till = _parse_time(series.get("validTillDate")) if series is not None else None
        except CapillaryError as exc:
            self.log.warning("Could not check coupon series %s before uploading (%s); uploading anyway", series_id, exc)
            return
        if series is None:
            raise CapillaryConfigError(
                f"Capillary does not know coupon series {series_id} (not found): check coupon_series_id and the "
                "connection's cluster. Nothing was uploaded."
            )
        if valid_till is not None and valid_till < datetime.now(UTC):
            raise CapillaryConfigError(
                f"Coupon series {series_id} expired on {series.get('validTillDate')}: extend its validity in "
                "Capillary or upload to another series. Nothing was uploaded."
            )

    def _upload(
        self, context: Context, series_id: str, path: ObjectStoragePath, plan: FilePlan, names: list[str]
    ) -> list[UploadJob]:
        """Upload each batch not already in the series, pushing the job ids to XCom as they come."""
        existing = _by_file_name(self.hook.get_upload_jobs(series_id, self.upload_kind))
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
                    started, body = time.monotonic(), BatchReader(stream, plan.header, batch)
                    try:
                        job = self._upload_once(series_id, body, name)
                    except CouponUploadAborted as exc:
                        raise CouponUploadAborted(
                            f"{exc}. Batches already accepted: {self._accepted_text()}; a rerun attaches to them "
                            f"and looks for {name} before uploading it again"
                        ) from exc
                    metrics.batch_uploaded(self.upload_kind.name, batch.rows, len(body), time.monotonic() - started)
                self._accepted.append(job)
                self._push(context, self._accepted)
        return list(self._accepted)

    def _upload_once(self, series_id: str, body: BatchReader, name: str) -> UploadJob:
        """Upload one batch exactly once, even when the answer to an upload is lost.

        When the hook says the outcome is unknown (the body may have reached Capillary), look for a job
        carrying the batch's name before sending it again.
        """
        for attempt in range(1, UNCERTAIN_UPLOAD_ATTEMPTS + 1):
            try:
                return self.upload_batch(series_id, body, name)
            except CapillaryUploadOutcomeUnknown as exc:
                if attempt == UNCERTAIN_UPLOAD_ATTEMPTS or self.hook.aborted:
                    raise
                self.log.warning("%s; checking whether Capillary has %s", exc, name)
                time.sleep(UNCERTAIN_UPLOAD_RECHECK_SECONDS)
                job = _by_file_name(self.hook.get_upload_jobs(series_id, self.upload_kind)).get(name)
                if job is not None:
                    self.log.info("Capillary has %s as job %s: not uploading it again", name, job.job_id)
                    return job
                body.seek(0)
        raise AssertionError("unreachable")

    def _poll_once(self, series_id: str, jobs: list[UploadJob]) -> list[UploadJob]:
        """One status call before deferring: finished jobs need no trigger; a failed call leaves it to the trigger."""
        watch = JobWatch(series_id, [job.job_id for job in jobs], self.log)
        try:
            done = watch.assess(self.hook.get_upload_jobs(series_id, self.upload_kind))
        except Exception as exc:
            next_poll_delay(exc, self.poll_interval)
            self.log.warning("Checking coupon series %s failed (%s); the trigger polls again", series_id, exc)
            return jobs
        return done if done is not None else jobs

    def _wait(self, context: Context, series_id: str, jobs: list[UploadJob]) -> list[UploadJob]:
        """Poll in the worker until every job is terminal, or fail after ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        watch = JobWatch(series_id, [job.job_id for job in jobs], self.log)
        while True:
            delay = self.poll_interval
            try:
                done = watch.assess(self.hook.get_upload_jobs(series_id, self.upload_kind))
            except Exception as exc:
                # The hook has retried already; like the trigger, keep polling until the deadline.
                delay = next_poll_delay(exc, self.poll_interval)
                self.log.warning("Polling coupon series %s failed (%s); polling again", series_id, exc)
            else:
                if done is not None:
                    return done
            if time.monotonic() >= deadline:
                message = watch.timeout_message()
                self._push_summary(context, series_id, watch.last_known or jobs, message)
                raise CouponUploadTimeout(message)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))

    def _finish(self, context: Context, series_id: str, jobs: list[UploadJob]) -> dict[str, Any]:
        """The verdict. The summary goes to XCom first, so an alert task can read it when the verdict fails."""
        failure = self.policy.failure(jobs)
        summary = self._push_summary(context, series_id, jobs, failure)
        self.log.info(
            "Capillary processed %s: %d rows, %d accepted, %d rejected",
            plural(len(jobs), "job"),
            summary["total_rows"],
            summary["accepted_rows"],
            summary["rejected_rows"],
        )
        metrics.verdict(self.upload_kind.name, summary["accepted_rows"], summary["rejected_rows"])
        if failure is not None:
            raise CouponUploadFailed(failure)
        extra = assets.asset_event_extra(summary, self.upload_kind.name)
        assets.record_asset_event(context, self.outlets, self.hook.coupon_url, series_id, extra)
        return summary

    # -- helpers ----------------------------------------------------------------------------------

    def _push(self, context: Context, jobs: list[UploadJob]) -> None:
        ti = context["ti"]
        ti.xcom_push(key=XCOM_JOB_ID, value=jobs[0].job_id)
        ti.xcom_push(key=XCOM_JOB_IDS, value=[job.job_id for job in jobs])
        ti.xcom_push(key=XCOM_STATUS, value=overall_status(jobs))

    def _push_summary(
        self, context: Context, series_id: str, jobs: list[UploadJob], failure: str | None
    ) -> dict[str, Any]:
        """Push ``status`` and ``summary`` (with ``failure``: why the task fails, or None) to XCom."""
        summary = self.last_summary = summarize(series_id, jobs, failure)
        context["ti"].xcom_push(key=XCOM_STATUS, value=summary["status"])
        context["ti"].xcom_push(key=XCOM_SUMMARY, value=summary)
        return summary

    def _source_path(self) -> ObjectStoragePath:
        if isinstance(self.source, ObjectStoragePath):
            return self.source
        source = self.source.uri if isinstance(self.source, Asset) else str(self.source)
        if "://" not in source:  # a plain local path
            source = "file://" + os.path.abspath(source)
        return ObjectStoragePath(source, conn_id=self.source_conn_id)

    def _file_name(self, context: Context, part: int) -> str:
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return batch_file_name(ti.dag_id, ti.task_id, ti.run_id, map_index, part)
