"""What the steps of an upload run (:mod:`._prepare`, :mod:`._finish`: plain functions, so that ``execute``
reads as the list of its steps) read of their task: :class:`UploadTask`, the operator seen through a
protocol, so that no step imports the operator back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from capillary_provider.coupon_file.encrypted import PgpKey
    from capillary_provider.hooks.capillary import CapillaryHook
    from capillary_provider.verdict import FailurePolicy


class UploadTask(Protocol):
    """The operator's parameters and helpers its steps read."""

    source: Any
    has_header: bool | None
    delimiter: str
    invalid_rows: Literal["fail", "skip"]
    spool_dir: str | None
    batch_size: int
    validate: bool
    max_skipped_rows: int | None
    rejected_rows_to: str | ObjectStoragePath | None
    archive_to: str | ObjectStoragePath | None
    archive_mode: Literal["move", "copy"]
    outlets: list[Any]

    @property
    def log(self) -> Any: ...
    @property
    def hook(self) -> CapillaryHook: ...
    @property
    def policy(self) -> FailurePolicy: ...
    @property
    def _pgp_key(self) -> PgpKey | None: ...
    def upload_columns(self) -> list[int] | None: ...
    def generated_header(self, columns: int) -> list[str]: ...
    def _storage_path(self, location: Any) -> ObjectStoragePath: ...
    def _file_name(self, context: Context, part: int, source_key: str | None = None) -> str: ...
