"""Assets, lineage and metrics without Airflow's task runner: names, inlets, and no OpenLineage provider."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from capillary_provider import lineage, metrics
from capillary_provider.assets import COUPON_SERIES_ALIAS, coupon_series_uri, record_asset_event
from capillary_provider.jobs import UploadJob
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.run import RunFile, UploadRun
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import mobile_rows


def _operator(**kwargs: Any) -> CouponUploadOperator:
    return CouponUploadOperator(
        task_id="upload", coupon_series_id=42, customer_identifier="MOBILE", customer_identifier_column=0, **kwargs
    )


def test_series_uri_is_host_and_id_whatever_the_form_of_the_host() -> None:
    assert coupon_series_uri("https://EU.api.capillarytech.com/", " 42") == (
        "capillary://eu.api.capillarytech.com/coupon-series/42"
    )
    assert coupon_series_uri("eu.api.capillarytech.com", 42) == "capillary://eu.api.capillarytech.com/coupon-series/42"
    assert coupon_series_uri("http://127.0.0.1:8080", 7) == "capillary://127.0.0.1:8080/coupon-series/7"


def test_operator_declares_the_series_alias_and_the_storage_path_as_inlet() -> None:
    op = _operator(source=ObjectStoragePath("s3://bucket/coupons.csv"))
    assert op.outlets == [AssetAlias(name=COUPON_SERIES_ALIAS)]
    assert [inlet.uri for inlet in op.inlets] == ["s3://bucket/coupons.csv"]


def test_an_asset_source_is_the_inlet_and_a_templated_path_is_not() -> None:
    source = Asset(uri="s3://bucket/in.csv", name="coupons")
    assert _operator(source=source).inlets == [source]
    assert _operator(source="{{ ti.xcom_pull('make') }}").inlets == []


def test_declared_series_outlet_gets_the_extra_instead_of_the_alias() -> None:
    class Accessor:
        def __init__(self) -> None:
            self.extra: dict[str, Any] = {}
            self.added: list[Asset] = []

        def add(self, asset: Asset, extra: dict[str, Any]) -> None:
            self.added.append(asset)

    class Events:
        """Like Airflow's outlet_events: keyed by the asset's or alias' identity (Assets are unhashable on 3.1)."""

        def __init__(self) -> None:
            self.by_key: dict[tuple[str, str], Accessor] = {}

        def __getitem__(self, key: Asset | AssetAlias) -> Accessor:
            return self.by_key.setdefault((type(key).__name__, key.name), Accessor())

    events = Events()
    asset = Asset(uri=coupon_series_uri("h", 1), name=coupon_series_uri("h", 1))
    record_asset_event({"outlet_events": events}, [asset], "h", "1", {"status": "FINISHED"})
    assert events[asset].extra == {"status": "FINISHED"}
    assert ("AssetAlias", COUPON_SERIES_ALIAS) not in events.by_key
    record_asset_event({"outlet_events": events}, [], "h", "2", {"status": "FINISHED"})
    assert [a.uri for a in events[AssetAlias(name=COUPON_SERIES_ALIAS)].added] == [coupon_series_uri("h", 2)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3://bucket/in/coupons.csv", ("s3://bucket", "in/coupons.csv")),
        ("file:///data/coupons.csv", ("file", "/data/coupons.csv")),
        ("/data/coupons.csv", ("file", "/data/coupons.csv")),
        ("gs://b/c.csv.gz", ("gs://b", "c.csv.gz")),
        ("s3://aws_default@bucket/in/coupons.csv", ("s3://bucket", "in/coupons.csv")),  # a source's conn_id@ left out
    ],
)
def test_source_dataset_names_follow_openlineage_naming(source: str, expected: tuple[str, str]) -> None:
    assert lineage.source_dataset_name(source) == expected


@pytest.mark.integration
def test_lineage_on_complete_with_the_openlineage_provider(capillary_conn: SandboxClient) -> None:
    op = _operator(source="s3://bucket/in.csv")
    op.upload_run = UploadRun(
        "42", "coupon", (RunFile("s3://bucket/in.csv"),), (UploadJob(7, "FINISHED", total_uploaded_count=12),)
    )
    result = op.get_openlineage_facets_on_complete(None)
    [source], [series] = result.inputs, result.outputs
    assert (source.namespace, source.name) == ("s3://bucket", "in.csv")
    assert (series.namespace, series.name) == (f"capillary://{capillary_conn.url.split('://')[1]}", "coupon-series/42")
    assert series.outputFacets["outputStatistics"].rowCount == 12


@pytest.mark.integration
def test_lineage_is_none_and_upload_works_without_the_openlineage_provider(
    capillary_conn: SandboxClient,
    monkeypatch: pytest.MonkeyPatch,
    write_csv: Any,
    context: dict[str, Any],
) -> None:
    real_import = builtins.__import__

    def no_openlineage(name: str, *args: Any, **kwargs: Any) -> Any:
        if "openlineage" in name:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openlineage)
    path: Path = write_csv(mobile_rows(5))
    op = _operator(source=str(path), poll_interval=0.2)
    summary = op.execute(context)
    assert summary["accepted_rows"] == 5
    assert op.get_openlineage_facets_on_complete(None) is None


def test_a_broken_metrics_backend_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def incr(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("statsd down")

    monkeypatch.setattr(metrics, "stats", lambda: Broken())
    metrics.count(metrics.ROWS_SENT, 3, "coupon")


@pytest.mark.integration
def test_a_429_counts_as_throttled_and_every_status_call_as_a_poll(
    capillary_conn: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names reach ``Stats`` (the StatsD wire format is checked in test_native_airflow.py)."""
    sent: list[tuple[str, Any]] = []

    class Recording:
        def incr(self, name: str, value: int, tags: Any = None) -> None:
            sent.append((name, value))

    monkeypatch.setattr(metrics, "stats", lambda: Recording())
    capillary_conn.add_fault("status", "status", status=429, retry_after=0, times=1)
    from capillary_provider.hooks.capillary import CapillaryHook

    CapillaryHook().get_upload_jobs(42)  # the 429, then a retry that succeeds
    assert sent.count((metrics.THROTTLED, 1)) == 1
    assert sent.count((metrics.STATUS_CALLS, 1)) == 2


@pytest.mark.integration
def test_an_asset_source_is_read_from_its_uri(
    capillary_conn: SandboxClient, write_csv: Any, context: dict[str, Any]
) -> None:
    path: Path = write_csv(mobile_rows(4))
    source = Asset(uri=f"file://{path}", name="coupons")
    op = _operator(source=source, poll_interval=0.2)
    op.render_template_fields(context)  # an Asset passes through templating unchanged
    assert op.source == source
    assert op.execute(context)["accepted_rows"] == 4
