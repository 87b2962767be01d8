"""What the two upload routes (coupons, redeemed coupons) share: the series id, the form, the stored file."""

from __future__ import annotations

import re
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from capillary_provider.sandbox.multipart import FormError, ReceivedForm, receive_form
from capillary_provider.sandbox.responses import cap_error

if TYPE_CHECKING:
    from fastapi import Request


def series_id_of(raw: str) -> int | None:
    """The series id of a path segment, or None when it is not a positive integer."""
    return int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) and int(raw) > 0 else None


def bad_series(raw: str) -> Response:
    return cap_error(400, f"couponSeriesId must be a positive integer, got {raw!r}")


def stored_name(uploaded: str, series_id: int) -> str:
    """Capillary's stored file name: ``<stem>_<millis>_<seriesId>.csv``."""
    stem = PurePosixPath(uploaded.replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "upload"
    return f"{stem}_{int(time.time() * 1000)}_{series_id}.csv"


async def read_form(request: Request, uploads_dir: Path, entry: dict[str, Any]) -> ReceivedForm | Response:
    """The whole multipart body (file part on disk), or the answer to give instead."""
    try:
        form = await receive_form(request.headers.get("content-type"), request.stream(), uploads_dir)
    except FormError as exc:
        return cap_error(400, str(exc))
    except ClientDisconnect:
        return Response(status_code=499)
    entry["fileName"] = form.file_name
    return form


def reject(form: ReceivedForm, message: str) -> Response:
    """Remove the received file and answer 400 with ``message``."""
    if form.file_path is not None:
        form.file_path.unlink(missing_ok=True)
    return cap_error(400, message)


def keep_file(received: Path, uploaded_name: str, uploads_dir: Path, job_id: int, series_id: int) -> tuple[str, Path]:
    """Move the received file to its place; ``(stored file name, path on disk)``."""
    file_name = stored_name(uploaded_name, series_id)
    disk_path = uploads_dir / f"{job_id}_{file_name}"
    received.rename(disk_path)
    return file_name, disk_path
