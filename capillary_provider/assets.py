"""Airflow Assets for coupon series: the outlet every upload operator declares, and its asset event.

A coupon series is the Asset ``capillary://{coupon host}/coupon-series/{id}`` (its name is the same
string). The coupon host comes from the Capillary connection, which a DAG file must not read while it
is parsed, and the series id is often templated; so the operators declare the asset alias
:data:`COUPON_SERIES_ALIAS` as their outlet and, once the upload is done, attach the series' Asset to
it with an event whose ``extra`` says what happened (:func:`asset_event_extra`). A DAG scheduled on
``coupon_series_asset(host, id)`` runs once the coupons are in. When the exact Asset is already among
the task's ``outlets`` (declared by the DAG's author), the extra is set on that outlet's event instead.

Asset events are recorded by Airflow only when the task succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

if TYPE_CHECKING:
    from airflow.sdk import Context

COUPON_SERIES_ALIAS = "capillary-coupon-series"
"""The asset alias every upload operator declares as an outlet; it resolves to the series' Asset at run time."""

EXTRA_KEYS = ("coupon_series_id", "upload_kind", "status", "job_ids", "total_rows", "accepted_rows", "rejected_rows")
"""The keys of an asset event's ``extra``, from the operator's summary."""


def coupon_host(coupon_url: str) -> str:
    """The host (and port, if any) of a coupon endpoint URL or bare host name: ``eu.api.capillarytech.com``."""
    text = coupon_url.strip().rstrip("/")
    return (urlsplit(text).netloc if "://" in text else text.split("/")[0]).lower()


def coupon_series_uri(host: str, coupon_series_id: int | str) -> str:
    """``capillary://{host}/coupon-series/{id}``: the stable URI (and name) of a coupon series' Asset.

    :param host: the coupon host of the connection (``coupon_host`` extra, else the API host), with or
        without a scheme.
    :param coupon_series_id: the series.
    """
    return f"capillary://{coupon_host(host)}/coupon-series/{str(coupon_series_id).strip()}"


def coupon_series_asset(host: str, coupon_series_id: int | str) -> Asset:
    """The Asset of a coupon series, to schedule a DAG on: ``schedule=[coupon_series_asset(host, 1001)]``."""
    uri = coupon_series_uri(host, coupon_series_id)
    return Asset(name=uri, uri=uri)


def source_inlet(source: object) -> Asset | None:
    """The inlet for one source file: the source itself if it is an Asset, its URI if it is an
    ``ObjectStoragePath`` or a URI string (``s3://bucket/coupons.csv``); None for a local path."""
    if isinstance(source, Asset):
        return source
    if isinstance(source, ObjectStoragePath) or (isinstance(source, str) and "://" in source):
        uri = str(source)
        return Asset(name=uri, uri=uri)
    return None


def declare(inlets: list[Any], outlets: list[Any], sources: Sequence[object]) -> None:
    """Add the series alias to ``outlets`` and one inlet per source file (:func:`source_inlet`) to ``inlets``,
    in place.

    :param sources: the files known before the run (templated strings and glob patterns left out: their
        files are known only once read, and lineage names them then).
    """
    if not any(isinstance(item, AssetAlias) and item.name == COUPON_SERIES_ALIAS for item in outlets):
        outlets.append(AssetAlias(name=COUPON_SERIES_ALIAS))
    for inlet in map(source_inlet, sources):
        if inlet is not None and not any(isinstance(item, Asset) and item.uri == inlet.uri for item in inlets):
            inlets.append(inlet)


def asset_event_extra(summary: Mapping[str, Any], upload_kind: str) -> dict[str, Any]:
    """What the asset event carries: series, kind, status, job ids and row counts (JSON only)."""
    extra = {key: summary.get(key) for key in EXTRA_KEYS if key != "upload_kind"}
    extra["upload_kind"] = upload_kind
    return extra


def record_asset_event(
    context: Context | Mapping[str, Any],
    outlets: Iterable[Any],
    host: str,
    coupon_series_id: str,
    extra: dict[str, Any],
) -> Asset | None:
    """Record the series' asset event with ``extra``; the Asset, or None outside a real task run.

    :param context: the task context (its ``outlet_events``).
    :param outlets: the task's outlets.
    :param host: the connection's coupon host.
    :param coupon_series_id: the series uploaded to.
    :param extra: see :func:`asset_event_extra`.
    """
    events = context.get("outlet_events")
    if events is None:  # a unit test's context, or a run without Airflow's task runner
        return None
    asset = coupon_series_asset(host, coupon_series_id)
    declared = [item for item in outlets if isinstance(item, Asset) and item.uri == asset.uri]
    if declared:
        events[declared[0]].extra = extra
    else:
        events[AssetAlias(name=COUPON_SERIES_ALIAS)].add(asset, extra=extra)
    return asset


__all__ = [
    "COUPON_SERIES_ALIAS",
    "asset_event_extra",
    "coupon_series_asset",
    "coupon_series_uri",
    "declare",
    "record_asset_event",
    "source_inlet",
]
