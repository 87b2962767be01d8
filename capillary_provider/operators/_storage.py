"""Where a path or URI the task was given lives: an :class:`~airflow.sdk.ObjectStoragePath` with the right
connection (sources, rejected rows, archive folders)."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath


def storage_path(location: Any, source: Any, source_conn_id: str | None) -> ObjectStoragePath:
    """A path or URI as an ObjectStoragePath (a plain path is local). ``source_conn_id`` applies to
    URIs of the source's scheme; another store takes its connection from the URI
    (``s3://aws_archive@bucket/...``) or an ObjectStoragePath."""
    if isinstance(location, ObjectStoragePath):
        return location
    text = str(location)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    first = source[0] if isinstance(source, (list, tuple)) and source else source
    first = first.uri if isinstance(first, Asset) else first
    source_scheme = str(first).split("://")[0] if "://" in str(first) else "file"
    same_store = text.split("://")[0] == source_scheme
    return ObjectStoragePath(text, conn_id=source_conn_id if same_store else None)
