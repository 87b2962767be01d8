"""OpenLineage for the upload operators: the source file in, the coupon series out, with the row counts.

The OpenLineage provider (``pip install 'airflow-provider-capillary[openlineage]'``) calls the operators'
``get_openlineage_facets_on_complete``, which asks :func:`facets_on_complete`. Without the provider
the import fails and no lineage is reported; nothing else changes.

- input: the source, named as OpenLineage names files: a local file is namespace ``file`` and its
  absolute path; ``s3://bucket/key`` is namespace ``s3://bucket``, name ``key`` (any other scheme the
  same way).
- output: the series, namespace ``capillary://{coupon host}``, name ``coupon-series/{id}`` (the same
  URI as its Airflow Asset), with an ``outputStatistics`` facet: the rows Capillary accepted.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from capillary_provider.assets import coupon_host

if TYPE_CHECKING:
    from capillary_provider.operators._base import BaseUploadOperator

log = logging.getLogger(__name__)


def source_dataset_name(source: str) -> tuple[str, str]:
    """(namespace, name) of a source path or URI, after OpenLineage's naming of files and object stores."""
    if "://" not in source:
        return "file", os.path.abspath(source)
    parts = urlsplit(source)
    if parts.scheme in ("file", "local"):
        return "file", parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def series_dataset_name(coupon_url: str, coupon_series_id: str) -> tuple[str, str]:
    """(namespace, name) of a coupon series: ``capillary://{host}``, ``coupon-series/{id}``."""
    return f"capillary://{coupon_host(coupon_url)}", f"coupon-series/{coupon_series_id}"


def facets_on_complete(operator: BaseUploadOperator) -> Any:
    """The ``OperatorLineage`` of a finished upload, or None when the OpenLineage provider is not installed."""
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        log.debug("OpenLineage provider not installed: no lineage for %s", operator.task_id)
        return None
    source = operator.source
    uri = str(getattr(source, "uri", source))
    in_namespace, in_name = source_dataset_name(uri)
    out_namespace, out_name = series_dataset_name(operator.hook.coupon_url, str(operator.coupon_series_id).strip())
    summary = operator.last_summary or {}
    facets: dict[str, Any] = {}
    if "accepted_rows" in summary:
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=int(summary["accepted_rows"]))
    return OperatorLineage(
        inputs=[InputDataset(namespace=in_namespace, name=in_name)],
        outputs=[OutputDataset(namespace=out_namespace, name=out_name, outputFacets=facets)],
    )


__all__ = ["facets_on_complete", "series_dataset_name", "source_dataset_name"]
