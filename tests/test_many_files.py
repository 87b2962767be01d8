"""source as a glob pattern or a list: every file validated first, each its own batches, exactly once per file.

A retry in the middle of a many-file upload, from every store: tests/test_many_file_retry.py.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from capillary_provider._compat import AirflowSkipException
from capillary_provider.exceptions import CouponFileError
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows

pytestmark = pytest.mark.integration

SERIES = 7601

many_files_operator = partial(make_operator, series=SERIES, batch_size=10)
"""An operator on this module's series, in batches of 10 rows."""


def exports(folder: Path, sizes: dict[str, int]) -> Path:
    """Files ``name -> rows`` of distinct valid rows in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for name, rows in sizes.items():
        lines = [f"{m},{c}" for m, c in mobile_rows(rows, start=start)]
        (folder / name).write_text("mobile,code\n" + "\n".join(lines) + "\n")
        start += rows
    return folder


def jobs_by_name(sandbox: SandboxClient) -> Counter[str]:
    return Counter(job["uploadedFileName"] for job in sandbox.jobs(SERIES))


def test_a_pattern_uploads_every_matching_file_as_its_own_batches(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    folder = exports(tmp_path / "daily", {"a.csv": 12, "b.csv": 5, "c.csv": 20})
    (folder / "notes.txt").write_text("not a coupon file")

    summary = many_files_operator(f"{folder}/*.csv").execute(context)

    assert [(f["source"].rsplit("/", 1)[-1], f["total_rows"], len(f["job_ids"])) for f in summary["files"]] == [
        ("a.csv", 12, 2),
        ("b.csv", 5, 1),
        ("c.csv", 20, 2),
    ]
    assert (summary["total_rows"], summary["accepted_rows"], len(summary["job_ids"])) == (37, 37, 5)
    names = jobs_by_name(capillary_conn)
    assert set(names.values()) == {1}
    assert len(names) == 5
    assert len({name.split("_part")[0] for name in names}) == 3  # one name stem per file


def test_a_list_of_sources_is_uploaded_in_the_order_given(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    folder = exports(tmp_path, {"one.csv": 3, "two.csv": 4})
    summary = many_files_operator([str(folder / "two.csv"), str(folder / "one.csv")]).execute(context)
    assert [f["source"].rsplit("/", 1)[-1] for f in summary["files"]] == ["two.csv", "one.csv"]
    assert [f["total_rows"] for f in summary["files"]] == [4, 3]


def test_one_malformed_file_fails_the_task_before_any_file_is_sent(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    folder = exports(tmp_path, {"a.csv": 3, "b.csv": 3})
    (folder / "c.csv").write_text("mobile,code\n12,C1\n")
    with pytest.raises(CouponFileError, match=r"c\.csv: 1 row has an invalid MOBILE"):
        many_files_operator(f"{folder}/*.csv").execute(context)
    assert capillary_conn.jobs(SERIES) == []


def test_a_pattern_that_matches_nothing_fails_clearly_or_skips_when_asked(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    with pytest.raises(CouponFileError, match=r"\*\.csv: matches no file"):
        many_files_operator(f"{tmp_path}/*.csv").execute(context)
    with pytest.raises(AirflowSkipException, match="matches no file"):
        many_files_operator(f"{tmp_path}/*.csv", skip_if_no_files=True).execute(context)
    assert capillary_conn.requests("/upload/file/") == []
