"""Exactly once per batch: upload each batch that Capillary does not list yet, and find lost answers by name.

Every batch has a name that is the same on every try of the task instance. Before uploading, the
series' jobs are listed once and a batch whose name is there is attached to, not sent. When an upload's
outcome is unknown (the hook raises :class:`~capillary_provider.exceptions.CapillaryUploadOutcomeUnknown`:
the body may have reached Capillary), the name is looked up again before the batch is sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from capillary_provider import metrics
from capillary_provider.coupon_file import BatchReader
from capillary_provider.exceptions import CapillaryUploadOutcomeUnknown, CouponUploadAborted
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import UploadKind
from capillary_provider.operators._files import PreparedFile
from capillary_provider.operators._helpers import by_file_name

UNCERTAIN_UPLOAD_ATTEMPTS = 3
"""Uploads whose outcome is unknown (connection lost after sending) before the task gives up and retries."""
UNCERTAIN_UPLOAD_RECHECK_SECONDS = 2.0
"""Pause before looking for the job of an upload whose answer was lost."""


class BatchUploads:
    """The uploads of one task: which batches Capillary has accepted so far, and the upload loop.

    :param hook: the hook whose ``get_upload_jobs`` lists the series and whose ``abort`` stops uploads.
    :param kind: the upload kind (which job list names the batches).
    :param upload_batch: the kind's upload of one batch: ``(series_id, body, file_name) -> UploadJob``.
    :param log: the task's logger.
    """

    def __init__(
        self,
        hook: CapillaryHook,
        kind: UploadKind,
        upload_batch: Callable[[str, BatchReader, str], UploadJob],
        log: logging.Logger | Any,
    ) -> None:
        self.hook, self.kind, self.upload_batch, self.log = hook, kind, upload_batch, log
        self.accepted: list[UploadJob] = []

    def accepted_text(self) -> str:
        """The batches Capillary already has, for messages (``on_kill``, an aborted upload)."""
        return ", ".join(f"{job.uploaded_file_name} (job {job.job_id})" for job in self.accepted) or "none"

    def run(
        self,
        series_id: str,
        files: Sequence[PreparedFile],
        accepted: Callable[[list[UploadJob]], None],
        *,
        before_first_upload: Callable[[], None] | None = None,
    ) -> list[UploadJob]:
        """Upload each batch not already in the series, file by file; ``accepted`` is told after each one
        (the operator pushes the job ids to XCom as they come).

        :param before_first_upload: the series check, called only when Capillary holds no batch of this
            run yet: it guards a run's first upload. A retry whose earlier try was accepted attaches to its
            jobs even if the series has expired since (its batches are in; "nothing was uploaded" would be false).
        """
        existing = by_file_name(self.hook.get_upload_jobs(series_id, self.kind))
        ours = [name for prepared in files for name in prepared.names if name in existing]
        if before_first_upload is not None:
            if ours:
                self.log.info(
                    "Capillary already has %d batch(es) of this run: not checking the series again", len(ours)
                )
            else:
                before_first_upload()
        self.accepted = []
        for prepared in files:
            self._upload_file(series_id, prepared, existing, accepted)
        return list(self.accepted)

    def _upload_file(
        self,
        series_id: str,
        prepared: PreparedFile,
        existing: dict[str, UploadJob],
        accepted: Callable[[list[UploadJob]], None],
    ) -> None:
        plan, names = prepared.plan, prepared.names
        with prepared.source.for_upload() as stream:
            for batch, name in zip(plan.batches, names, strict=True):
                if self.hook.aborted:
                    raise CouponUploadAborted(
                        f"Upload stopped before batch {batch.part}: the task was killed. "
                        f"Batches already accepted: {self.accepted_text()}"
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
                            f"{exc}. Batches already accepted: {self.accepted_text()}; a rerun attaches to them "
                            f"and looks for {name} before uploading it again"
                        ) from exc
                    metrics.batch_uploaded(self.kind.name, batch.rows, len(body), time.monotonic() - started)
                self.accepted.append(job)
                accepted(self.accepted)

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
                job = by_file_name(self.hook.get_upload_jobs(series_id, self.kind)).get(name)
                if job is not None:
                    self.log.info("Capillary has %s as job %s: not uploading it again", name, job.job_id)
                    return job
                body.seek(0)
        raise AssertionError("unreachable")
