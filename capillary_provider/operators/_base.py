"""BaseUploadOperator: validate a CSV, upload it in batches exactly once, wait for Capillary, give one verdict.

Written once for every upload kind (:mod:`capillary_provider.kinds`). A kind's operator subclasses it
with its own parameters and supplies two things: the row rules its CSV must follow, and the hook call
that uploads one batch. Everything else (batches, names, exactly-once, XCom, the three ways of
waiting, the verdict) is orchestrated here, top to bottom in ``execute``; each step is a module of its
own (:mod:`._prepare`, :mod:`._exactly_once`, :mod:`capillary_provider.job_waiter` and
:mod:`capillary_provider.waiting`, :mod:`._finish`), so this module holds the order, not the steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from airflow.sdk import Asset, ObjectStoragePath

from capillary_provider import assets, lineage
from capillary_provider._compat import AirflowSkipException, conf
from capillary_provider.coupon_file import DEFAULT_BATCH_SIZE, BatchReader, RowRules
from capillary_provider.coupon_file.encrypted import PgpKey, key_from_connection
from capillary_provider.exceptions import CapillaryConfigError, CouponUploadFailed, CouponUploadTimeout
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.job_waiter import JobWaiter
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import UploadKind
from capillary_provider.operators import _params
from capillary_provider.operators._exactly_once import BatchUploads
from capillary_provider.operators._files import (
    NoFiles,
    PreparedFile,
    batch_file_name,
    dry_run_summary,
    literal_sources,
    resolve_sources,
    source_name,
)
from capillary_provider.operators._finish import finish
from capillary_provider.operators._prepare import prepare_file
from capillary_provider.operators._series import check_series
from capillary_provider.operators._signature import refuse_unknown
from capillary_provider.operators._storage import storage_path
from capillary_provider.run import XCOM_RUN, RunFile, UploadRun, pull_run, push_jobs, push_summary, summary
from capillary_provider.waiting import JobWatch, decode_event, event_jobs

if TYPE_CHECKING:
    from airflow.sdk import Context


class BaseUploadOperator(JobWaiter):
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
        self.max_skipped_rows = max_skipped_rows
        self.skip_if_no_files = skip_if_no_files
        # The choices that are never templated, checked before they are stored.
        _params.check_choices(
            invalid_rows=invalid_rows, rejected_rows_to=rejected_rows_to, archive_mode=archive_mode, delimiter=delimiter
        )
        self.invalid_rows = invalid_rows
        self.rejected_rows_to = rejected_rows_to
        self.archive_to = archive_to
        self.archive_mode = archive_mode
        self.delimiter = delimiter
        self._templates: dict[str, str] = {}
        self.has_header = has_header
        self.spool_dir = spool_dir
        self.pgp_conn_id = pgp_conn_id
        self.upload_run = UploadRun(str(coupon_series_id), self.upload_kind.name)
        """The record of this object's run (:mod:`capillary_provider.run`): its files once resolved, then its jobs."""
        # The series (an alias until run time) and each source file known before the run.
        assets.declare(self.inlets, self.outlets, literal_sources(source))

    def parameter_checks(self) -> dict[str, _params.Check]:
        """Each checked parameter's check (:mod:`~capillary_provider.operators._params`); kinds add theirs."""
        return dict(_params.SHARED_CHECKS)

    def check_parameters(self, *, rendered: bool) -> None:
        """Check and normalize the parameters: literals at parse time (a template's text is remembered),
        all of them once rendered, naming the template a wrong value came from. Kinds call it at the end
        of ``__init__``; ``execute`` and ``execute_complete`` once rendered."""
        _params.check_all(self, self.parameter_checks(), rendered=rendered, templates=self._templates)

    @cached_property
    def _pgp_key(self) -> PgpKey | None:
        """The private key of encrypted sources, read (and masked) once per run; None without pgp_conn_id."""
        return key_from_connection(self.pgp_conn_id) if self.pgp_conn_id else None

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
        """Validate every file, upload each batch exactly once, wait (in the worker or deferred), give the verdict."""
        self.check_parameters(rendered=True)
        series_id = str(self.coupon_series_id)
        rules = self.row_rules()
        files: list[PreparedFile] = []
        try:
            # Every file is validated before the first byte of any is sent; each upload reads what its scan read.
            paths = self._source_paths()
            named = tuple(RunFile(source_name(self.source, path)) for path in paths)
            self.upload_run = UploadRun(series_id, self.upload_kind.name, named)
            for path in paths:
                files.append(prepare_file(self, context, path, rules))
            self.upload_run = UploadRun(series_id, self.upload_kind.name, tuple(f.entry() for f in files))
            if self.dry_run_only:
                self.log.info("Dry run: nothing uploaded. Batches: %s", ", ".join(n for f in files for n in f.names))
                return dry_run_summary(series_id, files)
            first_upload_check = partial(check_series, self.hook, series_id, self.log) if self.check_series else None
            jobs = self._uploads.run(
                series_id, files, partial(push_jobs, context["ti"]), before_first_upload=first_upload_check
            )
        finally:
            for prepared in files:
                prepared.close()
        self.upload_run = self.upload_run.with_jobs(jobs)
        context["ti"].xcom_push(key=XCOM_RUN, value=self.upload_run.to_dict())
        if not self.wait_for_completion:
            return summary(self.upload_run)
        return self._wait(context, series_id, jobs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the run's record read back from XCom, the same verdict as a wait in the worker."""
        self.check_parameters(rendered=True)
        run = self.upload_run = pull_run(context["ti"]) or UploadRun(str(self.coupon_series_id), self.upload_kind.name)
        try:
            jobs = decode_event(event, self.upload_kind)
        except (CouponUploadTimeout, CouponUploadFailed):
            # The last known states; the jobs as uploaded when Capillary never listed them before the deadline.
            self.upload_run = run.with_jobs(event_jobs(event, self.upload_kind) or run.jobs)
            push_summary(context["ti"], self.upload_run, str((event or {}).get("message")))
            raise
        self.upload_run = run.with_jobs(jobs)
        return finish(self, context, self.upload_run)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source file in, the coupon series out (:mod:`capillary_provider.lineage`)."""
        run = self.upload_run
        if not run.files:  # no run in this object yet: the files named literally are all that is known
            literal = tuple(RunFile(str(getattr(s, "uri", s))) for s in literal_sources(self.source))
            run = UploadRun(str(self.coupon_series_id), run.kind, literal)
        return lineage.facets_on_complete(run, self.hook.coupon_url)

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

    def _wait(self, context: Context, series_id: str, jobs: list[UploadJob]) -> dict[str, Any]:
        """Wait for the jobs, then give the verdict. One wait (the trigger), ending in ``execute_complete``
        either way: run in the worker, or deferred after one check (which may find the jobs done)."""
        ids = [job.job_id for job in jobs]
        if self.deferrable and (done := self.check_jobs(JobWatch(series_id, ids, self.log), self.upload_kind)):
            self.upload_run = self.upload_run.with_jobs(done)
            return finish(self, context, self.upload_run)
        trigger = self.trigger(
            series_id, ids, poll_interval=self.poll_interval, timeout=self.timeout, kind=self.upload_kind
        )
        if self.deferrable:
            self.defer_wait(trigger)
        return self.execute_complete(context, self.wait_here(trigger))

    # -- helpers ----------------------------------------------------------------------------------

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
