"""OpenLineage names each file an upload really read (a list, a glob's matches, one file), and the Asset
declaration gives one inlet per file named literally. Through real uploads to the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, ObjectStoragePath

from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import make_operator, mobile_rows
from tests.faultkit import run_trigger_of

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[attr-defined,no-redef,unused-ignore]

pytestmark = pytest.mark.integration

SERIES = 8301


def exports(folder: Path, names: list[str]) -> list[Path]:
    """Files of 3 distinct valid rows each in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, name in enumerate(names):
        rows = mobile_rows(3, start=3 * number)
        (folder / name).write_text("mobile,code\n" + "".join(f"{m},{c}\n" for m, c in rows))
        paths.append(folder / name)
    return paths


def inputs_of(operator: Any) -> list[tuple[str, str]]:
    lineage = operator.get_openlineage_facets_on_complete(None)
    return [(dataset.namespace, dataset.name) for dataset in lineage.inputs]


def test_a_list_source_gives_one_input_per_file(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    a, b = exports(tmp_path, ["a.csv", "b.csv"])
    operator = make_operator([str(a), str(b)], SERIES)
    operator.execute(context)
    assert inputs_of(operator) == [("file", str(a)), ("file", str(b))]


def test_a_glob_source_gives_one_input_per_file_it_matched(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    a, b = exports(tmp_path / "daily", ["a.csv", "b.csv"])
    operator = make_operator(str(tmp_path / "daily" / "*.csv"), SERIES)
    operator.execute(context)
    assert inputs_of(operator) == [("file", str(a)), ("file", str(b))]


def test_a_single_source_gives_its_one_file(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    [a] = exports(tmp_path, ["a.csv"])
    operator = make_operator(ObjectStoragePath(f"file://{a}"), SERIES)
    operator.execute(context)
    assert inputs_of(operator) == [("file", str(a))]


def test_after_a_run_the_series_output_counts_the_rows_capillary_accepted(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    a, b = exports(tmp_path, ["a.csv", "b.csv"])
    operator = make_operator([str(a), str(b)], SERIES)
    summary = operator.execute(context)
    [series] = operator.get_openlineage_facets_on_complete(None).outputs
    assert summary["accepted_rows"] == 6
    assert series.outputFacets["outputStatistics"].rowCount == 6


def test_after_a_deferral_the_resumed_operator_names_the_files_the_first_one_read(
    capillary_conn: SandboxClient, tmp_path: Path, context: dict[str, Any]
) -> None:
    a, b = exports(tmp_path / "daily", ["a.csv", "b.csv"])
    options: dict[str, Any] = {"deferrable": True, "poll_interval": 0.05}
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(str(tmp_path / "daily" / "*.csv"), SERIES, **options).execute(context)
    resumed = make_operator(str(tmp_path / "daily" / "*.csv"), SERIES, **options)  # a new object, as in Airflow
    getattr(resumed, deferred.value.method_name)(context, event=run_trigger_of(deferred.value))
    assert inputs_of(resumed) == [("file", str(a)), ("file", str(b))]


def test_a_literal_list_declares_one_inlet_per_file_and_a_pattern_or_template_none() -> None:
    asset = Asset(uri="s3://b/x.csv", name="x")
    operator = make_operator(["s3://b/a.csv", ObjectStoragePath("s3://b/c.csv"), asset, "s3://b/{{ ds }}.csv"], SERIES)
    assert [inlet.uri for inlet in operator.inlets] == ["s3://b/a.csv", "s3://b/c.csv", "s3://b/x.csv"]
    assert make_operator("s3://b/daily/*.csv", SERIES).inlets == []
