"""CouponUploadOperator: validate a coupon CSV, upload it in batches, and wait for Capillary's verdict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from airflow.sdk import Asset, ObjectStoragePath

from capillary_provider._compat import conf
from capillary_provider.coupon_file import DEFAULT_BATCH_SIZE, BatchReader, CouponRows
from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.identifiers import IdentifierType
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import COUPON
from capillary_provider.operators import _params
from capillary_provider.operators._base import BaseUploadOperator
from capillary_provider.operators._files import batch_file_name
from capillary_provider.operators._signature import SHARED_PARAMETERS, shared_arguments
from capillary_provider.run import XCOM_JOB_ID, XCOM_JOB_IDS, XCOM_STATUS, XCOM_SUMMARY

__all__ = ["XCOM_JOB_ID", "XCOM_JOB_IDS", "XCOM_STATUS", "XCOM_SUMMARY", "CouponUploadOperator", "batch_file_name"]


class CouponUploadOperator(BaseUploadOperator):
    __doc__ = (
        """Upload a CSV of coupon codes to a Capillary coupon series and wait until Capillary has processed it.

    The file is read from any storage Airflow's :class:`~airflow.sdk.ObjectStoragePath` reaches and
    streamed: first once to validate it and plan batches of at most ``batch_size`` rows (nothing is sent
    if it is malformed), then batch by batch to Capillary, each batch its own upload job with the header
    repeated. Each batch has a name derived from the task instance, and an existing job carrying that
    name is reused instead of uploading again, so retries never duplicate codes. The job ids and status
    are pushed to XCom as soon as they exist, before waiting; the summary before the verdict.

    :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID, USER_ID, or NOT_TAGGED for codes that are not
        tied to customers, in any case: ``"mobile"`` is MOBILE (templated).
    :param customer_identifier_column: zero-based index of the identifier column; required unless
        ``customer_identifier`` is NOT_TAGGED (templated).
    :param coupon_code_column: zero-based index of the code column, for files with more columns than
        Capillary takes: only the identifier and code columns go up (streamed), the others stay home.
        None: the file holds just those (the code is the column that is not the identifier's) (templated).
    """
        + SHARED_PARAMETERS
    )

    upload_kind = COUPON
    template_fields: Sequence[str] = (
        "coupon_series_id",
        "source",
        "customer_identifier",
        "customer_identifier_column",
        "coupon_code_column",
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
        customer_identifier_column: int | str | None = None,
        coupon_code_column: int | str | None = None,
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
        self.customer_identifier_column = customer_identifier_column
        self.coupon_code_column = coupon_code_column
        self.check_parameters(rendered=False)

    def parameter_checks(self) -> dict[str, _params.Check]:
        return {
            **super().parameter_checks(),
            "customer_identifier": _params.identifier(None),
            "customer_identifier_column": _params.column,
            "coupon_code_column": _params.column,
        }

    def row_rules(self) -> CouponRows:
        # customer_identifier was checked and normalized (check_parameters) before execute calls this.
        return CouponRows(IdentifierType(self.customer_identifier), self._uploaded_identifier_column())

    def upload_batch(self, series_id: str, body: BatchReader, file_name: str) -> UploadJob:
        return self.hook.upload_coupon_file(
            series_id,
            body,
            file_name=file_name,
            customer_identifier=self.customer_identifier,
            customer_identifier_column=self._uploaded_identifier_column(),
        )

    def upload_columns(self) -> list[int] | None:
        code = _column(self.coupon_code_column, "coupon_code_column")
        if code is None:
            return None
        identifier = self._identifier_column()
        if identifier == code:
            raise CapillaryConfigError(f"coupon_code_column and customer_identifier_column are both {code}")
        return sorted({code} | ({identifier} if identifier is not None else set()))

    def generated_header(self, columns: int) -> list[str]:
        """``mobile,coupon code`` (in the file's column order), or ``coupon code`` alone for NOT_TAGGED."""
        cells = [f"column {index + 1}" for index in range(columns)]
        identifier = self._uploaded_identifier_column()
        code = next((index for index in range(columns) if index != identifier), None)
        if identifier is not None and identifier < columns:
            cells[identifier] = str(self.customer_identifier).lower()
        if code is not None:
            cells[code] = "coupon code"
        return cells

    def _uploaded_identifier_column(self) -> int | None:
        """Where the identifier column is in what goes up (the file's own, unless columns are left out)."""
        identifier, kept = self._identifier_column(), self.upload_columns()
        return kept.index(identifier) if identifier is not None and kept is not None else identifier

    def _identifier_column(self) -> int | None:
        return _column(self.customer_identifier_column, "customer_identifier_column")


def _column(column: int | str | None, what: str) -> int | None:
    """A zero-based column parameter (an int, or the rendered text of one); None when not given."""
    if column is None or column == "":
        return None
    try:
        index = int(column)
    except (TypeError, ValueError):
        raise CapillaryConfigError(f"{what} must be a zero-based column number, not {column!r}") from None
    if index < 0:
        raise CapillaryConfigError(f"{what} must be 0 or more (zero-based: 0 is the first column), not {index}")
    return index
