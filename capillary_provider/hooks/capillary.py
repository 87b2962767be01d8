"""CapillaryHook: one short method per Capillary endpoint (coupon and redeemed-coupon uploads, statuses, series).

Nothing outside ``hooks/`` builds a URL or sees a token. What callers must decide on comes out as our
own exceptions: :class:`~capillary_provider.exceptions.CapillaryTransientError` (try again later) or
:class:`~capillary_provider.exceptions.CapillaryUploadOutcomeUnknown` (look for the upload before
sending it again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import partial
from typing import Any

import requests
from asgiref.sync import sync_to_async
from requests_toolbelt import MultipartEncoder

from capillary_provider import metrics
from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryConfigError,
    CapillaryError,
    CouponUploadAborted,
)
from capillary_provider.hooks._answers import raise_for_status
from capillary_provider.hooks._base import TOKEN_HEADER, CapillaryBaseHook
from capillary_provider.hooks._form import connection_form_widgets, ui_field_behaviour
from capillary_provider.hooks._outcome import safe_upload_retry, upload_failure
from capillary_provider.hooks._transport import UPLOAD_BLOCK_SIZE, request_id
from capillary_provider.hooks._upload_body import (
    ProgressReader,
    UploadSource,
    human_bytes,
    log_progress,
    open_source,
)
from capillary_provider.identifiers import CouponIdentifier, IdentifierType, parse
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import COUPON, REDEEMED_COUPON, UploadKind

SERIES_ENDPOINT = "/v2/coupon/series"
SERIES_READ_TIMEOUT = 30.0
"""Read timeout of the series check: it guards an upload, it must not hold one up for long."""
__all__ = ["UPLOAD_BLOCK_SIZE", "CapillaryHook", "UploadJob"]


class CapillaryHook(CapillaryBaseHook):
    """Talk to Capillary's coupon APIs with an Airflow connection of type ``capillary``.

    See :class:`~capillary_provider.hooks._base.CapillaryBaseHook` for the connection's fields and
    extras, and the constructor's parameters. Airflow 3.1 reads the connection form from this class
    only (not from a base class): hence its two form methods here.
    """

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden fields, labels and placeholders of the connection form, for Airflow 3.1."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (``coupon_host``), for Airflow 3.1."""
        return connection_form_widgets()

    def get_upload_jobs(self, coupon_series_id: int | str, kind: UploadKind = COUPON) -> list[UploadJob]:
        """Return every upload job of a coupon series (one call, whatever the number of jobs).

        :param kind: which jobs: coupon uploads (the default) or redeemed-coupon uploads.
        """
        url = self.coupon_url + kind.status_endpoint.format(coupon_series_id=coupon_series_id)

        def call() -> list[UploadJob]:
            metrics.count(metrics.STATUS_CALLS, upload_kind=kind.name)
            result = self._result(self._get(url), f"status request for coupon series {coupon_series_id}")
            return [UploadJob.from_api(item, kind) for item in result.get(kind.jobs_field) or []]

        jobs: list[UploadJob] = self._retrying(call)
        return jobs

    def get_upload_job(self, coupon_series_id: int | str, job_id: int, kind: UploadKind = COUPON) -> UploadJob:
        """Return one upload job of a series; :class:`CapillaryError` if the series has no such job."""
        for job in self.get_upload_jobs(coupon_series_id, kind):
            if job.job_id == int(job_id):
                return job
        raise CapillaryError(f"Coupon series {coupon_series_id} has no upload job {job_id}")

    async def aget_upload_jobs(self, coupon_series_id: int | str, kind: UploadKind = COUPON) -> list[UploadJob]:
        """:meth:`get_upload_jobs` for triggers: the connection read with Airflow's async API, the HTTP in a thread."""
        await self.aconnection()  # read here, the worker thread's sync read finds it done
        jobs: list[UploadJob] = await sync_to_async(self.get_upload_jobs, thread_sensitive=False)(
            coupon_series_id, kind
        )
        return jobs

    def get_coupon_series(self, coupon_series_id: int | str) -> dict[str, Any] | None:
        """The coupon series as Capillary describes it (``GET /v2/coupon/series?ids=``), or None if it does not
        know it. One attempt, with a short read timeout: callers use it as a check before uploading.

        :raises CapillaryError: the read failed or the answer has an unexpected shape (a 403 for an API
            client without read access to coupon series is a ``CapillaryPermanentApiError``).
        """
        what = f"read of coupon series {coupon_series_id}"
        url = self.api_url + SERIES_ENDPOINT
        timeout = (self.timeout[0], min(self.timeout[1], SERIES_READ_TIMEOUT))
        response = self._get(url, params={"ids": str(coupon_series_id)}, timeout=timeout)
        body = self._envelope(response, what)
        if not response.ok:
            raise_for_status(response, f"Capillary {what} failed: {body.get('message') or response.reason}")
        entity = body.get("entity")
        if not isinstance(entity, list):
            raise CapillaryApiError(
                f"Capillary answered the {what} without an entity list", status_code=response.status_code
            )
        for series in entity:
            if isinstance(series, dict) and str(series.get("id")) == str(coupon_series_id):
                return series
        return None

    def upload_coupon_file(
        self,
        coupon_series_id: int | str,
        file: UploadSource,
        *,
        file_name: str,
        customer_identifier: str,
        customer_identifier_column: int | None = None,
    ) -> UploadJob:
        """Upload one CSV of coupon codes to a coupon series, streamed (see :meth:`upload_file`).

        :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID, USER_ID or NOT_TAGGED.
        :param customer_identifier_column: zero-based index of the identifier column, if any.
        """
        fields = {"customerIdentifier": _choice("customer_identifier", IdentifierType, customer_identifier, COUPON)}
        if customer_identifier_column is not None:
            fields["customerIdentifierColumn"] = str(customer_identifier_column)
        return self.upload_file(COUPON, coupon_series_id, file, file_name=file_name, fields=fields)

    def upload_redeemed_coupon_file(
        self,
        coupon_series_id: int | str,
        file: UploadSource,
        *,
        file_name: str,
        customer_identifier: str,
        coupon_identifier: str,
        upload_headers: Mapping[str, int],
        details: str | None = None,
    ) -> UploadJob:
        """Upload one CSV of coupons redeemed outside Capillary, streamed (see :meth:`upload_file`).

        :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID or USER_ID.
        :param coupon_identifier: COUPON_CODE or COUPON_ID.
        :param upload_headers: column key (``mobile``, ``couponCode``, ``redeemedDateInMillis``, ...) to its
            zero-based column, sent as Capillary's ``uploadHeaders``.
        :param details: free text about this upload (``Details``).
        """
        fields = {
            "customerIdentifier": _choice("customer_identifier", IdentifierType, customer_identifier, REDEEMED_COUPON),
            "couponIdentifier": _choice("coupon_identifier", CouponIdentifier, coupon_identifier),
            "uploadHeaders": json.dumps(dict(upload_headers), separators=(",", ":")),
        }
        if details:
            fields["Details"] = details
        return self.upload_file(REDEEMED_COUPON, coupon_series_id, file, file_name=file_name, fields=fields)

    def upload_file(
        self,
        kind: UploadKind,
        coupon_series_id: int | str,
        file: UploadSource,
        *,
        file_name: str,
        fields: dict[str, str],
    ) -> UploadJob:
        """Upload one CSV file of ``kind`` to a coupon series, streamed: the file is never read into memory.

        The upload is repeated here only when Capillary cannot have stored it (no connection could be
        made, a 429, or a 401/498 answered before the body was read). When the body may have reached
        Capillary, :class:`~capillary_provider.exceptions.CapillaryUploadOutcomeUnknown` is raised and
        the caller decides (the operators look for a job carrying ``file_name`` before sending again).

        :param kind: the upload kind (endpoint and job list).
        :param coupon_series_id: the coupon series to upload to.
        :param file: a local path, an :class:`~airflow.sdk.ObjectStoragePath` (remote ones included), or a
            binary file object, read from its current position to its end.
        :param file_name: the name Capillary records as ``uploadedFileName``.
        :param fields: the other multipart fields of the kind.
        :return: the job Capillary created.
        """
        url = self.coupon_url + kind.upload_endpoint.format(coupon_series_id=coupon_series_id)
        with open_source(file) as (handle, length):
            start = handle.tell()

            def post(token: str) -> requests.Response:
                # A fresh encoder, and the file rewound, for every attempt: an encoder is read only once.
                handle.seek(start)
                part = ProgressReader(handle, length, partial(log_progress, self.log), self._aborted)
                encoder = MultipartEncoder(fields={**fields, "file": (file_name, part, "text/csv")})
                headers = {"Content-Type": encoder.content_type, TOKEN_HEADER: token}
                return self._request("POST", url, data=encoder, headers=headers)

            def call() -> UploadJob:
                return self._job_of(self._with_token(post), kind, file_name, _upload_what(file_name, coupon_series_id))

            return self._send_upload(call, file_name, coupon_series_id, length)

    def _send_upload(
        self, call: Callable[[], UploadJob], file_name: str, series_id: int | str, length: int
    ) -> UploadJob:
        """Send one upload, retried only where Capillary cannot have stored it (see :mod:`._outcome`), and log it."""
        started = time.monotonic()
        if self._aborted.is_set():
            raise CouponUploadAborted(f"Not uploading {file_name}: the task was killed")
        try:
            job: UploadJob = self._retrying(call, when=safe_upload_retry)
        except CouponUploadAborted:
            raise
        except Exception as exc:
            failure = upload_failure(exc, _upload_what(file_name, series_id), file_name, aborted=self._aborted.is_set())
            if failure is None:
                raise
            raise failure from exc
        self.log.info(
            "Uploaded %s (%s) to coupon series %s in %.1f s: job %s %s",
            file_name,
            human_bytes(length),
            series_id,
            time.monotonic() - started,
            job.job_id,
            job.status,
        )
        return job

    def _job_of(self, response: requests.Response, kind: UploadKind, file_name: str, what: str) -> UploadJob:
        """The job an upload's answer reports; an answer without one is an API error, not a success."""
        statuses = self._result(response, what).get(kind.jobs_field) or []
        if not statuses:
            raise CapillaryApiError(
                f"Capillary accepted {file_name} but reported no upload job",
                status_code=response.status_code,
                request_id=request_id(response),
            )
        return UploadJob.from_api(statuses[0], kind)


def _upload_what(file_name: str, coupon_series_id: int | str) -> str:
    return f"upload of {file_name} to coupon series {coupon_series_id}"


def _choice(parameter: str, choices: type[StrEnum], value: str, kind: UploadKind | None = None) -> str:
    """``value`` as the member of ``choices`` it names (among those ``kind`` takes); else a config error."""
    try:
        return parse(choices, value, kind.customer_identifiers if kind else None).value
    except ValueError as exc:
        raise CapillaryConfigError(f"{parameter} {exc}") from None
