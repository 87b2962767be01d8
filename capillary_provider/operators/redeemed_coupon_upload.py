"""RedeemedCouponUploadOperator: load coupons redeemed outside Capillary (partner stores, POS, e-commerce)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capillary_provider.coupon_file import BatchReader
from capillary_provider.coupon_file.rows import RedeemedRows
from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.identifiers import CouponIdentifier, IdentifierType
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import REDEEMED_COUPON
from capillary_provider.operators._base import BaseUploadOperator

__all__ = ["RedeemedCouponUploadOperator"]


class RedeemedCouponUploadOperator(BaseUploadOperator):
    """Upload a CSV of redeemed coupons to a coupon series and wait until Capillary has processed it.

    The same flow as :class:`~capillary_provider.operators.coupon_upload.CouponUploadOperator`
    (validated before sending, streamed batches, exactly once per batch, XCom, the three ways of
    waiting, the verdict), against Capillary's redeemed-coupon endpoints. Jobs are ``QUEUED`` then
    ``COMPLETED``; a status Capillary has not documented counts as still in progress.

    :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID or USER_ID (templated).
    :param coupon_identifier: COUPON_CODE or COUPON_ID: how the rows name the coupon (templated).
    :param upload_headers: column key to zero-based column, sent as Capillary's ``uploadHeaders``: the
        customer key (``mobile``, ``email``, ``externalId``, ``userId``), the coupon key (``couponCode``
        or ``couponId``), ``redeemedDateInMillis`` and ``redeemedAt`` are required; ``billId``,
        ``billNumber`` and ``details`` are optional. ``None`` reads the map from the header row, whose
        cells may name the keys in any case, spacing or underscores, or use the docs' labels
        (``redeemed date in millis``) (templated).
    :param details: free text about this upload, sent as ``Details`` (templated).

    The other parameters are those of :class:`~capillary_provider.operators._base.BaseUploadOperator`.
    """

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
    )

    def __init__(
        self,
        *,
        customer_identifier: str,
        coupon_identifier: str = CouponIdentifier.COUPON_CODE.value,
        upload_headers: Mapping[str, int] | None = None,
        details: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer_identifier = customer_identifier
        self.coupon_identifier = coupon_identifier
        self.upload_headers = upload_headers
        self.details = details
        self._rules: RedeemedRows | None = None

    def row_rules(self) -> RedeemedRows:
        try:
            identifier = IdentifierType.parse(self.customer_identifier, allowed=REDEEMED_COUPON.customer_identifiers)
        except ValueError as exc:
            raise CapillaryConfigError(f"customer_identifier {exc}") from None
        if self.coupon_identifier not in CouponIdentifier._value2member_map_:
            raise CapillaryConfigError(
                f"coupon_identifier must be one of {', '.join(CouponIdentifier)}, not {self.coupon_identifier!r}"
            )
        headers = self.upload_headers
        if headers is not None and not isinstance(headers, Mapping):
            raise CapillaryConfigError(f"upload_headers must map column keys to column numbers, not {headers!r}")
        self._rules = RedeemedRows(identifier, CouponIdentifier(self.coupon_identifier), headers)
        return self._rules

    def generated_header(self, columns: int) -> list[str]:
        """For a file without header row: each column named by its ``upload_headers`` key (which must be given)."""
        if not self.upload_headers:
            raise CapillaryConfigError("a redemption file without header row needs upload_headers={key: column}")
        names = {column: key for key, column in self.upload_headers.items()}
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
