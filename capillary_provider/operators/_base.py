"""BaseUploadOperator: validate a CSV, upload it in batches exactly once, wait for Capillary, give one verdict.

Written once for every upload kind (:mod:`capillary_provider.kinds`). A kind's operator subclasses it
with its own parameters and supplies two things: the row rules its CSV must follow, and the hook call
that uploads one batch. Everything else (batches, names, exactly-once, XCom, the three ways of
waiting, the verdict) is here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from airflow.sdk import Asset, BaseOperator, ObjectStoragePath

from capillary_provider import assets, lineage, metrics
from capillary_provider._compat import AirflowSkipException, conf
from capillary_provider.coupon_file import (
    DEFAULT_BATCH_SIZE,
    BatchReader,
    RowRules,
    scan_file,
)
from capillary_provider.coupon_file.encrypted import PgpKey, key_from_connection
from capillary_provider.coupon_file.first_row import check_first_row
from capillary_provider.coupon_file.normalize import delimiter_of
from capillary_provider.exceptions import (
    CapillaryConfigError,
    CouponUploadFailed,
    CouponUploadTimeout,
)
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import FailurePolicy, UploadJob, plural, summarize
from capillary_provider.kinds import UploadKind
from capillary_provider.operators import _params
from capillary_provider.operators._exactly_once import BatchUploads
from capillary_provider.operators._files import (
    NoFiles,
    PreparedFile,
    archive,
    batch_file_name,
    display_name,
    dry_run_summary,
    files_summary,
    is_many,
    literal_sources,
    recorded_files,
    resolve_sources,
)
from capillary_provider.operators._series import check_series
from capillary_provider.operators._signature import refuse_unknown
from capillary_provider.operators._source import open_source
from capillary_provider.operators._storage import storage_path
from capillary_provider.operators._xcom import XCOM_FILES, XCOM_STATUS, XCOM_SUMMARY, push_jobs, source_files
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from capillary_provider.waiting import JobWatch, check_once, decode_event, wait_in_worker

if TYPE_CHECKING:
    from airflow.sdk import Context


class BaseUploadOperator(BaseOperator):
    """The orchestration shared by every upload kind; see the kinds' operators for the parameters.

    The parameters are those of :data:`~capillary_provider.operators._signature.SHARED_PARAMETERS`.
    """

    upload_kind: ClassVar[UploadKind]
    template_fields: Sequence[str] = (
        "coupon_series_id",
        "source",
        "capillary_conn_id",
        "source_conn_id",
        "spool_dir",
        "pgp_conn_id",
    )
    ui_color = "#f2e6ff"

    def __init__(
        self,
        *,
        coupon_series_id: int | str,
        source: str | ObjectStoragePath | Asset | Sequence[str | ObjectStoragePath],
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
        invalid_rows: Literal["fail", "skip"] = "fail",
        rejected_rows_to: str | ObjectStoragePath | None = None,
        max_skipped_rows: int | None = None,
        skip_if_no_files: bool = False,
        archive_to: str | ObjectStoragePath | None = None,
        archive_mode: Literal["move", "copy"] = "move",
        has_header: bool | None = None,
        delimiter: str = ",",
        spool_dir: str | None = None,
        pgp_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        refuse_unknown(type(self), kwargs)
        super().__init__(**kwargs)
        self.coupon_series_id = coupon_series_id
        self.source = source
        self.capillary_conn_id = capillary_conn_id
        self.source_conn_id = source_conn_id
        self.batch_size = batch_size
        self.validate = validate
        # Not `self.dry_run`: BaseOperator.dry_run() is a method Airflow calls.
        self.dry_run_only = _params.checked("dry_run", dry_run, _params.flag)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = cast("float", timeout)  # seconds once check_parameters has run
        self.max_error_rows = max_error_rows
        self.max_error_ratio = max_error_ratio
        self.check_series = check_series
        if invalid_rows not in ("fail", "skip"):
            raise CapillaryConfigError(f'invalid_rows must be "fail" or "skip", not {invalid_rows!r}')
        if invalid_rows == "skip" and not rejected_rows_to:
            raise CapillaryConfigError('invalid_rows="skip" needs rejected_rows_to: skipped rows are never dropped')
        self.invalid_rows = invalid_rows
        self.rejected_rows_to = rejected_rows_to
        self.max_skipped_rows = max_skipped_rows
        self.skip_if_no_files = skip_if_no_files
        if archive_mode not in ("move", "copy"):
            raise CapillaryConfigError(f'archive_mode must be "move" or "copy", not {archive_mode!r}')
        self.archive_to = archive_to
        self.archive_mode = archive_mode
        try:
            delimiter_of(delimiter)
        except ValueError as exc:
            raise CapillaryConfigError(str(exc)) from None
        self.has_header = has_header
        self.delimiter = delimiter
        self.spool_dir = spool_dir
        self.pgp_conn_id = pgp_conn_id
        self._templates: dict[str, str] = {}
        self.last_summary: dict[str, Any] | None = None
        self.read_files: list[str] = []
        """The source files this run read (lineage's inputs): known once resolved."""
        # The series (an alias until run time) and each source file known before the run.
        assets.declare(self.inlets, self.outlets, literal_sources(source))

    def parameter_checks(self) -> dict[str, _params.Check]:
        """Each checked parameter's check (:mod:`~capillary_provider.operators._params`); kinds add theirs."""
        return {
            "coupon_series_id": _params.series_id,
            "batch_size": _params.batch_size,
            "poll_interval": _params.seconds,
            "timeout": _params.seconds,
            "max_error_rows": _params.optional_count,
            "max_error_ratio": _params.ratio,
            "max_skipped_rows": _params.optional_count,
            "has_header": _params.optional_bool,
            **{name: _params.flag for name in ("validate", "wait_for_completion", "deferrable", "check_series")},
        }

    def check_parameters(self, *, rendered: bool) -> None:
        """Check and normalize the parameters: literals at parse time (a template's text is remembered),
        all of them once rendered, naming the template a wrong value came from. Kinds call it at the end
        of ``__init__``; ``execute`` and ``execute_complete`` once rendered."""
        for name, check in self.parameter_checks().items():
            value = getattr(self, name)
            if not rendered and name in self.template_fields and _params.is_deferred(value):
                if isinstance(value, str):
                    self._templates[name] = value
                continue
            setattr(self, name, _params.checked(name, value, check, self._templates.get(name)))

    @cached_property
    def _pgp_key(self) -> PgpKey | None:
        """The private key of encrypted sources, read (and masked) once per run; None without pgp_conn_id."""
        return key_from_connection(self.pgp_conn_id) if self.pgp_conn_id else None

    @property
    def policy(self) -> FailurePolicy:
        """The verdict's thresholds, from ``max_error_rows`` and ``max_error_ratio``."""
        return FailurePolicy(self.max_error_rows, self.max_error_ratio)

    @cached_property
    def hook(self) -> CapillaryHook:
        return CapillaryHook(self.capillary_conn_id)

    @cached_property
    def _uploads(self) -> BatchUploads:
        return BatchUploads(self.hook, self.upload_kind, self.upload_batch, self.log)

    # -- what a kind supplies ---------------------------------------------------------------------

    def row_rules(self) -> RowRules:
        """What the kind's CSV must hold; raises :class:`CapillaryConfigError` for wrong parameters."""
        raise NotImplementedError

    def upload_batch(self, series_id: str, body: BatchReader, file_name: str) -> UploadJob:
        """Upload one batch with the kind's hook method."""
        raise NotImplementedError

    def upload_columns(self) -> list[int] | None:
        """The source columns that go up, in file order; None for all (kinds with a column choice override it)."""
        return None

    def generated_header(self, columns: int) -> list[str]:
        """The header row an upload of ``columns`` columns gets when the file has none."""
        raise CapillaryConfigError(f"{type(self).__name__} cannot upload a file without header row")

    # -- execute ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self.check_parameters(rendered=True)
        series_id = str(self.coupon_series_id)
        rules = self.row_rules()
        files: list[PreparedFile] = []
        try:
            # Every file is validated before the first byte of any is sent; each upload reads what its scan read.
            paths = self._source_paths()
            self.read_files = [display_name(path) for path in paths]
            for path in paths:
                files.append(self._prepare(context, path, rules))
            if self.dry_run_only:
                self.log.info("Dry run: nothing uploaded. Batches: %s", ", ".join(n for f in files for n in f.names))
                return dry_run_summary(series_id, files)
            context["ti"].xcom_push(key=XCOM_FILES, value=[prepared.record() for prepared in files])
            first_upload_check = partial(check_series, self.hook, series_id, self.log) if self.check_series else None
            jobs = self._uploads.run(
                series_id, files, lambda accepted: self._push(context, accepted), before_first_upload=first_upload_check
            )
        finally:
            for prepared in files:
                prepared.close()
        if not self.wait_for_completion:
            return {**summarize(series_id, jobs), **files_summary([f.record() for f in files], jobs)}
        if self.deferrable:
            jobs = check_once(partial(self.hook.get_upload_jobs, series_id, self.upload_kind), jobs, self.log)
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
            watch = JobWatch(series_id, [job.job_id for job in jobs], self.log)
            listing = partial(self.hook.get_upload_jobs, series_id, self.upload_kind)
            done = wait_in_worker(listing, watch, poll_interval=self.poll_interval, timeout=self.timeout, log=self.log)
            if done is None:
                self._push_summary(context, series_id, watch.last_known or jobs, watch.timeout_message())
                raise CouponUploadTimeout(watch.timeout_message())
            jobs = done
        return self._finish(context, series_id, jobs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the same verdict as a wait in the worker."""
        self.check_parameters(rendered=True)
        series_id = str(self.coupon_series_id)
        self.read_files = recorded_files(self.source, self._source_files(context))
        try:
            jobs = decode_event(event, self.upload_kind)
        except (CouponUploadTimeout, CouponUploadFailed):
            last = [UploadJob.from_dict(job, self.upload_kind) for job in (event or {}).get("jobs") or []]
            self._push_summary(context, series_id, last, str((event or {}).get("message")))
            raise
        return self._finish(context, series_id, jobs)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source file in, the coupon series out (:mod:`capillary_provider.lineage`)."""
        # Before any file is read (no run in this object), the files named literally are all that is known.
        files = self.read_files or [display_name(getattr(s, "uri", s)) for s in literal_sources(self.source)]
        summary = self.last_summary or {}
        return lineage.facets_on_complete(str(self.coupon_series_id), files, summary, self.hook.coupon_url)

    def on_kill(self) -> None:
        """Abort a running upload at once (from any thread) and say which batches Capillary already has.

        The hook is aborted even before the first upload (made here if need be), so that no batch starts
        after a kill. A rerun of the task attaches to the batches already accepted and uploads only the others.
        """
        self.log.warning(
            "Task killed: aborting the upload to Capillary. Batches already accepted: %s", self._uploads.accepted_text()
        )
        self.hook.abort()

    # -- steps ------------------------------------------------------------------------------------

    def _prepare(self, context: Context, path: ObjectStoragePath, rules: RowRules) -> PreparedFile:
        """Validate and plan one source file; with ``invalid_rows="skip"``, set its invalid rows aside first."""
        many = is_many(self.source)
        name = display_name(path) if many else str(self.source)
        source = open_source(
            path,
            name,
            columns=self.upload_columns(),
            has_header=self.has_header,
            delimiter=self.delimiter,
            header_for=self.generated_header,
            skip_invalid=self.invalid_rows == "skip",
            spool_dir=self.spool_dir,
            pgp_key=lambda: self._pgp_key,
        )
        try:  # a file that fails its scan is closed here: its spool, copy or GnuPG home (key) go at once
            with source.for_scan() as stream:
                plan = scan_file(
                    stream,
                    name=name,
                    rules=rules,
                    batch_size=self.batch_size,
                    validate=self.validate,
                    skip_invalid=self.invalid_rows == "skip",
                    row_offset=1 if self.has_header is False else 0,
                )
            check_first_row(name, plan.header, rules, self.has_header, self.log)
        except BaseException:
            source.close()
            raise
        prepared = PreparedFile(name=name, key=name if many else None, source=source, plan=plan)
        if plan.rejected:
            target = self._storage_path(self.rejected_rows_to)
            prepared.set_aside(
                rules,
                batch_size=self.batch_size,
                max_skipped_rows=self.max_skipped_rows,
                rejected_rows_to=target / path.name if many else target,
                log=self.log,
                spool_dir=self.spool_dir,
            )
        prepared.names = [self._file_name(context, batch.part, prepared.key) for batch in prepared.plan.batches]
        done = prepared.plan  # without the rows set aside
        counts = plural(done.rows, "row"), done.columns, plan.size, plural(len(done.batches), "batch", "batches")
        self.log.info("%s: %s, %d columns, %d bytes -> %s of at most %d rows", name, *counts, self.batch_size)
        return prepared

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
        if self.archive_to:
            records = self._source_files(context)
            summary["archived"] = archive(
                [self._storage_path(record["source"]) for record in records],
                self._storage_path(self.archive_to),
                move=self.archive_mode == "move",
                log=self.log,
            )
        return summary

    # -- helpers ----------------------------------------------------------------------------------

    def _push(self, context: Context, jobs: list[UploadJob]) -> None:
        push_jobs(context["ti"], jobs)

    def _push_summary(
        self, context: Context, series_id: str, jobs: list[UploadJob], failure: str | None
    ) -> dict[str, Any]:
        """Push ``status`` and ``summary`` (with ``failure``: why the task fails, or None) to XCom."""
        records = self._source_files(context)
        summary = self.last_summary = {**summarize(series_id, jobs, failure), **files_summary(records, jobs)}
        context["ti"].xcom_push(key=XCOM_STATUS, value=summary["status"])
        context["ti"].xcom_push(key=XCOM_SUMMARY, value=summary)
        return summary

    def _source_files(self, context: Context) -> list[dict[str, Any]]:
        return source_files(context["ti"])

    def _source_paths(self) -> list[ObjectStoragePath]:
        """The files ``source`` names: one path, a glob pattern's matches, or a list."""
        try:
            source = self.source.uri if isinstance(self.source, Asset) else self.source
            return resolve_sources(source, self._storage_path)
        except NoFiles as exc:
            if self.skip_if_no_files:
                raise AirflowSkipException(f"{exc} Skipping the task (skip_if_no_files=True).") from exc
            raise

    def _storage_path(self, location: Any) -> ObjectStoragePath:
        return storage_path(location, self.source, self.source_conn_id)

    def _file_name(self, context: Context, part: int, source_key: str | None = None) -> str:
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return batch_file_name(ti.dag_id, ti.task_id, ti.run_id, map_index, part, source_key)
