"""Coupon files: open them, validate them and plan their batches in one streaming pass, serve each batch."""

from capillary_provider.coupon_file.batch_reader import BatchReader
from capillary_provider.coupon_file.rows import CouponRows, RowRules
from capillary_provider.coupon_file.scan import (
    DEFAULT_BATCH_SIZE,
    Batch,
    FilePlan,
    scan_file,
)
from capillary_provider.coupon_file.sources import ReadOnce, open_coupon_source

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Batch",
    "BatchReader",
    "CouponRows",
    "FilePlan",
    "ReadOnce",
    "RowRules",
    "open_coupon_source",
    "scan_file",
]
