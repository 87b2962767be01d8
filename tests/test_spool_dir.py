"""``spool_dir``: the local copies an upload needs (a ``.gz`` or remote source spooled whole, a normalized
copy, the file without its skipped rows) go to that folder, stay there until the upload ends, and are gone
after. Through real uploads to the sandbox."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.coupon_file import BatchReader
from capillary_provider.jobs import UploadJob
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import mobile_rows

pytestmark = pytest.mark.integration

SERIES = 8401


class SpoolWatcher(CouponUploadOperator):
    """Records what ``spool_dir`` holds each time a batch goes up."""

    seen: list[list[str]]

    def upload_batch(self, series_id: str, body: BatchReader, file_name: str) -> UploadJob:
        folder = Path(str(self.spool_dir))
        files = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
        self.seen.append(sorted(re.sub(r"capillary-(\w+)-[^/]+", r"\1", name) for name in files))
        return super().upload_batch(series_id, body, file_name)


def watcher(source: Path, spool: Path, **options: Any) -> SpoolWatcher:
    spool.mkdir()
    operator = SpoolWatcher(
        task_id="upload",
        coupon_series_id=SERIES,
        source=str(source),
        customer_identifier="MOBILE",
        customer_identifier_column=0,
        poll_interval=0.05,
        deferrable=False,
        spool_dir=str(spool),
        **options,
    )
    operator.seen = []
    return operator


def gz_export(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_bytes(gzip.compress(("mobile,code\n" + "".join(f"{m},{c}\n" for m, c in rows)).encode()))
    return path


def test_a_gz_source_is_spooled_in_spool_dir_until_the_upload_ends(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    operator = watcher(gz_export(tmp_path / "coupons.csv.gz", mobile_rows(4)), tmp_path / "spool")
    operator.execute(context)  # type: ignore[arg-type]
    assert operator.seen == [["spool"]]  # the decompressed source, served to the upload
    assert list((tmp_path / "spool").iterdir()) == []


def test_the_file_without_its_skipped_rows_is_written_to_spool_dir(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    source = gz_export(tmp_path / "coupons.csv.gz", [*mobile_rows(4), ("not-a-mobile", "BAD1")])
    operator = watcher(source, tmp_path / "spool", invalid_rows="skip", rejected_rows_to=str(tmp_path / "rej.csv"))
    operator.execute(context)  # type: ignore[arg-type]
    # The spool of the source is closed once the invalid row is set aside; its second copy goes up.
    assert operator.seen == [["skip/kept.csv", "skip/rejected.csv"]]
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_converted_file_is_written_to_spool_dir(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    source = tmp_path / "coupons.csv"
    source.write_text("mobile;code\n" + "".join(f"{m};{c}\n" for m, c in mobile_rows(3)))
    operator = watcher(source, tmp_path / "spool", delimiter=";")
    operator.execute(context)  # type: ignore[arg-type]
    assert operator.seen == [["normalized"]]
    assert list((tmp_path / "spool").iterdir()) == []
