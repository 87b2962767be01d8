"""RedeemedCouponUploadOperator: load coupons redeemed outside Capillary (partner stores, POS, e-commerce)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from airflow.sdk import Asset, ObjectStoragePath

from capillary_provider._compat import conf
from capillary_provider.coupon_file import DEFAULT_BATCH_SIZE, BatchReader
from capillary_provider.coupon_file.columns import mapped_columns
from capillary_provider.coupon_file.rows import RedeemedRows
from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.identifiers import CouponIdentifier, IdentifierType
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import REDEEMED_COUPON
from capillary_provider.operators import _params
from capillary_provider.operators._base import BaseUploadOperator
from capillary_provider.operators._signature import SHARED_PARAMETERS, shared_arguments

__all__ = ["RedeemedCouponUploadOperator"]


class RedeemedCouponUploadOperator(BaseUploadOperator):
    __doc__ = (
        """Upload a CSV of redeemed coupons to a coupon series and wait until Capillary has processed it.

    The same flow as :class:`~capillary_provider.operators.coupon_upload.CouponUploadOperator`
    (validated before sending, streamed batches, exactly once per batch, XCom, the three ways of
    waiting, the verdict), against Capillary's redeemed-coupon endpoints. Jobs are ``QUEUED`` then
    ``COMPLETED``; a status Capillary has not documented counts as still in progress.

    :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID or USER_ID, in any case (templated).
    :param coupon_identifier: COUPON_CODE or COUPON_ID, in any case: how the rows name the coupon (templated).
    :param upload_headers: column key to zero-based column, sent as Capillary's ``uploadHeaders``: the
        customer key (``mobile``, ``email``, ``externalId``, ``userId``), the coupon key (``couponCode``
        or ``couponId``), ``redeemedDateInMillis`` and ``redeemedAt`` are required; ``billId``,
        ``billNumber`` and ``details`` are optional. ``None`` reads the map from the header row, whose
        cells may name the keys in any case, spacing or underscores, or use the docs' labels
        (``redeemed date in millis``) (templated).
    :param details: free text about this upload, sent as ``Details`` (templated).
    """
        + SHARED_PARAMETERS
    )

    upload_kind = REDEEMED_COUPON
    template_fields: Sequence[str] = (
        "coupon_series_id",
        "source",
        "customer_identifier",
        "coupon_identifier",
        "upload_headers",
        "details",
        "capillary_conn_id",
        "source_conn_id",
        "pgp_conn_id",
        "rejected_rows_to",
        "archive_to",
        "spool_dir",
    )

    def __init__(
        self,
        *,
        customer_identifier: str,
        coupon_identifier: str = CouponIdentifier.COUPON_CODE.value,
        upload_headers: Mapping[str, int] | None = None,
        details: str | None = None,
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
        super().__init__(**shared_arguments(BaseUploadOperator, locals()))
        self.customer_identifier = customer_identifier
        self.coupon_identifier = coupon_identifier
        self.upload_headers = upload_headers
        self.details = details
        self._rules: RedeemedRows | None = None
        self.check_parameters(rendered=False)

    def parameter_checks(self) -> dict[str, _params.Check]:
        return {
            **super().parameter_checks(),
            "customer_identifier": _params.identifier(REDEEMED_COUPON.customer_identifiers),
            "coupon_identifier": _params.coupon_identifier,
            "upload_headers": _params.header_map,
        }

    def row_rules(self) -> RedeemedRows:
        # The parameters were checked and normalized (check_parameters) before execute calls this.
        identifier = IdentifierType(self.customer_identifier)
        coupon = CouponIdentifier(self.coupon_identifier)
        self._rules = RedeemedRows(identifier, coupon, self.upload_headers, projected=bool(self.upload_headers))
        return self._rules

    def upload_columns(self) -> list[int] | None:
        """The columns ``upload_headers`` names (Capillary takes those only); None reads the map from the header
        row, which must then name every column."""
        return mapped_columns(self.upload_headers) if self.upload_headers else None

    def generated_header(self, columns: int) -> list[str]:
        """For a file without header row: each column named by its ``upload_headers`` key (which must be given)."""
        if not self.upload_headers:
            raise CapillaryConfigError("a redemption file without header row needs upload_headers={key: column}")
        kept = mapped_columns(self.upload_headers)  # the generated header names the columns that go up
        names = {kept.index(column): key for key, column in self.upload_headers.items()}
        return [names.get(index, f"column {index + 1}") for index in range(columns)]

    def upload_batch(self, series_id: str, body: BatchReader, file_name: str) -> UploadJob:
        # The map sent is the one the scan resolved (from the header row when none was given).
        assert self._rules is not None, "row_rules() runs before the first upload"
        return self.hook.upload_redeemed_coupon_file(
            series_id,
            body,
            file_name=file_name,
            customer_identifier=self.customer_identifier,
            coupon_identifier=self.coupon_identifier,
            upload_headers=self._rules.headers,
            details=self.details,
        )
