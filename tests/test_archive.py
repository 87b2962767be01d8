"""archive_to: each source file is moved (or copied) once the verdict has passed, never before, never lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from capillary_provider.exceptions import CapillaryError, CouponUploadFailed
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows

pytestmark = pytest.mark.integration

SERIES = 7701


def test_after_the_verdict_passes_each_file_is_moved_to_the_archive(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source = write_csv(mobile_rows(5), name="daily.csv")
    content = source.read_bytes()
    summary = make_operator(source, SERIES, archive_to=str(tmp_path / "processed" / "2026-12-01")).execute(context)
    assert not source.exists()
    assert (tmp_path / "processed" / "2026-12-01" / "daily.csv").read_bytes() == content
    assert summary["archived"] == [f"file://{tmp_path}/processed/2026-12-01/daily.csv"]


def test_copy_mode_leaves_the_source_in_place(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source = write_csv(mobile_rows(5))
    make_operator(source, SERIES, archive_to=str(tmp_path / "copies"), archive_mode="copy").execute(context)
    assert source.exists()
    assert (tmp_path / "copies" / source.name).read_bytes() == source.read_bytes()


def test_a_failed_verdict_archives_nothing(
    capillary_conn: SandboxClient, write_csv: Callable[..., Path], context: dict[str, Any], tmp_path: Path
) -> None:
    source = write_csv(mobile_rows(5))
    capillary_conn.add_fault("upload", "job_errored")
    with pytest.raises(CouponUploadFailed):
        make_operator(source, SERIES, archive_to=str(tmp_path / "processed")).execute(context)
    assert source.exists()
    assert not (tmp_path / "processed").exists()


def test_a_move_that_fails_halfway_leaves_the_source_where_it_was(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = write_csv(mobile_rows(5))
    content = source.read_bytes()

    def copy_dies_halfway(self: ObjectStoragePath, dst: ObjectStoragePath, **kwargs: Any) -> None:
        with dst.open("wb") as out:
            out.write(content[: len(content) // 2])
        raise OSError("connection to the archive lost")

    monkeypatch.setattr(ObjectStoragePath, "copy", copy_dies_halfway)
    with pytest.raises(CapillaryError, match=r"archiving .* failed .*the source is still in place"):
        make_operator(source, SERIES, archive_to=str(tmp_path / "processed")).execute(context)
    assert source.read_bytes() == content


def test_every_file_of_a_pattern_is_archived(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n, name in enumerate(("a.csv", "b.csv")):
        rows = "\n".join(f"{m},{c}" for m, c in mobile_rows(3, start=10 * n))
        (folder / name).write_text(f"mobile,code\n{rows}\n")
    make_operator(f"{folder}/*.csv", SERIES, archive_to=str(tmp_path / "done")).execute(context)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["a.csv", "b.csv"]
    assert list(folder.iterdir()) == []
