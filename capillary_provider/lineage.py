"""OpenLineage for the upload operators: the source files in, the coupon series out, with the row counts.

A function of the run's record (:mod:`capillary_provider.run`) and the coupon host, not of the operator,
which it does not import. The OpenLineage provider
(``pip install 'airflow-provider-capillary[openlineage]'``) calls the operators'
``get_openlineage_facets_on_complete``, which asks :func:`facets_on_complete`. Without the provider
the import fails and no lineage is reported; nothing else changes.

- inputs: one dataset per file the upload really read (each file of a list, each match of a glob, or
  the one file), named as OpenLineage names files: a local file is namespace ``file`` and its absolute
  path; ``s3://bucket/key`` is namespace ``s3://bucket``, name ``key`` (any other scheme the same way).
- output: the series, namespace ``capillary://{coupon host}``, name ``coupon-series/{id}`` (the same
  URI as its Airflow Asset), with an ``outputStatistics`` facet once every job is done: the rows Capillary
  accepted.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

from capillary_provider.assets import coupon_host
from capillary_provider.run import UploadRun, summary

log = logging.getLogger(__name__)


def source_dataset_name(source: str) -> tuple[str, str]:
    """(namespace, name) of a source path or URI, after OpenLineage's naming of files and object stores
    (a URI's ``conn_id@`` names an Airflow connection, not the store: it is left out)."""
    if "://" not in source:
        return "file", os.path.abspath(source)
    parts = urlsplit(source)
    if parts.scheme in ("file", "local"):
        return "file", parts.path
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}", parts.path.lstrip("/")


def series_dataset_name(coupon_url: str, coupon_series_id: str) -> tuple[str, str]:
    """(namespace, name) of a coupon series: ``capillary://{host}``, ``coupon-series/{id}``."""
    return f"capillary://{coupon_host(coupon_url)}", f"coupon-series/{coupon_series_id}"


def facets_on_complete(run: UploadRun, coupon_url: str) -> Any:
    """The ``OperatorLineage`` of an upload run, or None when the OpenLineage provider is not installed.

    :param run: the run: its series, each source file read, and its jobs (once all are terminal, the rows
        they accepted become the series' ``outputStatistics``).
    :param coupon_url: the connection's coupon host or URL, which names the series' namespace.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        log.debug("OpenLineage provider not installed: no lineage for coupon series %s", run.series_id)
        return None
    inputs = [InputDataset(namespace=ns, name=name) for ns, name in (source_dataset_name(f.source) for f in run.files)]
    out_namespace, out_name = series_dataset_name(coupon_url, run.series_id.strip())
    facets: dict[str, Any] = {}
    if run.jobs and all(job.is_terminal for job in run.jobs):  # the rows accepted are known once every job is done
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=summary(run)["accepted_rows"])
    return OperatorLineage(
        inputs=inputs, outputs=[OutputDataset(namespace=out_namespace, name=out_name, outputFacets=facets)]
    )


__all__ = ["facets_on_complete", "series_dataset_name", "source_dataset_name"]
